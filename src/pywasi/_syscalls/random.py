"""random_get: from the operating system's CSPRNG (os.urandom → getrandom(2)),
or, with a random source (``WASI(random=...)``, deterministic runs), from it."""

from __future__ import annotations

import os

from .._errors import GuestFault
from ._context import Context

__all__ = ["RandomCalls"]

_CHUNK = 1 << 20


class RandomCalls(Context):
    def random_get(self, buf: int, buf_len: int) -> None:
        target = self.memory.slice(buf, buf_len)  # the whole range, checked first
        for start in range(0, buf_len, _CHUNK):
            end = min(buf_len, start + _CHUNK)
            target[start:end] = os.urandom(end - start)

    def random_get_virtual(self, buf: int, buf_len: int) -> None:
        target = self.memory.slice(buf, buf_len)
        data = self.rng(buf_len)
        if not isinstance(data, (bytes, bytearray, memoryview)) or len(data) != buf_len:
            got = f"{len(data)} bytes" if isinstance(data, (bytes, bytearray, memoryview)) \
                else type(data).__name__
            raise GuestFault(f"the random source returned {got} for a request of {buf_len} bytes")
        target[:] = data
