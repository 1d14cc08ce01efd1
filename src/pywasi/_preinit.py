"""``preinitialize``: run a module's init function once, under pywasi's WASI,
and write a new module that starts where the init left off (Wizer's
pre-initialisation, as ``wasmtime wizer`` does it). docs/preinit.md says
what can be snapshotted and what is refused.

The steps, each in one function:

1. ``_Layout.read``: what the module declares (its sections, decoded once
   by ``pywasi._wasm``), and the refusals that need no run: imported
   memories, tables or globals; shared memory or ``thread-spawn``; passive
   segments the code could drop; no init export.
2. ``_instrument``: a copy that exports every defined memory, mutable
   global and table under ``__pywasi_snapshot_*`` names, and whose start
   function is an export instead of a start section (so that the tables can
   be read before any code runs).
3. ``_run_init``: instantiate the copy, run the start function,
   ``_initialize`` (a reactor's, as Wizer does) and the init function; a
   trap or ``proc_exit`` is refused. Then the refusals only a run can show:
   a table changed, a descriptor left open.
4. ``_snapshot``: every mutable global's value (raw bits), and each
   memory's size and non-zero ranges (merged as Wizer merges them).
5. ``_rewrite``: the original module's sections, with the memories' minimum
   sizes, the globals' initialisers, the exports (init, ``_initialize``,
   renames), the start section (removed) and the data (new segments; the
   old active ones emptied, keeping every data index) changed; every other
   section copied byte for byte, custom ones too, except the relocation
   sections of an object file, which describe the old layout.

Nothing here runs at ``pywasi run`` start-up: ``pywasi wizer`` and
``pywasi.preinitialize`` import this module when called.
"""

from __future__ import annotations

import ctypes
import os
import re
from collections.abc import Mapping
from typing import Any

import wasmtime
from wasmtime import _ffi as ffi

from . import _wasm
from ._errors import PywasiError, Trap, WasiExit

__all__ = ["preinitialize", "PreinitError", "DEFAULT_INIT", "MAX_DATA_SEGMENTS"]

DEFAULT_INIT = "wizer.initialize"

# Wizer's numbers: a run of at most this many zero bytes between two
# non-zero ranges costs less inside one segment than a new segment's header
# (memory index, offset expression, length), so such ranges are merged...
_MERGE_GAP = 4
# ...and no more segments than this are written (engines limit the count;
# past it the smallest gaps are merged first).
MAX_DATA_SEGMENTS = 10_000

_PREFIX = "__pywasi_snapshot_"
_NONZERO_SPLIT = re.compile(rb"\x00{%d,}" % (_MERGE_GAP + 1))

# wasmtime_valkind_t (wasmtime/val.h)
_I32, _I64, _F32, _F64, _V128 = range(5)


class PreinitError(PywasiError, ValueError):
    """The module cannot be pre-initialised (the message, one line, says
    why), or its init function failed."""


class _Layout:
    """What the module declares, read once from its sections."""

    def __init__(self, sections: list[_wasm.Section]) -> None:
        self.sections = sections
        self.imports: list[_wasm.Import] = []
        self.memories: list[_wasm.MemoryType] = []
        self.tables: list[_wasm.TableType] = []
        self.globals: list[_wasm.Global] = []
        self.exports: list[_wasm.Export] = []
        self.data: list[_wasm.DataSegment] = []
        self.elements: list[_wasm.ElementSegment] = []
        self.start: int | None = None
        self.has_datacount = False
        for s in sections:
            if s.id == _wasm.IMPORT:
                self.imports = _wasm.read_imports(s.payload)
            elif s.id == _wasm.MEMORY:
                self.memories = _wasm.read_memories(s.payload)
            elif s.id == _wasm.TABLE:
                self.tables = _wasm.read_tables(s.payload)
            elif s.id == _wasm.GLOBAL:
                self.globals = _wasm.read_globals(s.payload)
            elif s.id == _wasm.EXPORT:
                self.exports = _wasm.read_exports(s.payload)
            elif s.id == _wasm.START:
                self.start = _wasm.Reader(s.payload, "start").u32()
            elif s.id == _wasm.DATA:
                self.data = _wasm.read_data(s.payload)
            elif s.id == _wasm.ELEMENT:
                self.elements = _wasm.read_elements(s.payload)
            elif s.id == _wasm.DATACOUNT:
                self.has_datacount = True

    @classmethod
    def read(cls, wasm: bytes, init: str) -> _Layout:
        try:
            layout = cls(_wasm.read_module(wasm))
        except _wasm.WasmFormatError as e:
            raise PreinitError(f"cannot read the module: {e}") from None
        layout.refuse_what_cannot_be_snapshotted(init)
        return layout

    def refuse_what_cannot_be_snapshotted(self, init: str) -> None:
        kinds = {_wasm.KIND_MEMORY: "memory", _wasm.KIND_TABLE: "table",
                 _wasm.KIND_GLOBAL: "global"}
        for i in self.imports:
            if i.kind in kinds:
                raise PreinitError(f"it imports a {kinds[i.kind]} ({i.module}.{i.name}): a "
                                   f"snapshot cannot hold state the host provides")
            if (i.module, i.name) == ("wasi", "thread-spawn"):
                raise PreinitError("it imports wasi.thread-spawn: a module with threads cannot "
                                   "be snapshotted")
        for index, memory in enumerate(self.memories):
            if memory.shared:
                raise PreinitError(f"memory {index} is shared (threads): it cannot be snapshotted")
        # memory.init/data.drop need the data count section: without it no
        # code can drop a passive data segment, and the segment is copied as
        # it is. Element segments need no such section for elem.drop.
        if self.has_datacount and any(d.passive and len(d.data) for d in self.data):
            raise PreinitError("it has passive data segments and code that may drop them "
                               "(data.drop): a snapshot cannot tell whether the init did")
        if any(e.passive and e.count for e in self.elements):
            raise PreinitError("it has passive element segments and code that may drop them "
                               "(elem.drop): a snapshot cannot tell whether the init did")
        for g_index, g in enumerate(self.globals):
            if g.type.mutable and g.type.valtype[0] not in (0x7F, 0x7E, 0x7D, 0x7C, 0x7B):
                raise PreinitError(f"global {g_index} is a mutable reference: a snapshot cannot "
                                   f"hold a reference")
        found = [e for e in self.exports if e.name == init]
        if not found:
            raise PreinitError(f"the module does not export {init!r} (the init function; "
                               f"choose another with init= / --init-func)")
        if found[0].kind != _wasm.KIND_FUNC:
            raise PreinitError(f"its export {init!r} is not a function")
        taken = [e.name for e in self.exports if e.name.startswith(_PREFIX)]
        if taken:
            raise PreinitError(f"it already exports {taken[0]!r}, a name pywasi's snapshot uses")

    def section(self, id: int) -> _wasm.Section | None:
        for s in self.sections:
            if s.id == id:
                return s
        return None


def _instrument(layout: _Layout) -> bytes:
    """The copy that runs: every defined memory, mutable global and table
    exported (Wizer's instrumentation), and the start function exported
    instead of run by instantiation."""
    exports = list(layout.exports)
    exports += [_wasm.Export(f"{_PREFIX}memory_{i}", _wasm.KIND_MEMORY, i)
                for i in range(len(layout.memories))]
    exports += [_wasm.Export(f"{_PREFIX}global_{i}", _wasm.KIND_GLOBAL, i)
                for i, g in enumerate(layout.globals) if g.type.mutable]
    exports += [_wasm.Export(f"{_PREFIX}table_{i}", _wasm.KIND_TABLE, i)
                for i in range(len(layout.tables))]
    if layout.start is not None:
        exports.append(_wasm.Export(f"{_PREFIX}start", _wasm.KIND_FUNC, layout.start))
    export_section = _wasm.section(_wasm.EXPORT, _wasm.encode_exports(exports))
    out = []
    placed = False
    for s in layout.sections:
        if s.id == _wasm.START:
            continue
        if s.id == _wasm.EXPORT:
            out.append(export_section)
            placed = True
            continue
        if not placed and s.id != _wasm.CUSTOM and _order(s.id) > _order(_wasm.EXPORT):
            out.append(export_section)
            placed = True
        out.append(s)
    if not placed:
        out.append(export_section)
    return _wasm.write_module(out)


_ORDER = (_wasm.TYPE, _wasm.IMPORT, _wasm.FUNCTION, _wasm.TABLE, _wasm.MEMORY, _wasm.TAG,
          _wasm.GLOBAL, _wasm.EXPORT, _wasm.START, _wasm.ELEMENT, _wasm.DATACOUNT, _wasm.CODE,
          _wasm.DATA)


def _order(id: int) -> int:
    """A non-custom section's place in the binary format's order (the tag
    section comes after memory, the data count section before code)."""
    return _ORDER.index(id) if id in _ORDER else len(_ORDER)


def _table_state(instance: Any, layout: _Layout) -> list[list[bytes]]:
    """Each defined table's elements, as the engine's raw references (a
    function's reference is the same pointer every time it is read)."""
    store = instance.store
    state = []
    for i in range(len(layout.tables)):
        table = instance.exports[f"{_PREFIX}table_{i}"]
        elements = []
        raw = ffi.wasmtime_val_t()
        for index in range(table.size(store)):
            if not ffi.wasmtime_table_get(store._context(), ctypes.byref(table._table), index,
                                          ctypes.byref(raw)):
                break
            elements.append(bytes([int(raw.kind)]) + ctypes.string_at(ctypes.addressof(raw.of), 16))
        state.append(elements)
    return state


def _trap_when_called(entry: _wasm.Import) -> Any:
    def unknown_import(*args: Any) -> Any:
        raise Trap(f"it called {entry.module}.{entry.name}, an import nobody provides "
                   f"(unknown_imports_trap)")
    return unknown_import


def _open_fds(wasi: Any) -> dict[int, Any]:
    return {fd: desc for fd, desc in enumerate(wasi._fds._entries) if desc is not None}


def _run_init(compiled: Any, layout: _Layout, init: str, wasi: Any,
              imports: Mapping[str, Mapping[str, Any]] | None, unknown_imports_trap: bool) -> Any:
    """Instantiate the instrumented copy and run what a pre-initialised
    instance has already run: the start function, ``_initialize``, the
    init function. Returns the instance, its state as the init left it."""
    from ._engine import instantiate
    import_object = dict(wasi.get_import_object())
    for namespace, names in (imports or {}).items():
        import_object[namespace] = {**import_object.get(namespace, {}), **names}
    if unknown_imports_trap:
        for i in layout.imports:
            if i.kind == _wasm.KIND_FUNC and i.name not in import_object.get(i.module, {}):
                import_object.setdefault(i.module, {})[i.name] = _trap_when_called(i)
    try:
        instance = instantiate(compiled, import_object)
    except PywasiError as e:
        hint = "" if unknown_imports_trap else (
            " (an import the init never calls: unknown_imports_trap=True, "
            "-W unknown-imports-trap=y)")
        raise PreinitError(f"cannot instantiate the module: {e}{hint}") from None
    tables_before = _table_state(instance, layout)
    fds_before = _open_fds(wasi)
    exports = instance.exports
    memory = exports.get("memory")
    if memory is None and layout.memories:
        memory = exports[f"{_PREFIX}memory_0"]
    if memory is not None:
        wasi.finalize_bindings(instance, memory)
    steps = [f"{_PREFIX}start"] if layout.start is not None else []
    if "_initialize" in exports:
        steps.append("_initialize")
    if init != "_initialize":  # asked as the init function: it runs once, as in Wizer
        steps.append(init)
    for name in steps:
        function = exports[name]
        ty = function.wasmtime_func.type(instance.store)
        if ty.params or ty.results:
            raise PreinitError(f"its export {name!r} is not a function [] -> []")
        shown = "the start function" if name.startswith(_PREFIX) else name
        try:
            function()
        except WasiExit as e:
            raise PreinitError(f"{shown} called proc_exit({e.code}): there is no state to "
                               f"snapshot after an exit") from None
        except Trap as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else "a trap"
            raise PreinitError(f"{shown} trapped: {first}") from None
    if _table_state(instance, layout) != tables_before:
        raise PreinitError("the init changed a table (table.set, table.grow, table.copy): a "
                           "snapshot cannot hold function references")
    opened = sorted(fd for fd, desc in _open_fds(wasi).items() if fds_before.get(fd) is not desc)
    if opened:
        raise PreinitError(f"the init left fd {opened[0]} open: an open file cannot be carried "
                           f"into the snapshot (close it before the init function returns)")
    return instance


def _global_init(instance: Any, index: int) -> bytes:
    """A mutable global's value as a constant expression, bit for bit (a
    float's NaN payload too: the raw value, not a Python float)."""
    glob = instance.exports[f"{_PREFIX}global_{index}"]
    raw = ffi.wasmtime_val_t()
    ffi.wasmtime_global_get(instance.store._context(), ctypes.byref(glob._global._global),
                            ctypes.byref(raw))
    bits = ctypes.string_at(ctypes.addressof(raw.of), 16)
    kind = int(raw.kind)
    if kind == _I32:
        return _wasm.const_i32(int.from_bytes(bits[:4], "little"))
    if kind == _I64:
        return _wasm.const_i64(int.from_bytes(bits[:8], "little"))
    if kind == _F32:
        return _wasm.const_f32(int.from_bytes(bits[:4], "little"))
    if kind == _F64:
        return _wasm.const_f64(int.from_bytes(bits[:8], "little"))
    if kind == _V128:
        return b"\xfd\x0c" + bits + b"\x0b"
    raise PreinitError(f"global {index} holds a reference: a snapshot cannot hold it")


def nonzero_ranges(memory: memoryview) -> list[tuple[int, int]]:
    """``(start, end)`` of each non-zero range of ``memory``, ranges closer
    than ``_MERGE_GAP`` zero bytes merged, at most ``MAX_DATA_SEGMENTS``
    of them (the smallest gaps merged first). The regular expression finds
    the zero runs that split ranges, in C: a page of zeros costs one match."""
    ranges = []
    position = 0
    for match in _NONZERO_SPLIT.finditer(memory):
        start, end = match.span()
        if start > position:
            ranges.append((position, start))
        position = end
    if position < len(memory):
        ranges.append((position, len(memory)))
    if len(ranges) > MAX_DATA_SEGMENTS:
        gaps = sorted(range(len(ranges) - 1), key=lambda i: ranges[i + 1][0] - ranges[i][1])
        join = set(gaps[:len(ranges) - MAX_DATA_SEGMENTS])
        merged = [ranges[0]]
        for i in range(1, len(ranges)):
            if i - 1 in join:
                merged[-1] = (merged[-1][0], ranges[i][1])
            else:
                merged.append(ranges[i])
        ranges = merged
    return ranges


def _snapshot(instance: Any, layout: _Layout) -> tuple[list[_wasm.MemoryType],
                                                       list[_wasm.Global],
                                                       list[_wasm.DataSegment]]:
    """The memories' new types (their current size as the minimum), the
    globals with their values as initialisers, and the data segments that
    hold the non-zero bytes (views of live memory: write before the
    instance goes)."""
    memories = []
    segments = []
    for index, memory_type in enumerate(layout.memories):
        memory = instance.exports[f"{_PREFIX}memory_{index}"]
        view = memory.buffer
        memories.append(memory_type._replace(minimum=len(view) // memory_type.page_size))
        const = _wasm.const_i64 if memory_type.is64 else _wasm.const_i32
        flags = 0 if index == 0 else 2
        for start, end in nonzero_ranges(view):
            segments.append(_wasm.DataSegment(flags, index, const(start), view[start:end]))
    globals_ = [g._replace(init=_global_init(instance, i)) if g.type.mutable else g
                for i, g in enumerate(layout.globals)]
    return memories, globals_, segments


# Custom sections that describe the layout of an object file's sections
# (the old data section among them): no longer true after the rewrite.
def _stale_custom(name: str | None) -> bool:
    return name is not None and (name == "linking" or name.startswith("reloc."))


def _rewrite(layout: _Layout, init: str, keep_init: bool, renames: Mapping[str, str],
             snapshot: tuple[list[_wasm.MemoryType], list[_wasm.Global],
                             list[_wasm.DataSegment]]) -> bytes:
    memories, globals_, new_segments = snapshot
    reactor = any(e.name == "_initialize" for e in layout.exports)
    sources = {src: dst for dst, src in renames.items()}
    exports = []
    for e in layout.exports:
        if (e.name == init and not keep_init) or (reactor and e.name == "_initialize"):
            continue
        if e.name in renames and e.name not in sources:
            continue  # overwritten by a rename, and not itself renamed
        exports.append(_wasm.Export(sources.get(e.name, e.name), e.kind, e.index))
    # Active segments were applied and dropped by instantiation: each stays
    # as an empty passive segment, so every data index the code (or the
    # name section) uses still means the same segment.
    old = [_wasm.DataSegment(1, 0, None, b"") if not d.passive else d for d in layout.data]
    data = _wasm.section(_wasm.DATA, _wasm.encode_data(old + new_segments))
    out: list[_wasm.Section] = []
    data_written = False
    for s in layout.sections:
        if s.id == _wasm.MEMORY:
            out.append(_wasm.section(s.id, _wasm.encode_memories(memories)))
        elif s.id == _wasm.GLOBAL:
            out.append(_wasm.section(s.id, _wasm.encode_globals(globals_)))
        elif s.id == _wasm.EXPORT:
            out.append(_wasm.section(s.id, _wasm.encode_exports(exports)))
        elif s.id == _wasm.START:
            continue  # it ran: its effects are in the snapshot
        elif s.id == _wasm.DATACOUNT:
            out.append(_wasm.section(s.id, _wasm.encode_datacount(len(old) + len(new_segments))))
        elif s.id == _wasm.DATA:
            out.append(data)
            data_written = True
        elif s.id == _wasm.CUSTOM and _stale_custom(_wasm.custom_name(s)):
            continue
        else:
            if not data_written and new_segments and (
                    s.id != _wasm.CUSTOM and _order(s.id) > _order(_wasm.DATA)
                    or _wasm.custom_name(s) == "name" and _after_code(out)):
                out.append(data)
                data_written = True
            out.append(s)
    if not data_written and new_segments:
        out.append(data)
    return _wasm.write_module(out)


def _after_code(out: list[_wasm.Section]) -> bool:
    return any(s.id == _wasm.CODE for s in out)


def _read_source(module: Any) -> bytes:
    if isinstance(module, (bytes, bytearray, memoryview)):
        data = bytes(module)
    elif isinstance(module, (str, os.PathLike)):
        try:
            with open(module, "rb") as f:
                data = f.read()
        except OSError as e:
            raise PreinitError(f"cannot read {os.fspath(module)!r}: {e.strerror or e}") from None
    else:
        raise TypeError(f"preinitialize() takes the module's bytes or a path, "
                        f"not {type(module).__name__}")
    if not data.startswith(b"\0asm"):
        try:
            data = bytes(wasmtime.wat2wasm(data.decode("utf-8")))
        except (UnicodeDecodeError, wasmtime.WasmtimeError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise PreinitError(f"not a WebAssembly module: {first}") from None
    return data


def _wasi_version(layout: _Layout) -> str:
    return "unstable" if any(i.module == "wasi_unstable" for i in layout.imports) else "preview1"


def preinitialize(module: Any, *, init: str = DEFAULT_INIT, wasi: Any = None,
                  imports: Mapping[str, Mapping[str, Any]] | None = None,
                  keep_init_func: bool = False, rename_funcs: Mapping[str, str] | None = None,
                  unknown_imports_trap: bool = False, cache: Any = None) -> bytes:
    """Run ``module``'s ``init`` export once and return a new module whose
    instances start in the state it left (Wizer's pre-initialisation).

    ``module``: wasm or WAT bytes, or a path. ``wasi``: the ``pywasi.WASI``
    the init runs under (preopens of any kind, args, env, deterministic,
    trace), unbound; by default one with no args, env or preopens and this
    process's stdio. ``imports``: more import namespaces, as for
    ``instantiate``. A reactor's ``_initialize`` runs before ``init`` and is
    not exported by the result; a start function runs and the start section
    is removed; a command's ``_start`` stays. ``keep_init_func`` keeps the
    init export; ``rename_funcs`` maps a new export name to an existing one
    (``{"_start": "main2"}``), as ``wasmtime wizer -r dst=src``.
    ``unknown_imports_trap``: a function import neither WASI nor ``imports``
    provides traps when called (``-W unknown-imports-trap=y``) instead of
    failing the link. ``cache`` is ``compile``'s. Raises ``PreinitError`` (one line) for what cannot be
    snapshotted (docs/preinit.md) and when the init traps or exits.
    """
    if not isinstance(init, str) or not init:
        raise TypeError("init must be the name of an exported function")
    wasm = _read_source(module)
    layout = _Layout.read(wasm, init)
    renames = dict(rename_funcs or {})
    names = {e.name for e in layout.exports}
    for dst, src in renames.items():
        if src not in names:
            raise PreinitError(f"cannot rename {src!r} to {dst!r}: no export {src!r}")
    from ._engine import compile as compile_module
    from ._wasi import WASI
    own_wasi = wasi is None
    if own_wasi:
        wasi = WASI(version=_wasi_version(layout))
    elif not isinstance(wasi, WASI):
        raise TypeError(f"wasi must be a pywasi.WASI, not {type(wasi).__name__}")
    try:
        try:
            compiled = compile_module(_instrument(layout), cache=cache)
        except PywasiError as e:
            raise PreinitError(str(e)) from None
        instance = _run_init(compiled, layout, init, wasi, imports, unknown_imports_trap)
        result = _rewrite(layout, init, keep_init_func, renames, _snapshot(instance, layout))
    finally:
        if own_wasi:
            wasi.close()
    return result
