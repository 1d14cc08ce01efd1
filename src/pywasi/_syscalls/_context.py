"""The state every syscall group shares. Each group is a mixin over this
class, so a syscall is a bound method and the dispatcher calls it directly."""

from __future__ import annotations

import _thread

from .._abi import Fdflags, Filetype
from .._dispatch import HostState
from .._errors import STOPPED_MESSAGE, GuestFault
from .._fdtable import FdTable
from .._fs._base import Descriptor
from .._fs._file import skip

# Annotation-only names: mypy takes any TYPE_CHECKING as true, and run time
# never imports typing (nor the re it pulls in: start-up, tests/test_import_cost.py).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TypeVar

    from .._memory import GuestMemory

    _T = TypeVar("_T")

__all__ = ["Context", "UnboundMemory"]


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
    # Reproducible runs (``_determinism``): a clock source (a
    # ``_determinism.Clock``, not imported here: start-up), a random source
    # (n -> n bytes) and sorted listings. Set before ``build_imports``, which
    # then takes the syscalls' ``*_virtual`` twins; the host routes never
    # look at these.
    clock: Any = None
    rng: Any = None
    ordered_readdir = False

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

    def set_cancel_fd(self, fd: int | None) -> None:
        """A wasi-threads program starts (the cancel pipe's read end) or has
        ended (None). The accelerator's C fd_write/fd_pwrite (``_accel.c``,
        fast_io) writes without the GIL where the cancellation cannot reach
        it: while threads run it leaves every descriptor but a regular file
        (which never blocks) to the Python syscall, and reads the flag in
        its memory cell for that."""
        self.cancel_fd = fd
        if self.memory_cell is not None:
            self.memory_cell.threads = fd is not None

    def _may_block(self, desc: Descriptor) -> int | None:
        """The host fd to wait on before a read or write of ``desc`` that may
        block while threads run; None if the call can go ahead: no threads,
        no host fd, a regular file (never blocks) or a NONBLOCK descriptor."""
        if self.cancel_fd is None or desc.filetype == _REGULAR_FILE:
            return None
        fileno = desc.poll_fileno()
        if fileno is None or desc.fdflags() & _NONBLOCK:
            return None
        return fileno

    def _wait(self, fileno: int, writing: bool) -> None:
        """Until ``fileno`` is ready for writing (or reading), or trap when
        the program is ending (``cancel_fd`` readable)."""
        import select   # here: only a blocking descriptor waits (start-up)
        cancel = self.cancel_fd
        poller = select.poll()
        poller.register(fileno, select.POLLOUT if writing else select.POLLIN)
        if cancel is not None:
            poller.register(cancel, select.POLLIN)
        if any(fd == cancel for fd, _ in poller.poll()):
            raise GuestFault(STOPPED_MESSAGE)

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
        fileno = self._may_block(desc)
        if fileno is None:
            return read(*args)
        with _lock(desc, "reader_lock"):
            self._wait(fileno, False)
            return read(*args)

    def when_writable(self, desc: Descriptor, write: Callable[[list[memoryview]], int],
                      bufs: list[memoryview]) -> int:
        """``write(bufs)``, a blocking write of every byte (fd_write,
        sock_send); while threads run, in pieces that never block: wait for
        ``desc`` to be writable where the end of the program can cancel the
        wait (a trap), write what it takes at once (``write_nowait``), again
        until all is written. As a blocking write: the whole buffer, or a
        short count only when an error follows some bytes (the guest's next
        write sees it). One thread at a time waits and writes on a
        descriptor (as ``when_readable``): ``write_nowait``'s PIPE_BUF
        fallback relies on nobody taking the room poll() saw."""
        fileno = self._may_block(desc)
        total = sum(map(len, bufs))
        if fileno is None or not total:
            return write(bufs)
        done = 0
        with _lock(desc, "writer_lock"):
            while done < total:
                self._wait(fileno, True)
                try:
                    done += desc.write_nowait(skip(bufs, done))
                except BlockingIOError:
                    continue  # another process took the room: wait again
                except OSError:
                    if done:
                        return done
                    raise
        return done


def _lock(desc: Descriptor, name: str) -> _thread.LockType:
    """``desc``'s reader_lock or writer_lock, made on first use."""
    lock: _thread.LockType | None = getattr(desc, name)
    if lock is None:
        with _MAKING_LOCKS:  # two threads must not each make their own
            lock = getattr(desc, name)
            if lock is None:
                lock = _thread.allocate_lock()
                setattr(desc, name, lock)
    return lock


# threading's locks, without importing threading (start-up: pywasi._lean)
_MAKING_LOCKS = _thread.allocate_lock()
_NONBLOCK = int(Fdflags.NONBLOCK)
_REGULAR_FILE = int(Filetype.REGULAR_FILE)
