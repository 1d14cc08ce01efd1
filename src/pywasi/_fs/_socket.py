"""Socket descriptors: the listening sockets handed to the guest as preopens
(``WASI(sockets=...)``, ``pywasi run --tcplisten/--listenfd``) and the
connections it accepts from them.

One class per kind: ``ListeningSocket`` can only ``accept`` (and be polled
for a pending connection); ``StreamSocket`` (an accepted connection, or a
connected socket handed in by the user) reads, writes, receives, sends and
shuts down. Every other descriptor answers the sock_* calls with NOTSOCK
(``Descriptor``'s defaults, checked in ``_syscalls/sock.py``).

Blocking: the host socket is in blocking mode unless the guest asked for
NONBLOCK (``sock_accept``'s flags, ``fd_fdstat_set_flags``); then the host
call fails with EAGAIN, which the dispatcher maps to AGAIN. There is no
Python-level timeout on any socket.

Ownership: a socket the user passes in is duplicated (``socket.dup``), so the
guest closing its fd never closes the user's object; pywasi closes its
duplicates and the sockets it created itself.
"""

from __future__ import annotations

import os
import socket

from .._abi import Errno, Fdflags, Filetype, Riflags, Rights, Roflags, Sdflags
from .._errors import WasiError
from ._base import Descriptor
from ._stream import host_ready_nbytes

__all__ = ["SocketDescriptor", "ListeningSocket", "StreamSocket", "socket_descriptor", "listen_on",
           "CONNECTION_RIGHTS", "LISTENER_RIGHTS"]

# A connection: data both ways, polling, shutdown, its flags and its stat.
CONNECTION_RIGHTS = int(
    Rights.FD_READ | Rights.FD_WRITE | Rights.POLL_FD_READWRITE | Rights.SOCK_SHUTDOWN
    | Rights.FD_FDSTAT_SET_FLAGS | Rights.FD_FILESTAT_GET)
# A listener: accept, and poll for a pending connection (a fd_read
# subscription needs FD_READ with POLL_FD_READWRITE, spec rights).
LISTENER_RIGHTS = int(
    Rights.SOCK_ACCEPT | Rights.FD_READ | Rights.POLL_FD_READWRITE | Rights.SOCK_SHUTDOWN
    | Rights.FD_FDSTAT_SET_FLAGS | Rights.FD_FILESTAT_GET)

_PEEK = int(Riflags.RECV_PEEK)
_WAITALL = int(Riflags.RECV_WAITALL)
_SHUT = {int(Sdflags.RD): socket.SHUT_RD, int(Sdflags.WR): socket.SHUT_WR,
         int(Sdflags.RD | Sdflags.WR): socket.SHUT_RDWR}


class SocketDescriptor(Descriptor):
    """What every socket kind has; the sock_* calls accept only these.
    An operation the kind cannot do answers as Linux would on that socket."""

    __slots__ = ("sock",)

    def __init__(self, sock: socket.socket, rights_base: int, rights_inheriting: int) -> None:
        self.sock = sock
        self.filetype = (Filetype.SOCKET_DGRAM if sock.type == socket.SOCK_DGRAM
                         else Filetype.SOCKET_STREAM)
        self.rights_base = rights_base
        self.rights_inheriting = rights_inheriting

    def fdflags(self) -> int:
        return 0 if self.sock.getblocking() else int(Fdflags.NONBLOCK)

    def set_fdflags(self, flags: int) -> None:
        if flags & ~Fdflags.NONBLOCK:
            raise WasiError(Errno.NOTSUP)  # APPEND and the sync flags mean nothing here
        self.sock.setblocking(not flags & Fdflags.NONBLOCK)

    def filestat(self) -> tuple[int, ...]:
        from ._stat import filestat_values
        return filestat_values(os.fstat(self.sock.fileno()), self.filetype)

    def poll_fileno(self) -> int | None:
        return self.sock.fileno()

    def ready_nbytes(self, writing: bool) -> int:
        return host_ready_nbytes(self.sock.fileno(), writing)

    def accept(self, nonblock: bool) -> StreamSocket:
        raise WasiError(Errno.INVAL)      # accept(2) on a socket not listening

    def recv(self, bufs: list[memoryview], ri_flags: int) -> tuple[int, int]:
        raise WasiError(Errno.NOTCONN)    # recv(2) on a listening socket

    def send(self, bufs: list[memoryview]) -> int:
        raise WasiError(Errno.NOTCONN)

    def shutdown(self, how: int) -> None:
        self.sock.shutdown(_SHUT[how])

    def close(self) -> None:
        self.sock.close()


class ListeningSocket(SocketDescriptor):
    """A bound, listening socket; ``accept`` gives ``StreamSocket``s."""

    def __init__(self, sock: socket.socket) -> None:
        super().__init__(sock, LISTENER_RIGHTS, CONNECTION_RIGHTS)

    def accept(self, nonblock: bool) -> StreamSocket:
        conn, _ = self.sock.accept()
        # accept(2) does not pass O_NONBLOCK on to the new socket on Linux;
        # Python's accept() sets the connection blocking either way.
        conn.setblocking(not nonblock)
        # The connection gets what this socket hands down: the host's grant,
        # less what the guest removed with fd_fdstat_set_rights, which is
        # enforced (_fdtable). Only path_open makes a grant wider than the
        # rights shown, so a listener's shown inheriting rights are its grant.
        return StreamSocket(conn, self.rights_inheriting)


class StreamSocket(SocketDescriptor):
    """A connected socket (stream, or a datagram socket the user handed in)."""

    def __init__(self, sock: socket.socket, rights: int = CONNECTION_RIGHTS) -> None:
        super().__init__(sock, rights, 0)

    def read(self, bufs: list[memoryview]) -> int:
        return self.sock.recvmsg_into(bufs)[0]

    def write(self, bufs: list[memoryview]) -> int:
        return self.sock.sendmsg(bufs)

    def recv(self, bufs: list[memoryview], ri_flags: int) -> tuple[int, int]:
        """(bytes received, roflags). RECV_DATA_TRUNCATED is the host's
        MSG_TRUNC: a datagram longer than the buffers (a stream never is)."""
        flags = 0
        if ri_flags & _PEEK:
            flags |= socket.MSG_PEEK
        if ri_flags & _WAITALL:
            flags |= socket.MSG_WAITALL
        if self.filetype == Filetype.SOCKET_DGRAM:
            # Linux reports a datagram's full length with MSG_TRUNC in the
            # flags *argument*; the returned count is then what was copied.
            flags |= socket.MSG_TRUNC
        n, _, msg_flags, _ = self.sock.recvmsg_into(bufs, 0, flags)
        capacity = sum(len(b) for b in bufs)
        truncated = bool(msg_flags & socket.MSG_TRUNC) or n > capacity
        return min(n, capacity), int(Roflags.RECV_DATA_TRUNCATED) if truncated else 0

    def send(self, bufs: list[memoryview]) -> int:
        return self.sock.sendmsg(bufs)

    def write_nowait(self, bufs: list[memoryview]) -> int:
        # MSG_DONTWAIT: this call only, whatever the socket's own mode
        # (which the guest's fdflags show) and on every kernel.
        return self.sock.sendmsg(bufs, (), socket.MSG_DONTWAIT)


def socket_descriptor(sock: socket.socket) -> ListeningSocket | StreamSocket:
    """The descriptor for a user's socket object (duplicated, see above)."""
    if not isinstance(sock, socket.socket):
        raise TypeError(f"sockets: expected a socket.socket or 'HOST:PORT', "
                        f"not {type(sock).__name__}")
    if sock.family not in (socket.AF_INET, socket.AF_INET6, socket.AF_UNIX):
        raise ValueError(f"sockets: unsupported address family {sock.family!r}")
    dup = sock.dup()
    dup.settimeout(None)
    try:
        listening = dup.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
    except OSError:
        listening = 0
    return ListeningSocket(dup) if listening else StreamSocket(dup)


def listen_on(address: str, backlog: int = 128) -> socket.socket:
    """A TCP socket bound to ``HOST:PORT`` (``[V6]:PORT`` for IPv6) and
    listening. Port 0 asks the system for a free port."""
    if not isinstance(address, str):
        raise TypeError(f"sockets: expected 'HOST:PORT', not {type(address).__name__}")
    host, sep, port_text = address.rpartition(":")
    if not sep or not host or not port_text.isdigit() or int(port_text) > 65535:
        raise ValueError(f"sockets: {address!r} is not HOST:PORT")
    family = socket.AF_INET
    if host.startswith("[") and host.endswith("]"):
        host, family = host[1:-1], socket.AF_INET6
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, int(port_text)))
        sock.listen(backlog)
    except OSError as e:
        sock.close()
        raise OSError(e.errno, f"cannot listen on {address}: {e.strerror}") from None
    return sock
