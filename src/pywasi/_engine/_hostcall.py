"""The fast host-call route.

A host function defined through the public ``wasmtime.Func`` costs ~10 µs a
call (it boxes every argument in ``Val`` objects); through wasmtime's
*unchecked* callback (``wasmtime_linker_define_func_unchecked``) our callback
gets the raw ``wasmtime_val_raw_t`` array's address and reads it with one
``struct.unpack_from``, ~0.3 µs a call. ``define_raw`` uses the raw route
when the C symbol is there and falls back to the public route if a future
wasmtime-py drops or changes it (``_ffi`` checks each symbol at import).
Tested with wasmtime-py 50 and 51, the range pinned in pyproject.toml. On the raw route the callback is the compiled trampoline of
``pywasi._accel`` (``_accel.c``) when that extension was built (the
package's build compiles it where a C compiler exists) and
``PYWASI_ACCEL=0`` is not set, else a ctypes callback: ``host_call_route()``
says which.
"""

from __future__ import annotations

import ctypes
import weakref
from collections.abc import Callable
from typing import Any, Protocol

import wasmtime
from wasmtime import _ffi as ffi

from .. import _native
from . import _ffi

__all__ = ["RAW_ROUTE", "ACCEL", "RawHostFunction", "load_accel", "host_call_route",
           "trap_pointer", "define_raw"]

RAW_ROUTE = _ffi.define_unchecked is not None and _ffi.trap_new is not None


def load_accel() -> Any:
    """The compiled trampoline's module, set up; None if it was not built."""
    if not RAW_ROUTE:
        return None
    try:
        from .. import _accel
    except ImportError:
        return None
    _accel.setup(ctypes.cast(_ffi.trap_new, ctypes.c_void_p).value)
    return _accel


# Read by define_raw at each definition (tests swap it to compare the two raw
# routes in one process). PYWASI_ACCEL=0 forces the ctypes route.
ACCEL = None if _native.ACCEL is None else load_accel()


def host_call_route() -> str:
    """How host functions are called: "accel" (the compiled trampoline),
    "ctypes" (a ctypes callback) or "public" (wasmtime.Func, ~30x slower)."""
    if not RAW_ROUTE:
        return "public"
    return "accel" if ACCEL is not None else "ctypes"


def trap_pointer(message: str) -> int:
    """A new ``wasm_trap_t*`` (as an int) for a raw callback to return."""
    data = message.encode("utf-8", "replace")
    return int(_ffi.trap_new(data, len(data)))


class RawHostFunction(Protocol):
    """What ``define_raw`` needs from a host function (``_dispatch.HostFunction``)."""

    name: str
    params: tuple[str, ...]
    results: tuple[str, ...]

    @property
    def impl(self) -> Callable[..., None]: ...              # the syscall (trampoline)

    def outcome(self, error: BaseException) -> int | str: ...  # its errors (trampoline)
    def fast_path(self, accel: Any) -> Any: ...             # new_env's `fast` (trampoline)
    def raw_callback(self) -> Any: ...                      # a RAW_CALLBACK instance
    def __call__(self, *args: int) -> Any: ...              # the public route


def _valtype(name: str) -> wasmtime.ValType:
    return wasmtime.ValType.i64() if name == "i64" else wasmtime.ValType.i32()


# NOTE: a FuncType per engine and signature, made once: wasmtime-py takes
# ~45 us to build one, and a linker copies the type it is given, so one
# object serves every definition (the ~45 imports of each instantiation of
# a program). Per engine: wasmtime binds a FuncType to the engine it is
# first used with, and aborts the process when it meets another.
_FUNCTYPES: weakref.WeakKeyDictionary[
    wasmtime.Engine, dict[tuple[tuple[str, ...], tuple[str, ...]], wasmtime.FuncType]] = \
    weakref.WeakKeyDictionary()


def _functype(engine: wasmtime.Engine, fn: RawHostFunction) -> wasmtime.FuncType:
    types = _FUNCTYPES.get(engine)
    if types is None:
        types = _FUNCTYPES.setdefault(engine, {})
    key = (tuple(fn.params), tuple(fn.results))
    ty = types.get(key)
    if ty is None:
        ty = wasmtime.FuncType([_valtype(t) for t in fn.params], [_valtype(t) for t in fn.results])
        ty = types.setdefault(key, ty)
    return ty


def define_raw(linker: wasmtime.Linker, module: str, fn: RawHostFunction) -> None:
    """Define ``module.name`` in ``linker`` as ``fn``, by the raw route if possible."""
    ty = _functype(linker.engine, fn)
    if not RAW_ROUTE:
        linker.define_func(module, fn.name, ty, fn)
        return
    if ACCEL is not None:
        # The env (the syscall and its outcome) belongs to wasmtime from here
        # on; ACCEL.FINALIZER frees it.
        callback, finalizer = ACCEL.TRAMPOLINE, ACCEL.FINALIZER
        env = ACCEL.new_env(fn.impl, fn.params, bool(fn.results), fn.outcome, fn.fast_path(ACCEL))
    else:
        raw = fn.raw_callback()
        callback, finalizer = ctypes.cast(raw, ctypes.c_void_p).value, _ffi.RELEASE_ADDRESS
        env = _ffi.register((raw, ty))
    m = module.encode()
    n = fn.name.encode()
    err = _ffi.define_unchecked(ctypes.cast(linker.ptr(), ctypes.c_void_p), m, len(m), n, len(n),
                                ctypes.cast(ty.ptr(), ctypes.c_void_p), callback, env, finalizer)
    if err:
        raise wasmtime.WasmtimeError._from_ptr(ctypes.cast(err, ctypes.POINTER(ffi.wasmtime_error_t)))
