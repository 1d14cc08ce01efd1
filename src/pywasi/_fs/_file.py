"""Host file descriptors: a regular file (or another non-directory -- a
character device, a FIFO, a socket) that the guest opened with path_open.

The descriptor owns its host fd and closes it in ``close()``. Reads and
writes go straight between guest memory and the host (``os.readv``,
``os.writev``, ``os.preadv``, ``os.pwritev`` over memoryviews of linear
memory). Everything the host refuses comes back as its own errno through the
dispatcher (``lseek`` on a FIFO: SPIPE, ``ftruncate`` on a FIFO: INVAL).

Offsets: WASI hands ``filesize`` as u64 and ``filedelta`` as s64, the host's
``off_t`` is s64. An offset past ``2**63 - 1`` is INVAL (the host would see
a negative offset, which is what pread(2) answers EINVAL for); a size past it
is FBIG (ftruncate(2): "larger than the maximum file size").
"""

from __future__ import annotations

import errno as _host
import fcntl
import os
import stat

from .._abi import Advice, Errno, Fdflags, Filetype, Whence
from .._errors import WasiError
from ._base import Descriptor
from ._stat import filestat_values, set_times_fd
from ._stream import (fdatasync, filetype_of_mode, host_fdflags, host_ready_nbytes,
                      set_host_append_nonblock, write_nowait)

__all__ = ["HostFile", "write_all", "skip"]

OFF_MAX = (1 << 63) - 1

_WHENCE = {Whence.SET: os.SEEK_SET, Whence.CUR: os.SEEK_CUR, Whence.END: os.SEEK_END}

_ADVICE = {
    Advice.NORMAL: getattr(os, "POSIX_FADV_NORMAL", 0),
    Advice.SEQUENTIAL: getattr(os, "POSIX_FADV_SEQUENTIAL", 0),
    Advice.RANDOM: getattr(os, "POSIX_FADV_RANDOM", 0),
    Advice.WILLNEED: getattr(os, "POSIX_FADV_WILLNEED", 0),
    Advice.DONTNEED: getattr(os, "POSIX_FADV_DONTNEED", 0),
    Advice.NOREUSE: getattr(os, "POSIX_FADV_NOREUSE", 0),
}

_SYNC_FDFLAGS = int(Fdflags.DSYNC | Fdflags.RSYNC | Fdflags.SYNC)
_SETTABLE_FDFLAGS = int(Fdflags.APPEND | Fdflags.NONBLOCK)
_REGULAR_FILE = Filetype.REGULAR_FILE
_S_IFMT = 0o170000  # stat.S_IFMT's mask (POSIX: the file type bits)
_S_IFREG = stat.S_IFREG


def _offset(value: int) -> int:
    if value > OFF_MAX:
        raise WasiError(Errno.INVAL)
    return value


def skip(bufs: list[memoryview], done: int) -> list[memoryview]:
    """``bufs`` without their first ``done`` bytes (views, no copy)."""
    rest = []
    for buf in bufs:
        if done >= len(buf):
            done -= len(buf)
            continue
        rest.append(buf[done:] if done else buf)
        done = 0
    return rest


def write_all(fd: int, bufs: list[memoryview], offset: int | None = None) -> int:
    """Write every byte of ``bufs`` (at ``offset``, or at the file position),
    retrying short writes. Never loses data and never reports more than was
    written: if the host fails after some bytes went out (disk full, EAGAIN on
    a non-blocking fd), the count so far is the result -- as write(2) itself
    reports a partial write -- and the guest's next write sees the error."""
    total = sum(map(len, bufs))
    if not total:
        return 0
    # The common case: one host call writes it all, and no list is built.
    done = os.writev(fd, bufs) if offset is None else os.pwritev(fd, bufs, offset)
    while 0 < done < total:  # a short write: the rest, from where it stopped
        rest = skip(bufs, done)
        try:
            n = os.writev(fd, rest) if offset is None else os.pwritev(fd, rest, offset + done)
        except OSError:
            if done:
                return done
            raise
        if n == 0:  # no progress and no error: do not spin
            break
        done += n
    return done


class HostFile(Descriptor):
    """An owned host fd of a non-directory."""

    __slots__ = ("fd",)

    def __init__(self, fd: int, *, rights_base: int, rights_inheriting: int,
                 st_mode: int | None = None) -> None:
        """``st_mode``: the fd's, when the caller has just fstat'ed it."""
        self.fd = fd
        try:
            if st_mode is None:
                st_mode = os.fstat(fd).st_mode
            # A regular file, the common case, without filetype_of_mode's
            # frame: path_open makes one of these per file opened.
            self.filetype = _REGULAR_FILE if st_mode & _S_IFMT == _S_IFREG \
                else filetype_of_mode(st_mode, fd)
        except OSError:
            self.filetype = Filetype.UNKNOWN
        self.rights_base = rights_base
        self.rights_inheriting = rights_inheriting

    def __repr__(self) -> str:
        return f"<HostFile fd={self.fd} filetype={Filetype(self.filetype).name}>"

    # -- fdstat ----------------------------------------------------------
    def fdflags(self) -> int:
        return host_fdflags(fcntl.fcntl(self.fd, fcntl.F_GETFL))

    def set_fdflags(self, flags: int) -> None:
        # fcntl(F_SETFL) can change only APPEND and NONBLOCK (Linux ignores
        # the sync flags there). Asking for the sync flags the fd already has
        # is fine; asking to change them is NOTSUP rather than a silent no-op.
        if flags & _SYNC_FDFLAGS != self.fdflags() & _SYNC_FDFLAGS:
            raise WasiError(Errno.NOTSUP)
        set_host_append_nonblock(self.fd, flags)

    # -- data ------------------------------------------------------------
    def read(self, bufs: list[memoryview]) -> int:
        return os.readv(self.fd, bufs)

    def write(self, bufs: list[memoryview]) -> int:
        return write_all(self.fd, bufs)

    def write_nowait(self, bufs: list[memoryview]) -> int:
        return write_nowait(self.fd, bufs)

    def pread(self, bufs: list[memoryview], offset: int) -> int:
        return os.preadv(self.fd, bufs, _offset(offset))

    def pwrite(self, bufs: list[memoryview], offset: int) -> int:
        # NOTE (compatibility choice): on an APPEND descriptor the data goes
        # to the end of the file and ``offset`` is ignored -- what Linux's
        # pwrite(2) does ("BUGS" in its man page) and what wasmtime, which
        # passes the call to the host, gives. Emulating "write at offset" would
        # need RWF_NOAPPEND (Linux 6.9+) or dropping O_APPEND racily.
        return write_all(self.fd, bufs, _offset(offset))

    def seek(self, offset: int, whence: int) -> int:
        return os.lseek(self.fd, offset, _WHENCE[Whence(whence)])

    def tell(self) -> int:
        return os.lseek(self.fd, 0, os.SEEK_CUR)

    def advise(self, offset: int, length: int, advice: int) -> None:
        fadvise = getattr(os, "posix_fadvise", None)
        if fadvise is None:  # advice is a hint; a host without it ignores it
            return
        try:
            fadvise(self.fd, _offset(offset), _offset(length), _ADVICE[Advice(advice)])
        except OSError as e:
            if e.errno in (_host.ENOSYS, _host.EOPNOTSUPP):
                return
            raise

    def allocate(self, offset: int, length: int) -> None:
        # POSIX posix_fallocate: len 0 is EINVAL; offset+len past the largest
        # file is EFBIG.
        if length == 0:
            raise WasiError(Errno.INVAL)
        _offset(offset)
        if offset + length > OFF_MAX:
            raise WasiError(Errno.FBIG)
        fallocate = getattr(os, "posix_fallocate", None)
        if fallocate is not None:
            try:
                fallocate(self.fd, offset, length)
                return
            except OSError as e:
                # A file system without fallocate (some FUSE, NFSv3 under
                # musl): fall through to extending the size, which is what a
                # guest can observe of the call.
                if e.errno not in (_host.EOPNOTSUPP, _host.ENOSYS):
                    raise
        st = os.fstat(self.fd)
        if st.st_size < offset + length:
            os.ftruncate(self.fd, offset + length)

    def sync(self) -> None:
        os.fsync(self.fd)

    def datasync(self) -> None:
        fdatasync(self.fd)

    # -- metadata --------------------------------------------------------
    # -- readiness: a regular file never blocks (always ready, nbytes = bytes
    # left to read); a FIFO, tty or socket opened by path is waited on.
    def poll_fileno(self) -> int | None:
        return None if self.filetype == Filetype.REGULAR_FILE else self.fd

    def ready_nbytes(self, writing: bool) -> int:
        return host_ready_nbytes(self.fd, writing)

    def filestat(self) -> tuple[int, ...]:
        st = os.fstat(self.fd)
        return filestat_values(st, self.filetype)

    def set_size(self, size: int) -> None:
        if size > OFF_MAX:
            raise WasiError(Errno.FBIG)
        os.ftruncate(self.fd, size)

    def set_times(self, atim: int, mtim: int, fst_flags: int) -> None:
        set_times_fd(self.fd, atim, mtim, fst_flags)

    # -- lifetime --------------------------------------------------------
    def close(self) -> None:
        os.close(self.fd)
