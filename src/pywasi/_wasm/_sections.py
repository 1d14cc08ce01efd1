"""A module's sections: the raw list (``read_module``/``write_module``), and
a typed reader and writer for each section pre-initialisation reads or
rewrites. Sections nobody decodes (types, code, custom, unknown ones) are
only ever copied, byte for byte, headers included."""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from typing import NamedTuple, Union

from ._leb import sleb, uleb
from ._reader import Reader, WasmFormatError

__all__ = [
    "CUSTOM", "TYPE", "IMPORT", "FUNCTION", "TABLE", "MEMORY", "GLOBAL", "EXPORT", "START",
    "ELEMENT", "CODE", "DATA", "DATACOUNT", "TAG", "KIND_FUNC", "KIND_TABLE", "KIND_MEMORY",
    "KIND_GLOBAL", "KIND_TAG", "Section", "read_module", "write_module", "section", "custom_name",
    "Import", "MemoryType", "TableType", "GlobalType", "Global", "Export", "DataSegment",
    "ElementSegment", "read_imports", "read_memories", "read_tables", "read_globals",
    "read_exports", "read_data", "read_datacount", "read_elements", "read_function_count",
    "encode_memories", "encode_globals", "encode_exports", "encode_data", "encode_datacount",
    "const_i32", "const_i64", "const_f32", "const_f64",
]

MAGIC = b"\0asm"
VERSION = b"\x01\0\0\0"

# Section ids (binary format 5.5.2).
CUSTOM, TYPE, IMPORT, FUNCTION, TABLE, MEMORY, GLOBAL, EXPORT, START, ELEMENT, CODE, DATA, \
    DATACOUNT, TAG = range(14)
_NAMES = ("custom", "type", "import", "function", "table", "memory", "global", "export", "start",
          "element", "code", "data", "data count", "tag")

# External kinds of imports and exports.
KIND_FUNC, KIND_TABLE, KIND_MEMORY, KIND_GLOBAL, KIND_TAG = range(5)


class Section:
    """One section: its id and payload, and ``head``, the id byte and size
    field exactly as they were read (a linker may pad the size's LEB128), so
    that an untouched section is written back as it came."""

    __slots__ = ("id", "payload", "head")

    def __init__(self, id: int, payload: bytes | memoryview, head: bytes | None = None) -> None:
        self.id = id
        self.payload = payload
        self.head = bytes([id]) + uleb(len(payload)) if head is None else head

    @property
    def name(self) -> str:
        return _NAMES[self.id] if self.id < len(_NAMES) else f"unknown ({self.id})"

    def __repr__(self) -> str:
        return f"<Section {self.name} {len(self.payload)} bytes>"


def section(id: int, payload: bytes) -> Section:
    """A new section (shortest size field)."""
    return Section(id, payload)


def read_module(data: bytes | memoryview) -> list[Section]:
    """The module's sections in order, as views into ``data`` (no copies)."""
    view = memoryview(data)
    if bytes(view[:4]) != MAGIC:
        raise WasmFormatError("not a WebAssembly binary (no \\0asm magic)")
    if bytes(view[4:8]) != VERSION:
        if len(view) >= 8 and view[6] == 1:
            raise WasmFormatError("a component, not a core module")
        raise WasmFormatError(f"unsupported binary version {bytes(view[4:8]).hex()}")
    sections = []
    reader = Reader(view, "module", 8)
    while not reader.at_end():
        start = reader.pos
        id = reader.byte()
        size = reader.u32()
        head = bytes(view[start:reader.pos])
        payload = reader.take(size)
        sections.append(Section(id, payload, head))
    return sections


def write_module(sections: Iterable[Section]) -> bytes:
    parts: list[bytes | memoryview] = [MAGIC, VERSION]
    for s in sections:
        parts.append(s.head)
        parts.append(s.payload)
    return b"".join(parts)


def custom_name(s: Section) -> str | None:
    """A custom section's name (None for other sections or a bad name)."""
    if s.id != CUSTOM:
        return None
    try:
        return Reader(s.payload, "custom").name()
    except WasmFormatError:
        return None


class MemoryType(NamedTuple):
    flags: int
    minimum: int
    maximum: int | None
    page_log2: int | None = None

    @property
    def shared(self) -> bool:
        return bool(self.flags & 2)

    @property
    def is64(self) -> bool:
        return bool(self.flags & 4)

    @property
    def page_size(self) -> int:
        return 1 << (16 if self.page_log2 is None else self.page_log2)

    def encode(self) -> bytes:
        out = uleb(self.flags) + uleb(self.minimum)
        if self.maximum is not None:
            out += uleb(self.maximum)
        if self.page_log2 is not None:
            out += uleb(self.page_log2)
        return out


class TableType(NamedTuple):
    reftype: bytes
    flags: int
    minimum: int
    maximum: int | None
    init: bytes | None = None   # a table with an initialiser expression (0x40 0x00 form)


class GlobalType(NamedTuple):
    valtype: bytes
    mutable: bool

    def encode(self) -> bytes:
        return self.valtype + (b"\x01" if self.mutable else b"\x00")


class Global(NamedTuple):
    type: GlobalType
    init: bytes     # the constant expression, raw, with its end


ImportDesc = Union[int, TableType, MemoryType, GlobalType, tuple[int, int]]


class Import(NamedTuple):
    module: str
    name: str
    kind: int
    desc: ImportDesc


class Export:
    __slots__ = ("name", "kind", "index")

    def __init__(self, name: str, kind: int, index: int) -> None:
        self.name, self.kind, self.index = name, kind, index

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Export) and (self.name, self.kind, self.index) == (
            other.name, other.kind, other.index)

    def __hash__(self) -> int:
        return hash((self.name, self.kind, self.index))

    def __repr__(self) -> str:
        return f"Export({self.name!r}, {self.kind}, {self.index})"


class DataSegment(NamedTuple):
    """Flags 0 (active, memory 0), 1 (passive) or 2 (active, memory given)."""

    flags: int
    memory: int
    offset: bytes | None        # the constant expression (active segments)
    data: bytes | memoryview

    @property
    def passive(self) -> bool:
        return self.flags == 1


class ElementSegment:
    """Only what pre-initialisation asks of an element segment: its mode and
    its length (the section itself is copied)."""

    __slots__ = ("flags", "count")

    def __init__(self, flags: int, count: int) -> None:
        self.flags, self.count = flags, count

    @property
    def passive(self) -> bool:
        return self.flags & 3 == 1

    @property
    def declarative(self) -> bool:
        return self.flags & 3 == 3


def _table_type(r: Reader) -> TableType:
    reftype = r.valtype()
    flags, minimum, maximum, _ = r.limits(memory=False)
    return TableType(reftype, flags, minimum, maximum)


def _memory_type(r: Reader) -> MemoryType:
    return MemoryType(*r.limits(memory=True))


def _global_type(r: Reader) -> GlobalType:
    valtype = r.valtype()
    mutability = r.byte()
    if mutability > 1:
        raise r.error(f"bad global mutability {mutability}")
    return GlobalType(valtype, bool(mutability))


def read_imports(payload: bytes | memoryview) -> list[Import]:
    r = Reader(payload, "import")
    imports = []
    for _ in range(r.u32()):
        module, name, kind = r.name(), r.name(), r.byte()
        desc: ImportDesc
        if kind == KIND_FUNC:
            desc = r.u32()
        elif kind == KIND_TABLE:
            desc = _table_type(r)
        elif kind == KIND_MEMORY:
            desc = _memory_type(r)
        elif kind == KIND_GLOBAL:
            desc = _global_type(r)
        elif kind == KIND_TAG:
            desc = (r.byte(), r.u32())
        else:
            raise r.error(f"unknown import kind {kind}")
        imports.append(Import(module, name, kind, desc))
    r.expect_end()
    return imports


def read_function_count(payload: bytes | memoryview) -> int:
    return Reader(payload, "function").u32()


def read_tables(payload: bytes | memoryview) -> list[TableType]:
    r = Reader(payload, "table")
    tables = []
    for _ in range(r.u32()):
        if r.pos < r.end and r.data[r.pos] == 0x40:  # a table with an initialiser
            r.byte()
            if r.byte() != 0:
                raise r.error("bad table initialiser prefix")
            table = _table_type(r)
            tables.append(table._replace(init=r.const_expr()))
        else:
            tables.append(_table_type(r))
    r.expect_end()
    return tables


def read_memories(payload: bytes | memoryview) -> list[MemoryType]:
    r = Reader(payload, "memory")
    memories = [_memory_type(r) for _ in range(r.u32())]
    r.expect_end()
    return memories


def encode_memories(memories: Sequence[MemoryType]) -> bytes:
    return uleb(len(memories)) + b"".join(m.encode() for m in memories)


def read_globals(payload: bytes | memoryview) -> list[Global]:
    r = Reader(payload, "global")
    globals_ = []
    for _ in range(r.u32()):
        ty = _global_type(r)
        globals_.append(Global(ty, r.const_expr()))
    r.expect_end()
    return globals_


def encode_globals(globals_: Sequence[Global]) -> bytes:
    return uleb(len(globals_)) + b"".join(g.type.encode() + g.init for g in globals_)


def read_exports(payload: bytes | memoryview) -> list[Export]:
    r = Reader(payload, "export")
    exports = []
    for _ in range(r.u32()):
        name, kind = r.name(), r.byte()
        exports.append(Export(name, kind, r.u32()))
    r.expect_end()
    return exports


def _name(text: str) -> bytes:
    raw = text.encode("utf-8")
    return uleb(len(raw)) + raw


def encode_exports(exports: Sequence[Export]) -> bytes:
    return uleb(len(exports)) + b"".join(
        _name(e.name) + bytes([e.kind]) + uleb(e.index) for e in exports)


def read_elements(payload: bytes | memoryview) -> list[ElementSegment]:
    r = Reader(payload, "element")
    segments = []
    for _ in range(r.u32()):
        flags = r.u32()
        if flags > 7:
            raise r.error(f"unknown element segment flags {flags}")
        if flags & 3 == 2:
            r.u32()                 # table index
        if not flags & 1:
            r.const_expr()          # offset
        if flags & 3:               # not the short active form: a kind or a type
            if flags & 4:
                r.valtype()
            elif r.byte() != 0:
                raise r.error("unknown element kind")
        count = r.u32()
        for _ in range(count):
            if flags & 4:
                r.const_expr()
            else:
                r.u32()
        segments.append(ElementSegment(flags, count))
    r.expect_end()
    return segments


def read_datacount(payload: bytes | memoryview) -> int:
    r = Reader(payload, "data count")
    count = r.u32()
    r.expect_end()
    return count


def encode_datacount(count: int) -> bytes:
    return uleb(count)


def read_data(payload: bytes | memoryview) -> list[DataSegment]:
    r = Reader(payload, "data")
    segments = []
    for _ in range(r.u32()):
        flags = r.u32()
        if flags == 0:
            memory, offset = 0, r.const_expr()
        elif flags == 1:
            memory, offset = 0, None
        elif flags == 2:
            memory = r.u32()
            offset = r.const_expr()
        else:
            raise r.error(f"unknown data segment flags {flags}")
        segments.append(DataSegment(flags, memory, offset, r.take(r.u32())))
    r.expect_end()
    return segments


def encode_data(segments: Sequence[DataSegment]) -> bytes:
    parts: list[bytes | memoryview] = [uleb(len(segments))]
    for s in segments:
        parts.append(uleb(s.flags))
        if s.flags == 2:
            parts.append(uleb(s.memory))
        if s.offset is not None:
            parts.append(s.offset)
        parts.append(uleb(len(s.data)))
        parts.append(s.data)
    return b"".join(parts)


_END = b"\x0b"


def const_i32(value: int) -> bytes:
    """``i32.const value; end`` (value taken modulo 2**32, encoded signed)."""
    value &= 0xFFFFFFFF
    return b"\x41" + sleb(value - (1 << 32) if value >> 31 else value) + _END


def const_i64(value: int) -> bytes:
    value &= 0xFFFFFFFFFFFFFFFF
    return b"\x42" + sleb(value - (1 << 64) if value >> 63 else value) + _END


def const_f32(bits: int) -> bytes:
    """``f32.const`` of the value with these IEEE-754 bits."""
    return b"\x43" + struct.pack("<I", bits & 0xFFFFFFFF) + _END


def const_f64(bits: int) -> bytes:
    return b"\x44" + struct.pack("<Q", bits & 0xFFFFFFFFFFFFFFFF) + _END
