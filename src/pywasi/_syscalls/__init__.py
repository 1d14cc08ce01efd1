"""The syscalls, one module per group, combined into one ``Syscalls`` class
whose bound methods the dispatcher calls."""

from __future__ import annotations

from typing import Any

from .._abi import PREVIEW1, UNSTABLE, Errno
from .._dispatch import HostFunction
from .._errors import WasiError
from .args_env import ArgsEnvCalls
from .clock import ClockCalls
from .fd import FdCalls
from .fs_fd import FsFdCalls
from .path import PathCalls
from .poll import PollCalls
from .proc import ProcCalls
from .random import RandomCalls
from .sock import SockCalls
from .unstable import UnstableCalls

__all__ = ["Syscalls", "build_imports", "UNIMPLEMENTED"]


class Syscalls(ArgsEnvCalls, ClockCalls, FdCalls, FsFdCalls, ProcCalls, RandomCalls, PollCalls,
               PathCalls, UnstableCalls, SockCalls):
    """Every syscall as a method named as in the spec. A method named
    ``<name>_unstable`` replaces ``<name>`` under the wasi_unstable ABI."""


def _nosys(*args: int) -> None:
    raise WasiError(Errno.NOSYS)


UNIMPLEMENTED = frozenset(name for name in PREVIEW1 if not hasattr(Syscalls, name))


def build_imports(ctx: Syscalls, trace: Any = None) -> dict[str, HostFunction]:
    """The ``wasiImport`` mapping: every function of the context's ABI; with
    a ``_trace.Trace``, the functions it selects report each call to it."""
    signatures = UNSTABLE if ctx.unstable else PREVIEW1
    table: dict[str, HostFunction] = {}
    for name, sig in signatures.items():
        impl: Any = None
        if ctx.unstable:
            impl = getattr(ctx, name + "_unstable", None)
        if impl is None:
            impl = getattr(ctx, name, _nosys)
        if trace is not None and trace.selects(name):
            impl = trace.wrap(sig, impl, ctx, ctx.unstable)
        table[name] = HostFunction(sig, impl, ctx)
    return table
