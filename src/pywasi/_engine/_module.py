"""Compiled modules: ``compile`` (bytes, WAT text, a path, a precompiled
file), the ``Module`` it gives, and wasmtime's serialized form of one."""

from __future__ import annotations

import ctypes
import os
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, NamedTuple, Union

import wasmtime
from wasmtime import _ffi as ffi

from .._errors import PywasiError
from . import _engines, _ffi

if TYPE_CHECKING:
    from .._cache import Lookup

__all__ = ["Source", "Module", "Import", "PRECOMPILED_MAGIC", "compile", "serialize_to", "kind",
           "type_text", "function_text", "first_line"]

Source = Union[bytes, bytearray, memoryview, str, "os.PathLike[str]"]

def _new_module(engine: wasmtime.Engine, wasm: bytes) -> wasmtime.Module:
    """``wasmtime.Module(engine, wasm)`` without its copy of the binary:
    wasmtime-py copies it into a ctypes array first (~15 ms of page faults
    and memcpy for Yosys's 39 MB, before a compile a first run waits for);
    a ``c_char_p`` argument passes the bytes object's own buffer. Text (WAT)
    goes to wasmtime-py, which converts it."""
    if _ffi.module_new is None or not wasm.startswith(b"\0"):
        return wasmtime.Module(engine, wasm)
    out = ctypes.POINTER(ffi.wasmtime_module_t)()
    error = _ffi.module_new(engine.ptr(), wasm, len(wasm), ctypes.byref(out))
    if error:
        raise wasmtime.WasmtimeError._from_ptr(error)
    return wasmtime.Module._from_ptr(out)



class Import(NamedTuple):
    """One import entry of a module, as linking needs it."""

    module: str
    name: str
    type: Any       # wasmtime's FuncType, MemoryType, GlobalType or TableType
    text: str       # type_text(type): equal texts are equal types


class Module:
    """A compiled module (``WebAssembly.Module``)."""

    __slots__ = ("_module", "engine", "_imports", "_code_digest", "__weakref__")

    def __init__(self, module: wasmtime.Module, engine: wasmtime.Engine) -> None:
        self._module = module
        self.engine = engine
        self._imports: tuple[Import, ...] | None = None
        self._code_digest: bytes | None = None   # SHA-256 of its serialized code, once pickled

    def __reduce_ex__(self, protocol: Any) -> tuple[Any, ...]:
        """Pickled as its compiled code, loaded without compiling (and once
        per process) by ``_pickled.load``. Unpickling runs that native code:
        unpickle only what you would run (``_pickled``'s docstring)."""
        from . import _pickled
        return _pickled.reduce(self, int(protocol))

    @property
    def import_entries(self) -> tuple[Import, ...]:
        """Every import entry, in order. Read from wasmtime once: its
        ``imports`` builds new type objects at each read (~2 ms for the 43
        of CPython for WASI), which a module run many times would pay per
        instantiation."""
        if self._imports is None:
            self._imports = tuple(Import(i.module, i.name or "", i.type, type_text(i.type))
                                  for i in self._module.imports)
        return self._imports

    @property
    def imports(self) -> list[tuple[str, str, str]]:
        """``(module, name, kind)`` for each import, kind one of function,
        memory, global, table."""
        return [(i.module, i.name, kind(i.type)) for i in self.import_entries]

    @property
    def exports(self) -> list[tuple[str, str]]:
        return [(e.name, kind(e.type)) for e in self._module.exports]

    @property
    def interruptible(self) -> bool:
        """Compiled with epoch checks: ``start(..., timeout=)`` can stop it."""
        return _engines.has_epochs(self.engine)

    @property
    def consume_fuel(self) -> bool:
        """Compiled to count fuel: ``instantiate(..., fuel=)`` applies."""
        return _engines.has_fuel(self.engine)

    @property
    def max_wasm_stack(self) -> int:
        """Bytes of wasm stack its calls may use (``compile(max_wasm_stack=)``)."""
        return _engines.wasm_stack(self.engine)

    @property
    def wasmtime_module(self) -> wasmtime.Module:
        return self._module


def kind(ty: Any) -> str:
    if isinstance(ty, wasmtime.FuncType):
        return "function"
    if isinstance(ty, wasmtime.MemoryType):
        return "memory"
    if isinstance(ty, wasmtime.GlobalType):
        return "global"
    if isinstance(ty, wasmtime.TableType):
        return "table"
    return "unknown"


def function_text(params: Iterable[str], results: Iterable[str]) -> str:
    """``type_text`` of a function type given by its value types' names."""
    return f"a function {list(params)} -> {list(results)}"


def type_text(ty: Any) -> str:
    """An import's or export's type as a message shows it; equal texts are
    equal types (wasmtime-py's type objects do not compare)."""
    if isinstance(ty, wasmtime.FuncType):
        return function_text(map(str, ty.params), map(str, ty.results))
    if isinstance(ty, (wasmtime.MemoryType, wasmtime.TableType)):
        limits = ty.limits
        bounds = f"{limits.min}..{'' if limits.max is None else limits.max}"
        if isinstance(ty, wasmtime.TableType):
            return f"a table of {ty.element} {bounds}"
        flags = (" shared" if ty.is_shared else "") + (" 64-bit" if ty.is_64 else "")
        return f"a{flags} memory of {bounds} pages"
    if isinstance(ty, wasmtime.GlobalType):
        return f"a {'mutable' if ty.mutable else 'constant'} global {ty.content}"
    return f"a {kind(ty)}"


# wasmtime's serialized (precompiled) modules are ELF files.
PRECOMPILED_MAGIC = b"\x7fELF"


def compile(source: Source, *, engine: wasmtime.Engine | None = None,  # noqa: A001
            cache: bool | str | os.PathLike[str] | None = None,
            allow_precompiled: bool = False, interruptible: bool = False,
            consume_fuel: bool = False, max_wasm_stack: int | None = None) -> Module:
    """Compile wasm (binary or WAT text) from bytes, or from a file path.

    ``interruptible``: the code checks wasmtime's epoch in every loop and
    call, so that ``start(..., timeout=)`` can stop it wherever it runs (a
    module that can spawn threads always is). ``consume_fuel``: the code
    counts fuel, for ``instantiate(..., fuel=)``. Each costs run time (see
    the README's limits rows) and is off unless asked for.

    ``max_wasm_stack``: bytes of wasm stack before a call traps with "call
    stack exhausted" (default: wasmtime's 512 KiB; at most 1 GiB). It does
    not change the code (one cache entry serves every size); a larger one
    runs the module's calls on a thread of pywasi's with the native stack
    it needs (docs/limits.md).

    ``cache``: None or True uses the compiled-module cache in its default
    directory (see ``_cache.cache_dir``), a path uses that directory, False
    compiles every time. Only modules compiled with pywasi's own engine are
    cached (another engine's settings are unknown). ``allow_precompiled``
    accepts the output of ``pywasi compile`` / ``Module.serialize()``: that
    is native code and runs unchecked, so it is refused unless asked for.
    """
    _ffi.warn_if_degraded()
    chosen = engine is None
    stack = _engines.check_wasm_stack(max_wasm_stack)
    if engine is None:
        epochs = interruptible or _engines.needs_threads(_source_for_scan(source))
        engine = _engines.engine_for(epochs=epochs, fuel=consume_fuel, stack=stack)
    elif max_wasm_stack is not None:
        raise ValueError("compile(max_wasm_stack=...) chooses pywasi's engine; with engine= "
                         "set max_wasm_stack on that engine's wasmtime.Config instead")
    settings = _engines.settings_of(engine)
    use_cache = cache is not False and settings is not None
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
            return _load_precompiled(data, _engines.engine_for(epochs=True, fuel=consume_fuel,
                                                               stack=stack),
                                     allow_precompiled)

    def build(wasm: bytes) -> wasmtime.Module:
        try:
            return _new_module(engine, wasm)
        except wasmtime.WasmtimeError as e:
            raise PywasiError(f"not a valid WebAssembly module: {first_line(e)}") from None

    if settings is None or not use_cache:
        assert isinstance(data, bytes)
        return Module(build(data), engine)
    from .. import _cache
    directory = os.fspath(cache) if isinstance(cache, (str, os.PathLike)) else _cache.cache_dir()
    return Module(_load_or_compile(_cache.lookup(directory, data, _engines.cache_context(settings)),
                                   engine, build), engine)


def _load_or_compile(found: Lookup, engine: wasmtime.Engine,
                     build: Callable[[bytes], wasmtime.Module]) -> wasmtime.Module:
    """The compiled-module cache's load path, top to bottom: an entry of
    ``found`` (a ``_cache.Lookup``) that wasmtime loads, else ``build`` the
    module's bytes and store its serialized form."""
    for path in found.entries():
        try:
            module = wasmtime.Module.deserialize_file(engine, path)
        except wasmtime.WasmtimeError as e:
            found.discard(path, first_line(e))   # another wasmtime's, or damaged
            continue
        found.used(path)
        return module
    module = build(found.wasm())
    found.store(lambda write: serialize_to(module, write))
    return module


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
        raise PywasiError(f"cannot load precompiled module: {first_line(e)}") from None


def first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__

