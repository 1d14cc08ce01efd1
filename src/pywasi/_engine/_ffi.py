"""wasmtime's C API where wasmtime-py has no binding (or a slower one).

Every private wasmtime C symbol pywasi calls is bound here, each to a
function pointer of its own (``own_symbol``), and None where the loaded
wasmtime-py lacks it or declares it differently (its generated bindings carry
each symbol's signature from that release's C headers: ours is checked
against it at import). The rest of the engine package falls back to the
public route without one; ``warn_if_degraded`` tells the user once
(``problems`` lists why). Here too: the registry of the Python objects that C
callbacks reach by an integer key (``register``), released by wasmtime
through ``RELEASE``.
"""

from __future__ import annotations

import ctypes
import os
import threading
import warnings
from typing import Any

import wasmtime
from wasmtime import _bindings
from wasmtime import _ffi as ffi

from .. import _lean
from .._errors import CompatibilityWarning

__all__ = [
    "RAW_CALLBACK", "FINALIZER", "EPOCH_CALLBACK", "own_symbol", "define_unchecked", "trap_new",
    "memory_data", "memory_data_size", "module_new", "set_epoch_callback", "error_new",
    "async_stack_size_set",
    "LIVE", "register", "RELEASE", "RELEASE_ADDRESS", "TESTED_MAJORS", "problems",
    "warn_if_degraded",
]

# The wasmtime-py majors the suite has run on (pyproject.toml's pin). Another
# major is not refused: its bindings are checked one by one like these.
TESTED_MAJORS = _lean.TESTED_MAJORS

# Why a private binding is not used, one entry each ("name: reason; what
# happens instead"), filled at import.
problems: list[str] = []

# What pywasi does without each binding (the warning says it).
_FALLBACK = {
    "wasmtime_linker_define_func_unchecked": "host calls take the public wasmtime.Func route (~30x slower)",
    "wasmtime_trap_new": "host calls take the public wasmtime.Func route (~30x slower)",
    "wasmtime_memory_data": "memory is located through wasmtime.Memory.data_ptr",
    "wasmtime_memory_data_size": "memory is located through wasmtime.Memory.data_len",
    "wasmtime_module_new": "compile copies the module's bytes first (wasmtime.Module)",
    "wasmtime_store_epoch_deadline_callback":
        "stopping a program (timeout, threads) also interrupts the other programs running on "
        "its engine at that moment",
    "wasmtime_config_async_stack_size_set": "a max_wasm_stack above 2 MiB is refused",
    "wasmtime_error_new":
        "stopping a program (timeout, threads) also interrupts the other programs running on "
        "its engine at that moment",
}

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


def _same(ours: Any, theirs: Any) -> bool:
    """Whether two ctypes types pass alike in the C calling convention: the
    same size (a pointer, a size_t and a function's address pass alike),
    and for two callback types the same result and parameters."""
    if ours is None or theirs is None:
        return ours is theirs
    if hasattr(ours, "_argtypes_") and hasattr(theirs, "_argtypes_"):  # CFUNCTYPEs
        return (_same(ours._restype_, theirs._restype_)
                and len(ours._argtypes_) == len(theirs._argtypes_)
                and all(map(_same, ours._argtypes_, theirs._argtypes_)))
    return ctypes.sizeof(ours) == ctypes.sizeof(theirs)


def _mismatch(name: str, restype: Any, argtypes: list[Any]) -> str | None:
    """Why our signature of ``name`` is not the loaded wasmtime-py's, or None."""
    declared = getattr(_bindings, "_" + name, None)
    if declared is None or not hasattr(declared, "argtypes"):
        return "no longer declared by wasmtime-py (its C API changed?)"
    theirs = list(declared.argtypes or ())
    if len(theirs) != len(argtypes):
        return f"takes {len(theirs)} arguments, pywasi passes {len(argtypes)}"
    for i, (ours, their) in enumerate(zip(argtypes, theirs)):
        if not _same(ours, their):
            return f"argument {i + 1} changed type ({their.__name__})"
    if not _same(restype, declared.restype):
        return "its result changed type"
    return None


def own_symbol(name: str, restype: Any, argtypes: list[Any]) -> Any:
    """A private function pointer to a wasmtime C symbol (``dll[name]`` makes a
    new one, so wasmtime-py's own binding keeps its argtypes), or None (and a
    line in ``problems``) when the loaded library lacks it or wasmtime-py
    declares it with another signature."""
    try:
        fn = ffi.dll[name]
    except (AttributeError, KeyError):
        reason: str | None = "missing from the loaded wasmtime library"
    else:
        reason = _mismatch(name, restype, argtypes)
    if reason is not None:
        problems.append(f"{name}: {reason}; {_FALLBACK.get(name, 'not used')}")
        return None
    fn.restype = restype
    fn.argtypes = argtypes
    return fn


def _handles_problem() -> str | None:
    """The wasmtime-py internals every private call goes through: the C
    handles of its objects and the 16-byte raw value slots the host-call
    callbacks read (``_accel.c`` too)."""
    for owner, attr in ((wasmtime.Store, "_context"), (wasmtime.Store, "ptr"),
                        (wasmtime.Engine, "ptr"), (wasmtime.Linker, "ptr"),
                        (wasmtime.FuncType, "ptr"), (wasmtime.Module, "_from_ptr"),
                        (wasmtime.WasmtimeError, "_from_ptr")):
        if not callable(getattr(owner, attr, None)):
            return f"wasmtime.{owner.__name__}.{attr} is gone"
    raw = getattr(ffi, "wasmtime_val_raw_t", None)
    if raw is None or ctypes.sizeof(raw) != 16:
        return "wasmtime_val_raw_t is no longer 16 bytes"
    return None


_HANDLES = _handles_problem()
if _HANDLES is not None:
    problems.append(f"{_HANDLES}: no private binding is used")


def _bind(name: str, restype: Any, argtypes: list[Any]) -> Any:
    return None if _HANDLES is not None else own_symbol(name, restype, argtypes)


_warned = False


def warn_if_degraded() -> None:
    """One ``CompatibilityWarning`` per process, at the first compile or
    instantiate, if a private binding is not used (or the wasmtime-py major
    is not one the suite ran on). Not at import: the command line turns the
    warnings of its compile into ``pywasi: warning:`` lines, and a library
    user sees it where the engine is first used."""
    global _warned
    if _warned:
        return
    _warned = True
    release = _release()
    lines = list(problems)
    if release.split(".")[0] not in {str(m) for m in TESTED_MAJORS}:
        lines.append(f"wasmtime-py {release} is not a release pywasi was tested with "
                     f"({', '.join(map(str, TESTED_MAJORS))})")
    if lines:
        warnings.warn(f"wasmtime-py {release}: " + " | ".join(lines), CompatibilityWarning,
                      stacklevel=3)


def _release() -> str:
    """The loaded wasmtime-py's version (``_lean.release``, else its metadata)."""
    found = _lean.release(os.path.dirname(os.path.abspath(wasmtime.__file__)))
    if found is not None:
        return found
    from importlib import metadata
    try:
        return metadata.version("wasmtime")
    except metadata.PackageNotFoundError:
        return "(unknown release)"


define_unchecked = _bind(
    "wasmtime_linker_define_func_unchecked", ctypes.c_void_p,
    [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t,
     ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p])
trap_new = _bind("wasmtime_trap_new", ctypes.c_void_p, [ctypes.c_char_p, ctypes.c_size_t])
memory_data = _bind("wasmtime_memory_data", ctypes.c_void_p, [ctypes.c_void_p, ctypes.c_void_p])
memory_data_size = _bind("wasmtime_memory_data_size", ctypes.c_size_t,
                              [ctypes.c_void_p, ctypes.c_void_p])
module_new = _bind("wasmtime_module_new", ctypes.POINTER(ffi.wasmtime_error_t),
                        [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t,
                         ctypes.POINTER(ctypes.POINTER(ffi.wasmtime_module_t))])
set_epoch_callback = _bind(
    "wasmtime_store_epoch_deadline_callback", None,
    [ctypes.c_void_p, EPOCH_CALLBACK, ctypes.c_void_p, FINALIZER])
error_new = _bind("wasmtime_error_new", ctypes.c_void_p, [ctypes.c_char_p])
# Config has no setter for it (see _engines: a max_wasm_stack above it needs it).
async_stack_size_set = _bind("wasmtime_config_async_stack_size_set", None,
                             [ctypes.c_void_p, ctypes.c_size_t])

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
