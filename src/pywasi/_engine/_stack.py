"""Native stack for the wasm stack.

wasmtime runs wasm on the native stack of the thread that calls it, and
traps ("call stack exhausted") once the wasm frames take ``max_wasm_stack``
bytes below where the call entered. That many bytes must be there: if the
thread's native stack ends first, the process dies with SIGSEGV. Host calls
made at the deepest point (Python, for WASI's functions) need native stack
beyond it too.

The default wasm stack (``_engines.DEFAULT_WASM_STACK``, wasmtime's own)
fits any thread a caller may use, and the guest runs on the caller's thread,
at no cost. A module compiled with a larger one runs each call into wasm
(instantiation's start function, ``_start``, ``_initialize``, an export) on
a worker thread of pywasi's whose native stack is the wasm stack plus
``HEADROOM``, and waits for it (nothing per host call; see ``call``). Its
wasi-threads threads are started with that native stack too, and call in
place. A Ctrl-C (KeyboardInterrupt) while waiting reaches the caller; the
guest runs on until it ends (or its timeout stops it).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

from .._errors import PywasiError
from ._engines import DEFAULT_WASM_STACK

__all__ = ["HEADROOM", "IDLE_SECONDS", "native_stack", "start_thread", "call", "enter",
           "stop_idle"]

# Native stack beyond the wasm stack: the frames above the call's entry and
# Python's host calls made at the deepest point. A main thread's usual 8 MiB:
# only the pages touched are ever committed.
HEADROOM = 8 << 20
_MIB = 1 << 20

# The wasm stack the calling thread was started for (pywasi's threads only).
_room = threading.local()
# threading.stack_size is process-wide: set and restored around one start.
_SIZE_LOCK = threading.Lock()

T = TypeVar("T")


def native_stack(wasm_stack: int) -> int:
    """The native stack size of a thread that runs ``wasm_stack`` bytes of wasm."""
    return (wasm_stack + HEADROOM + _MIB - 1) // _MIB * _MIB


def enter(wasm_stack: int) -> None:
    """Mark the calling thread (started by ``start_thread``) as holding
    ``wasm_stack``: its calls into wasm need no other thread."""
    _room.stack = wasm_stack


def start_thread(thread: threading.Thread, wasm_stack: int) -> None:
    """``thread.start()``, with native stack for ``wasm_stack`` bytes of wasm
    when that is more than the default (the callers check first, so that
    this module is not imported for the default). NOTE: another thread started at the
    same moment by code that is not pywasi's gets this size too (harmless:
    address space, committed only as it is used)."""
    if wasm_stack <= DEFAULT_WASM_STACK:
        thread.start()
        return
    with _SIZE_LOCK:
        before = threading.stack_size(native_stack(wasm_stack))
        try:
            thread.start()
        finally:
            threading.stack_size(before)


# Idle workers by wasm stack size. A call hands its function to an idle
# worker of its size (two thread switches, tens of microseconds) rather than
# starting a thread (~0.15-0.3 ms here, for the mmap of its stack); a worker
# idle for IDLE_SECONDS ends, giving back the stack pages its guests touched.
IDLE_SECONDS = 5.0
_idle: dict[int, list[_Worker]] = {}
_IDLE_LOCK = threading.Lock()


class _Worker:
    """A thread of pywasi's with native stack for ``stack`` bytes of wasm,
    running one handed-over call at a time."""

    __slots__ = ("stack", "job", "outcome", "given", "done", "thread")

    def __init__(self, stack: int) -> None:
        self.stack = stack
        self.job: tuple[Callable[..., Any], tuple[Any, ...]] | None = None
        self.outcome: tuple[bool, Any] | None = None
        self.given = threading.Lock()   # released when a job is set
        self.given.acquire()
        self.done = threading.Lock()    # released when its outcome is set
        self.done.acquire()
        self.thread = threading.Thread(target=self.loop, name="pywasi-wasm-stack", daemon=True)

    def loop(self) -> None:
        enter(self.stack)
        while True:
            if not self.given.acquire(timeout=IDLE_SECONDS):
                with _IDLE_LOCK:
                    idle = _idle.get(self.stack, [])
                    if self in idle:
                        idle.remove(self)
                        return
                    if self.job is None:
                        return  # its last caller was interrupted and left it
                self.given.acquire()  # taken just now: its job is being handed over
            if self.job is None:
                return  # stop_idle
            fn, args = self.job
            try:
                self.outcome = (True, fn(*args))
            except BaseException as e:  # noqa: BLE001 - handed to the caller
                self.outcome = (False, e)
            # Nothing of the call may stay alive while this thread idles (its
            # instance, store and descriptors).
            del fn, args
            self.job = None
            self.done.release()


def stop_idle() -> None:
    """End every idle worker now (they end by themselves after
    ``IDLE_SECONDS``), and wait for them."""
    with _IDLE_LOCK:
        workers = [w for idle in _idle.values() for w in idle]
        _idle.clear()
    for worker in workers:
        worker.given.release()   # with no job: it ends
    for worker in workers:
        worker.thread.join()


def call(wasm_stack: int, fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)``, a call into wasm with ``wasm_stack`` bytes of wasm
    stack, on a thread whose native stack holds it: this one if pywasi
    started it so, else a worker of pywasi's, waited for. Its result or
    exception is this call's."""
    if getattr(_room, "stack", 0) >= wasm_stack:
        return fn(*args)
    with _IDLE_LOCK:
        idle = _idle.get(wasm_stack)
        worker = idle.pop() if idle else None
        if worker is not None:
            worker.job = (fn, args)
    if worker is None:
        worker = _Worker(wasm_stack)
        worker.job = (fn, args)
        try:
            start_thread(worker.thread, wasm_stack)
        except (RuntimeError, ValueError, MemoryError) as e:
            raise PywasiError(f"cannot start a thread with {native_stack(wasm_stack) >> 20} MiB "
                              f"of native stack for a wasm stack of {wasm_stack} bytes: "
                              f"{e}") from None
    worker.given.release()
    worker.done.acquire()
    assert worker.outcome is not None
    ok, value = worker.outcome
    worker.outcome = None
    with _IDLE_LOCK:
        _idle.setdefault(wasm_stack, []).append(worker)
    if ok:
        return value  # type: ignore[no-any-return]
    raise value
