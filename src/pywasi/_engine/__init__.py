"""The engine facade over wasmtime-py, and the fast host-call route.

Everything that touches wasmtime's private C bindings lives in this package,
one concern per module:

- ``_ffi``: the private C symbols (each bound once, each checked at import
  against the loaded wasmtime-py's declaration) and the key registry of the
  objects C callbacks reach;
- ``_hostcall``: the raw host-call route (``define_raw``), by the compiled
  trampoline or a ctypes callback, else the public ``wasmtime.Func``;
- ``_engines``: the engines, their settings (part of the cache key), and
  which one a module needs;
- ``_module``: ``compile`` and ``Module``, precompiled modules;
- ``_pickled``: a ``Module`` pickled, and loaded in another process (once
  per process, by its code's digest); imported only when used;
- ``_stores``: stores, and the ``StopSwitch`` that traps a program's stores
  at an epoch tick;
- ``_shared``: shared memories and the wasmtime-py 50/51 workaround;
- ``_instance``: ``Instance`` and its exports (functions, memories, globals);
- ``_link``: ``instantiate`` with an import object.

The shape of the node:wasi example is kept: ``compile(bytes | path)`` gives a
``Module``, ``instantiate(module, import_object)`` an ``Instance`` whose
``exports`` map names to callables, memories and globals; the import object
is a dict of dicts, holding WASI's host functions and any plain Python
callables the user adds (their wasm types come from the module's imports).
"""

from ._engines import default_engine, threads_engine
from ._ffi import RAW_CALLBACK, warn_if_degraded
from ._hostcall import RawHostFunction, define_raw, host_call_route, load_accel, trap_pointer
from ._instance import Function, Global, Instance, Memory, WeakMemory
from ._link import LinkError, instantiate
from ._module import Module, compile, serialize_to, type_text
from ._shared import SharedMemory
from ._stores import STOPPED_MESSAGE, StopSwitch, new_store, store_switch

__all__ = [
    "RAW_CALLBACK", "Module", "Instance", "Memory", "Global", "Function", "LinkError",
    "RawHostFunction", "compile", "instantiate", "default_engine", "define_raw",
    "trap_pointer", "host_call_route", "load_accel", "SharedMemory", "StopSwitch", "new_store",
    "store_switch", "threads_engine", "STOPPED_MESSAGE", "WeakMemory", "serialize_to",
    "type_text", "warn_if_degraded",
]
