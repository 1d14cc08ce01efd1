"""The engine facade over wasmtime-py, and the fast host-call route.

Everything that touches wasmtime's private C bindings lives in this module.

Host calls: a host function defined through the public ``wasmtime.Func``
costs ~10 µs a call (it boxes every argument in ``Val`` objects); through
wasmtime's *unchecked* callback (``wasmtime_linker_define_func_unchecked``)
our callback gets the raw ``wasmtime_val_raw_t`` array's address and reads it
with one ``struct.unpack_from``, ~0.3 µs a call. ``define_raw`` uses the raw
route when the C symbol is there and falls back to the public route if a
future wasmtime-py drops it. Tested with wasmtime-py 50, the version
pinned in pyproject.toml. On the raw route the callback is the compiled
trampoline of ``pywasi._accel`` (``_accel.c``) when that extension was built
(the package's build compiles it where a C compiler exists) and
``PYWASI_ACCEL=0`` is not set, else a ctypes callback: ``host_call_route()``
says which.

The shape of the node:wasi example is kept: ``compile(bytes | path)`` gives a
``Module``, ``instantiate(module, import_object)`` an ``Instance`` whose
``exports`` map names to callables, memories and globals; the import object
is a dict of dicts, holding WASI's host functions and any plain Python
callables the user adds (their wasm types come from the module's imports).
"""

from __future__ import annotations

import ctypes
import io
import os
import threading
import weakref
from collections.abc import Callable, Iterator, Mapping
from typing import Any, BinaryIO, Protocol, Union

import wasmtime
from wasmtime import _ffi as ffi

from . import _native
from ._errors import GuestFault, PywasiError, Trap, WasiExit

__all__ = [
    "Module", "Instance", "Memory", "Global", "Function", "LinkError",
    "RawHostFunction", "compile", "instantiate", "default_engine", "define_raw",
    "trap_pointer", "host_call_route", "load_accel", "SharedMemory", "StopSwitch", "new_store",
    "store_switch", "threads_engine", "STOPPED_MESSAGE", "WeakMemory", "serialize_to",
]


class LinkError(PywasiError):
    """An import the module needs is missing or of the wrong kind or type."""


# -- the raw host-call route --------------------------------------------------

# size_t callback(void *env, wasmtime_caller_t *caller,
#                 wasmtime_val_raw_t *args_and_results, size_t len)
# returns NULL, or a wasm_trap_t* that wasmtime takes ownership of.
RAW_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_size_t, ctypes.c_void_p, ctypes.c_void_p,
                                ctypes.c_void_p, ctypes.c_size_t)
_FINALIZER = ctypes.CFUNCTYPE(None, ctypes.c_void_p)


def _own_symbol(name: str, restype: Any, argtypes: list[Any]) -> Any:
    """A private function pointer to a wasmtime C symbol (``dll[name]`` makes a
    new one, so wasmtime-py's own binding keeps its argtypes), or None."""
    try:
        fn = ffi.dll[name]
    except (AttributeError, KeyError):
        return None
    fn.restype = restype
    fn.argtypes = argtypes
    return fn


_define_unchecked = _own_symbol(
    "wasmtime_linker_define_func_unchecked", ctypes.c_void_p,
    [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t,
     ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p])
_trap_new = _own_symbol("wasmtime_trap_new", ctypes.c_void_p, [ctypes.c_char_p, ctypes.c_size_t])
_memory_data = _own_symbol("wasmtime_memory_data", ctypes.c_void_p, [ctypes.c_void_p, ctypes.c_void_p])
_memory_data_size = _own_symbol("wasmtime_memory_data_size", ctypes.c_size_t,
                                [ctypes.c_void_p, ctypes.c_void_p])

RAW_ROUTE = _define_unchecked is not None and _trap_new is not None
_module_new = _own_symbol("wasmtime_module_new", ctypes.POINTER(ffi.wasmtime_error_t),
                          [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t,
                           ctypes.POINTER(ctypes.POINTER(ffi.wasmtime_module_t))])


def _new_module(engine: wasmtime.Engine, wasm: bytes) -> wasmtime.Module:
    """``wasmtime.Module(engine, wasm)`` without its copy of the binary:
    wasmtime-py copies it into a ctypes array first (~15 ms of page faults
    and memcpy for Yosys's 39 MB, before a compile a first run waits for);
    a ``c_char_p`` argument passes the bytes object's own buffer. Text (WAT)
    goes to wasmtime-py, which converts it."""
    if _module_new is None or not wasm.startswith(b"\0"):
        return wasmtime.Module(engine, wasm)
    out = ctypes.POINTER(ffi.wasmtime_module_t)()
    error = _module_new(engine.ptr(), wasm, len(wasm), ctypes.byref(out))
    if error:
        raise wasmtime.WasmtimeError._from_ptr(error)
    return wasmtime.Module._from_ptr(out)


def load_accel() -> Any:
    """The compiled trampoline's module, set up; None if it was not built."""
    if not RAW_ROUTE:
        return None
    try:
        from . import _accel
    except ImportError:
        return None
    _accel.setup(ctypes.cast(_trap_new, ctypes.c_void_p).value)
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

# Callbacks must outlive every linker and store that may call them: wasmtime
# calls the finalizer with the env key when the last user is gone.
_LIVE: dict[int, Any] = {}
_LIVE_LOCK = threading.Lock()
_next_key = 1


def _release_key(key: int | None, live: dict[int, Any] = _LIVE, lock: Any = _LIVE_LOCK) -> None:
    # Bound as defaults: wasmtime may call this while the interpreter shuts
    # down, after module globals are gone.
    with lock:
        live.pop(key or 0, None)


_release = _FINALIZER(_release_key)
# wasmtime may call the finalizer while the interpreter tears modules down
# (a store deleted late): the C thunk must outlive this module's globals, or
# that call jumps into freed memory. One deliberate, permanent reference.
ctypes.pythonapi.Py_IncRef(ctypes.py_object(_release))
_RELEASE_ADDRESS = ctypes.cast(_release, ctypes.c_void_p).value


def trap_pointer(message: str) -> int:
    """A new ``wasm_trap_t*`` (as an int) for a raw callback to return."""
    data = message.encode("utf-8", "replace")
    return int(_trap_new(data, len(data)))


class RawHostFunction(Protocol):
    """What ``define_raw`` needs from a host function (``_dispatch.HostFunction``)."""

    name: str
    params: tuple[str, ...]
    results: tuple[str, ...]

    impl: Callable[..., None]                               # the syscall (trampoline)

    def outcome(self, error: BaseException) -> int | str: ...  # its errors (trampoline)
    def fast_path(self, accel: Any) -> Any: ...             # new_env's `fast` (trampoline)
    def raw_callback(self) -> Any: ...                      # a RAW_CALLBACK instance
    def __call__(self, *args: int) -> Any: ...              # the public route


def _valtype(name: str) -> wasmtime.ValType:
    return wasmtime.ValType.i64() if name == "i64" else wasmtime.ValType.i32()


def _functype(fn: RawHostFunction) -> wasmtime.FuncType:
    return wasmtime.FuncType([_valtype(t) for t in fn.params], [_valtype(t) for t in fn.results])


def define_raw(linker: wasmtime.Linker, module: str, fn: RawHostFunction) -> None:
    """Define ``module.name`` in ``linker`` as ``fn``, by the raw route if possible."""
    global _next_key
    ty = _functype(fn)
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
        callback, finalizer = ctypes.cast(raw, ctypes.c_void_p).value, _RELEASE_ADDRESS
        with _LIVE_LOCK:
            env = _next_key
            _next_key += 1
            _LIVE[env] = (raw, ty)
    m = module.encode()
    n = fn.name.encode()
    err = _define_unchecked(ctypes.cast(linker.ptr(), ctypes.c_void_p), m, len(m), n, len(n),
                            ctypes.cast(ty.ptr(), ctypes.c_void_p), callback, env, finalizer)
    if err:
        raise wasmtime.WasmtimeError._from_ptr(ctypes.cast(err, ctypes.POINTER(ffi.wasmtime_error_t)))


# -- engine, modules ----------------------------------------------------------

_ENGINE: wasmtime.Engine | None = None
_THREADS_ENGINE: wasmtime.Engine | None = None
_ENGINE_LOCK = threading.Lock()

# Every setting of pywasi's engine, as (Config attribute, value). They decide
# the machine code, so the compiled-module cache key hashes this tuple: change
# a setting here (never elsewhere) and old cache entries stop matching.
ENGINE_SETTINGS: tuple[tuple[str, Any], ...] = (
    ("memory_may_move", False),
    ("wasm_threads", True),
    ("shared_memory", True),
    # Chosen from measurements (README, "Compiled-module cache"): the cache
    # keeps code that runs natively for every later start, so it is
    # Cranelift's optimised code, not the baseline compiler Winch's (4-7x
    # faster to compile, its code 1.6-2.1x slower). Parallel compilation
    # cuts a cold start when a second core is free and does not change the
    # code.
    ("strategy", "cranelift"),
    ("parallel_compilation", True),
)
# What the threads engine adds: epoch interruption, so that every thread of a
# program can be stopped wherever it loops (see ``StopSwitch``). It makes
# compiled code check a counter in every loop and call, so only modules that
# can have threads (``_needs_threads``) are compiled with it.
THREADS_SETTINGS: tuple[tuple[str, Any], ...] = (("epoch_interruption", True),)


def _engine_settings(engine: wasmtime.Engine) -> tuple[tuple[str, Any], ...]:
    if engine is _THREADS_ENGINE:
        return ENGINE_SETTINGS + THREADS_SETTINGS
    return ENGINE_SETTINGS


def default_engine() -> wasmtime.Engine:
    """The process-wide engine pywasi compiles with.

    ``memory_may_move = False``: linear memory keeps its base address when it
    grows, so a host view of it only needs extending, never rebasing (see
    ``_memory``). Threads and shared memory are on so wasi-threads modules
    compile.
    """
    global _ENGINE
    with _ENGINE_LOCK:
        if _ENGINE is None:
            _ENGINE = _new_engine(ENGINE_SETTINGS)
        return _ENGINE


def threads_engine() -> wasmtime.Engine:
    """The engine for modules that can spawn threads: the default settings
    plus ``THREADS_SETTINGS``."""
    global _THREADS_ENGINE
    with _ENGINE_LOCK:
        if _THREADS_ENGINE is None:
            _THREADS_ENGINE = _new_engine(ENGINE_SETTINGS + THREADS_SETTINGS)
        return _THREADS_ENGINE


def _new_engine(settings: tuple[tuple[str, Any], ...]) -> wasmtime.Engine:
    config = wasmtime.Config()
    for name, value in settings:
        setattr(config, name, value)
    return wasmtime.Engine(config)


def _needs_threads(source: bytes | str) -> bool:
    """Whether a module (wasm or WAT bytes, or a path) imports
    ``wasi``.``thread-spawn`` or a shared memory: read from its import
    section, without compiling. Anything unreadable answers False (compiling
    it then reports the problem)."""
    try:
        if isinstance(source, str):
            with open(source, "rb") as f:
                if f.read(4) == b"\0asm":
                    return _scan_imports(f)
                f.seek(0)
                source = f.read()
        wasm = source if source.startswith(b"\0asm") else bytes(wasmtime.wat2wasm(source.decode()))
        stream = io.BytesIO(wasm)
        stream.seek(4)
        return _scan_imports(stream)
    except (OSError, ValueError, IndexError, UnicodeDecodeError, wasmtime.WasmtimeError):
        return False


def _scan_imports(f: BinaryIO) -> bool:
    """The binary format's import section (id 2), read from ``f`` after the
    magic; other sections before it are skipped by their size."""
    def leb() -> int:
        result = shift = 0
        while True:
            byte = f.read(1)[0]
            result |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return result

    def name() -> bytes:
        return f.read(leb())

    f.read(4)  # version
    while True:
        head = f.read(1)
        if not head or head[0] not in (0, 1, 2):
            return False  # past the import section (or no sections left)
        size = leb()
        if head[0] != 2:
            f.seek(size, 1)
            continue
        for _ in range(leb()):
            module, field, kind = name(), name(), f.read(1)[0]
            if (module, field) == (b"wasi", b"thread-spawn"):
                return True
            if kind == 0:       # function: type index
                leb()
            elif kind == 1:     # table: reftype, limits
                f.read(1)
                flags = leb()
                leb()
                if flags & 1:
                    leb()
            elif kind == 2:     # memory: limits; flag bit 1 is "shared"
                flags = leb()
                if flags & 2:
                    return True
                leb()
                if flags & 1:
                    leb()
                if flags & 8:   # custom page size
                    leb()
            elif kind == 3:     # global: valtype, mutability
                f.read(2)
            else:               # tag: attribute, type index
                f.read(1)
                leb()
        return False


Source = Union[bytes, bytearray, memoryview, str, "os.PathLike[str]"]


class Module:
    """A compiled module (``WebAssembly.Module``)."""

    __slots__ = ("_module", "engine")

    def __init__(self, module: wasmtime.Module, engine: wasmtime.Engine) -> None:
        self._module = module
        self.engine = engine

    @property
    def imports(self) -> list[tuple[str, str, str]]:
        """``(module, name, kind)`` for each import, kind one of function,
        memory, global, table."""
        return [(i.module, i.name or "", _kind(i.type)) for i in self._module.imports]

    @property
    def exports(self) -> list[tuple[str, str]]:
        return [(e.name, _kind(e.type)) for e in self._module.exports]

    @property
    def wasmtime_module(self) -> wasmtime.Module:
        return self._module


def _kind(ty: Any) -> str:
    if isinstance(ty, wasmtime.FuncType):
        return "function"
    if isinstance(ty, wasmtime.MemoryType):
        return "memory"
    if isinstance(ty, wasmtime.GlobalType):
        return "global"
    if isinstance(ty, wasmtime.TableType):
        return "table"
    return "unknown"


# wasmtime's serialized (precompiled) modules are ELF files.
PRECOMPILED_MAGIC = b"\x7fELF"


def compile(source: Source, *, engine: wasmtime.Engine | None = None,  # noqa: A001
            cache: bool | str | os.PathLike[str] | None = None,
            allow_precompiled: bool = False) -> Module:
    """Compile wasm (binary or WAT text) from bytes, or from a file path.

    ``cache``: None or True uses the compiled-module cache in its default
    directory (see ``_cache.cache_dir``), a path uses that directory, False
    compiles every time. Only modules compiled with pywasi's own engine are
    cached (another engine's settings are unknown). ``allow_precompiled``
    accepts the output of ``pywasi compile`` / ``Module.serialize()``: that
    is native code and runs unchecked, so it is refused unless asked for.
    """
    chosen = engine is None
    if engine is None:
        engine = threads_engine() if _needs_threads(_source_for_scan(source)) else default_engine()
    own_engine = engine is _ENGINE or engine is _THREADS_ENGINE
    use_cache = cache is not False and own_engine
    if isinstance(source, (bytes, bytearray, memoryview)):
        data: bytes | str = bytes(source)
        head = data[:4]
    elif isinstance(source, (str, os.PathLike)):
        # A cache hit need not read a module file given by path: only its head.
        data = os.fspath(source)
        with open(data, "rb") as f:
            head = f.read(4)
            if not use_cache and head != PRECOMPILED_MAGIC:
                data = head + f.read()
    else:
        raise TypeError(f"compile() takes bytes or a path, not {type(source).__name__}")
    if head == PRECOMPILED_MAGIC:
        try:
            return _load_precompiled(data, engine, allow_precompiled)
        except PywasiError:
            if not (chosen and allow_precompiled):
                raise
            # Its import section cannot be read: it may be a threads module.
            return _load_precompiled(data, threads_engine(), allow_precompiled)

    def build(wasm: bytes) -> wasmtime.Module:
        try:
            return _new_module(engine, wasm)
        except wasmtime.WasmtimeError as e:
            raise PywasiError(f"not a valid WebAssembly module: {_first_line(e)}") from None

    if not use_cache:
        assert isinstance(data, bytes)
        return Module(build(data), engine)
    from . import _cache
    directory = os.fspath(cache) if isinstance(cache, (str, os.PathLike)) else _cache.cache_dir()
    return Module(_cache.load_or_compile(data, engine, _engine_settings(engine), directory, build),
                  engine)


def serialize_to(module: wasmtime.Module, write: Callable[[memoryview], None],
                 chunk_size: int = 1 << 20) -> None:
    """Pass wasmtime's serialized form of ``module`` to ``write`` in chunks,
    read where wasmtime put it. ``Module.serialize()`` copies it into a new
    bytearray: for CPython's 26 MB that copy is ~0.02 s of page faults on the
    exit path of a cold start (see ``_cache``). A chunk must not be kept:
    the buffer is freed on return."""
    raw = ffi.wasm_byte_vec_t()
    error = ffi.wasmtime_module_serialize(module.ptr(), ctypes.byref(raw))
    if error:
        raise wasmtime.WasmtimeError._from_ptr(error)
    try:
        if not raw.size:
            return
        whole = (ctypes.c_uint8 * raw.size).from_address(ctypes.addressof(raw.data.contents))
        with memoryview(whole) as view:
            for start in range(0, len(view), chunk_size):
                with view[start:start + chunk_size] as chunk:
                    write(chunk)
    finally:
        ffi.wasm_byte_vec_delete(ctypes.byref(raw))


def _source_for_scan(source: Any) -> bytes | str:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source)
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    return b""


def _load_precompiled(source: bytes | str, engine: wasmtime.Engine, allowed: bool) -> Module:
    """Bytes, or a file (memory-mapped), from ``Module.serialize()``."""
    if not allowed:
        raise PywasiError("this is a precompiled module (native code), not WebAssembly; "
                          "load it only if you trust it: --allow-precompiled "
                          "(compile(..., allow_precompiled=True))")
    try:
        if isinstance(source, str):
            return Module(wasmtime.Module.deserialize_file(engine, source), engine)
        return Module(wasmtime.Module.deserialize(engine, source), engine)
    except wasmtime.WasmtimeError as e:
        raise PywasiError(f"cannot load precompiled module: {_first_line(e)}") from None


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


# -- threads: stores that can be stopped, shared memories --------------------

class StopSwitch:
    """Stops every store it is installed in (``new_store``): once ``stopped``
    is set, the engine's next epoch tick traps their running wasm.

    Each store of the threads engine checks the engine's epoch in every loop
    and call; at each tick (``Engine.increment_epoch``, engine-wide) wasmtime
    asks our callback, which traps a stopped program's stores and lets every
    other store on the engine run on. So ending one program never stops
    another one running in the same process."""

    __slots__ = ("stopped",)

    def __init__(self) -> None:
        self.stopped = False

    def stop(self, engine: wasmtime.Engine) -> None:
        self.stopped = True
        engine.increment_epoch()


# wasmtime_error_t *callback(wasmtime_context_t *, void *env, uint64_t *delta,
#                            wasmtime_update_deadline_kind_t *kind)
_EPOCH_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                                   ctypes.POINTER(ctypes.c_uint64), ctypes.POINTER(ctypes.c_uint8))
_set_epoch_callback = _own_symbol(
    "wasmtime_store_epoch_deadline_callback", None,
    [ctypes.c_void_p, _EPOCH_CALLBACK, ctypes.c_void_p, _FINALIZER])
_error_new = _own_symbol("wasmtime_error_new", ctypes.c_void_p, [ctypes.c_char_p])
_UPDATE_DEADLINE_CONTINUE = 0
STOPPED_MESSAGE = "wasm thread stopped: the program is ending"


def _on_epoch(context: Any, key: int | None, delta: Any, kind: Any,
              live: dict[int, Any] = _LIVE) -> int | None:
    switch = live.get(key or 0)
    if switch is not None and switch.stopped:
        return int(_error_new(STOPPED_MESSAGE.encode()))
    delta[0] = 1
    kind[0] = _UPDATE_DEADLINE_CONTINUE
    return None


_on_epoch_c = _EPOCH_CALLBACK(_on_epoch)
ctypes.pythonapi.Py_IncRef(ctypes.py_object(_on_epoch_c))  # as _release: outlives the module
_STORE_SWITCHES: weakref.WeakKeyDictionary[wasmtime.Store, StopSwitch] = weakref.WeakKeyDictionary()


def new_store(engine: wasmtime.Engine, switch: StopSwitch | None = None) -> wasmtime.Store:
    """A store on ``engine``. On the threads engine it gets an epoch deadline
    (without one, its wasm would trap at once) and ``switch`` (a new one if
    not given; ``store_switch`` finds it)."""
    global _next_key
    store = wasmtime.Store(engine)
    if engine is _THREADS_ENGINE:
        switch = switch or StopSwitch()
        with _LIVE_LOCK:
            key = _next_key
            _next_key += 1
            _LIVE[key] = switch
        store.set_epoch_deadline(1)
        _set_epoch_callback(ctypes.cast(store.ptr(), ctypes.c_void_p), _on_epoch_c, key, _release)
        _STORE_SWITCHES[store] = switch
    return store


def store_switch(store: wasmtime.Store) -> StopSwitch | None:
    return _STORE_SWITCHES.get(store)


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


# -- instances and their exports ---------------------------------------------

class ExitProbe(Protocol):
    """A host bound to an instance that can end the program (the WASI object)."""

    def take_exit(self) -> int | None: ...
    def take_interrupt(self) -> BaseException | None: ...


class Instance:
    """An instantiated module (``WebAssembly.Instance``)."""

    __slots__ = ("store", "_instance", "exports", "_hosts", "module", "imported_memory", "link")

    def __init__(self, store: wasmtime.Store, instance: wasmtime.Instance,
                 module: wasmtime.Module | None = None) -> None:
        self.store = store
        self._instance = instance
        self.module = module
        self._hosts: list[ExitProbe] = []
        self.exports = Exports(self)
        # The memory it imports, if any (a threads program imports its shared
        # memory and may not export it), and what it was instantiated from
        # (``instantiate``'s module and complete import object), so that
        # wasi-threads can instantiate it again for each thread.
        self.imported_memory: Memory | SharedMemory | None = None
        self.link: tuple[Module, Mapping[str, Mapping[str, Any]]] | None = None

    @classmethod
    def wrap(cls, store: wasmtime.Store, instance: wasmtime.Instance) -> Instance:
        """Adopt an instance made with the user's own ``wasmtime.Linker``."""
        return cls(store, instance)

    def _attach(self, host: ExitProbe) -> None:
        self._hosts.append(host)

    def _outcome(self, error: BaseException) -> BaseException:
        """What a failed export call means: an exit, an interrupt the host
        saw, or a trap. Decided from host state, not from which exception
        wasmtime reports (it keeps one global "last exception")."""
        for host in self._hosts:
            interrupt = host.take_interrupt()
            if interrupt is not None:
                return interrupt
        for host in self._hosts:
            code = host.take_exit()
            if code is not None:
                return WasiExit(code)
        if isinstance(error, wasmtime.Trap):
            return Trap(_trap_message(error))
        if isinstance(error, wasmtime.WasmtimeError):
            return Trap(_trap_message(error))
        return error


def _trap_message(e: BaseException) -> str:
    return str(e).strip() or type(e).__name__


class Exports(Mapping[str, Any]):
    """The instance's exports by name; also readable as attributes
    (``instance.exports._start()``)."""

    __slots__ = ("_owner", "_cache")

    def __init__(self, owner: Instance) -> None:
        self._owner = owner
        self._cache: dict[str, Any] = {}

    def __getitem__(self, name: str) -> Any:
        try:
            return self._cache[name]
        except KeyError:
            pass
        owner = self._owner
        raw = owner._instance.exports(owner.store).get(name)
        if raw is None:
            raise KeyError(name)
        value = _wrap_extern(owner, raw)
        self._cache[name] = value
        return value

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"the instance has no export named {name!r}") from None

    def __iter__(self) -> Iterator[str]:
        owner = self._owner
        return iter([name for name, _ in owner._instance.exports(owner.store).items()])

    def __len__(self) -> int:
        owner = self._owner
        return len(owner._instance.exports(owner.store))


def _wrap_extern(owner: Instance, raw: Any) -> Any:
    if isinstance(raw, wasmtime.Func):
        return Function(owner, raw)
    if isinstance(raw, wasmtime.Memory):
        return Memory(owner.store, raw)
    if isinstance(raw, wasmtime.Global):
        return Global(owner.store, raw)
    if isinstance(raw, wasmtime.SharedMemory):
        return SharedMemory(raw)
    return raw


class Function:
    """An exported function, called with Python numbers."""

    __slots__ = ("_owner", "_func", "__weakref__")

    def __init__(self, owner: Instance, func: wasmtime.Func) -> None:
        self._owner = owner
        self._func = func

    def __call__(self, *args: Any) -> Any:
        try:
            return self._func(self._owner.store, *args)
        except (wasmtime.Trap, wasmtime.WasmtimeError) as e:
            raise self._owner._outcome(e) from None
        except BaseException as e:
            # The public route (or a user's import) raised through wasmtime-py.
            outcome = self._owner._outcome(e)
            if outcome is e:
                raise
            raise outcome from None

    @property
    def wasmtime_func(self) -> wasmtime.Func:
        return self._func


class Memory:
    """An exported memory: ``buffer`` is a memoryview over it (re-read it after
    ``grow``), ``size`` is in 64 KiB pages."""

    __slots__ = ("_store", "_memory")

    def __init__(self, store: wasmtime.Store, memory: wasmtime.Memory) -> None:
        self._store = store
        self._memory = memory

    @property
    def buffer(self) -> memoryview:
        address, length = self.locate()
        if not length:
            return memoryview(bytearray(0))
        return memoryview((ctypes.c_char * length).from_address(address)).cast("B")

    @property
    def size(self) -> int:
        return int(self._memory.size(self._store))

    def grow(self, pages: int) -> int:
        return int(self._memory.grow(self._store, pages))

    def locate(self) -> tuple[int, int]:
        """(address, byte length) of the memory right now."""
        return _locate(self._store, self._memory)

    @property
    def stable(self) -> bool:
        """True when the memory's base cannot move as it grows (our engine)."""
        return self._store.engine is _ENGINE

    @property
    def wasmtime_memory(self) -> wasmtime.Memory:
        return self._memory


def _locate(store: wasmtime.Store, memory: wasmtime.Memory) -> tuple[int, int]:
    ctx = ctypes.cast(store._context(), ctypes.c_void_p)
    ref = ctypes.cast(ctypes.byref(memory._memory), ctypes.c_void_p)
    return int(_memory_data(ctx, ref) or 0), int(_memory_data_size(ctx, ref))


class WeakMemory:
    """``memory``'s ``locate``, for a host that the memory's own store keeps
    alive: WASI's context (wasmtime holds the syscalls, and through them the
    context, until the store is deleted). It refers to the store weakly: a
    strong reference would close a cycle through C that no collector sees,
    and the store with its linear memory would never be freed. Once the store
    is gone, ``on_gone`` is called (the host must drop its views of the
    memory: their bytes are unmapped) and ``locate`` raises ``GuestFault``."""

    __slots__ = ("_store", "_memory")

    def __init__(self, memory: Memory, on_gone: Callable[[], None]) -> None:
        self._store = weakref.ref(memory._store, lambda _: on_gone())
        self._memory = memory._memory

    def locate(self) -> tuple[int, int]:
        store = self._store()
        if store is None:
            raise GuestFault("the memory WASI is bound to is gone (its instance's store was freed)")
        return _locate(store, self._memory)


class Global:
    """An exported global; ``value`` reads and (if mutable) writes it."""

    __slots__ = ("_store", "_global")

    def __init__(self, store: wasmtime.Store, glob: wasmtime.Global) -> None:
        self._store = store
        self._global = glob

    @property
    def value(self) -> Any:
        return self._global.value(self._store)

    @value.setter
    def value(self, v: Any) -> None:
        self._global.set_value(self._store, v)


def instantiate(module: Module, import_object: Mapping[str, Mapping[str, Any]] | None = None,
                *, store: wasmtime.Store | None = None) -> Instance:
    """Instantiate ``module`` with ``import_object`` (``{module: {name: value}}``).

    A value may be one of WASI's host functions, a plain Python callable (its
    wasm type is the import's), an export of another instance (``Function``,
    ``Memory``, ``Global``: the new instance then joins that instance's store,
    as JavaScript instances share one agent) or, with ``store=`` given, a
    wasmtime extern of that store.
    """
    if not isinstance(module, Module):
        raise TypeError(f"instantiate() takes a Module from pywasi.compile(), not {type(module).__name__}")
    import_object = import_object or {}
    engine = module.engine
    explicit = store is not None
    store = _choose_store(module, import_object, store)
    linker = wasmtime.Linker(engine)
    hosts: list[Any] = []
    # wasi-threads: `wasi`.`thread-spawn`, if the import object lacks it, is
    # its WASI's (``HostState.thread_spawn``); with it, a shared memory the
    # module imports and the import object lacks is made here, to the
    # module's declared type, as wasmtime's CLI does.
    spawner = _thread_spawn_of(import_object)
    threads = spawner is not None
    complete: dict[str, dict[str, Any]] = {ns: dict(values) for ns, values in import_object.items()}
    memory: Memory | SharedMemory | None = None
    for imp in module._module.imports:
        name = imp.name or ""
        where = f"{imp.module}.{name}"
        namespace = import_object.get(imp.module)
        value = None if namespace is None else namespace.get(name)
        if value is None and threads and (imp.module, name) == ("wasi", "thread-spawn"):
            value = spawner
            complete.setdefault(imp.module, {})[name] = value
        if value is None and threads and isinstance(imp.type, wasmtime.MemoryType) \
                and imp.type.is_shared:
            value = SharedMemory(wasmtime.SharedMemory(engine, imp.type))
            complete.setdefault(imp.module, {})[name] = value
        if value is None:
            if namespace is None:
                raise LinkError(f"import {where}: the import object has no module {imp.module!r}")
            raise LinkError(f"import {where}: not provided by the import object")
        if isinstance(value, wasmtime.SharedMemory):
            value = SharedMemory(value)
        if isinstance(value, (Memory, SharedMemory)):
            memory = value
        _define_import(store, linker, imp, where, value, hosts, explicit)
    try:
        raw = linker.instantiate(store, module._module)
    except wasmtime.Trap as e:
        raise Trap(_trap_message(e)) from None
    except wasmtime.WasmtimeError as e:
        raise LinkError(_first_line(e)) from None
    instance = Instance(store, raw, module._module)
    instance.imported_memory = memory
    instance.link = (module, complete)
    for host in hosts:
        instance._attach(host)
    return instance


def _thread_spawn_of(import_object: Mapping[str, Mapping[str, Any]]) -> Any:
    given = import_object.get("wasi", {}).get("thread-spawn")
    if given is not None:
        return given
    for namespace in import_object.values():
        for value in namespace.values():
            host = getattr(value, "wasi_host", None)
            if host is not None:
                return getattr(host, "thread_spawn", None)
            break
    return None


def _store_of(value: Any) -> wasmtime.Store | None:
    if isinstance(value, Function):
        return value._owner.store
    if isinstance(value, (Memory, Global)):
        return value._store
    return None


def _choose_store(module: Module, import_object: Mapping[str, Mapping[str, Any]],
                  given: wasmtime.Store | None) -> wasmtime.Store:
    """The store the new instance lives in. Wasm objects cannot cross stores
    (wasmtime aborts the process if they do), so an instance that imports
    another instance's exports joins that instance's store, and mixing two
    stores is refused here instead."""
    stores = {id(s): s for ns in import_object.values() if isinstance(ns, Mapping)
              for s in map(_store_of, ns.values()) if s is not None}
    if given is not None:
        stores.setdefault(id(given), given)
    if len(stores) > 1:
        raise LinkError("the import object holds exports of instances in different stores; "
                        "wasm objects cannot cross stores")
    if stores:
        store = next(iter(stores.values()))
        if store.engine is not module.engine:
            raise LinkError("the imported exports belong to another engine than the module")
        return store
    return new_store(module.engine)


def _define_import(store: wasmtime.Store, linker: wasmtime.Linker, imp: Any, where: str,
                   value: Any, hosts: list[Any], explicit_store: bool) -> None:
    ty = imp.type
    host_of = getattr(value, "wasi_host", None)
    if host_of is not None and hasattr(value, "raw_callback"):
        if not isinstance(ty, wasmtime.FuncType):
            raise LinkError(f"import {where}: the module imports a {_kind(ty)}, not a function")
        want = ([str(p) for p in ty.params], [str(r) for r in ty.results])
        have = (list(value.params), list(value.results))
        if want != have:
            raise LinkError(f"import {where}: the module expects {want[0]} -> {want[1]}, "
                            f"WASI's {value.name} is {have[0]} -> {have[1]}")
        define_raw(linker, imp.module, value)
        if host_of not in hosts:
            hosts.append(host_of)
        return
    if isinstance(value, SharedMemory):
        # A shared memory belongs to the engine, not to a store.
        if not isinstance(ty, wasmtime.MemoryType):
            raise LinkError(f"import {where}: the module imports a {_kind(ty)}, not a memory")
        try:
            value.define(linker, store, imp.module, imp.name or "")
        except wasmtime.WasmtimeError as e:
            raise LinkError(f"import {where}: {_first_line(e)}") from None
        return
    wrapped = _store_of(value) is not None  # our export wrappers: store already chosen
    if isinstance(value, Function):
        value = value.wasmtime_func
    elif isinstance(value, Memory):
        value = value.wasmtime_memory
    elif isinstance(value, Global):
        value = value._global
    if isinstance(value, (wasmtime.Func, wasmtime.Memory, wasmtime.Global, wasmtime.Table)):
        if not (explicit_store or wrapped):
            raise LinkError(f"import {where}: a raw wasmtime {type(value).__name__} can only be "
                            f"imported with instantiate(..., store=<its store>)")
        try:
            linker.define(store, imp.module, imp.name or "", value)
        except wasmtime.WasmtimeError as e:
            raise LinkError(f"import {where}: {_first_line(e)}") from None
        return
    if callable(value):
        if not isinstance(ty, wasmtime.FuncType):
            raise LinkError(f"import {where}: the module imports a {_kind(ty)}, "
                            f"a Python callable can only be a function")
        linker.define_func(imp.module, imp.name or "", ty, value)
        return
    raise LinkError(f"import {where}: cannot import a {type(value).__name__}")

