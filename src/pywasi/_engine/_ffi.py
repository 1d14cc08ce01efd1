"""wasmtime's C API where wasmtime-py has no binding (or a slower one).

Every private wasmtime C symbol pywasi calls is bound here, each to a
function pointer of its own (``own_symbol``), and None where a wasmtime-py
release lacks it; the rest of the engine package decides what to do without
it. Here too: the registry of the Python objects that C callbacks reach by
an integer key (``register``), released by wasmtime through ``RELEASE``.
"""

from __future__ import annotations

import ctypes
import threading
from typing import Any

from wasmtime import _ffi as ffi

__all__ = [
    "RAW_CALLBACK", "FINALIZER", "EPOCH_CALLBACK", "own_symbol", "define_unchecked", "trap_new",
    "memory_data", "memory_data_size", "module_new", "set_epoch_callback", "error_new",
    "LIVE", "register", "RELEASE", "RELEASE_ADDRESS",
]

# size_t callback(void *env, wasmtime_caller_t *caller,
#                 wasmtime_val_raw_t *args_and_results, size_t len)
# returns NULL, or a wasm_trap_t* that wasmtime takes ownership of.
RAW_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_size_t, ctypes.c_void_p, ctypes.c_void_p,
                                ctypes.c_void_p, ctypes.c_size_t)
FINALIZER = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
# wasmtime_error_t *callback(wasmtime_context_t *, void *env, uint64_t *delta,
#                            wasmtime_update_deadline_kind_t *kind)
EPOCH_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                                  ctypes.POINTER(ctypes.c_uint64), ctypes.POINTER(ctypes.c_uint8))


def own_symbol(name: str, restype: Any, argtypes: list[Any]) -> Any:
    """A private function pointer to a wasmtime C symbol (``dll[name]`` makes a
    new one, so wasmtime-py's own binding keeps its argtypes), or None."""
    try:
        fn = ffi.dll[name]
    except (AttributeError, KeyError):
        return None
    fn.restype = restype
    fn.argtypes = argtypes
    return fn


define_unchecked = own_symbol(
    "wasmtime_linker_define_func_unchecked", ctypes.c_void_p,
    [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t,
     ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p])
trap_new = own_symbol("wasmtime_trap_new", ctypes.c_void_p, [ctypes.c_char_p, ctypes.c_size_t])
memory_data = own_symbol("wasmtime_memory_data", ctypes.c_void_p, [ctypes.c_void_p, ctypes.c_void_p])
memory_data_size = own_symbol("wasmtime_memory_data_size", ctypes.c_size_t,
                              [ctypes.c_void_p, ctypes.c_void_p])
module_new = own_symbol("wasmtime_module_new", ctypes.POINTER(ffi.wasmtime_error_t),
                        [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t,
                         ctypes.POINTER(ctypes.POINTER(ffi.wasmtime_module_t))])
set_epoch_callback = own_symbol(
    "wasmtime_store_epoch_deadline_callback", None,
    [ctypes.c_void_p, EPOCH_CALLBACK, ctypes.c_void_p, FINALIZER])
error_new = own_symbol("wasmtime_error_new", ctypes.c_void_p, [ctypes.c_char_p])

# Callbacks must outlive every linker and store that may call them: wasmtime
# calls the finalizer with the env key when the last user is gone.
LIVE: dict[int, Any] = {}
_LIVE_LOCK = threading.Lock()
_next_key = 1


def register(value: Any) -> int:
    """A new key for ``value`` in ``LIVE``, until wasmtime releases it."""
    global _next_key
    with _LIVE_LOCK:
        key = _next_key
        _next_key += 1
        LIVE[key] = value
    return key


def _release_key(key: int | None, live: dict[int, Any] = LIVE, lock: Any = _LIVE_LOCK) -> None:
    # Bound as defaults: wasmtime may call this while the interpreter shuts
    # down, after module globals are gone.
    with lock:
        live.pop(key or 0, None)


RELEASE = FINALIZER(_release_key)
# wasmtime may call the finalizer while the interpreter tears modules down
# (a store deleted late): the C thunk must outlive this module's globals, or
# that call jumps into freed memory. One deliberate, permanent reference.
ctypes.pythonapi.Py_IncRef(ctypes.py_object(RELEASE))
RELEASE_ADDRESS = ctypes.cast(RELEASE, ctypes.c_void_p).value
