"""random_get: from the operating system's CSPRNG (os.urandom → getrandom(2))."""

from __future__ import annotations

import os

from ._context import Context

__all__ = ["RandomCalls"]

_CHUNK = 1 << 20


class RandomCalls(Context):
    def random_get(self, buf: int, buf_len: int) -> None:
        target = self.memory.slice(buf, buf_len)  # the whole range, checked first
        for start in range(0, buf_len, _CHUNK):
            end = min(buf_len, start + _CHUNK)
            target[start:end] = os.urandom(end - start)
