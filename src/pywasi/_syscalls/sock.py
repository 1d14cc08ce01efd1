"""sock_accept, sock_recv, sock_send, sock_shutdown on the sockets the host
handed in (``_fs/_socket.py``).

Order of checks, the same in every call: an fd that is not open is BADF; an
open fd that is not a socket is NOTSOCK (before rights: a file has no
SOCK_SHUTDOWN right, but what the guest needs to hear is that it is not a
socket); then the right the spec names (``FdTable.get``); then the flags
(an unknown bit is INVAL). Outputs are written only on success.
"""

from __future__ import annotations

from .._abi import Errno, Fdflags, Riflags, Rights, Sdflags
from .._errors import WasiError
from .._fs._base import Descriptor
from ._context import Context

# Annotation-only names: mypy takes any TYPE_CHECKING as true, and run time
# never imports typing (nor the re it pulls in: start-up, tests/test_import_cost.py).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from .._fs._socket import SocketDescriptor

__all__ = ["SockCalls"]

_ACCEPT = int(Rights.SOCK_ACCEPT)
_RECV = int(Rights.FD_READ)      # spec: FD_READ is "the right to invoke fd_read and sock_recv"
_SEND = int(Rights.FD_WRITE)
_SHUTDOWN = int(Rights.SOCK_SHUTDOWN)
_RIFLAGS = int(Riflags.RECV_PEEK | Riflags.RECV_WAITALL)
_SDFLAGS = int(Sdflags.RD | Sdflags.WR)
_NONBLOCK = int(Fdflags.NONBLOCK)


class SockCalls(Context):
    def _socket(self, fd: int, needed: int) -> SocketDescriptor:
        desc: Descriptor = self.fds.get(fd)
        # Imported here, not at start-up: _fs._socket imports socket and
        # selectors (~2 ms), which only a program given sockets needs.
        from .._fs._socket import SocketDescriptor
        if not isinstance(desc, SocketDescriptor):
            raise WasiError(Errno.NOTSOCK)
        self.fds.get(fd, needed)
        return desc

    def sock_accept(self, fd: int, flags: int, fd_ptr: int) -> None:
        listener = self._socket(fd, _ACCEPT)
        # NOTE: only NONBLOCK means something for a new connection; any other
        # fdflags bit is INVAL, as wasmtime answers.
        if flags & ~_NONBLOCK:
            raise WasiError(Errno.INVAL)
        self.memory.load_u32(fd_ptr)  # a bad pointer traps before a connection is taken
        conn = self.when_readable(listener, listener.accept, bool(flags & _NONBLOCK))
        try:
            new_fd = self.fds.allocate(conn)
        except BaseException:
            conn.close()
            raise
        self.memory.store_u32(fd_ptr, new_fd)

    def sock_recv(self, fd: int, ri_data: int, ri_data_len: int, ri_flags: int,
                  ro_datalen_ptr: int, ro_flags_ptr: int) -> None:
        desc = self._socket(fd, _RECV)
        if ri_flags & ~_RIFLAGS:
            raise WasiError(Errno.INVAL)
        mem = self.memory
        bufs = mem.iovecs(ri_data, ri_data_len)
        mem.load_u32(ro_datalen_ptr)
        mem.slice(ro_flags_ptr, 2)
        n, ro_flags = self.when_readable(desc, desc.recv, bufs, ri_flags)
        mem.store_u32(ro_datalen_ptr, n)
        mem.store_u16(ro_flags_ptr, ro_flags)

    def sock_send(self, fd: int, si_data: int, si_data_len: int, si_flags: int,
                  so_datalen_ptr: int) -> None:
        desc = self._socket(fd, _SEND)
        if si_flags:
            # Spec: siflags has no flags defined; "it must be set to zero".
            raise WasiError(Errno.INVAL)
        mem = self.memory
        bufs = mem.iovecs(si_data, si_data_len)
        mem.load_u32(so_datalen_ptr)
        mem.store_u32(so_datalen_ptr, self.when_writable(desc, desc.send, bufs))

    def sock_shutdown(self, fd: int, how: int) -> None:
        desc = self._socket(fd, _SHUTDOWN)
        if not how or how & ~_SDFLAGS:
            raise WasiError(Errno.INVAL)
        desc.shutdown(how)
