"""Output with a limit: the guest's stdout and stderr under ``max_output``.

``LimitedOutput`` stands in the descriptor table for the stream it wraps
and counts what the guest writes against one ``OutputBudget`` that stdout
and stderr share. A write that would pass the limit writes the part that
fits, then stops the guest (a trap, ``OutputBudget.exceeded`` set): output
past the limit is lost either way, and a guest that floods its output is
usually looping, so it is stopped rather than left to run on writing into
nothing. Everything written before the limit was reached is delivered.

Its class is not the wrapped stream's, so the accelerator's C fd_write
(which takes only ``HostStream`` and ``HostFile`` by exact type) leaves
every write to it to Python: the count costs only runs that set the limit.
"""

from __future__ import annotations

import threading

from .._errors import GuestFault
from ._base import Descriptor

__all__ = ["OutputBudget", "LimitedOutput"]


class OutputBudget:
    """Bytes the guest may still write to stdout and stderr together."""

    __slots__ = ("limit", "shown", "written", "exceeded", "_lock")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        # The limit as its message names it: WASI(max_output=)'s, or a
        # bounded call's (``Instance.call(max_output=)`` lowers ``limit``
        # to what is written so far plus its own cap, for the call).
        self.shown = limit
        self.written = 0
        self.exceeded = False
        self._lock = threading.Lock()  # wasi-threads: threads write at once

    def take(self, wanted: int) -> int:
        """How many of ``wanted`` bytes may be written now (all, or what is left)."""
        with self._lock:
            allowed = min(wanted, self.limit - self.written)
            self.written += allowed
            if allowed < wanted:
                self.exceeded = True
            return allowed

    def give_back(self, unwritten: int) -> None:
        if unwritten:
            with self._lock:
                self.written -= unwritten
                self.exceeded = False

    def message(self) -> str:
        return f"output limit of {self.shown} bytes reached"


class LimitedOutput(Descriptor):
    """An output stream whose writes count against an ``OutputBudget``."""

    def __init__(self, inner: Descriptor, budget: OutputBudget) -> None:
        self.inner = inner
        self.budget = budget
        self.filetype = inner.filetype
        self.rights_base = inner.rights_base
        self.rights_inheriting = inner.rights_inheriting

    def write(self, bufs: list[memoryview]) -> int:
        total = sum(map(len, bufs))
        allowed = self.budget.take(total)
        if allowed == total:
            return self.inner.write(bufs)
        if allowed:
            self.inner.write(_prefix(bufs, allowed))
        raise GuestFault(self.budget.message())

    def write_nowait(self, bufs: list[memoryview]) -> int:
        """While threads run (``Context.when_writable``): what the stream
        takes at once; the bytes it did not take go back to the budget."""
        total = sum(map(len, bufs))
        allowed = self.budget.take(total)
        done = self.inner.write_nowait(_prefix(bufs, allowed)) if allowed else 0
        self.budget.give_back(allowed - done)
        if allowed < total and done == allowed:
            raise GuestFault(self.budget.message())
        return done

    def fdflags(self) -> int:
        return self.inner.fdflags()

    def set_fdflags(self, flags: int) -> None:
        self.inner.set_fdflags(flags)

    def filestat(self) -> tuple[int, ...]:
        return self.inner.filestat()

    def sync(self) -> None:
        self.inner.sync()

    def datasync(self) -> None:
        self.inner.datasync()

    def poll_fileno(self) -> int | None:
        return self.inner.poll_fileno()

    def ready_nbytes(self, writing: bool) -> int:
        return self.inner.ready_nbytes(writing)

    def close(self) -> None:
        self.inner.close()


def _prefix(bufs: list[memoryview], n: int) -> list[memoryview]:
    """The first ``n`` bytes of ``bufs``."""
    out = []
    for buf in bufs:
        if n <= 0:
            break
        out.append(buf[:n])
        n -= len(buf)
    return out
