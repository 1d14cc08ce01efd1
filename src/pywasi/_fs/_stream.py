"""Stream descriptors: the guest's stdio and anything shaped like it.

Three kinds, one class each:
- ``HostStream``: a host file descriptor (an int, or a file object's
  ``fileno()``), read with ``os.readv`` straight into guest memory and written
  with ``os.write``/``os.writev`` straight from it;
- ``PyWriter``: output into a Python callable or ``.write`` method;
- ``PyReader``: input from bytes or a Python object with ``read``.
"""

from __future__ import annotations

import errno as _host
import fcntl
import io
import os
import stat

from .._abi import Errno, Fdflags, Filetype, Rights
from .._errors import WasiError
from ._base import Descriptor

# Annotation-only names: mypy takes any TYPE_CHECKING as true, and run time
# never imports typing (nor the re it pulls in: start-up, tests/test_import_cost.py).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

__all__ = ["HostStream", "write_nowait", "set_host_append_nonblock", "PyWriter", "PyReader", "open_stdio", "host_fdflags", "filetype_of_mode",
           "fdatasync"]

# Stdio gets no FD_SEEK/FD_TELL: wasi-libc's isatty() reports a terminal only
# for a character device *without* those rights.
_STREAM_RIGHTS = Rights.FD_FDSTAT_SET_FLAGS | Rights.FD_FILESTAT_GET | Rights.POLL_FD_READWRITE
_READ_RIGHTS = int(_STREAM_RIGHTS | Rights.FD_READ)
_WRITE_RIGHTS = int(_STREAM_RIGHTS | Rights.FD_WRITE)


def filetype_of_mode(mode: int, fd: int | None = None) -> int:
    """The WASI filetype of a host ``st_mode``. A FIFO has no WASI type: UNKNOWN."""
    if stat.S_ISREG(mode):
        return Filetype.REGULAR_FILE
    if stat.S_ISDIR(mode):
        return Filetype.DIRECTORY
    if stat.S_ISCHR(mode):
        return Filetype.CHARACTER_DEVICE
    if stat.S_ISBLK(mode):
        return Filetype.BLOCK_DEVICE
    if stat.S_ISLNK(mode):
        return Filetype.SYMBOLIC_LINK
    if stat.S_ISSOCK(mode):
        if fd is not None:
            import socket
            try:
                kind = socket.socket(fileno=os.dup(fd))
            except OSError:
                return Filetype.SOCKET_STREAM
            with kind:
                if kind.type == socket.SOCK_DGRAM:
                    return Filetype.SOCKET_DGRAM
        return Filetype.SOCKET_STREAM
    return Filetype.UNKNOWN


def host_fdflags(host_flags: int) -> int:
    """WASI fdflags from host ``fcntl(F_GETFL)`` bits; never raw host bits."""
    flags = 0
    if host_flags & os.O_APPEND:
        flags |= Fdflags.APPEND
    if host_flags & os.O_NONBLOCK:
        flags |= Fdflags.NONBLOCK
    # On Linux O_SYNC contains O_DSYNC's bit and O_RSYNC == O_SYNC.
    if host_flags & os.O_SYNC == os.O_SYNC:
        flags |= Fdflags.SYNC | Fdflags.RSYNC
    elif host_flags & os.O_DSYNC:
        flags |= Fdflags.DSYNC
    return int(flags)


def set_host_append_nonblock(fd: int, flags: int) -> int:
    """Set the host fd's O_APPEND and O_NONBLOCK from WASI ``flags`` (the only
    status flags fcntl F_SETFL can change); returns the host flags before."""
    current = fcntl.fcntl(fd, fcntl.F_GETFL)
    new = current & ~(os.O_APPEND | os.O_NONBLOCK)
    if flags & Fdflags.APPEND:
        new |= os.O_APPEND
    if flags & Fdflags.NONBLOCK:
        new |= os.O_NONBLOCK
    fcntl.fcntl(fd, fcntl.F_SETFL, new)
    return int(current)


class HostStream(Descriptor):
    """A host fd used as a stream. ``owned`` says whether closing the guest
    fd closes the host fd (stdio handed in by the user is borrowed).
    ``holder``: the file object a borrowed fd belongs to, kept alive while
    the descriptor is open: ``WASI(stdout=open("out.txt", "wb"))`` leaves
    nobody else holding it, and once collected it would close the fd, whose
    number the next open takes -- the guest's output would land there."""

    __slots__ = ("fd", "owned", "holder", "_saved_flags")

    def __init__(self, fd: int, *, readable: bool, writable: bool, owned: bool = False,
                 holder: object = None) -> None:
        self.fd = fd
        self.owned = owned
        self.holder = holder
        self._saved_flags: int | None = None
        try:
            self.filetype = filetype_of_mode(os.fstat(fd).st_mode, fd)
        except OSError:
            self.filetype = Filetype.UNKNOWN
        rights = (_READ_RIGHTS if readable else 0) | (_WRITE_RIGHTS if writable else 0)
        self.rights_base = rights
        self.rights_inheriting = 0

    def fdflags(self) -> int:
        return host_fdflags(fcntl.fcntl(self.fd, fcntl.F_GETFL))

    def set_fdflags(self, flags: int) -> None:
        # Only APPEND and NONBLOCK can change on an open host fd (fcntl F_SETFL
        # ignores the sync flags on Linux); refusing the rest beats pretending.
        if flags & ~(Fdflags.APPEND | Fdflags.NONBLOCK):
            raise WasiError(Errno.NOTSUP)
        previous = set_host_append_nonblock(self.fd, flags)
        if self._saved_flags is None:
            # A borrowed fd (the user's terminal) gets its flags back at close.
            self._saved_flags = previous

    def read(self, bufs: list[memoryview]) -> int:
        return os.readv(self.fd, bufs)

    def filestat(self) -> tuple[int, ...]:
        from ._stat import filestat_values
        return filestat_values(os.fstat(self.fd), self.filetype)

    # A terminal or pipe answers EINVAL (the host's); a file redirected into
    # stdio syncs as a file would.
    def sync(self) -> None:
        os.fsync(self.fd)

    def datasync(self) -> None:
        fdatasync(self.fd)

    def write(self, bufs: list[memoryview]) -> int:
        """Write everything, retrying short writes (EINTR is retried by Python
        itself, PEP 475). A non-blocking fd that fills up returns what went
        out; EAGAIN with nothing written is the guest's AGAIN."""
        fd = self.fd
        if len(bufs) == 1:
            buf = bufs[0]
            n = os.write(fd, buf)
            total = len(buf)
            if n == total:
                return n
            return n + self._write_rest(buf[n:])
        total = sum(len(b) for b in bufs)
        n = os.writev(fd, bufs)
        if n == total:
            return n
        rest = b"".join(bufs)[n:]
        return n + self._write_rest(memoryview(rest))

    def _write_rest(self, buf: memoryview) -> int:
        done = 0
        while done < len(buf):
            try:
                done += os.write(self.fd, buf[done:])
            except BlockingIOError:
                break
        return done

    def write_nowait(self, bufs: list[memoryview]) -> int:
        return write_nowait(self.fd, bufs)

    def poll_fileno(self) -> int | None:
        return self.fd

    def ready_nbytes(self, writing: bool) -> int:
        return host_ready_nbytes(self.fd, writing)

    def close(self) -> None:
        if self._saved_flags is not None:
            try:
                fcntl.fcntl(self.fd, fcntl.F_SETFL, self._saved_flags)
            except OSError:
                pass
        if self.owned:
            os.close(self.fd)
        self.holder = None


def write_nowait(fd: int, bufs: list[memoryview]) -> int:
    """Write what a host fd that poll() has just reported writable takes
    without blocking, never setting O_NONBLOCK on it (the open file
    description may be shared with other processes: an inherited stdout).

    pwritev2(RWF_NOWAIT) at the current position (offset -1) writes as much
    as there is room for and answers EAGAIN instead of sleeping; Linux 6.x
    takes it on pipes and sockets. Where the file does not support it
    (EOPNOTSUPP: a named FIFO, a terminal; or no RWF_NOWAIT on this host),
    at most PIPE_BUF bytes: POSIX makes such a write to a pipe atomic, and
    Linux reports POLLOUT only with a whole free pipe buffer (a page, at
    least PIPE_BUF), so it does not sleep unless another writer took the room
    in between (the caller's writer_lock keeps out the guest's own threads).
    A terminal's POLLOUT promises less: there a write may wait until the
    terminal drains. Measured on a 64 MiB pipe copy: RWF_NOWAIT as fast as a
    blocking write, PIPE_BUF pieces 5x slower (a poll per 4 KiB)."""
    if _RWF_NOWAIT is not None:
        try:
            return os.pwritev(fd, bufs, -1, _RWF_NOWAIT)
        except OSError as e:
            if e.errno != _host.EOPNOTSUPP:
                raise
    import select   # here: start-up (pywasi._lean)
    for buf in bufs:
        if buf:
            return os.write(fd, buf[:select.PIPE_BUF])
    return 0


_RWF_NOWAIT: int | None = getattr(os, "RWF_NOWAIT", None)


def fdatasync(fd: int) -> None:
    sync = getattr(os, "fdatasync", None)  # macOS has only fsync
    (sync or os.fsync)(fd)


def host_ready_nbytes(fd: int, writing: bool) -> int:
    """What a ready host fd can take or give without blocking, as far as
    Linux tells: bytes left in a regular file (size - offset), bytes queued
    in a pipe, socket or tty (FIONREAD), room left in a pipe (F_GETPIPE_SZ
    minus what it holds). 0 when the host cannot tell (the spec's nbytes is
    a hint; wasi-libc's poll() ignores it)."""
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISREG(mode):
            if writing:
                return 0
            return max(0, os.fstat(fd).st_size - os.lseek(fd, 0, os.SEEK_CUR))
        import array  # here, not at start-up: only poll_oneoff asks (array imports
        import termios  # collections.abc; ~0.5 ms of every start with termios)
        queued = array.array("i", [0])
        fcntl.ioctl(fd, termios.FIONREAD, queued)
        if not writing:
            return int(queued[0])
        if stat.S_ISFIFO(mode):
            capacity = fcntl.fcntl(fd, _F_GETPIPE_SZ)
            return max(0, capacity - int(queued[0]))
    except OSError:
        pass
    return 0


_F_GETPIPE_SZ = getattr(fcntl, "F_GETPIPE_SZ", 1032)


class PyWriter(Descriptor):
    """Guest output delivered to Python: ``sink(bytes)`` per write."""

    __slots__ = ("_sink",)

    def __init__(self, sink: Callable[[bytes], Any]) -> None:
        self._sink = sink
        self.filetype = Filetype.UNKNOWN
        self.rights_base = _WRITE_RIGHTS
        self.rights_inheriting = 0

    def write(self, bufs: list[memoryview]) -> int:
        data = b"".join(bufs)
        if data:
            self._sink(data)
        return len(data)

    def filestat(self) -> tuple[int, ...]:
        return (0, 0, self.filetype, 0, 0, 0, 0, 0)


class PyReader(Descriptor):
    """Guest input from Python: bytes, or an object with ``read(n)``."""

    __slots__ = ("_source",)

    def __init__(self, source: Any) -> None:
        self._source = source
        self.filetype = Filetype.UNKNOWN
        self.rights_base = _READ_RIGHTS
        self.rights_inheriting = 0

    def read(self, bufs: list[memoryview]) -> int:
        total = 0
        for buf in bufs:
            want = len(buf)
            if not want:
                continue
            readinto = getattr(self._source, "readinto", None)
            if readinto is not None:
                n = readinto(buf) or 0
            else:
                data = self._source.read(want) or b""
                if isinstance(data, str):
                    data = data.encode()
                n = len(data)
                buf[:n] = data
            total += n
            if n < want:
                break
        return total

    def filestat(self) -> tuple[int, ...]:
        return (0, 0, self.filetype, 0, 0, 0, 0, 0)


def _real_fileno(obj: Any) -> int | None:
    fileno = getattr(obj, "fileno", None)
    if fileno is None:
        return None
    try:
        return int(fileno())
    except (OSError, ValueError, io.UnsupportedOperation):
        return None


def open_stdio(option: str, value: Any, *, reading: bool) -> Descriptor:
    """The descriptor for a ``stdin``/``stdout``/``stderr`` option.

    Accepted: a host fd (int, as node:wasi); a file object with a real
    ``fileno()`` (used directly, after flushing its Python buffer); for
    output, a callable taking bytes or an object with ``write`` (text streams
    get their binary ``buffer`` when they have one); for input, ``bytes`` or
    an object with ``read``/``readinto``.
    """
    if isinstance(value, bool):
        raise TypeError(f"{option} must be a file descriptor (int), a file object or "
                        f"{'bytes' if reading else 'a callable'}, not bool")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"{option} must be a non-negative file descriptor, got {value}")
        try:
            os.fstat(value)
        except OSError as e:
            raise ValueError(f"{option}: file descriptor {value} is not open ({e.strerror})") from None
        return HostStream(value, readable=reading, writable=not reading)
    fd = _real_fileno(value)
    if fd is not None:
        flush = getattr(value, "flush", None)
        if flush is not None and not reading:
            flush()
        return HostStream(fd, readable=reading, writable=not reading, holder=value)
    if reading:
        if isinstance(value, (bytes, bytearray, memoryview)):
            return PyReader(io.BytesIO(bytes(value)))
        if hasattr(value, "read") or hasattr(value, "readinto"):
            return PyReader(value)
        raise TypeError(f"{option} must be a file descriptor (int), bytes or an object "
                        f"with read(), not {type(value).__name__}")
    if isinstance(value, io.TextIOBase):
        binary = getattr(value, "buffer", None)
        if binary is not None:
            value.flush()
            return PyWriter(_flushing(binary))
        return PyWriter(lambda data: value.write(data.decode("utf-8", "replace")))
    if callable(value):
        return PyWriter(value)
    write = getattr(value, "write", None)
    if write is not None:
        return PyWriter(write)
    raise TypeError(f"{option} must be a file descriptor (int), a callable or an object "
                    f"with write(), not {type(value).__name__}")


def _flushing(binary: Any) -> Callable[[bytes], Any]:
    def sink(data: bytes) -> None:
        binary.write(data)
        binary.flush()
    return sink
