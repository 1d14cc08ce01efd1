"""Host directory descriptors (preopens and directories the guest opens).

``fd_readdir`` cookies: a cookie is an index into the listing cached on the
descriptor (entry ``i`` has ``d_next == i + 1``; ``.`` and ``..`` are 0 and
1). The host directory is read once, when the guest asks for cookie 0 (a
rewind, as ``rewinddir`` does) or for the first time; every other cookie is
served from the cache. So cookies are stable -- resuming from any cookie
previously returned gives the same continuation -- and a full listing through
a small buffer costs one host read, not one per call. Entries created or
removed after the read show up at the next rewind.
"""

from __future__ import annotations

import os
import stat
import sys

from .._abi import DIRENT, Filetype, Rights
from ._base import Descriptor
from ._stat import filestat_values, set_times_fd
from ._stream import fdatasync, filetype_of_mode

__all__ = ["HostDirectory", "DIR_RIGHTS", "DIR_INHERITING"]

# What a directory can be asked to do, and what it can hand down to what is
# opened through it (files get the file rights, subdirectories both sets).
DIR_RIGHTS = int(
    Rights.FD_FDSTAT_SET_FLAGS | Rights.FD_SYNC | Rights.FD_ADVISE | Rights.FD_DATASYNC
    | Rights.PATH_CREATE_DIRECTORY | Rights.PATH_CREATE_FILE | Rights.PATH_LINK_SOURCE
    | Rights.PATH_LINK_TARGET | Rights.PATH_OPEN | Rights.FD_READDIR | Rights.PATH_READLINK
    | Rights.PATH_RENAME_SOURCE | Rights.PATH_RENAME_TARGET | Rights.PATH_FILESTAT_GET
    | Rights.PATH_FILESTAT_SET_SIZE | Rights.PATH_FILESTAT_SET_TIMES | Rights.FD_FILESTAT_GET
    | Rights.FD_FILESTAT_SET_TIMES | Rights.PATH_SYMLINK | Rights.PATH_REMOVE_DIRECTORY
    | Rights.PATH_UNLINK_FILE | Rights.POLL_FD_READWRITE)
FILE_RIGHTS = int(
    Rights.FD_DATASYNC | Rights.FD_READ | Rights.FD_SEEK | Rights.FD_FDSTAT_SET_FLAGS
    | Rights.FD_SYNC | Rights.FD_TELL | Rights.FD_WRITE | Rights.FD_ADVISE | Rights.FD_ALLOCATE
    | Rights.FD_FILESTAT_GET | Rights.FD_FILESTAT_SET_SIZE | Rights.FD_FILESTAT_SET_TIMES
    | Rights.POLL_FD_READWRITE)
DIR_INHERITING = DIR_RIGHTS | FILE_RIGHTS

# os.fsencode's encoding, without its frames per entry of a large listing.
_FS_ENCODING = sys.getfilesystemencoding()
_FS_ERRORS = sys.getfilesystemencodeerrors()


class HostDirectory(Descriptor):
    """A directory on the host, held open by fd; every path operation on it
    goes through ``_fs._resolve`` relative to ``fd``."""

    __slots__ = ("fd", "preopen", "readonly", "_listing")

    def __init__(self, fd: int, *, preopen: bytes | None = None,
                 rights_base: int = DIR_RIGHTS, rights_inheriting: int = DIR_INHERITING) -> None:
        self.fd = fd
        self.preopen = preopen
        self.filetype = Filetype.DIRECTORY
        self.rights_base = rights_base
        self.rights_inheriting = rights_inheriting
        # (name, d_ino, d_type) per entry, "." and ".." first; None: not read.
        self._listing: list[tuple[bytes, int, int]] | None = None

    def prestat_name(self) -> bytes:
        if self.preopen is None:
            return super().prestat_name()
        return self.preopen

    # -- metadata --------------------------------------------------------
    def filestat(self) -> tuple[int, ...]:
        return filestat_values(os.fstat(self.fd), Filetype.DIRECTORY)

    def set_times(self, atim: int, mtim: int, fst_flags: int) -> None:
        set_times_fd(self.fd, atim, mtim, fst_flags)

    def sync(self) -> None:
        os.fsync(self.fd)  # makes the entries themselves durable

    def datasync(self) -> None:
        fdatasync(self.fd)

    # -- listing ---------------------------------------------------------
    def _read_listing(self) -> list[tuple[bytes, int, int]]:
        own = os.fstat(self.fd).st_ino
        # ".." of a preopen is outside the sandbox: give it the root's own
        # inode rather than reveal (or touch) the host's parent. Any nonzero
        # d_ino will do: wasi-libc's readdir stats the name when d_ino is 0,
        # and ".." at the root would be refused.
        parent = own
        if self.preopen is None:
            try:
                parent = os.stat("..", dir_fd=self.fd, follow_symlinks=False).st_ino
            except OSError:
                pass
        entries: list[tuple[bytes, int, int]] = [
            (b".", own, Filetype.DIRECTORY), (b"..", parent, Filetype.DIRECTORY)]
        # os.scandir(fd) reads a dup of the fd from its start; the d_type the
        # kernel reports answers is_dir/is_symlink without an lstat.
        with os.scandir(self.fd) as it:
            for entry in it:
                entries.append((entry.name.encode(_FS_ENCODING, _FS_ERRORS), entry.inode(),
                                _dirent_type(entry)))
        return entries

    def readdir(self, cookie: int, limit: int, ordered: bool = False) -> bytes:
        if cookie == 0 or self._listing is None:
            self._listing = self._read_listing()
            if ordered:
                self._listing[2:] = sorted(self._listing[2:])
        listing = self._listing
        out = bytearray()
        pack = DIRENT.struct.pack
        index = cookie
        while index < len(listing) and len(out) < limit:
            name, ino, dtype = listing[index]
            index += 1
            out += pack(index, ino, len(name), dtype)
            out += name
        # The spec: "If the buffer is not large enough to fit all entries,
        # the last entry is truncated" -- as many bytes as fit, so that
        # bufused == buf_len tells the guest there may be more.
        del out[limit:]
        return bytes(out)

    def close(self) -> None:
        self._listing = None
        os.close(self.fd)


def _dirent_type(entry: os.DirEntry[str]) -> int:
    try:
        # The kinds exclude each other; the commonest is asked first.
        if entry.is_file(follow_symlinks=False):
            return Filetype.REGULAR_FILE
        if entry.is_dir(follow_symlinks=False):
            return Filetype.DIRECTORY
        if entry.is_symlink():
            return Filetype.SYMBOLIC_LINK
        # A device, FIFO or socket: only these cost an lstat.
        mode = entry.stat(follow_symlinks=False).st_mode
    except OSError:  # removed since the read
        return Filetype.UNKNOWN
    if stat.S_ISFIFO(mode):
        return Filetype.UNKNOWN
    return filetype_of_mode(mode)
