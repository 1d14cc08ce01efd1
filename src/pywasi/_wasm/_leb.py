"""LEB128, the binary format's integer encoding: the one place it is coded.

Reads take any buffer and a position and return ``(value, next position)``;
writes give the shortest encoding. A read accepts a longer-than-needed
encoding (the format allows padding up to the type's width: linkers pad),
which is why ``Section`` keeps the raw bytes of its size field.
"""

from __future__ import annotations

from .._errors import PywasiError

__all__ = ["WasmFormatError", "read_uleb", "read_sleb", "uleb", "sleb"]


class WasmFormatError(PywasiError, ValueError):
    """The bytes are not a module this package can read (the message says
    what and, from ``Reader``, where)."""


def read_uleb(data: bytes | memoryview, pos: int, bits: int = 32) -> tuple[int, int]:
    """An unsigned LEB128 of at most ``bits`` bits at ``data[pos]``."""
    return _read(data, pos, bits, signed=False)


def read_sleb(data: bytes | memoryview, pos: int, bits: int = 32) -> tuple[int, int]:
    """A signed LEB128 of at most ``bits`` bits at ``data[pos]``."""
    return _read(data, pos, bits, signed=True)


def _read(data: bytes | memoryview, pos: int, bits: int, *, signed: bool) -> tuple[int, int]:
    result = shift = 0
    for i in range(-(-bits // 7)):  # ceil(bits / 7) bytes at most
        try:
            byte = data[pos + i]
        except IndexError:
            raise _error("an integer runs past the end of its section") from None
        result |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            if signed and byte & 0x40:
                result -= 1 << shift
            low, high = (-(1 << (bits - 1)), 1 << (bits - 1)) if signed else (0, 1 << bits)
            if not low <= result < high:
                raise _error("an integer is too large for its type")
            return result, pos + i + 1
    raise _error("an integer is encoded in too many bytes")


def uleb(value: int) -> bytes:
    if value < 0:
        raise ValueError(f"uleb of a negative number {value}")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def sleb(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if (value == 0 and not byte & 0x40) or (value == -1 and byte & 0x40):
            out.append(byte)
            return bytes(out)
        out.append(byte | 0x80)


def _error(message: str) -> WasmFormatError:
    return WasmFormatError(message)
