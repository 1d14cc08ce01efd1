"""``pywasi run``'s lean route: a plain run without importing wasmtime-py.

Why: ``import wasmtime`` declares the whole C API in ctypes (~900
functions) and brings ``typing``, ``pathlib`` and ``platform``: three
times the start of Python itself, paid by every ``pywasi run`` of a build
step or a compiler driver's pipeline (issue 28). A run needs 30 of those
functions. This module binds them itself, from wasmtime-py's own shared
library (so there is still one wasmtime, wasmtime-py's), and runs a module
with the WASI layer as the full route would, through the compiled
trampoline (``_accel``).

When: the common case only, decided before anything the guest can see has
happened: ``run`` returns None and the command takes the full route (which
also gives every error its message) unless

- the options are ``--dir``, ``--env``, ``--inherit-env``,
  ``--deterministic``/``--seed`` and ``--max-open-files`` (no limits that need
  epochs, fuel or store limits, no trace, sockets, ``--invoke``);
- the module's compiled code is in the cache for the default engine (a
  first run compiles on the full route, which stores it);
- it is a command (``_start`` and ``memory`` exported, no ``_initialize``)
  importing only WASI functions of one ABI, which link;
- ``PYWASI_LEAN=0`` is not set (it forces the full route);
- POSIX, the accelerator is built, and wasmtime-py is a release whose C
  declarations the test suite compared with ours (``TESTED_MAJORS``:
  ``tests/test_lean.py`` checks every function below against wasmtime-py's
  ``_bindings``).

What it shares with the rest of pywasi, so that both routes compute the same
thing: the library's location and identity, the engine settings and the
compiled-module cache key (``cache_context``), which ``_engine`` takes from
here.
"""

from __future__ import annotations

import ctypes
import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from typing import Any

    from ._wasi import WASI
    from .cli import RunOptions

__all__ = ["LeanTrap", "TESTED_MAJORS", "ENGINE_SETTINGS", "library_path", "library_identity", "release",
           "machine", "cache_context", "run", "SIGNATURES", "stack_overflow_hint",
           "DEFAULT_WASM_STACK", "RUNTIME_SETTINGS"]

# The wasmtime-py majors whose C declarations the suite compares with
# SIGNATURES (pyproject.toml's pin). On another major the lean route is not
# taken, and the full route checks each private binding it uses.
TESTED_MAJORS = (50, 51)

# Every setting of pywasi's default engine, as (wasmtime.Config attribute,
# value). They decide the machine code, so the compiled-module cache key
# hashes this tuple: change a setting here (never elsewhere) and old cache
# entries stop matching. ``_engine._engines`` builds its engines from it.
ENGINE_SETTINGS: tuple[tuple[str, Any], ...] = (
    ("memory_may_move", False),
    ("wasm_threads", True),
    ("shared_memory", True),
    # Chosen from measurements (docs/cache.md): the cache keeps code that
    # runs natively for every later start, so it is Cranelift's optimised
    # code, not the baseline compiler Winch's (4-7x faster to compile, its
    # code 1.6-2.1x slower). Parallel compilation cuts a cold start when a
    # second core is free and does not change the code.
    ("strategy", "cranelift"),
    ("parallel_compilation", True),
)

# Settings that change what wasmtime allows at run time, not the code it
# compiles: left out of the cache key, so an entry serves every stack size.
RUNTIME_SETTINGS = frozenset({"max_wasm_stack"})

# wasmtime's own default (its CLI's and wasmtime-py's): see _engine._engines.
DEFAULT_WASM_STACK = 512 << 10

_LIBNAMES = {"linux": "_libwasmtime.so", "darwin": "_libwasmtime.dylib", "win32": "_wasmtime.dll"}


def machine() -> str:
    """The host architecture as wasmtime-py names its library's directory
    (and as the cache key has it): ``platform.machine()``, without
    importing ``platform``."""
    if hasattr(os, "uname"):
        name = os.uname().machine
    else:  # pragma: no cover - Windows
        import platform
        name = platform.machine()
    return {"AMD64": "x86_64", "arm64": "aarch64", "ARM64": "aarch64"}.get(name, name)


def _package_dir() -> str | None:
    """wasmtime-py's package directory, found as ``import wasmtime`` would
    find it (the import system's finders, in order), without importing it
    (nor ``importlib``, which imports ``warnings``)."""
    for finder in sys.meta_path:
        find_spec = getattr(finder, "find_spec", None)
        spec = find_spec("wasmtime", None) if find_spec is not None else None
        if spec is not None:
            locations = spec.submodule_search_locations
            return list(locations)[0] if locations else None
    return None


def library_path(package_dir: str | None = None) -> str | None:
    """The shared library wasmtime-py loads (``wasmtime._ffi.dll``), by the
    same rule as its ``_ffi`` module."""
    package_dir = package_dir or _package_dir()
    platform = "android" if hasattr(sys, "getandroidapilevel") else sys.platform
    libname = _LIBNAMES.get("linux" if platform == "android" else platform)
    if package_dir is None or libname is None:
        return None
    return os.path.join(package_dir, f"{platform}-{machine()}", libname)


def library_identity(path: str) -> str | None:
    """The identity of the wasmtime build at ``path`` (path, size, mtime):
    another version, or a rebuild with the same number, is another file.
    Part of the cache key."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return f"{path}|{st.st_size}|{st.st_mtime_ns}"


def release(package_dir: str) -> str | None:
    """wasmtime-py's version, from its dist-info directory's name
    (``importlib.metadata`` would add ~20 ms of imports)."""
    site = os.path.dirname(os.path.abspath(package_dir))
    try:
        names = os.listdir(site)
    except OSError:
        return None
    for name in names:
        if name.startswith("wasmtime-") and name.endswith(".dist-info"):
            return name[len("wasmtime-"):-len(".dist-info")]
    return None


def cache_context(settings: tuple[tuple[str, Any], ...], library: str) -> tuple[bytes, ...]:
    """Everything besides a module's bytes that decides the code compiled
    from it with ``settings`` by the wasmtime build ``library`` (its
    ``library_identity``), as the compiled-module cache keys on it."""
    code = tuple(item for item in settings if item[0] not in RUNTIME_SETTINGS)
    return (library.encode(), repr(code).encode(), machine().encode())


# -- the C functions a run calls -------------------------------------------------
#
# (name, result, parameters), in ctypes types that pass as wasmtime's C API
# declares them (pointers as c_void_p); tests/test_lean.py compares each with
# wasmtime-py's generated declaration.
_P, _SZ, _B, _U8 = ctypes.c_void_p, ctypes.c_size_t, ctypes.c_bool, ctypes.c_uint8
SIGNATURES: tuple[tuple[str, Any, tuple[Any, ...]], ...] = (
    ("wasm_config_new", _P, ()),
    ("wasmtime_config_memory_may_move_set", None, (_P, _B)),
    ("wasmtime_config_wasm_threads_set", None, (_P, _B)),
    ("wasmtime_config_shared_memory_set", None, (_P, _B)),
    ("wasmtime_config_strategy_set", None, (_P, _U8)),
    ("wasmtime_config_parallel_compilation_set", None, (_P, _B)),
    ("wasm_engine_new_with_config", _P, (_P,)),
    ("wasmtime_module_deserialize_file", _P, (_P, ctypes.c_char_p, _P)),
    ("wasmtime_module_imports", None, (_P, _P)),
    ("wasmtime_module_exports", None, (_P, _P)),
    ("wasm_importtype_vec_delete", None, (_P,)),
    ("wasm_exporttype_vec_delete", None, (_P,)),
    ("wasm_importtype_module", _P, (_P,)),
    ("wasm_importtype_name", _P, (_P,)),
    ("wasm_importtype_type", _P, (_P,)),
    ("wasm_exporttype_name", _P, (_P,)),
    ("wasm_exporttype_type", _P, (_P,)),
    ("wasm_externtype_kind", _U8, (_P,)),
    ("wasmtime_store_new", _P, (_P, _P, _P)),
    ("wasmtime_store_context", _P, (_P,)),
    ("wasmtime_linker_new", _P, (_P,)),
    ("wasm_valtype_new", _P, (_U8,)),
    ("wasm_valtype_vec_new", None, (_P, _SZ, _P)),
    ("wasm_functype_new", _P, (_P, _P)),
    ("wasmtime_linker_define_func_unchecked", _P, (_P, ctypes.c_char_p, _SZ, ctypes.c_char_p,
                                                   _SZ, _P, _P, _P, _P)),
    ("wasmtime_linker_instantiate_pre", _P, (_P, _P, _P)),
    ("wasmtime_instance_pre_instantiate", _P, (_P, _P, _P, _P)),
    ("wasmtime_instance_export_get", _B, (_P, _P, ctypes.c_char_p, _SZ, _P)),
    ("wasmtime_func_call", _P, (_P, _P, _P, _SZ, _P, _SZ, _P)),
    ("wasmtime_memory_data", _P, (_P, _P)),
    ("wasmtime_memory_data_size", _SZ, (_P, _P)),
    ("wasmtime_trap_new", _P, (ctypes.c_char_p, _SZ)),
    ("wasm_trap_message", None, (_P, _P)),
    ("wasmtime_trap_code", _B, (_P, _P)),
    ("wasmtime_error_message", None, (_P, _P)),
    ("wasm_byte_vec_delete", None, (_P,)),
)

# The C API's constants (wasm.h, wasmtime/*.h); tests/test_lean.py compares
# them with wasmtime-py's.
WASM_I32, WASM_I64 = 0, 1
WASM_EXTERN_FUNC, WASM_EXTERN_MEMORY = 0, 3
WASMTIME_EXTERN_FUNC, WASMTIME_EXTERN_MEMORY = 0, 3
WASMTIME_TRAP_CODE_STACK_OVERFLOW = 0
_STRATEGIES = {"auto": 0, "cranelift": 1, "winch": 2}
_BOOL_SETTERS = {"memory_may_move", "wasm_threads", "shared_memory", "parallel_compilation"}
# wasmtime_extern_t: a uint8 kind, then a union (8-byte aligned) of at most
# 24 bytes in the tested releases; a wasmtime_instance_t is 16 bytes. Room
# is kept beyond both (the test checks the sizes and the union's offset).
_EXTERN_SIZE, _EXTERN_UNION = 64, 8
_INSTANCE_SIZE = 32


class LeanTrap(Exception):
    """The guest failed while ``stage``: "instantiating" (a trap in its
    start function), "linking" (an error there, which the full route reports
    as a link error) or "running"; ``message`` is its report, as the full
    route words it."""

    def __init__(self, stage: str, message: str) -> None:
        super().__init__(message)
        self.stage = stage
        self.message = message


class _Vec(ctypes.Structure):
    """wasm_byte_vec_t and the wasm_*_vec_t of pointers: size, then data."""

    _fields_ = [("size", ctypes.c_size_t), ("data", ctypes.c_void_p)]


def _bind(lib: Any) -> Any:
    class C:
        pass
    for name, restype, argtypes in SIGNATURES:
        fn = lib[name]   # a function pointer of our own: wasmtime-py's keep theirs
        fn.restype = restype
        fn.argtypes = argtypes
        setattr(C, name, fn)
    return C


def _text(lib: Any, vec: _Vec, *, strip_nul: bool) -> str:
    size = vec.size - 1 if strip_nul and vec.size else vec.size
    text = ctypes.string_at(vec.data, size).decode("utf-8", "replace") if vec.data else ""
    lib.wasm_byte_vec_delete(ctypes.byref(vec))
    return text


def _name(ptr: int) -> str:
    vec = _Vec.from_address(ptr)
    return ctypes.string_at(vec.data, vec.size).decode("utf-8", "surrogateescape")


def _pointers(vec: _Vec) -> list[int]:
    if not vec.size:
        return []
    return list((ctypes.c_void_p * vec.size).from_address(vec.data or 0))


class _Memory:
    """The instance's exported memory, as ``GuestMemory`` reads it."""

    __slots__ = ("_c", "_context", "_memory")

    def __init__(self, c: Any, context: int, memory: int) -> None:
        self._c, self._context, self._memory = c, context, memory

    def locate(self) -> tuple[int, int]:
        c = self._c
        return (int(c.wasmtime_memory_data(self._context, self._memory) or 0),
                int(c.wasmtime_memory_data_size(self._context, self._memory)))


def _eligible(opts: RunOptions) -> bool:
    return (opts.cache and not opts.allow_precompiled and not opts.tcplisten
            and not opts.listenfd and opts.timeout is None and opts.fuel is None
            and opts.max_memory is None and opts.max_wasm_stack is None
            and opts.max_output is None and opts.trace is None and opts.invoke is None
            and os.name == "posix" and os.environ.get("PYWASI_LEAN") != "0")


def run(opts: RunOptions, new_wasi: Callable[[str], WASI]) -> int | None:
    """Run ``opts``'s module on the lean route: its exit status, or None
    when the full route must run it (see the module's docstring).
    ``new_wasi(version)`` makes the run's WASI from the options, as the full
    route does. A trap raises ``LeanTrap``."""
    if not _eligible(opts):
        return None
    from ._native import ACCEL
    package = _package_dir()
    path = library_path(package)
    identity = library_identity(path) if path else None
    version = release(package) if package else None
    if ACCEL is None or identity is None or version is None or \
            version.split(".")[0] not in {str(m) for m in TESTED_MAJORS} or \
            any(name not in _BOOL_SETTERS and name != "strategy" for name, _ in ENGINE_SETTINGS):
        return None
    entries = _cached_entries(opts.module, identity)
    if entries is None:
        return None
    entry, found = entries
    lib = _bind(ctypes.CDLL(path))
    engine = _engine(lib)
    module = ctypes.c_void_p()
    if lib.wasmtime_module_deserialize_file(engine, entry.encode(), ctypes.byref(module)) or \
            not module.value:
        return None   # the full route discards the entry, with a warning
    found.used(entry)
    return _run_module(lib, engine, module.value, opts, new_wasi)


def _cached_entries(module_path: str, identity: str) -> Any:
    """The first cache entry of the module at ``module_path`` (binary or
    text: the cache keys a module on its file's bytes) for the default
    engine, and its ``_cache.Lookup``; None when there is none (a first run,
    a precompiled file, not a module: the full route says which)."""
    from . import _cache
    try:
        found = _cache.lookup(_cache.cache_dir(), module_path,
                              cache_context(ENGINE_SETTINGS, identity))
        entry = next(found.entries(), None)
    except OSError:
        return None
    return None if entry is None else (entry, found)


def _engine(lib: Any) -> int:
    config = lib.wasm_config_new()
    for name, value in ENGINE_SETTINGS:
        if name == "strategy":
            lib.wasmtime_config_strategy_set(config, _STRATEGIES[value])
        else:
            getattr(lib, f"wasmtime_config_{name}_set")(config, bool(value))
    return int(lib.wasm_engine_new_with_config(config))


def _shape(lib: Any, module: int) -> tuple[list[str], str] | None:
    """The WASI functions a command imports and its ABI's namespace; None
    unless it imports only functions of one WASI namespace and exports
    ``_start`` and ``memory`` and no ``_initialize``."""
    vec = _Vec()
    lib.wasmtime_module_exports(module, ctypes.byref(vec))
    kinds = {_name(lib.wasm_exporttype_name(e)): lib.wasm_externtype_kind(lib.wasm_exporttype_type(e))
             for e in _pointers(vec)}
    lib.wasm_exporttype_vec_delete(ctypes.byref(vec))
    if kinds.get("_start") != WASM_EXTERN_FUNC or kinds.get("memory") != WASM_EXTERN_MEMORY or \
            "_initialize" in kinds:
        return None
    lib.wasmtime_module_imports(module, ctypes.byref(vec))
    imports = [(_name(lib.wasm_importtype_module(i)), _name(lib.wasm_importtype_name(i)),
                lib.wasm_externtype_kind(lib.wasm_importtype_type(i))) for i in _pointers(vec)]
    lib.wasm_importtype_vec_delete(ctypes.byref(vec))
    namespaces = {ns for ns, _, _ in imports}
    if len(namespaces) > 1 or any(kind != WASM_EXTERN_FUNC for _, _, kind in imports):
        return None
    namespace = namespaces.pop() if namespaces else "wasi_snapshot_preview1"
    if namespace not in ("wasi_snapshot_preview1", "wasi_unstable"):
        return None
    return [name for _, name, _ in imports], namespace


def _functype(lib: Any, params: Iterable[str], results: Iterable[str]) -> int:
    vecs = []
    for types in (list(params), list(results)):
        vec = _Vec()
        items = (ctypes.c_void_p * max(len(types), 1))(
            *[lib.wasm_valtype_new(WASM_I64 if t == "i64" else WASM_I32) for t in types])
        lib.wasm_valtype_vec_new(ctypes.byref(vec), len(types), items)
        vecs.append(vec)
    return int(lib.wasm_functype_new(ctypes.byref(vecs[0]), ctypes.byref(vecs[1])))


def _run_module(lib: Any, engine: int, module: int, opts: RunOptions,
                new_wasi: Callable[[str], WASI]) -> int | None:
    from ._native import ACCEL
    shape = _shape(lib, module)
    if shape is None:
        return None
    names, namespace = shape
    wasi = new_wasi("unstable" if namespace == "wasi_unstable" else "preview1")
    try:
        functions = wasi.wasi_import
        if any(name not in functions for name in names):
            return None
        ACCEL.setup(ctypes.cast(lib.wasmtime_trap_new, ctypes.c_void_p).value)
        store = lib.wasmtime_store_new(engine, None, None)
        context = lib.wasmtime_store_context(store)
        linker = lib.wasmtime_linker_new(engine)
        types: dict[tuple[tuple[str, ...], tuple[str, ...]], int] = {}
        ns = namespace.encode()
        for name in dict.fromkeys(names):
            fn = functions[name]
            key = (tuple(fn.params), tuple(fn.results))
            if key not in types:
                types[key] = _functype(lib, *key)
            env = ACCEL.new_env(fn.impl, fn.params, bool(fn.results), fn.outcome,
                                fn.fast_path(ACCEL))
            raw = name.encode()
            if lib.wasmtime_linker_define_func_unchecked(linker, ns, len(ns), raw, len(raw),
                                                         types[key], ACCEL.TRAMPOLINE, env,
                                                         ACCEL.FINALIZER):
                return None
        # Linked first (nothing runs): a link error is the full route's to
        # report. Then instantiated: a start function may run, so from here
        # on every failure is reported here.
        pre = ctypes.c_void_p()
        if lib.wasmtime_linker_instantiate_pre(linker, module, ctypes.byref(pre)):
            return None
        instance = ctypes.create_string_buffer(_INSTANCE_SIZE)
        trap = ctypes.c_void_p()
        error = lib.wasmtime_instance_pre_instantiate(pre, context, instance, ctypes.byref(trap))
        if trap.value:   # as the full route: the trap's report, whatever the host saw
            raise LeanTrap("instantiating", _trap_text(lib, trap.value))
        if error:
            raise LeanTrap("linking", _error_text(lib, error).split("\n")[0])
        start, memory = _export(lib, context, instance, "_start"), \
            _export(lib, context, instance, "memory")
        wasi._bind_memory(_Memory(lib, context, ctypes.addressof(memory) + _EXTERN_UNION),
                          stable=True)
        from ._wasi import _flush_python_stdio
        _flush_python_stdio()
        trap = ctypes.c_void_p()
        error = lib.wasmtime_func_call(context, ctypes.addressof(start) + _EXTERN_UNION, None, 0,
                                       None, 0, ctypes.byref(trap))
        if not error and not trap.value:
            code = 0
        else:
            exit_code = _outcome(lib, wasi, trap.value, error)
            if isinstance(exit_code, str):
                raise LeanTrap("running", exit_code)
            code = exit_code
    finally:
        wasi.close()
    return code if 0 <= code <= 255 else 255


def _export(lib: Any, context: int, instance: Any, name: str) -> Any:
    """The ``wasmtime_extern_t`` of an export ``_shape`` found (its union,
    the function or memory, at ``_EXTERN_UNION``)."""
    item = ctypes.create_string_buffer(_EXTERN_SIZE)
    raw = name.encode()
    if not lib.wasmtime_instance_export_get(context, instance, raw, len(raw), item):
        raise RuntimeError(f"the instance has no export {name!r}")  # _shape saw it: a bug
    return item


def _outcome(lib: Any, wasi: Any, trap: int | None, error: int | None) -> int | str:
    """A failed call's meaning, decided from host state as the full route's
    ``Instance._outcome``: an interrupt (raised), an exit code, or the
    trap's report."""
    ctx = wasi._ctx
    interrupt = ctx.take_interrupt()
    if interrupt is not None:
        raise interrupt
    code = ctx.take_exit()
    if code is not None:
        return int(code)
    if trap:
        return _trap_text(lib, trap)
    return _error_text(lib, error)


def _error_text(lib: Any, error: int | None) -> str:
    vec = _Vec()
    lib.wasmtime_error_message(error, ctypes.byref(vec))
    return _text(lib, vec, strip_nul=False).strip() or "WasmtimeError"


def _trap_text(lib: Any, trap: int) -> str:
    """A trap's report, as ``_engine._instance.trap_message`` words it."""
    vec = _Vec()
    lib.wasm_trap_message(trap, ctypes.byref(vec))
    text = _text(lib, vec, strip_nul=True).strip() or "Trap"
    kind = ctypes.c_uint8()
    if lib.wasmtime_trap_code(trap, ctypes.byref(kind)) and \
            kind.value == WASMTIME_TRAP_CODE_STACK_OVERFLOW:
        text += stack_overflow_hint(DEFAULT_WASM_STACK)
    return text


def stack_overflow_hint(size: int) -> str:
    """What a stack overflow's report adds: how to give the program more
    than the ``size`` bytes of wasm stack it ran out of."""
    if size % (1 << 20) == 0:
        text = f"{size >> 20} MiB"
    elif size % (1 << 10) == 0:
        text = f"{size >> 10} KiB"
    else:
        text = f"{size} bytes"
    return (f"\nThe wasm stack ({text}) is exhausted: give the program a larger one with "
            f"compile(..., max_wasm_stack=BYTES) or pywasi.run(..., max_wasm_stack=BYTES), or "
            f"`pywasi run -W max-wasm-stack=8M`.")
