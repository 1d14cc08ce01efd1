"""proc_exit, proc_raise, sched_yield."""

from __future__ import annotations

import os

from .._abi import Errno, Signal
from .._errors import ProcExit, WasiError
from ._context import Context

__all__ = ["ProcCalls"]


class ProcCalls(Context):
    def proc_exit(self, rval: int) -> None:
        raise ProcExit(rval)

    def proc_raise(self, sig: int) -> None:
        if sig > max(Signal):
            raise WasiError(Errno.INVAL)
        # NOTE: as wasmtime does: NOTSUP, never a signal to the host process
        # (a guest must not be able to SIGKILL or SIGSTOP the Python process).
        raise WasiError(Errno.NOTSUP)

    def sched_yield(self) -> None:
        os.sched_yield()
