"""The fd_* calls on files and directories: fd_advise, fd_allocate,
fd_datasync, fd_sync, fd_filestat_get / set_size / set_times, fd_pread,
fd_pwrite, fd_seek, fd_tell, fd_readdir (fd_read/fd_write live in ``fd``).

Each call asks ``FdTable.get`` for the descriptor with the spec's rights
first (NOTCAPABLE when missing: a read-only file opened by path_open has no
FD_WRITE / FD_FILESTAT_SET_SIZE / FD_ALLOCATE; directories have no FD_SEEK or
FD_TELL, so seeking one is NOTCAPABLE, as uvwasi answers; stdio has neither),
then validates its enums (INVAL), then lets the descriptor act. What a kind of
descriptor cannot do at all is answered by ``Descriptor``'s defaults.
"""

from __future__ import annotations

from .._abi import FILESTAT, FILESTAT_UNSTABLE, Advice, Errno, Rights, Whence, WhenceUnstable
from .._errors import WasiError
from .._fs._file import HostFile
from ._context import Context

# Annotation-only names: mypy takes any TYPE_CHECKING as true, and run time
# never imports typing (nor the re it pulls in: start-up, tests/test_import_cost.py).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["FsFdCalls"]

_FD_ADVISE = int(Rights.FD_ADVISE)
_FD_ALLOCATE = int(Rights.FD_ALLOCATE)
_FD_DATASYNC = int(Rights.FD_DATASYNC)
_FD_SYNC = int(Rights.FD_SYNC)
_FD_FILESTAT_GET = int(Rights.FD_FILESTAT_GET)
_FD_FILESTAT_SET_SIZE = int(Rights.FD_FILESTAT_SET_SIZE)
_FD_FILESTAT_SET_TIMES = int(Rights.FD_FILESTAT_SET_TIMES)
_FD_READ = int(Rights.FD_READ)
_FD_WRITE = int(Rights.FD_WRITE)
_FD_SEEK = int(Rights.FD_SEEK)
_FD_TELL = int(Rights.FD_TELL)
_FD_READDIR = int(Rights.FD_READDIR)

_ADVICE = frozenset(int(a) for a in Advice)
_FROM_UNSTABLE = {int(w): int(Whence[w.name]) for w in WhenceUnstable}
_U32_MAX = 0xFFFFFFFF


def _signed64(value: int) -> int:
    """A ``filedelta`` (s64), which the dispatcher hands over as unsigned."""
    return value - (1 << 64) if value & (1 << 63) else value


class FsFdCalls(Context):
    def fd_advise(self, fd: int, offset: int, len: int, advice: int) -> None:
        desc = self.fds.get(fd, _FD_ADVISE)
        if advice not in _ADVICE:
            raise WasiError(Errno.INVAL)
        desc.advise(offset, len, advice)

    def fd_allocate(self, fd: int, offset: int, len: int) -> None:
        self.fds.get(fd, _FD_ALLOCATE).allocate(offset, len)

    def fd_datasync(self, fd: int) -> None:
        self.fds.get(fd, _FD_DATASYNC).datasync()

    def fd_sync(self, fd: int) -> None:
        self.fds.get(fd, _FD_SYNC).sync()

    # -- metadata --------------------------------------------------------
    def fd_filestat_get(self, fd: int, buf_ptr: int) -> None:
        values = self.fds.get(fd, _FD_FILESTAT_GET).filestat()
        self.memory.pack(FILESTAT, buf_ptr, *values)

    def fd_filestat_get_unstable(self, fd: int, buf_ptr: int) -> None:
        # wasi_unstable's filestat: nlink is u32 (56 bytes). A link count past
        # u32 cannot happen on real file systems; clamp rather than wrap.
        dev, ino, filetype, nlink, size, atim, mtim, ctim = \
            self.fds.get(fd, _FD_FILESTAT_GET).filestat()
        self.memory.pack(FILESTAT_UNSTABLE, buf_ptr, dev, ino, filetype, min(nlink, _U32_MAX),
                         size, atim, mtim, ctim)

    def fd_filestat_set_size(self, fd: int, size: int) -> None:
        self.fds.get(fd, _FD_FILESTAT_SET_SIZE).set_size(size)

    def fd_filestat_set_times(self, fd: int, atim: int, mtim: int, fst_flags: int) -> None:
        self.fds.get(fd, _FD_FILESTAT_SET_TIMES).set_times(atim, mtim, fst_flags)

    # -- positioned I/O --------------------------------------------------
    # The spec: fd_pread/fd_pwrite need FD_READ/FD_WRITE and FD_SEEK ("read
    # from a descriptor, without using and updating the descriptor's offset"
    # -- only meaningful on a seekable file), as wasmtime and uvwasi require.
    def fd_pread(self, fd: int, iovs: int, iovs_len: int, offset: int, nread_ptr: int) -> None:
        desc = self.fds.get(fd, _FD_READ | _FD_SEEK)
        mem = self.memory
        mem.store_u32(nread_ptr, desc.pread(mem.iovecs(iovs, iovs_len), offset))

    def fd_pwrite(self, fd: int, iovs: int, iovs_len: int, offset: int,
                  nwritten_ptr: int) -> None:
        desc = self.fds.get(fd, _FD_WRITE | _FD_SEEK)
        mem = self.memory
        mem.store_u32(nwritten_ptr, desc.pwrite(mem.iovecs(iovs, iovs_len), offset))

    # The accelerator's C fd_pread/fd_pwrite (see FdCalls.fd_write_accel).
    def fd_pread_accel(self) -> tuple[Any, int, type, type | None]:
        return self.fds.get, _FD_READ | _FD_SEEK, HostFile, None

    def fd_pwrite_accel(self) -> tuple[Any, int, type, type | None]:
        return self.fds.get, _FD_WRITE | _FD_SEEK, HostFile, None

    # -- the offset ------------------------------------------------------
    def fd_seek(self, fd: int, offset: int, whence: int, newoffset_ptr: int) -> None:
        delta = _signed64(offset)
        if delta == 0 and whence == Whence.CUR:
            # FD_TELL is "the right to invoke fd_seek in such a way that the
            # file offset remains unaltered" (spec), and FD_SEEK implies it:
            # either will do. wasi-libc's ftell/lseek(fd, 0, SEEK_CUR) is this.
            try:
                desc = self.fds.get(fd, _FD_TELL)
            except WasiError as e:
                if e.errno != Errno.NOTCAPABLE:
                    raise
                desc = self.fds.get(fd, _FD_SEEK)
        else:
            desc = self.fds.get(fd, _FD_SEEK)
        if whence not in (Whence.SET, Whence.CUR, Whence.END):
            raise WasiError(Errno.INVAL)
        # A resulting offset below 0 is the host's EINVAL (lseek(2)).
        self.memory.store_u64(newoffset_ptr, desc.seek(delta, whence))

    def fd_seek_unstable(self, fd: int, offset: int, whence: int, newoffset_ptr: int) -> None:
        # wasi_unstable numbers whence CUR=0, END=1, SET=2; an unknown value
        # stays unknown (INVAL).
        self.fd_seek(fd, offset, _FROM_UNSTABLE.get(whence, 0xFF), newoffset_ptr)

    def fd_tell(self, fd: int, offset_ptr: int) -> None:
        self.memory.store_u64(offset_ptr, self.fds.get(fd, _FD_TELL).tell())

    # -- directories -----------------------------------------------------
    def fd_readdir(self, fd: int, buf: int, buf_len: int, cookie: int, bufused_ptr: int,
                   ordered: bool = False) -> None:
        desc = self.fds.get(fd, _FD_READDIR)
        mem = self.memory
        mem.slice(buf, buf_len)  # the whole buffer the guest claims, checked first
        data = desc.readdir(cookie, buf_len, ordered)
        mem.write_bytes(buf, data)
        mem.store_u32(bufused_ptr, len(data))

    def fd_readdir_virtual(self, fd: int, buf: int, buf_len: int, cookie: int,
                           bufused_ptr: int) -> None:
        # Deterministic runs: entries sorted by name (after "." and ".."),
        # not in the host filesystem's order (hash order on ext4, tmpfs's
        # newest-first).
        self.fd_readdir(fd, buf, buf_len, cookie, bufused_ptr, ordered=True)
