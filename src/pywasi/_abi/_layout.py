"""Guest-memory struct layouts, declared once; offsets and sizes are derived.

A ``Layout`` lists its fields in order as ``(name, type)`` and computes each
offset by the C rule witx uses: a field starts at the next multiple of its own
size (natural alignment); the struct's alignment is its widest field's, and
its size is the end of the last field rounded up to that alignment. A field
inside a union (``subscription.u``, ``prestat``) may give its offset
explicitly as ``(name, type, offset)``, and a union view may fix the whole
size (``size=``) to the union's, which must cover every field.

Every layout compiles to one little-endian ``struct.Struct`` with ``x``
padding, so ``L.struct.pack_into(buf, ptr, *values)`` and
``L.struct.unpack_from(buf, ptr)`` take and give the values in declaration
order. Field names are the spec's, with ``.`` (nested records) spelled ``_``.

Invariants (checked at import): fields do not overlap and are in ascending
order, each offset is a multiple of its type's size, ``struct.size == size``.
The numbers themselves are pinned against the witx in tests/test_abi.py.
"""

from __future__ import annotations

import struct

# Annotation-only names: mypy takes any TYPE_CHECKING as true, and run time
# never imports typing (nor the re it pulls in: start-up, tests/test_import_cost.py).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

    FieldSpec = tuple[str, str] | tuple[str, str, int]

__all__ = [
    "Layout", "IOVEC", "CIOVEC", "FDSTAT", "FILESTAT", "FILESTAT_UNSTABLE",
    "DIRENT", "PRESTAT", "EVENT", "SUBSCRIPTION_CLOCK",
    "SUBSCRIPTION_FD_READWRITE", "SUBSCRIPTION_CLOCK_UNSTABLE",
    "SUBSCRIPTION_FD_READWRITE_UNSTABLE",
]

# type -> (size == alignment, struct code)
_SCALARS: dict[str, tuple[int, str]] = {
    "u8": (1, "B"),
    "u16": (2, "H"),
    "u32": (4, "I"),
    "u64": (8, "Q"),
}

def _align_up(value: int, align: int) -> int:
    return (value + align - 1) // align * align


class Layout:
    """One struct (or one view of a union) in guest memory."""

    __slots__ = ("name", "fields", "types", "offsets", "align", "size", "struct")

    def __init__(self, name: str, fields: Sequence[FieldSpec], size: int | None = None) -> None:
        if not fields:
            raise ValueError(f"{name}: a layout needs at least one field")
        names: list[str] = []
        types: dict[str, str] = {}
        offsets: dict[str, int] = {}
        fmt = ["<"]
        end = 0
        align = 1
        for spec in fields:
            field, ftype = spec[0], spec[1]
            if ftype not in _SCALARS:
                raise ValueError(f"{name}.{field}: unknown type {ftype!r}")
            if field in offsets:
                raise ValueError(f"{name}.{field}: declared twice")
            fsize, code = _SCALARS[ftype]
            offset = spec[2] if len(spec) == 3 else _align_up(end, fsize)
            if offset % fsize:
                raise ValueError(f"{name}.{field}: offset {offset} not aligned to {fsize}")
            if offset < end:
                raise ValueError(f"{name}.{field}: offset {offset} overlaps the previous field")
            if offset > end:
                fmt.append(f"{offset - end}x")
            fmt.append(code)
            names.append(field)
            types[field] = ftype
            offsets[field] = offset
            end = offset + fsize
            align = max(align, fsize)
        natural = _align_up(end, align)
        if size is None:
            size = natural
        elif size < end or size % align:
            raise ValueError(f"{name}: size {size} does not cover {end} bytes aligned to {align}")
        if size > end:
            fmt.append(f"{size - end}x")
        self.name = name
        self.fields: tuple[str, ...] = tuple(names)
        self.types: dict[str, str] = types
        self.offsets: dict[str, int] = offsets
        self.align = align
        self.size = size
        self.struct = struct.Struct("".join(fmt))
        assert self.struct.size == size, (name, self.struct.format, size)

    def __repr__(self) -> str:
        body = ", ".join(f"{f}: {self.types[f]} @{self.offsets[f]}" for f in self.fields)
        return f"<Layout {self.name} size={self.size} align={self.align} {{{body}}}>"


# legacy/preview1/witx/typenames.witx ----------------------------------------

IOVEC = Layout("iovec", [("buf", "u32"), ("buf_len", "u32")])
CIOVEC = Layout("ciovec", [("buf", "u32"), ("buf_len", "u32")])

FDSTAT = Layout("fdstat", [
    ("fs_filetype", "u8"),
    ("fs_flags", "u16"),
    ("fs_rights_base", "u64"),
    ("fs_rights_inheriting", "u64"),
])

FILESTAT = Layout("filestat", [
    ("dev", "u64"),
    ("ino", "u64"),
    ("filetype", "u8"),
    ("nlink", "u64"),  # $linkcount is u64 in preview1
    ("size", "u64"),
    ("atim", "u64"),
    ("mtim", "u64"),
    ("ctim", "u64"),
])

DIRENT = Layout("dirent", [
    ("d_next", "u64"),
    ("d_ino", "u64"),
    ("d_namlen", "u32"),
    ("d_type", "u8"),
])

# union prestat (tag preopentype: u8) { prestat_dir { pr_name_len: size } }:
# the payload starts at the payload's alignment (4).
PRESTAT = Layout("prestat", [("tag", "u8"), ("pr_name_len", "u32", 4)])

EVENT = Layout("event", [
    ("userdata", "u64"),
    ("error", "u16"),
    ("type", "u8"),
    ("fd_readwrite_nbytes", "u64"),  # record event_fd_readwrite, aligned 8
    ("fd_readwrite_flags", "u16"),
])

# subscription { userdata: u64, u: union (tag eventtype: u8) {...} }. The union
# payload is aligned to its widest case (subscription_clock, 8), so it starts at
# 16 and the record is 8 + 8 + 32 = 48. Each Layout is one view of the union.
SUBSCRIPTION_CLOCK = Layout("subscription(clock)", [
    ("userdata", "u64", 0),
    ("tag", "u8", 8),
    ("id", "u32", 16),
    ("timeout", "u64", 24),
    ("precision", "u64", 32),
    ("flags", "u16", 40),
], size=48)

SUBSCRIPTION_FD_READWRITE = Layout("subscription(fd_readwrite)", [
    ("userdata", "u64", 0),
    ("tag", "u8", 8),
    ("file_descriptor", "u32", 16),
], size=48)

# legacy/preview0/witx/typenames.witx (wasi_unstable) --------------------------

# $linkcount is u32 in snapshot 0, which moves everything after it.
FILESTAT_UNSTABLE = Layout("filestat(unstable)", [
    ("dev", "u64"),
    ("ino", "u64"),
    ("filetype", "u8"),
    ("nlink", "u32"),
    ("size", "u64"),
    ("atim", "u64"),
    ("mtim", "u64"),
    ("ctim", "u64"),
])

# snapshot 0's subscription_clock starts with `identifier: userdata` (u64), so
# the clock case is 40 bytes and the subscription 56.
SUBSCRIPTION_CLOCK_UNSTABLE = Layout("subscription(clock, unstable)", [
    ("userdata", "u64", 0),
    ("tag", "u8", 8),
    ("identifier", "u64", 16),
    ("id", "u32", 24),
    ("timeout", "u64", 32),
    ("precision", "u64", 40),
    ("flags", "u16", 48),
], size=56)

SUBSCRIPTION_FD_READWRITE_UNSTABLE = Layout("subscription(fd_readwrite, unstable)", [
    ("userdata", "u64", 0),
    ("tag", "u8", 8),
    ("file_descriptor", "u32", 16),
], size=56)
