"""Shared memories (wasi-threads), and the workaround for wasmtime-py's
``SharedMemory`` that ``Linker.define`` refuses (50 and 51)."""

from __future__ import annotations

import ctypes
import weakref

import wasmtime
from wasmtime import _ffi as ffi

from .._errors import LimitExceeded
from ._engines import has_fuel, threads_engine

__all__ = ["SharedMemory", "define_workaround_used", "capped"]


class SharedMemory:
    """A shared memory (wasi-threads): not owned by any store, imported by the
    instance of every thread. ``buffer``, ``size`` and ``grow`` as ``Memory``'s;
    its base address never moves."""

    __slots__ = ("_memory", "_engine")

    stable = True

    def __init__(self, memory: wasmtime.SharedMemory,
                 engine: wasmtime.Engine | None = None) -> None:
        self._memory = memory
        # The engine it was made on (None: the threads engine): waking its
        # waiters instantiates a helper there, as a memory cannot cross
        # engines (a module compiled with a larger wasm stack has its own).
        self._engine = engine

    @property
    def buffer(self) -> memoryview:
        address, length = self.locate()
        return memoryview((ctypes.c_char * length).from_address(address)).cast("B")

    @property
    def size(self) -> int:
        # NOTE: not wasmtime.SharedMemory.size(): in wasmtime-py 50 and 51 it
        # hands the C call a pointer to the pointer (ctypes.ArgumentError).
        return self.locate()[1] // 65536

    def grow(self, pages: int) -> int:
        return int(self._memory.grow(pages))

    def locate(self) -> tuple[int, int]:
        memory = self._memory
        address = ctypes.cast(memory.data_ptr(), ctypes.c_void_p).value
        return int(address or 0), int(memory.data_len())

    @property
    def wasmtime_memory(self) -> wasmtime.SharedMemory:
        return self._memory

    def define(self, linker: wasmtime.Linker, store: wasmtime.Store, module: str, name: str) -> None:
        """``linker.define(store, module, name, <this memory>)``."""
        global _DEFINE_WORKAROUND
        if not _DEFINE_WORKAROUND:
            try:
                linker.define(store, module, name, self._memory)
                return
            except TypeError:
                _DEFINE_WORKAROUND = True
        # NOTE: wasmtime-py 50 and 51: SharedMemory._as_extern wraps the
        # pointer in one ctypes.pointer() too many (Linker.define raises
        # TypeError before any C call); the extern built with the memory's
        # own pointer is what the C API takes. Used once the public call has
        # failed so (a wasmtime-py that fixes it never gets here).
        m, n = module.encode(), name.encode()
        try:
            extern = ffi.wasmtime_extern_t(ffi.WASMTIME_EXTERN_SHAREDMEMORY,
                                           ffi.wasmtime_extern_union(sharedmemory=self._memory.ptr()))
            err = ffi.wasmtime_linker_define(linker.ptr(), store._context(),
                                             ctypes.create_string_buffer(m), len(m),
                                             ctypes.create_string_buffer(n), len(n),
                                             ctypes.byref(extern))
        except (AttributeError, TypeError) as e:  # a wasmtime-py whose internals moved
            raise wasmtime.WasmtimeError(f"this wasmtime-py cannot import a shared memory "
                                         f"({e})") from None
        if err:
            raise wasmtime.WasmtimeError._from_ptr(err)

    def wake_waiters(self) -> None:
        """``memory.atomic.notify`` every address of the memory: the host
        cannot see where a thread waits, and a thread in
        ``memory.atomic.wait`` never reaches an epoch check until woken. A
        woken thread of a stopped program traps at its next loop or call
        (~60 ms for 16 MiB on the machine this was written on)."""
        engine = self._engine or threads_engine()
        store = wasmtime.Store(engine)
        store.set_epoch_deadline(1 << 62)  # this helper must not be stopped
        if has_fuel(engine):
            # A fuel engine's store starts empty: enough for a pass over 4 GiB.
            store.set_fuel(1 << 40)
        linker = wasmtime.Linker(engine)
        self.define(linker, store, "env", "memory")
        notify_all = linker.instantiate(store, _notifier(engine)).exports(store)["notify_all"]
        assert isinstance(notify_all, wasmtime.Func)
        notify_all(store, self.locate()[1])


def capped(ty: wasmtime.MemoryType, max_memory: int | None) -> wasmtime.MemoryType:
    """``ty`` (a shared memory's type) with its maximum lowered to
    ``max_memory`` bytes: a shared memory belongs to the engine, not to a
    store, so the store limiter does not see its growth; its own maximum
    does (memory.grow past it answers -1). Still a subtype of ``ty``, so the
    module's import accepts it. A minimum above the cap is refused, as the
    store limiter refuses an initial memory above it."""
    if max_memory is None:
        return ty
    pages = max_memory // 65536
    if ty.limits.min > pages:
        raise LimitExceeded("memory", f"memory limit of {max_memory} bytes: the shared memory's "
                                      f"minimum is {ty.limits.min * 65536} bytes")
    if ty.limits.max is not None:
        pages = min(pages, ty.limits.max)
    return wasmtime.MemoryType(wasmtime.Limits(ty.limits.min, pages), is_64=ty.is_64, shared=True)


def define_workaround_used() -> bool:
    """Whether ``SharedMemory.define`` needed the workaround in this process
    (tests/test_threads.py pins that it still does: when upstream fixes it,
    that test fails and the workaround can go)."""
    return _DEFINE_WORKAROUND


_DEFINE_WORKAROUND = False
_NOTIFIERS: weakref.WeakKeyDictionary[wasmtime.Engine, wasmtime.Module] = weakref.WeakKeyDictionary()


def _notifier(engine: wasmtime.Engine) -> wasmtime.Module:
    notifier = _NOTIFIERS.get(engine)
    if notifier is None:
        # Accepts any shared memory32 up to 4 GiB (a smaller import is a subtype).
        notifier = _NOTIFIERS[engine] = wasmtime.Module(engine, """(module
          (import "env" "memory" (memory 0 65536 shared))
          (func (export "notify_all") (param $end i32) (local $a i32)
            (loop $next
              (drop (memory.atomic.notify (local.get $a) (i32.const -1)))
              (local.set $a (i32.add (local.get $a) (i32.const 4)))
              (br_if $next (i32.lt_u (local.get $a) (local.get $end))))))""")
    return notifier

