"""The state every syscall group shares. Each group is a mixin over this
class, so a syscall is a bound method and the dispatcher calls it directly."""

from __future__ import annotations

import select
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from .._abi import Fdflags
from .._dispatch import HostState
from .._engine import STOPPED_MESSAGE
from .._errors import GuestFault
from .._fdtable import FdTable
from .._fs._base import Descriptor
from .._memory import GuestMemory

__all__ = ["Context", "UnboundMemory"]

_T = TypeVar("_T")


class UnboundMemory:
    """Stands in for guest memory until ``finalize_bindings``: any access is a
    trap that says what is missing, rather than an AttributeError."""

    def __getattr__(self, name: str) -> object:
        raise GuestFault("WASI is not bound to a memory yet: call start(), initialize() "
                         "or finalize_bindings() with the instance first")


class Context(HostState):
    memory: GuestMemory
    fds: FdTable
    args: list[bytes]      # each NUL-terminated, UTF-8
    environ: list[bytes]   # "KEY=VALUE\0", UTF-8
    unstable: bool         # wasi_unstable ABI (snapshot 0)
    # While a wasi-threads program runs: a pipe's read end that becomes
    # readable when the program is ending (``_threads``). Every call that can
    # block waits on it too, and traps when it is readable.
    cancel_fd: int | None = None

    def __init__(self, *, args: list[bytes], environ: list[bytes], fds: FdTable,
                 unstable: bool) -> None:
        super().__init__()
        self.args = args
        self.environ = environ
        self.fds = fds
        self.unstable = unstable
        self.memory = UnboundMemory()  # type: ignore[assignment]
        # Set on the instance, not only as the class's default: fd_read tests
        # it on every call, and an instance attribute is the cheap lookup
        # (Python 3.11 does not specialise a class attribute read through an
        # instance: ~75 instructions more per call, callgrind).
        self.cancel_fd = None

    def when_readable(self, desc: Descriptor, read: Callable[..., _T], *args: Any) -> _T:
        """``read(*args)``, a read or accept that may block on ``desc``; while
        threads run (``cancel_fd`` set) it waits first for ``desc`` to be
        readable, where the end of the program can cancel the wait (a trap).
        A non-blocking descriptor, or one with no host fd, reads at once.

        One thread at a time waits and reads on a descriptor: two threads
        reading one pipe would both be told "readable", one would take the
        data and the other's read would block where the cancellation cannot
        reach it. Waiting for the lock is safe: its holder is in the
        cancellable wait, or reading data that is there. (Another *process*
        reading the same pipe can still take the data in between, as for
        any blocking read; then only new data releases this read.)"""
        cancel = self.cancel_fd
        fileno = desc.poll_fileno()
        if cancel is None or fileno is None or desc.fdflags() & _NONBLOCK:
            return read(*args)
        lock = desc.reader_lock
        if lock is None:
            with _MAKING_LOCKS:  # two threads must not each make their own
                lock = desc.reader_lock
                if lock is None:
                    lock = desc.reader_lock = threading.Lock()
        with lock:
            poller = select.poll()
            poller.register(fileno, select.POLLIN)
            poller.register(cancel, select.POLLIN)
            if any(fd == cancel for fd, _ in poller.poll()):
                raise GuestFault(STOPPED_MESSAGE)
            return read(*args)


_MAKING_LOCKS = threading.Lock()
_NONBLOCK = int(Fdflags.NONBLOCK)
