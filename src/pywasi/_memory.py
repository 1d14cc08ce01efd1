"""Guest linear memory, seen from the host.

Invariants:
- every access is bounds-checked against the memory's *current* size; an
  access past the end raises ``GuestFault`` (the dispatcher turns it into a
  trap naming the call), never a silent truncation (a plain memoryview slice
  would truncate);
- the view is a ``memoryview`` straight over wasm memory, so ``os.readv`` and
  ``os.writev`` move bytes between the guest and the host without a copy;
- the view is re-derived when the memory grows. Engines built by pywasi set
  ``memory_may_move = False`` so the base address is stable and a refresh is
  only needed when an access falls past the end of the cached view; a
  memory from an engine we did not configure (``stable=False``) is re-read
  on every access.
"""

from __future__ import annotations

import ctypes
import struct

from ._errors import GuestFault

# Annotation-only names: mypy takes any TYPE_CHECKING as true, and run time
# never imports typing (nor the re it pulls in: start-up, tests/test_import_cost.py).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Protocol

    class MemorySource(Protocol):
        """Where the bytes live: answers (address, length) of linear memory now."""

        def locate(self) -> tuple[int, int]: ...
else:
    class MemorySource:
        """What ``GuestMemory`` reads from: any object with ``locate() ->
        (address, length)``. A Protocol for mypy (above); at run time this
        plain class only keeps the name importable."""

__all__ = ["GuestMemory", "MemorySource"]

_U8 = struct.Struct("<B")
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_IOVEC = struct.Struct("<II")


class GuestMemory:
    __slots__ = ("view", "size", "_source", "stable", "_cell")

    view: memoryview
    size: int

    def __init__(self, source: MemorySource, *, stable: bool, cell: Any = None) -> None:
        """``cell``: the compiled accelerator's copy of (address, size), for
        its fast paths; kept only for a stable memory (else they never hit)."""
        self._source = source
        self.stable = stable
        self._cell = cell if stable else None
        self.refresh()

    def refresh(self) -> None:
        address, length = self._source.locate()
        if length == 0:
            self.view = memoryview(bytearray(0))
        else:
            self.view = memoryview((ctypes.c_char * length).from_address(address)).cast("B")
        self.size = length
        if self._cell is not None:
            self._cell.set(address, length)

    def release(self) -> None:
        """The memory is gone (its store was freed): drop the view of its
        unmapped bytes; from now on every access faults, the accelerator's
        fast paths' too (the cell's size 0 sends them to Python)."""
        self.view = memoryview(bytearray(0))
        self.size = 0
        if self._cell is not None:
            self._cell.set(0, 0)

    def _check(self, ptr: int, length: int) -> memoryview:
        """The view, refreshed if needed, once ``ptr..ptr+length`` fits in it."""
        end = ptr + length
        if end > self.size or not self.stable:
            self.refresh()
            if end > self.size:
                raise GuestFault(
                    f"out of bounds memory access: {length} bytes at 0x{ptr:x} "
                    f"(memory is {self.size} bytes)")
        return self.view

    # -- scalars ---------------------------------------------------------
    def _aligned(self, ptr: int, align: int) -> None:
        if ptr & (align - 1):
            raise GuestFault(f"misaligned pointer 0x{ptr:x} (needs {align}-byte alignment)")

    def load_u32(self, ptr: int) -> int:
        self._aligned(ptr, 4)
        return int(_U32.unpack_from(self._check(ptr, 4), ptr)[0])

    def load_u64(self, ptr: int) -> int:
        self._aligned(ptr, 8)
        return int(_U64.unpack_from(self._check(ptr, 8), ptr)[0])

    def store_u8(self, ptr: int, value: int) -> None:
        _U8.pack_into(self._check(ptr, 1), ptr, value)

    def store_u16(self, ptr: int, value: int) -> None:
        self._aligned(ptr, 2)
        _U16.pack_into(self._check(ptr, 2), ptr, value)

    def store_u32(self, ptr: int, value: int) -> None:
        if not ptr & 3 and ptr + 4 <= self.size and self.stable:  # no frames: every out-pointer
            _U32.pack_into(self.view, ptr, value)
            return
        self._aligned(ptr, 4)
        _U32.pack_into(self._check(ptr, 4), ptr, value)

    def store_u64(self, ptr: int, value: int) -> None:
        self._aligned(ptr, 8)
        _U64.pack_into(self._check(ptr, 8), ptr, value)

    # -- structs ---------------------------------------------------------
    def pack(self, layout: Any, ptr: int, *values: int) -> None:
        """Write ``values`` at ``ptr`` with a ``_abi`` layout (its struct and alignment)."""
        if not ptr & (layout.align - 1) and ptr + layout.size <= self.size and self.stable:
            layout.struct.pack_into(self.view, ptr, *values)  # the common case, no frames
            return
        self._aligned(ptr, layout.align)
        layout.struct.pack_into(self._check(ptr, layout.size), ptr, *values)

    def unpack(self, layout: Any, ptr: int) -> tuple[int, ...]:
        self._aligned(ptr, layout.align)
        return tuple(layout.struct.unpack_from(self._check(ptr, layout.size), ptr))

    # -- byte ranges -----------------------------------------------------
    def slice(self, ptr: int, length: int) -> memoryview:
        """A writable view of ``length`` bytes at ``ptr`` (no copy)."""
        end = ptr + length
        if end <= self.size and self.stable:  # the common case, no frames (every guest path)
            return self.view[ptr:end]
        return self._check(ptr, length)[ptr:end]

    def read_bytes(self, ptr: int, length: int) -> bytes:
        return bytes(self._check(ptr, length)[ptr:ptr + length])

    def write_bytes(self, ptr: int, data: bytes | bytearray | memoryview) -> None:
        length = len(data)
        self._check(ptr, length)[ptr:ptr + length] = data

    def iovecs(self, iovs: int, iovs_len: int) -> list[memoryview]:
        """The guest's ``iovec``/``ciovec`` array as views over its buffers.

        Every buffer is bounds-checked before any I/O happens, so a bad iovec
        traps without a partial read or write.
        """
        if iovs_len == 1 and self.stable and not iovs & 3:
            # The common case (one buffer, e.g. every unbuffered write):
            # no loop, no extra frames. Falls through when anything is off.
            view = self.view
            size = self.size
            if iovs + 8 <= size:
                base, length = _IOVEC.unpack_from(view, iovs)
                if base + length <= size:
                    return [view[base:base + length]]
        self._aligned(iovs, 4)
        view = self._check(iovs, 8 * iovs_len)
        bufs = []
        size = self.size
        for i in range(iovs_len):
            base, length = _IOVEC.unpack_from(view, iovs + 8 * i)
            if base + length > size:
                view = self._check(base, length)
                size = self.size
            bufs.append(view[base:base + length])
        return bufs
