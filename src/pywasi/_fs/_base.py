"""The descriptor base class: one object per open WASI descriptor.

The base answers every operation with an error; each kind of descriptor
(host stream, host file, host directory, Python reader/writer, ...) overrides
what it supports. Rights were already checked by ``FdTable.get`` before any
of these methods run, so a method only needs to care about what the *kind*
of descriptor can do.
"""

from __future__ import annotations

from .._abi import Errno, Filetype
from .._errors import WasiError

__all__ = ["Descriptor"]


class Descriptor:
    """Fields every descriptor has; subclasses set them in ``__init__``."""

    filetype: int = Filetype.UNKNOWN
    rights_base: int = 0
    rights_inheriting: int = 0

    # -- fdstat ----------------------------------------------------------
    def fdflags(self) -> int:
        return 0

    def set_fdflags(self, flags: int) -> None:
        raise WasiError(Errno.NOTSUP)

    def set_rights(self, base: int, inheriting: int) -> None:
        """Rights only narrow (spec: fd_fdstat_set_rights "can only remove")."""
        if base & ~self.rights_base or inheriting & ~self.rights_inheriting:
            raise WasiError(Errno.NOTCAPABLE)
        self.rights_base = base
        self.rights_inheriting = inheriting

    # -- data ------------------------------------------------------------
    def read(self, bufs: list[memoryview]) -> int:
        raise WasiError(Errno.BADF)

    def write(self, bufs: list[memoryview]) -> int:
        raise WasiError(Errno.BADF)

    # -- lifetime --------------------------------------------------------
    def close(self) -> None:
        """Release host resources. Called once, when the guest closes the fd
        or the WASI object is closed."""

    # -- preopens --------------------------------------------------------
    def prestat_name(self) -> bytes:
        """The guest path of a preopened directory; BADF for anything else
        (wasi-libc stops its preopen scan at the first BADF)."""
        raise WasiError(Errno.BADF)
