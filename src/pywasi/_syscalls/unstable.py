"""wasi_unstable (snapshot 0) conversions that belong to no one group.

The snapshot-0 ABI differs from preview1 in four places
(legacy/preview0/witx/typenames.witx against legacy/preview1/witx), and each
is converted at the boundary by a ``<name>_unstable`` method sharing the
preview1 implementation:

- ``whence`` is CUR=0, END=1, SET=2: ``fd_seek_unstable`` (fs_fd.py);
- ``linkcount`` is u32, so ``filestat`` is 56 bytes:
  ``fd_filestat_get_unstable`` (fs_fd.py), ``path_filestat_get_unstable``
  (path.py);
- ``subscription_clock`` starts with an ``identifier``, so a subscription is
  56 bytes: ``poll_oneoff_unstable`` (poll.py);
- ``rights`` has no ``sock_accept`` bit (29), and there is no
  ``sock_accept`` function (``_abi._signatures``): here.

Everything else (errno, filetype, fdflags, oflags, dirent, fdstat, prestat,
event, the signals, riflags/roflags/sdflags, every function's parameters) is
the same in both, checked against the witx.
"""

from __future__ import annotations

from .._abi import FDSTAT, Errno, Rights
from .._errors import WasiError
from ._context import Context

__all__ = ["UnstableCalls"]

# Snapshot 0's rights: bits 0 (fd_datasync) to 28 (sock_shutdown).
_RIGHTS_UNSTABLE = int(Rights.SOCK_ACCEPT) - 1


class UnstableCalls(Context):
    def fd_fdstat_get_unstable(self, fd: int, stat_ptr: int) -> None:
        # A right the guest's ABI has no name for is not reported.
        desc = self.fds.get(fd)
        self.memory.pack(FDSTAT, stat_ptr, desc.filetype, desc.fdflags(),
                         desc.rights_base & _RIGHTS_UNSTABLE,
                         desc.rights_inheriting & _RIGHTS_UNSTABLE)

    def fd_fdstat_set_rights_unstable(self, fd: int, fs_rights_base: int,
                                      fs_rights_inheriting: int) -> None:
        if (fs_rights_base | fs_rights_inheriting) & ~_RIGHTS_UNSTABLE:
            raise WasiError(Errno.INVAL)  # a flag bit snapshot 0 does not define
        desc = self.fds.get(fd)
        # Rights snapshot 0 cannot name are kept: the guest cannot ask to drop
        # what it cannot see, and dropping them silently would change nothing
        # it can observe either.
        hidden = ~_RIGHTS_UNSTABLE
        desc.set_rights(fs_rights_base | (desc.rights_base & hidden),
                        fs_rights_inheriting | (desc.rights_inheriting & hidden))
