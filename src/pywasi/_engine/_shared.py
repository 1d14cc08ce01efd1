"""Shared memories (wasi-threads), and the workarounds for wasmtime-py 50's
``SharedMemory`` bugs."""

from __future__ import annotations

import ctypes

import wasmtime
from wasmtime import _ffi as ffi

from .._errors import LimitExceeded
from ._engines import threads_engine

__all__ = ["SharedMemory", "shared_memory_workaround", "capped"]


def _wasmtime_release() -> str:
    from importlib.metadata import version
    return version("wasmtime")


class SharedMemory:
    """A shared memory (wasi-threads): not owned by any store, imported by the
    instance of every thread. ``buffer``, ``size`` and ``grow`` as ``Memory``'s;
    its base address never moves."""

    __slots__ = ("_memory",)

    stable = True

    def __init__(self, memory: wasmtime.SharedMemory) -> None:
        self._memory = memory

    @property
    def buffer(self) -> memoryview:
        address, length = self.locate()
        return memoryview((ctypes.c_char * length).from_address(address)).cast("B")

    @property
    def size(self) -> int:
        if shared_memory_workaround():
            return self.locate()[1] // 65536
        return int(self._memory.size())

    def grow(self, pages: int) -> int:
        return int(self._memory.grow(pages))

    def locate(self) -> tuple[int, int]:
        ptr = self._memory.ptr()
        address = ctypes.cast(ffi.wasmtime_sharedmemory_data(ptr), ctypes.c_void_p).value
        return int(address or 0), int(ffi.wasmtime_sharedmemory_data_size(ptr))

    @property
    def wasmtime_memory(self) -> wasmtime.SharedMemory:
        return self._memory

    def define(self, linker: wasmtime.Linker, store: wasmtime.Store, module: str, name: str) -> None:
        """``linker.define(store, module, name, <this memory>)``."""
        if not shared_memory_workaround():
            linker.define(store, module, name, self._memory)
            return
        # wasmtime-py 50: SharedMemory._as_extern wraps the pointer in one
        # ctypes.pointer() too many (Linker.define raises TypeError); the
        # extern built with the memory's own pointer is what the C API takes.
        extern = ffi.wasmtime_extern_t(ffi.WASMTIME_EXTERN_SHAREDMEMORY,
                                       ffi.wasmtime_extern_union(sharedmemory=self._memory.ptr()))
        m, n = module.encode(), name.encode()
        err = ffi.wasmtime_linker_define(linker.ptr(), store._context(), ctypes.create_string_buffer(m),
                                         len(m), ctypes.create_string_buffer(n), len(n),
                                         ctypes.byref(extern))
        if err:
            raise wasmtime.WasmtimeError._from_ptr(err)

    def wake_waiters(self) -> None:
        """``memory.atomic.notify`` every address of the memory: the host
        cannot see where a thread waits, and a thread in
        ``memory.atomic.wait`` never reaches an epoch check until woken. A
        woken thread of a stopped program traps at its next loop or call
        (~60 ms for 16 MiB on the machine this was written on)."""
        engine = threads_engine()
        store = wasmtime.Store(engine)
        store.set_epoch_deadline(1 << 62)  # this helper must not be stopped
        linker = wasmtime.Linker(engine)
        self.define(linker, store, "env", "memory")
        notify_all = linker.instantiate(store, _notifier()).exports(store)["notify_all"]
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


def shared_memory_workaround() -> bool:
    """NOTE: the SharedMemory bugs worked around above were found in
    wasmtime-py 50.0.1; the workaround is used with the 50.x releases only
    (tests/test_threads.py fails when upstream fixes or changes them, so the
    workaround can then go). Asked only when a shared memory is used: reading
    the version costs ~20 ms of imports."""
    global _WORKAROUND
    if _WORKAROUND is None:
        _WORKAROUND = _wasmtime_release().split(".")[0] == "50"
    return _WORKAROUND


_WORKAROUND: bool | None = None
_NOTIFIER: wasmtime.Module | None = None


def _notifier() -> wasmtime.Module:
    global _NOTIFIER
    if _NOTIFIER is None:
        # Accepts any shared memory32 up to 4 GiB (a smaller import is a subtype).
        _NOTIFIER = wasmtime.Module(threads_engine(), """(module
          (import "env" "memory" (memory 0 65536 shared))
          (func (export "notify_all") (param $end i32) (local $a i32)
            (loop $next
              (drop (memory.atomic.notify (local.get $a) (i32.const -1)))
              (local.set $a (i32.add (local.get $a) (i32.const 4)))
              (br_if $next (i32.lt_u (local.get $a) (local.get $end))))))""")
    return _NOTIFIER

