"""The syscalls, one module per group, combined into one ``Syscalls`` class
whose bound methods the dispatcher calls."""

from __future__ import annotations

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

# Annotation-only names: mypy takes any TYPE_CHECKING as true, and run time
# never imports typing (nor the re it pulls in: start-up, tests/test_import_cost.py).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["Syscalls", "build_imports", "UNIMPLEMENTED"]


class Syscalls(ArgsEnvCalls, ClockCalls, FdCalls, FsFdCalls, ProcCalls, RandomCalls, PollCalls,
               PathCalls, UnstableCalls, SockCalls):
    """Every syscall as a method named as in the spec. A method named
    ``<name>_unstable`` replaces ``<name>`` under the wasi_unstable ABI."""


def _nosys(*args: int) -> None:
    raise WasiError(Errno.NOSYS)


UNIMPLEMENTED = frozenset(name for name in PREVIEW1 if not hasattr(Syscalls, name))


# The calls a reproducible run answers with their ``<name>_virtual`` twin,
# and the context attribute that asks for it (set: the twin is taken).
_VIRTUAL = {"clock_res_get": "clock", "clock_time_get": "clock", "poll_oneoff": "clock",
            "random_get": "rng", "fd_readdir": "ordered_readdir"}


def build_imports(ctx: Syscalls, trace: Any = None) -> dict[str, HostFunction]:
    """The ``wasiImport`` mapping: every function of the context's ABI; with
    a ``_trace.Trace``, the functions it selects report each call to it.

    A syscall is the first of ``<name>_unstable_virtual`` (wasi_unstable, a
    reproducible run), ``<name>_virtual``, ``<name>_unstable``, ``<name>``
    that the context has and the run asks for. A twin has its own name, so
    the accelerator's C fast path for ``<name>`` (chosen by the impl's name)
    steps aside for it."""
    signatures = UNSTABLE if ctx.unstable else PREVIEW1
    table: dict[str, HostFunction] = {}
    for name, sig in signatures.items():
        suffixes = ["_unstable", ""] if ctx.unstable else [""]
        if name in _VIRTUAL and getattr(ctx, _VIRTUAL[name]):
            suffixes = [suffix + "_virtual" for suffix in suffixes] + suffixes
        impl: Any = next((getattr(ctx, name + suffix) for suffix in suffixes
                          if hasattr(ctx, name + suffix)), _nosys)
        if trace is not None and trace.selects(name):
            impl = trace.wrap(sig, impl, ctx, ctx.unstable)
        table[name] = HostFunction(sig, impl, ctx)
    return table
