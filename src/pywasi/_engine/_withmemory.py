"""Host functions that receive the calling instance's memory
(``pywasi.with_memory``).

A request/response protocol between a guest and the host passes a pointer
and a length; the host reads the request from the guest's memory and writes
its reply there. A Python callable in the import object gets only integers,
so ``with_memory(fn)`` marks one to be called as ``fn(memory, *args)``,
``memory`` a ``CallerMemory`` over the memory of the instance that called:
``read(ptr, n) -> bytes``, ``write(ptr, data)``, ``size``, each
bounds-checked; a bad pointer traps, with a message naming the function,
as a WASI call's does.

How: ``instantiate`` links it on the raw host-call route (a ctypes callback
on ``wasmtime_linker_define_func_unchecked``: the arguments are read from
wasmtime's value array, ~1-2 us a call instead of the public route's ~10)
and binds its ``CallerMemory`` to the new instance's memory once the
instance exists: its ``memory`` export, else the memory it imports (a
wasi-threads program's shared memory: every thread's instance binds to the
same one). Before that (the module's start function calling it) and for a
module with no memory, an access traps. Values as the public route passes
them: i32 and i64 signed, f32 and f64 floats; a pointer that arrives
negative (an i32 at or above 2 GiB) is taken unsigned. An exception the
function raises ends the guest's call with a trap and is raised again from
the call into wasm that led to it (an export, ``start``), as the public
route does.
"""

from __future__ import annotations

import ctypes
import functools
import struct
import threading
from collections.abc import Callable
from typing import Any

import wasmtime

from .._errors import GuestFault
from .._memory import GuestMemory
from . import _ffi
from ._hostcall import RAW_ROUTE, trap_pointer

__all__ = ["with_memory", "WithMemory", "CallerMemory", "MemoryImports"]


class WithMemory:
    """A host function called with the caller's memory first (``with_memory``)."""

    _pywasi_with_memory = True

    def __init__(self, function: Callable[..., Any]) -> None:
        if not callable(function):
            raise TypeError(f"with_memory() takes a callable, not {type(function).__name__}")
        self.function = function
        functools.update_wrapper(self, function)

    def __call__(self, memory: CallerMemory, *args: Any) -> Any:
        return self.function(memory, *args)

    def __repr__(self) -> str:
        return f"<pywasi.with_memory {getattr(self.function, '__qualname__', self.function)!r}>"


def with_memory(function: Callable[..., Any]) -> WithMemory:
    """Mark an import-object callable to be called as ``function(memory,
    *args)``, ``memory`` the calling instance's (a ``CallerMemory``)::

        @pywasi.with_memory
        def call(memory, ptr, length):
            request = memory.read(ptr, length)
            ...
    """
    return WithMemory(function)


_I32 = 0xFFFFFFFF


class CallerMemory:
    """The memory of the instance that called a ``with_memory`` function."""

    __slots__ = ("_memory", "_name")

    def __init__(self) -> None:
        self._memory: GuestMemory | None = None
        self._name = ""

    def _guest(self) -> GuestMemory:
        memory = self._memory
        if memory is None:
            raise GuestFault("the calling instance's memory is not available (none is exported "
                             "as 'memory' or imported, or the instance is still being made)")
        return memory

    @property
    def size(self) -> int:
        """The memory's size in bytes, now (it grows with ``memory.grow``)."""
        memory = self._guest()
        memory.refresh()
        return memory.size

    def read(self, ptr: int, length: int) -> bytes:
        """``length`` bytes at ``ptr`` (a copy)."""
        return self._guest().read_bytes(*_range(ptr, length))

    def write(self, ptr: int, data: bytes | bytearray | memoryview) -> None:
        """Write ``data`` at ``ptr``."""
        memory = self._guest()
        start, _ = _range(ptr, len(data))
        memory.write_bytes(start, data)


def _range(ptr: int, length: int) -> tuple[int, int]:
    if length < 0:
        raise GuestFault(f"negative length {length}")
    if -(1 << 31) <= ptr < 0:
        ptr &= _I32  # an i32 pointer at or above 2 GiB, as wasm passes it (signed)
    if ptr < 0:
        raise GuestFault(f"out of bounds memory access: {length} bytes at {ptr}")
    return ptr, length


class _Pending(threading.local):
    error: BaseException | None = None


class MemoryImports:
    """The ``with_memory`` functions of one instantiation: their
    ``CallerMemory``, bound once the instance exists (``bind_memory``), and the
    exception one of them raised, per thread, for ``Instance._outcome``."""

    def __init__(self) -> None:
        self.memory = CallerMemory()
        self._pending = _Pending()

    def take_exit(self) -> int | None:
        return None

    def take_interrupt(self) -> BaseException | None:
        error, self._pending.error = self._pending.error, None
        return error

    # The rest of ``_instance.ExitProbe``: no limit of its own, no ending
    # that bounds a call (the WASI object's context has those).
    thread_spawn = None

    def limit_reached(self) -> None:
        return None

    def bind_memory(self, memory: Any) -> None:
        """``memory``: the instance's ``Memory``, ``SharedMemory`` or None."""
        if memory is None:
            return
        from ._instance import Memory, WeakMemory
        if isinstance(memory, Memory):
            # Weakly: wasmtime keeps this callable (and so this memory)
            # until the store goes, and a strong reference to the store
            # would keep both alive for ever.
            guest_ref: list[GuestMemory] = []
            source: Any = WeakMemory(memory, on_gone=lambda: guest_ref[0].release())
            guest = GuestMemory(source, stable=memory.stable)
            guest_ref.append(guest)
        else:
            guest = GuestMemory(memory, stable=True)   # shared: never moves
        self.memory._memory = guest

    def define(self, linker: wasmtime.Linker, module: str, name: str, ty: wasmtime.FuncType,
               value: WithMemory) -> None:
        """Define ``module.name`` in ``linker`` as ``value``."""
        memory, function, pending = self.memory, value.function, self._pending
        label = f"{module}.{name}"
        params = [str(t) for t in ty.params]
        results = [str(t) for t in ty.results]
        if not RAW_ROUTE or not set(params + results) <= set(_IN):
            def public(*args: Any) -> Any:
                try:
                    return function(memory, *args)
                except GuestFault as e:
                    raise wasmtime.Trap(f"{label}: {e}") from None
            linker.define_func(module, name, ty, public)
            return
        raw = _ffi.RAW_CALLBACK(_raw(label, function, memory, pending, params, results))
        env = _ffi.register((raw, ty))
        m, n = module.encode(), name.encode()
        err = _ffi.define_unchecked(ctypes.cast(linker.ptr(), ctypes.c_void_p), m, len(m), n,
                                    len(n), ctypes.cast(ty.ptr(), ctypes.c_void_p),
                                    ctypes.cast(raw, ctypes.c_void_p).value, env,
                                    _ffi.RELEASE_ADDRESS)
        if err:
            raise wasmtime.WasmtimeError._from_ptr(
                ctypes.cast(err, ctypes.POINTER(wasmtime._ffi.wasmtime_error_t)))


# One 16-byte wasmtime_val_raw_t per value: in, as the public route gives
# them (signed integers); out, masked to the type's width.
_IN = {"i32": "i12x", "i64": "q8x", "f32": "f12x", "f64": "d8x"}
_OUT = {"i32": "I12x", "i64": "Q8x", "f32": "f12x", "f64": "d8x"}
_MASK = {"i32": _I32, "i64": (1 << 64) - 1}


def _raw(label: str, function: Callable[..., Any], memory: CallerMemory, pending: _Pending,
         params: list[str], results: list[str]) -> Callable[[Any, Any, int, int], int]:
    unpack = struct.Struct("<" + "".join(_IN[t] for t in params)).unpack_from
    pack = struct.Struct("<" + "".join(_OUT[t] for t in results)).pack_into
    masks = [_MASK.get(t) for t in results]
    nslots = max(len(params), len(results), 1)
    # The view over wasmtime's value array is rebuilt only when its address
    # changes (one tuple, swapped at once: threads each have their own).
    cache: tuple[int, memoryview] = (0, memoryview(bytearray(16 * nslots)))

    def callback(env: Any, caller: Any, address: int, count: int) -> int:
        nonlocal cache
        try:
            cached, view = cache
            if address != cached:
                view = memoryview((ctypes.c_char * (16 * nslots)).from_address(address)).cast("B")
                cache = (address, view)
            result = function(memory, *unpack(view))
            if masks:
                values = tuple(result) if len(masks) > 1 else (result,)
                if len(values) != len(masks):
                    raise TypeError(f"{label} returned {len(values)} values, the import has "
                                    f"{len(masks)} results")
                pack(view, 0, *[v if m is None else int(v) & m for v, m in zip(values, masks)])
            return 0
        except GuestFault as e:
            return trap_pointer(f"{label}: {e}")
        except BaseException as e:  # noqa: BLE001 - raised again where the guest was called
            pending.error = e
            return trap_pointer(f"{label}: {type(e).__name__}: {e}")

    return callback
