"""The syscalls, one module per group, combined into one ``Syscalls`` class
whose bound methods the dispatcher calls."""

from __future__ import annotations

from .._abi import PREVIEW1, UNSTABLE, Errno
from .._dispatch import HostFunction
from .._errors import WasiError
from ._context import Context

# Annotation-only names: mypy takes any TYPE_CHECKING as true, and run time
# never imports typing (nor the re it pulls in: start-up, tests/test_import_cost.py).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["Syscalls", "build_imports", "UNIMPLEMENTED", "GROUPS"]

# Each group module, its class, and every attribute the class defines, in
# the order the classes are Syscalls' bases (the first group that defines a
# name is the one whose attribute Syscalls has). A run imports only the
# groups of the calls it makes (start-up: a hello world needs two or three
# of the ten); tests/test_syscalls.py checks this table against the
# classes themselves.
GROUPS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("args_env", "ArgsEnvCalls", (
        "args_get", "args_sizes_get", "environ_get", "environ_sizes_get")),
    ("clock", "ClockCalls", (
        "clock_res_get", "clock_res_get_virtual", "clock_time_get", "clock_time_get_virtual")),
    ("fd", "FdCalls", (
        "fd_close", "fd_fdstat_get", "fd_fdstat_get_accel", "fd_fdstat_set_flags",
        "fd_fdstat_set_rights", "fd_prestat_dir_name", "fd_prestat_get", "fd_read", "fd_read_accel",
        "fd_renumber", "fd_write", "fd_write_accel")),
    ("fs_fd", "FsFdCalls", (
        "fd_advise", "fd_allocate", "fd_datasync", "fd_filestat_get", "fd_filestat_get_unstable",
        "fd_filestat_set_size", "fd_filestat_set_times", "fd_pread", "fd_pread_accel", "fd_pwrite",
        "fd_pwrite_accel", "fd_readdir", "fd_readdir_virtual", "fd_seek", "fd_seek_unstable",
        "fd_sync", "fd_tell")),
    ("proc", "ProcCalls", (
        "proc_exit", "proc_raise", "sched_yield")),
    ("random", "RandomCalls", (
        "random_get", "random_get_virtual")),
    ("poll", "PollCalls", (
        "_poll_oneoff", "_subscription", "_virtual_deadline", "_wait_virtual", "poll_oneoff",
        "poll_oneoff_unstable", "poll_oneoff_unstable_virtual", "poll_oneoff_virtual")),
    ("path", "PathCalls", (
        "_dir_at", "_filestat_at", "_two_dirs_at", "path_create_directory", "path_filestat_get",
        "path_filestat_get_unstable", "path_filestat_set_times", "path_link", "path_open",
        "path_readlink", "path_remove_directory", "path_rename", "path_symlink", "path_unlink_file")),
    ("unstable", "UnstableCalls", (
        "fd_fdstat_get_unstable", "fd_fdstat_set_rights_unstable")),
    ("sock", "SockCalls", (
        "_socket", "sock_accept", "sock_recv", "sock_send", "sock_shutdown")),
)
_GROUP_OF: dict[str, str] = {}
for _group, _, _names in GROUPS:
    for _name in _names:
        _GROUP_OF.setdefault(_name, _group)


def _load(group: str) -> None:
    """Give Syscalls the attributes of ``group``'s class (imported now)."""
    module = __import__(f"{__name__}.{group}", fromlist=["_"])
    cls = getattr(module, next(c for g, c, _ in GROUPS if g == group))
    for name, value in vars(cls).items():
        if _GROUP_OF.get(name) == group:
            setattr(Syscalls, name, value)


if TYPE_CHECKING:
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

    class Syscalls(ArgsEnvCalls, ClockCalls, FdCalls, FsFdCalls, ProcCalls, RandomCalls,
                   PollCalls, PathCalls, UnstableCalls, SockCalls):
        """Every syscall as a method named as in the spec. A method named
        ``<name>_unstable`` replaces ``<name>`` under the wasi_unstable ABI."""
else:
    class Syscalls(Context):
        """Every syscall as a method named as in the spec (mypy sees the class
        of all the groups, above). A group's methods join the class when one
        of its names is first looked up."""

        def __getattr__(self, name: str) -> Any:
            group = _GROUP_OF.get(name)
            if group is None:
                raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
            _load(group)
            return object.__getattribute__(self, name)


def _nosys(*args: int) -> None:
    raise WasiError(Errno.NOSYS)


UNIMPLEMENTED = frozenset(name for name in PREVIEW1 if name not in _GROUP_OF)


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
        # The method's name: HostFunction looks it up on the context (and so
        # imports its group) when the function is first linked or called.
        impl: Any = next((name + suffix for suffix in suffixes if name + suffix in _GROUP_OF),
                         _nosys)
        if trace is not None and trace.selects(name):
            impl = trace.wrap(sig, getattr(ctx, impl) if isinstance(impl, str) else impl, ctx,
                              ctx.unstable)
        table[name] = HostFunction(sig, impl, ctx)
    return table
