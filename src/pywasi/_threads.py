"""wasi-threads: ``wasi``.``thread-spawn`` and the ending of a program that
has several threads.

Model (the wasi-threads proposal, as wasmtime runs it): every thread is an
instance of the same module in its own wasmtime store, on the one threads
engine, importing the one shared memory; all of them call the same WASI host
functions, so they share one descriptor table. ``thread-spawn(start_arg)``
allocates a thread id (1 .. 0x1FFFFFFF), instantiates the module again and
calls its ``wasi_thread_start(tid, start_arg)`` export in a new Python thread;
it answers a negative number (-AGAIN) when it cannot.

Ending. The program's outcome is decided once, by whichever comes first:
``_start`` returning (code 0), ``proc_exit`` in any thread (its code), a trap
in any thread (its message), or an interrupt the host saw. Then every other
thread is stopped wherever it is:
- running wasm: ``StopSwitch`` (epoch interruption) traps it at its next
  loop or call;
- in ``memory.atomic.wait``: every address of the shared memory is notified
  (``SharedMemory.wake_waiters``), then the woken thread meets the epoch;
- blocked in a WASI call: the calls that can block (poll_oneoff, fd_read,
  sock_accept, sock_recv, fd_write, sock_send) also wait on
  ``Context.cancel_fd``, which becomes readable, and they trap
  (``Context.when_readable``, ``Context.when_writable``). NOTE: path_open
  of a FIFO is not cancelled: the end waits for it, as a single-threaded
  program would hang there too.
The same ending stops a program at its time limit or when it is cancelled
(``begin``'s ``timeout`` and ``cancels``, with or without threads; armed by
``_cancel.Alarm``): the first to fire decides the outcome (a
``LimitExceeded``) and stops every thread as above. A bounded call into a
reactor (``Instance.call``) is such a program too, begun and ended around
the one call.
``WASI.start`` (the thread that runs ``_start``) joins every thread before
it returns the outcome, so no Python thread of the program is left. Outcomes
come from host state (``Instance._outcome`` reads what proc_exit recorded),
never from which exception wasmtime reports: wasmtime-py keeps a host
function's exception in one global that threads share.
"""

from __future__ import annotations

import _thread
import os

from ._abi import Errno
from ._errors import LimitExceeded, PywasiError, Trap, WasiExit
from ._lean import DEFAULT_WASM_STACK

# The engine and ``threading`` are imported by the methods that run threads,
# not here: every WASI makes a ThreadSpawn, ``pywasi run``'s lean route too
# (``_lean``), and a program without threads or limits never needs them.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import threading
    from typing import Any

    from ._engine import Instance, StopSwitch
    from ._syscalls._context import Context

__all__ = ["ThreadSpawn", "MAX_THREAD_ID", "check_timeout", "duration", "cancels_of",
           "outcome_of_start"]

MAX_THREAD_ID = 0x1FFFFFFF
_SPAWN_FAILED = -int(Errno.AGAIN)
# How often the ending thread re-notifies waiters while it waits for the
# others: a thread may enter memory.atomic.wait just after a notification.
_WAKE_INTERVAL = 0.02

if TYPE_CHECKING:
    # An exit code (int), or the exception start() raises (Trap, KeyboardInterrupt).
    Outcome = Any


# The wasi-threads id of the thread running (set in each spawned thread).
_running = _thread._local()


class ThreadSpawn:
    """``wasi``.``thread-spawn`` for one WASI object (its import object holds
    it), and the threads of the program that object runs."""

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx
        self._lock = _thread.allocate_lock()   # threading.Lock
        self._program: Instance | None = None
        self._switch: StopSwitch | None = None
        self._threads: dict[int, threading.Thread] = {}
        self._next_id = 1
        self._ended = False
        self._outcome: Outcome = None
        self._main_left: threading.Event | None = None   # made by begin()
        self._cancel_write: int | None = None
        # Held while the cancel pipe is written or closed: a time limit's
        # timer may write it as ``end`` closes it (the number could be reused).
        self._cancel_lock = _thread.allocate_lock()
        self._alarm: Any = None  # a _cancel.Alarm while a deadline or cancel is armed
        # Which begin..end the program is in: a stop decided for an earlier
        # one (a late timer) must not end the next call into a reactor.
        self._generation = 0

    def __repr__(self) -> str:
        return "<wasi-threads thread-spawn>"

    # -- the import -------------------------------------------------------
    def __call__(self, start_arg: int) -> int:
        program = self._program
        if program is None or program.link is None:
            return _SPAWN_FAILED  # not started by WASI.start()
        with self._lock:
            tid = self._allocate_id()
        if tid is None:
            return _SPAWN_FAILED
        from ._engine import instantiate, new_store
        from ._engine._engines import wasm_stack
        try:
            module, imports = program.link
            instance = instantiate(module, imports, store=new_store(module.engine, self._switch),
                                   fuel=program.fuel, max_memory=program.max_memory)
            entry = instance.exports.get("wasi_thread_start")
            if entry is None:
                raise PywasiError("the module does not export wasi_thread_start")
        except BaseException as e:
            # The reserved id must go whatever failed: ``end`` joins every
            # entry, and a stale one (the spawning thread) would never leave.
            with self._lock:
                del self._threads[tid]
            if not isinstance(e, Exception):
                raise  # an interrupt: it ends the program
            return _SPAWN_FAILED  # cannot link or start it (no memory, a trap in its start)
        stack = wasm_stack(module.engine)
        import threading
        thread = threading.Thread(target=self._run, args=(entry, tid, start_arg, stack),
                                  name=f"wasi-thread-{tid}", daemon=True)
        with self._lock:
            if self._ended:
                del self._threads[tid]
                return _SPAWN_FAILED
            self._threads[tid] = thread
            try:
                if stack <= DEFAULT_WASM_STACK:
                    thread.start()
                else:   # with native stack for the wasm stack
                    from ._engine._stack import start_thread
                    start_thread(thread, stack)
            except (RuntimeError, ValueError, MemoryError):  # the host cannot start another thread
                del self._threads[tid]
                return _SPAWN_FAILED
        return tid

    def thread_id(self) -> int | None:
        """The calling thread's wasi-threads id (0: the main thread) once the
        program has spawned a thread; None before (the trace's prefix)."""
        if self._next_id == 1 and not self._threads:
            return None
        return getattr(_running, "tid", 0)

    def _allocate_id(self) -> int | None:
        """The next free id, wrapping at MAX_THREAD_ID; reserved in the table."""
        if self._ended or len(self._threads) >= MAX_THREAD_ID:
            return None
        tid = self._next_id
        while tid in self._threads:
            tid = tid % MAX_THREAD_ID + 1
        self._next_id = tid % MAX_THREAD_ID + 1
        import threading
        self._threads[tid] = threading.current_thread()  # a placeholder until it starts
        return tid

    def _run(self, entry: Any, tid: int, start_arg: int, stack: int) -> None:
        _running.tid = tid
        if stack > DEFAULT_WASM_STACK:
            from ._engine._stack import enter
            enter(stack)
        try:
            entry(tid, start_arg)
        except WasiExit as e:
            self._end_from_thread(e.code)
        except BaseException as e:  # a Trap, or an interrupt a host call recorded
            self._end_from_thread(e)
        finally:
            with self._lock:
                self._threads.pop(tid, None)

    # -- the program ------------------------------------------------------
    def begin(self, instance: Instance, timeout: tuple[float, str] | None = None,
              cancels: tuple[Any, ...] = ()) -> None:
        """``WASI.start`` is about to run ``instance``'s ``_start`` (or
        ``Instance.call`` one of its exports): the threads it spawns are
        instances of the same module. ``timeout``: (seconds, how the limit
        is named), the program's time limit; ``cancels``: what cancels it
        (``CancelToken``s, events)."""
        with self._lock:
            self._generation += 1
            generation = self._generation
            self._ended = False
            self._outcome = None
        import threading
        if self._main_left is None:
            self._main_left = threading.Event()
        self._main_left.clear()
        from ._engine import store_switch
        self._program = instance
        self._switch = store_switch(instance.store)
        read, self._cancel_write = os.pipe()
        self._ctx.set_cancel_fd(read)
        if timeout is not None or cancels:
            from ._cancel import Alarm  # only when asked: start-up
            self._alarm = Alarm(lambda outcome: self._interrupt(outcome, generation), timeout,
                                cancels)

    def _decide(self, outcome: Outcome, generation: int | None = None) -> bool:
        """Record the program's outcome if none is yet; True if this one is
        it. ``generation``: the begin..end an alarm was armed for."""
        with self._lock:
            if self._ended or generation not in (None, self._generation):
                return False
            self._ended, self._outcome = True, outcome
            return True

    def _stop_others(self) -> None:
        program = self._program
        if self._switch is not None and program is not None:
            self._switch.stop(program.store.engine)
        with self._cancel_lock:
            if self._cancel_write is not None:
                os.write(self._cancel_write, b"x")
        # A pass over the whole memory costs ~7 ms per MiB: skip it when no
        # other thread can be in memory.atomic.wait -- none is registered
        # (a thread leaves the table only once out of wasm, and no thread
        # starts after the outcome is decided) and the main thread has left.
        import threading
        with self._lock:
            others = any(t is not threading.current_thread() for t in self._threads.values())
        if others or not self._main_left_event().is_set():
            self._wake()

    def _wake(self) -> None:
        """Make a stopped program's wasm notice, again: tick the epoch once
        more, and notify a shared memory's waiters.

        The tick is repeated because one can be lost: a store's epoch
        callback that read ``stopped`` just before the stop gives the store
        a deadline one past the epoch *as wasmtime reads it after the
        callback*, which may already count the stop's own tick -- the store
        then waits for a tick that never comes (seen: two runs with
        timeouts on one engine, one spinning on). Ticks are engine-wide and
        cheap; other stores' callbacks just renew their deadline."""
        program = self._program
        if program is None:
            return
        switch = self._switch
        if switch is not None and switch.stopped:
            switch.stop(program.store.engine)
        from ._engine import SharedMemory
        memory = program.imported_memory
        if isinstance(memory, SharedMemory):
            memory.wake_waiters()

    def _end_from_thread(self, outcome: Outcome) -> None:
        if not self._decide(outcome):
            return
        self._stop_others()
        # The main thread may sit in memory.atomic.wait (joining us):
        # keep waking it until it has left wasm.
        self._wake_until_main_left()

    def _interrupt(self, outcome: Outcome, generation: int) -> None:
        """The alarm: a deadline passed or a cancel was set, in a timer, a
        watcher or the thread that set a ``CancelToken`` (which must not be
        held: an event loop's, say). A threads program's main thread may sit
        in memory.atomic.wait; a thread of its own keeps waking it."""
        if not self._decide(outcome, generation):
            return
        self._stop_others()
        # Until the main thread has left wasm, keep ticking (a tick can be
        # lost, see _wake) and waking a shared memory's waiters; in a
        # thread of its own, as this one may be a caller's (CancelToken.set).
        import threading
        threading.Thread(target=self._wake_until_main_left, daemon=True).start()

    def _wake_until_main_left(self) -> None:
        while not self._main_left_event().wait(_WAKE_INTERVAL):
            self._wake()

    def _main_left_event(self) -> threading.Event:
        # Set when the main thread has left wasm: made by begin(), which
        # every run of the program's threads (and every bounded call) follows.
        assert self._main_left is not None
        return self._main_left

    def call(self, instance: Instance, func: Any, args: tuple[Any, ...], *, timeout: Any,
             cancel: Any, max_output: Any) -> Any:
        """``Instance.call`` with a deadline, a cancel or an output cap: the
        call is a program of its own, begun and ended as ``WASI.start``'s
        run is, so the same ending stops it wherever it is. Its results, or
        the exception; a limit that stopped it leaves the instance refusing
        calls (``Instance.stopped``)."""
        from ._engine import store_switch
        from ._engine._engines import has_epochs
        seconds = check_timeout(timeout)
        cancels = cancels_of(cancel)
        if (seconds is not None or cancels) and not has_epochs(instance.store.engine):
            what = "timeout" if seconds is not None else "cancel"
            raise PywasiError(f"call({what}=...) needs a module compiled to be interruptible: "
                              "pywasi.compile(..., interruptible=True)")
        budget = self._ctx.output_budget
        if max_output is not None:
            if isinstance(max_output, bool) or not isinstance(max_output, int) or max_output < 0:
                raise ValueError(f"max_output must be a non-negative int, got {max_output!r}")
            if budget is None:
                raise PywasiError("call(max_output=...) needs the WASI object to count output: "
                                  "WASI(..., max_output=BYTES), the cap of all the instance writes")
        if self._program is not None:
            raise PywasiError("call(): another bounded call or the program is running in this "
                              "WASI environment")
        saved = None if budget is None else (budget.limit, budget.shown)
        if max_output is not None and budget.written + max_output < budget.limit:
            budget.limit, budget.shown = budget.written + max_output, max_output
        try:
            self.begin(instance, None if seconds is None else (seconds, duration(seconds)),
                       cancels)
            outcome = self.end(_outcome_of_call(func, args))
        finally:
            if saved is not None:
                budget.limit, budget.shown = saved
        if isinstance(outcome, _Returned):
            switch = store_switch(instance.store)
            if switch is not None:
                switch.stopped = False  # the ending stopped it: the next call may run
            return outcome.value
        if isinstance(outcome, Trap) and not isinstance(outcome, LimitExceeded):
            outcome = self._ctx.limit_reached() or outcome
        if isinstance(outcome, LimitExceeded):
            instance._refuse_calls(outcome)
        raise outcome

    def end(self, outcome: Outcome) -> Outcome:
        """Called by ``WASI.start`` once ``_start`` has returned or failed:
        decide (if no thread did first), stop and join every thread, and
        return the program's outcome."""
        import threading
        self._main_left_event().set()
        if self._decide(outcome):
            self._stop_others()
        while True:
            with self._lock:
                running = [t for t in self._threads.values() if t is not threading.current_thread()]
            if not running:
                break
            running[0].join(_WAKE_INTERVAL)
            if running[0].is_alive():
                self._wake()
        if self._alarm is not None:
            self._alarm.disarm()
            self._alarm = None
        with self._cancel_lock:
            if self._cancel_write is not None:
                os.close(self._cancel_write)
                self._cancel_write = None
        if self._ctx.cancel_fd is not None:
            os.close(self._ctx.cancel_fd)
            self._ctx.set_cancel_fd(None)
        self._program = None
        outcome, self._outcome = self._outcome, None  # no exception (and its frames) kept
        return outcome


class _Returned:
    """A bounded call's results, told apart from an exit code or an error."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


def _outcome_of_call(func: Any, args: tuple[Any, ...]) -> Outcome:
    try:
        return _Returned(func(*args))
    except BaseException as e:  # WasiExit, a Trap, an interrupt: raised once all have ended
        return e


def check_timeout(timeout: Any) -> float | None:
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(f"timeout must be a number of seconds, not {type(timeout).__name__}")
    if not timeout > 0 or timeout != timeout or timeout == float("inf"):
        raise ValueError(f"timeout must be a positive, finite number of seconds, got {timeout}")
    return float(timeout)


def cancels_of(cancel: Any) -> tuple[Any, ...]:
    """``cancel=`` (one, or a tuple: ``run_async`` passes the caller's and
    its task's) as the tuple ``ThreadSpawn.begin`` takes."""
    if cancel is None:
        return ()
    from ._cancel import check_cancel  # only when asked: start-up
    return tuple(check_cancel(c) for c in (cancel if isinstance(cancel, tuple) else (cancel,))
                 if c is not None)


def duration(seconds: float) -> str:
    """A time limit as people write it: 500ms, 2s, 1.5s, 1m."""
    if seconds >= 60 and seconds % 60 == 0:
        return f"{int(seconds // 60)}m"
    if seconds < 1 and (seconds * 1000) == int(seconds * 1000):
        return f"{int(seconds * 1000)}ms"
    return f"{seconds:g}s"


def outcome_of_start(entry: Any) -> Outcome:
    """Run ``_start``: its outcome (0, the exit code, or the exception)."""
    try:
        entry()
    except WasiExit as e:
        return e.code
    except BaseException as e:  # a Trap, an interrupt: start() raises it once all have ended
        return e
    return 0
