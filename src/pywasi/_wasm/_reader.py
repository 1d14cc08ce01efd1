"""A cursor over the bytes of one section: the format's small values (LEB128
integers, names, value types, limits, constant expressions), each read in
one place. Every problem is a ``WasmFormatError`` that says what was being
read and at which offset of the section."""

from __future__ import annotations

from collections.abc import Callable

from ._leb import WasmFormatError, read_sleb, read_uleb

__all__ = ["Reader", "WasmFormatError", "REF_TYPES", "NUM_TYPES"]

# Value types (binary format 5.3.1-5.3.4): numbers, vector, references.
NUM_TYPES = {0x7F: "i32", 0x7E: "i64", 0x7D: "f32", 0x7C: "f64", 0x7B: "v128"}
REF_TYPES = {0x70: "funcref", 0x6F: "externref", 0x6E: "anyref", 0x71: "nullref",
             0x72: "nullexternref", 0x73: "nullfuncref", 0x6D: "eqref", 0x6C: "i31ref",
             0x6B: "structref", 0x6A: "arrayref", 0x69: "exnref", 0x74: "nullexnref"}
_REF_PREFIXES = (0x63, 0x64)  # (ref null ht), (ref ht): a heap type follows

# Constant-expression opcodes whose immediates are fixed: opcode -> what follows.
_END = 0x0B


class Reader:
    """``data[pos:end]``; ``what`` names the section in messages."""

    __slots__ = ("data", "pos", "end", "what")

    def __init__(self, data: bytes | memoryview, what: str, pos: int = 0,
                 end: int | None = None) -> None:
        self.data = data
        self.pos = pos
        self.end = len(data) if end is None else end
        self.what = what

    def error(self, message: str) -> WasmFormatError:
        return WasmFormatError(f"{self.what} section, offset {self.pos}: {message}")

    def at_end(self) -> bool:
        return self.pos >= self.end

    def expect_end(self) -> None:
        if self.pos != self.end:
            raise self.error(f"{self.end - self.pos} bytes left over")

    def byte(self) -> int:
        if self.pos >= self.end:
            raise self.error("unexpected end")
        value = self.data[self.pos]
        self.pos += 1
        return value

    def take(self, n: int) -> memoryview:
        if n < 0 or self.pos + n > self.end:
            raise self.error(f"{n} bytes wanted, {self.end - self.pos} left")
        view = memoryview(self.data)[self.pos:self.pos + n]
        self.pos += n
        return view

    def u32(self) -> int:
        return self._leb(read_uleb, 32)

    def u64(self) -> int:
        return self._leb(read_uleb, 64)

    def sleb(self, bits: int) -> int:
        return self._leb(read_sleb, bits)

    def _leb(self, read: Callable[[bytes | memoryview, int, int], tuple[int, int]],
             bits: int) -> int:
        try:
            value, self.pos = read(self.data, self.pos, bits)
        except WasmFormatError as e:
            raise self.error(str(e)) from None
        if self.pos > self.end:
            raise self.error("an integer runs past the end")
        return value

    def name(self) -> str:
        raw = self.take(self.u32())
        try:
            return bytes(raw).decode("utf-8")
        except UnicodeDecodeError:
            raise self.error("a name is not UTF-8") from None

    def valtype(self) -> bytes:
        """A value type's encoding (one byte, or a reference prefix and its
        heap type), raw: it is only ever copied."""
        start = self.pos
        code = self.byte()
        if code in _REF_PREFIXES:
            self.sleb(33)
        elif code not in NUM_TYPES and code not in REF_TYPES:
            self.pos = start
            raise self.error(f"unknown value type 0x{code:02x}")
        return bytes(self.data[start:self.pos])

    def limits(self, *, memory: bool) -> tuple[int, int, int | None, int | None]:
        """``(flags, minimum, maximum or None, log2 page size or None)``.
        Flags: bit 0 a maximum, bit 1 shared, bit 2 64-bit, bit 3 (memories)
        a custom page size."""
        flags = self.u32()
        if flags & ~0xF:
            raise self.error(f"unknown limits flags 0x{flags:x}")
        bits = 64 if flags & 4 else 32
        minimum = self._leb(read_uleb, bits)
        maximum = self._leb(read_uleb, bits) if flags & 1 else None
        page_log2 = self.u32() if memory and flags & 8 else None
        return flags, minimum, maximum, page_log2

    def const_expr(self) -> bytes:
        """A constant expression, raw, up to and including its ``end``.
        Known: the numeric constants, ``global.get``, ``ref.null``,
        ``ref.func``, extended-const arithmetic and ``v128.const``; anything
        else (the GC proposal's allocations) is refused."""
        start = self.pos
        while True:
            op = self.byte()
            if op == _END:
                return bytes(self.data[start:self.pos])
            if op == 0x41:
                self.sleb(32)
            elif op == 0x42:
                self.sleb(64)
            elif op == 0x43:
                self.take(4)
            elif op == 0x44:
                self.take(8)
            elif op in (0x23, 0xD2):       # global.get, ref.func
                self.u32()
            elif op == 0xD0:               # ref.null heaptype
                self.sleb(33)
            elif op in (0x6A, 0x6B, 0x6C, 0x7C, 0x7D, 0x7E):  # extended-const add/sub/mul
                pass
            elif op == 0xFD:
                sub = self.u32()
                if sub != 12:
                    raise self.error(f"instruction 0xfd {sub} in a constant expression")
                self.take(16)
            else:
                raise self.error(f"instruction 0x{op:02x} in a constant expression")
