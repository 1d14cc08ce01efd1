"""Host directory descriptors (preopens and directories the guest opens)."""

from __future__ import annotations

import os

from .._abi import Filetype, Rights
from ._base import Descriptor

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


class HostDirectory(Descriptor):
    """A directory on the host, held open by fd; every path operation on it
    goes through ``_fs._resolve`` relative to ``fd``."""

    __slots__ = ("fd", "preopen", "readonly")

    def __init__(self, fd: int, *, preopen: bytes | None = None,
                 rights_base: int = DIR_RIGHTS, rights_inheriting: int = DIR_INHERITING) -> None:
        self.fd = fd
        self.preopen = preopen
        self.filetype = Filetype.DIRECTORY
        self.rights_base = rights_base
        self.rights_inheriting = rights_inheriting

    def prestat_name(self) -> bytes:
        if self.preopen is None:
            return super().prestat_name()
        return self.preopen

    def close(self) -> None:
        os.close(self.fd)
