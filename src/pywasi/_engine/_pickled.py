"""Compiled modules across processes: what ``pickle`` makes of a ``Module``
and how another process loads it (process pools, Dask, Ray).

A pickled ``Module`` is plain data for one module-level loader (``load``),
as numpy's ``ndarray.__reduce__`` is: a format number, a header saying what
the code was compiled for (wasmtime's version, the machine, pywasi's engine
settings: epochs, fuel, ...), the SHA-256 of the code, and the code itself:
wasmtime's serialized form, the bytes ``pywasi compile`` writes. It carries
no wasm: the code alone is what a worker runs (CPython for WASI: 25.6 MB
pickled, its wasm 26.3 MB; both again would double what every task of a
pool may carry), and
the workers of one pool or cluster run the same pywasi and wasmtime on the
same machine type. Where one does not, ``load`` says what differs (before
wasmtime is asked, from the header; wasmtime's own refusal -- a CPU that
lacks a feature the code was compiled for -- with its message) instead of
compiling something it was not given.

Invariants:

- Loading runs native code, as ``compile(..., allow_precompiled=True)``
  does: unpickle only what you would run. ``pickle`` already runs whatever
  a pickle names, so a pickle is trusted by whoever loads it; the digest is
  no signature, it is there so that a truncated or corrupted copy is a
  clear ``PywasiError`` before wasmtime maps a byte of it (wasmtime checks
  its header, not the code it loads).
- A process loads each code once: ``load`` keeps the modules it made by
  their code's digest (weakly, and the last ``KEEP`` strongly), so the
  module every task of a batch carries is loaded by the first task only;
  a later copy is not even hashed.
- Nothing here is imported until a module is pickled or unpickled.
"""

from __future__ import annotations

import collections
import hashlib
import os
import pickle
import platform
import threading
import weakref
from typing import Any

import wasmtime

from .._errors import PywasiError
from . import _engines

__all__ = ["reduce", "load", "FORMAT", "KEEP"]

FORMAT = 1   # bump when the arguments of ``load`` change
KEEP = 4     # modules kept loaded in a process after their last user is gone

_LOADED: weakref.WeakValueDictionary[bytes, Any] = weakref.WeakValueDictionary()
_RECENT: collections.OrderedDict[bytes, Any] = collections.OrderedDict()
_LOCK = threading.Lock()
_VERSION: str | None = None


def _new_lock() -> None:
    # A process forked while another thread loads (a pool started from a
    # threaded driver) would inherit the lock held, and its first load
    # would wait forever.
    global _LOCK
    _LOCK = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_lock)


def wasmtime_release() -> str:
    """The installed wasmtime-py's version ("51.0.0"): which wasmtime made
    the code (its serialized form loads only in the same release)."""
    global _VERSION
    if _VERSION is None:
        from importlib.metadata import PackageNotFoundError, version
        try:
            _VERSION = version("wasmtime")
        except PackageNotFoundError:
            _VERSION = "unknown"
    return _VERSION


def reduce(module: Any, protocol: int) -> tuple[Any, ...]:
    """``Module.__reduce_ex__``: ``(load, plain data)``. With pickle
    protocol 5 the code is a ``PickleBuffer``, which a transport may send
    out of band (no copy into the pickle stream)."""
    settings = _engines.settings_of(module.engine)
    if settings is None:
        raise TypeError("cannot pickle a Module compiled with an engine of your own: pywasi "
                        "does not know its settings, so another process could not load it "
                        "(compile with pywasi's engine, or send the wasm)")
    code = module.wasmtime_module.serialize()
    digest = module._code_digest
    if digest is None:
        digest = module._code_digest = hashlib.sha256(code).digest()
    header = {"wasmtime": wasmtime_release(), "machine": platform.machine(),
              "settings": settings}
    data = pickle.PickleBuffer(code) if protocol >= 5 else bytes(code)
    return load, (FORMAT, header, digest, data)


def load(form: int, header: dict[str, Any], digest: bytes, code: Any) -> Any:
    """The module a pickle made by ``reduce`` holds: the one this process
    already loaded from the same code, else the code checked against its
    digest and deserialized."""
    from ._module import Module, first_line
    if form != FORMAT:
        raise PywasiError(f"cannot load a pickled module of format {form!r} (this pywasi reads "
                          f"format {FORMAT}): pickle and unpickle with the same pywasi")
    if not isinstance(header, dict) or not isinstance(digest, bytes) or len(digest) != 32:
        raise PywasiError("the pickled module is damaged: its header or digest is not what "
                          "pywasi writes")
    with _LOCK:
        module = _LOADED.get(digest)
        if module is None:
            engine = _engine_for(header)
            with memoryview(code) as view:
                found = hashlib.sha256(view).digest()
                if found != digest:
                    raise PywasiError(
                        f"the pickled module is damaged (truncated or corrupted in transit): "
                        f"its {len(view)} bytes of code hash to {found.hex()[:16]}..., the "
                        f"pickle says {digest.hex()[:16]}...")
                data = code if isinstance(code, (bytes, bytearray)) else view.tobytes()
            try:
                compiled = wasmtime.Module.deserialize(engine, data)
            except wasmtime.WasmtimeError as e:
                raise PywasiError(
                    f"cannot load the pickled module here: {first_line(e)} (compiled by "
                    f"wasmtime {header.get('wasmtime')} on {header.get('machine')}; send the "
                    f"wasm and compile it in this process instead)") from None
            module = Module(compiled, engine)
            module._code_digest = digest
            _LOADED[digest] = module
        _RECENT[digest] = module
        _RECENT.move_to_end(digest)
        while len(_RECENT) > KEEP:
            _RECENT.popitem(last=False)
        return module


def _engine_for(header: dict[str, Any]) -> wasmtime.Engine:
    """pywasi's engine with the settings the code was compiled with; an
    error naming what differs when this process cannot load it."""
    here = (wasmtime_release(), platform.machine())
    there = (header.get("wasmtime"), header.get("machine"))
    if here != there:
        raise PywasiError(f"cannot load the pickled module here: it was compiled by wasmtime "
                          f"{there[0]} for {there[1]}, this process has wasmtime {here[0]} on "
                          f"{here[1]} (send the wasm and compile it in this process instead)")
    settings = tuple(tuple(pair) for pair in header.get("settings", ()))
    engine = _engines.engine_with(settings)
    if engine is None:
        raise PywasiError(f"cannot load the pickled module here: it was compiled with engine "
                          f"settings this pywasi does not make ({settings!r}); pickle and "
                          f"unpickle with the same pywasi")
    return engine
