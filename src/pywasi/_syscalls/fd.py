"""The descriptor calls every program needs: fd_read, fd_write, fd_close,
fd_fdstat_get / set_flags / set_rights, fd_renumber, and the preopen queries
fd_prestat_get and fd_prestat_dir_name."""

from __future__ import annotations

from .._abi import FDSTAT, PRESTAT, Errno, Fdflags, Preopentype, Rights
from .._errors import WasiError
from .._fs._dir import HostDirectory
from .._fs._file import HostFile
from .._fs._stream import HostStream
from ._context import Context

# Annotation-only names: mypy takes any TYPE_CHECKING as true, and run time
# never imports typing (nor the re it pulls in: start-up, tests/test_import_cost.py).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["FdCalls", "ALL_FDFLAGS"]

_FD_READ = int(Rights.FD_READ)
_FD_WRITE = int(Rights.FD_WRITE)
_SET_FLAGS = int(Rights.FD_FDSTAT_SET_FLAGS)
# Every bit the spec defines; anything else in an argument is INVAL.
ALL_FDFLAGS = int(Fdflags.APPEND | Fdflags.DSYNC | Fdflags.NONBLOCK | Fdflags.RSYNC | Fdflags.SYNC)
_ALL_RIGHTS = (int(Rights.SOCK_ACCEPT) << 1) - 1


class FdCalls(Context):
    def fd_write(self, fd: int, iovs: int, iovs_len: int, nwritten_ptr: int) -> None:
        desc = self.fds.get(fd, _FD_WRITE)
        mem = self.memory
        bufs = mem.iovecs(iovs, iovs_len)
        if self.cancel_fd is None:
            nwritten = desc.write(bufs)
        else:
            nwritten = self.when_writable(desc, desc.write, bufs)
        mem.store_u32(nwritten_ptr, nwritten)

    def fd_write_accel(self) -> tuple[Any, int, type, type | None]:
        """What the accelerator's C fd_write (``_accel.c``, fast_io) takes
        from the Python one above: the table's ``get`` (the fd and rights
        check), the right it asks for, and the descriptor classes whose
        ``write`` it re-does. fd_read and fs_fd's fd_pread/fd_pwrite give
        the same for theirs."""
        return self.fds.get, _FD_WRITE, HostFile, HostStream

    def fd_read_accel(self) -> tuple[Any, int, type, type | None]:
        return self.fds.get, _FD_READ, HostFile, None

    def fd_read(self, fd: int, iovs: int, iovs_len: int, nread_ptr: int) -> None:
        desc = self.fds.get(fd, _FD_READ)
        mem = self.memory
        bufs = mem.iovecs(iovs, iovs_len)
        if self.cancel_fd is None:
            nread = desc.read(bufs)
        else:
            nread = self.when_readable(desc, desc.read, bufs)
        mem.store_u32(nread_ptr, nread)

    def fd_close(self, fd: int) -> None:
        # NOTE: closing a preopen is allowed (as wasmtime and POSIX do); the
        # number is then free and later use of it is BADF until reused. The
        # host resources go when no call uses them (``Descriptor.release``).
        self.fds.remove(fd).release()

    def fd_fdstat_get(self, fd: int, stat_ptr: int) -> None:
        desc = self.fds.get(fd)
        self.memory.pack(FDSTAT, stat_ptr, desc.filetype, desc.fdflags(),
                         desc.rights_base, desc.rights_inheriting)

    def fd_fdstat_get_accel(self) -> tuple[Any, int, type]:
        """The accelerator's C fd_fdstat_get (``_accel.c``, fast_fdstat)
        answers for a directory, whose fdflags are always 0: the table's
        ``get``, the rights it asks for (none), the class."""
        return self.fds.get, 0, HostDirectory

    def fd_fdstat_set_flags(self, fd: int, flags: int) -> None:
        desc = self.fds.get(fd, _SET_FLAGS)
        if flags & ~ALL_FDFLAGS:
            raise WasiError(Errno.INVAL)
        desc.set_fdflags(flags)

    def fd_fdstat_set_rights(self, fd: int, fs_rights_base: int, fs_rights_inheriting: int) -> None:
        desc = self.fds.get(fd)
        if (fs_rights_base | fs_rights_inheriting) & ~_ALL_RIGHTS:
            raise WasiError(Errno.INVAL)
        desc.set_rights(fs_rights_base, fs_rights_inheriting)

    def fd_renumber(self, fd: int, to: int) -> None:
        replaced = self.fds.renumber(fd, to)
        if replaced is not None:
            replaced.release()

    def fd_prestat_get(self, fd: int, buf_ptr: int) -> None:
        name = self.fds.get(fd).prestat_name()
        self.memory.pack(PRESTAT, buf_ptr, Preopentype.DIR, len(name))

    def fd_prestat_dir_name(self, fd: int, path: int, path_len: int) -> None:
        name = self.fds.get(fd).prestat_name()
        if path_len < len(name):
            # NOTE: the spec gives no errno for a short buffer; NAMETOOLONG as
            # wasmtime answers (uvwasi says NOBUFS). Nothing is written.
            raise WasiError(Errno.NAMETOOLONG)
        self.memory.write_bytes(path, name)
