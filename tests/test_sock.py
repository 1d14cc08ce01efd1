"""Sockets: sock_accept / sock_recv / sock_send / sock_shutdown on sockets
handed in with ``WASI(sockets=...)``, checked through a WAT module that
re-exports the calls; a C echo server under ``pywasi run --tcplisten``."""

from __future__ import annotations

import os
import pathlib
import re
import select
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import pywasi
from pywasi._abi import PREVIEW1, Errno, Fdflags, Filetype, Riflags, Rights, Roflags, Sdflags
from wasmbuild import build_c, build_wat

NAMES = ["sock_accept", "sock_recv", "sock_send", "sock_shutdown", "fd_read", "fd_write",
         "fd_fdstat_get", "fd_fdstat_set_flags", "fd_close", "poll_oneoff", "fd_prestat_get"]
IOV, BUF, OUT, OUT2 = 0x100, 0x1000, 0x3000, 0x3008
PEEK, WAITALL = int(Riflags.RECV_PEEK), int(Riflags.RECV_WAITALL)
TRUNCATED = int(Roflags.RECV_DATA_TRUNCATED)


def harness_wat() -> str:
    lines = ["(module"]
    for name in NAMES:
        sig = PREVIEW1[name]
        lines.append(f'  (import "wasi_snapshot_preview1" "{name}" (func ${name} '
                     f'(param {" ".join(sig.param_types)}) (result {" ".join(sig.results)})))')
        lines.append(f'  (export "{name}" (func ${name}))')
    lines.append('  (memory (export "memory") 1))')
    return "\n".join(lines)


class Guest:
    def __init__(self, **kw: Any) -> None:
        kw.setdefault("stdin", b"")
        kw.setdefault("stdout", lambda b: None)
        self.wasi = pywasi.WASI(version="preview1", **kw)
        module = pywasi.compile(build_wat(harness_wat()))
        self.instance = pywasi.instantiate(module, self.wasi.get_import_object())
        self.wasi.finalize_bindings(self.instance)
        self.mem = self.instance.exports["memory"]

    def __getattr__(self, name: str) -> Any:
        return self.instance.exports[name]

    def u32(self, ptr: int) -> int:
        return int(struct.unpack_from("<I", self.mem.buffer, ptr)[0])

    def accept(self, fd: int, flags: int = 0) -> tuple[int, int]:
        errno = self.sock_accept(fd, flags, OUT)
        return errno, self.u32(OUT) if errno == 0 else -1

    def iov(self, *lengths: int) -> int:
        base = BUF
        for i, n in enumerate(lengths):
            struct.pack_into("<II", self.mem.buffer, IOV + 8 * i, base, n)
            base += n
        return len(lengths)

    def recv(self, fd: int, *lengths: int, flags: int = 0) -> tuple[int, bytes, int]:
        n = self.iov(*lengths)
        errno = self.sock_recv(fd, IOV, n, flags, OUT, OUT2)
        if errno:
            return errno, b"", 0
        got = self.u32(OUT)
        return 0, bytes(self.mem.buffer[BUF:BUF + got]), \
            int(struct.unpack_from("<H", self.mem.buffer, OUT2)[0])

    def send(self, fd: int, data: bytes, flags: int = 0) -> tuple[int, int]:
        self.mem.buffer[BUF:BUF + len(data)] = data
        self.iov(len(data))
        errno = self.sock_send(fd, IOV, 1, flags, OUT)
        return errno, self.u32(OUT) if errno == 0 else -1


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    yield s
    s.close()


def connect(listener: socket.socket) -> socket.socket:
    return socket.create_connection(listener.getsockname(), timeout=10)


# -- sock_accept ----------------------------------------------------------------

def test_listening_socket_is_a_preopen_after_the_directories(
        listener: socket.socket, tmp_path: pathlib.Path) -> None:
    g = Guest(preopens={"/d": str(tmp_path)}, sockets=[listener])
    assert g.wasi.sockets == {4: listener.getsockname()}
    assert g.fd_prestat_get(3, OUT) == 0
    assert g.fd_prestat_get(4, OUT) == Errno.BADF  # wasi-libc's preopen scan stops here
    assert g.fd_fdstat_get(4, OUT) == 0
    filetype, _, base = struct.unpack_from("<BxHxxxxQ", g.mem.buffer, OUT)
    assert filetype == Filetype.SOCKET_STREAM
    assert base & Rights.SOCK_ACCEPT and not base & Rights.FD_WRITE


def test_accept_recv_send_shutdown(listener: socket.socket) -> None:
    g = Guest(sockets=[listener])
    client = connect(listener)
    with client:
        errno, conn = g.accept(3)
        assert (errno, conn) == (0, 4)
        assert g.fd_fdstat_get(conn, OUT) == 0
        assert struct.unpack_from("<BxH", g.mem.buffer, OUT) == (Filetype.SOCKET_STREAM, 0)
        client.sendall(b"hello")
        assert g.recv(conn, 64) == (0, b"hello", 0)
        assert g.send(conn, b"world") == (0, 5)
        assert client.recv(64) == b"world"
        assert g.sock_shutdown(conn, Sdflags.WR) == 0
        assert client.recv(64) == b""          # EOF after the guest's shutdown
        client.shutdown(socket.SHUT_WR)
        assert g.recv(conn, 64) == (0, b"", 0)  # EOF the other way
        assert g.fd_close(conn) == 0


def test_recv_peek_and_waitall(listener: socket.socket) -> None:
    g = Guest(sockets=[listener])
    with connect(listener) as client:
        _, conn = g.accept(3)
        client.sendall(b"abcdef")
        time.sleep(0.05)
        assert g.recv(conn, 3, flags=PEEK) == (0, b"abc", 0)
        assert g.recv(conn, 3, flags=PEEK) == (0, b"abc", 0)   # still there
        assert g.recv(conn, 2, 1) == (0, b"abc", 0)             # scattered over two iovecs
        # WAITALL: "def" is queued, "ghij" comes 0.1 s later; the guest gets all 7.
        threading.Timer(0.1, client.sendall, (b"ghij",)).start()
        start = time.monotonic()
        assert g.recv(conn, 7, flags=WAITALL) == (0, b"defghij", 0)
        assert time.monotonic() - start > 0.05


def test_recv_data_truncated_on_datagrams() -> None:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    with a, b:
        g = Guest(sockets=[a])
        b.send(b"0123456789")
        assert g.recv(3, 4) == (0, b"0123", TRUNCATED)
        b.send(b"xyz")
        assert g.recv(3, 4) == (0, b"xyz", 0)
        b.send(b"0123456789")
        assert g.recv(3, 4, flags=PEEK) == (0, b"0123", TRUNCATED)
        assert g.recv(3, 16) == (0, b"0123456789", 0)


def test_nonblocking_accept_and_recv(listener: socket.socket) -> None:
    g = Guest(sockets=[listener])
    assert g.fd_fdstat_set_flags(3, Fdflags.NONBLOCK) == 0
    assert g.accept(3) == (Errno.AGAIN, -1)
    with connect(listener) as client:
        deadline = time.monotonic() + 5
        while (result := g.accept(3, Fdflags.NONBLOCK))[0] == Errno.AGAIN:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        errno, conn = result
        assert errno == 0
        assert g.fd_fdstat_get(conn, OUT) == 0
        assert struct.unpack_from("<BxH", g.mem.buffer, OUT)[1] == Fdflags.NONBLOCK
        assert g.recv(conn, 16)[0] == Errno.AGAIN
        client.sendall(b"x")
        time.sleep(0.05)
        assert g.recv(conn, 16) == (0, b"x", 0)


def test_accept_flags_must_be_nonblock_only(listener: socket.socket) -> None:
    g = Guest(sockets=[listener])
    assert g.accept(3, Fdflags.APPEND)[0] == Errno.INVAL


def test_accept_blocks_until_a_client_connects(listener: socket.socket) -> None:
    g = Guest(sockets=[listener])
    clients: list[socket.socket] = []
    timer = threading.Timer(0.1, lambda: clients.append(connect(listener)))
    timer.start()
    start = time.monotonic()
    assert g.accept(3) == (0, 4)
    assert time.monotonic() - start > 0.05
    timer.join()
    clients[0].close()


def test_fd_read_and_fd_write_work_on_connections(listener: socket.socket) -> None:
    g = Guest(sockets=[listener])
    with connect(listener) as client:
        _, conn = g.accept(3)
        client.sendall(b"via fd_read")
        time.sleep(0.05)
        g.iov(64)
        assert g.fd_read(conn, IOV, 1, OUT) == 0
        assert bytes(g.mem.buffer[BUF:BUF + g.u32(OUT)]) == b"via fd_read"
        g.mem.buffer[BUF:BUF + 4] = b"back"
        g.iov(4)
        assert g.fd_write(conn, IOV, 1, OUT) == 0 and g.u32(OUT) == 4
        assert client.recv(16) == b"back"


def test_poll_on_listener_and_connection(listener: socket.socket) -> None:
    g = Guest(sockets=[listener])

    def poll(*subs: bytes) -> list[tuple[int, ...]]:
        data = b"".join(subs)
        g.mem.buffer[BUF:BUF + len(data)] = data
        assert g.poll_oneoff(BUF, OUT + 0x100, len(subs), OUT) == 0
        return [struct.unpack_from("<QHBxxxxxQH", g.mem.buffer, OUT + 0x100 + 32 * i)
                for i in range(g.u32(OUT))]

    def fd_read(ud: int, fd: int) -> bytes:
        return struct.pack("<QB7xI28x", ud, 1, fd)

    def clock(ud: int, ns: int) -> bytes:
        return struct.pack("<QB7xIIQQH6x", ud, 0, 1, 0, ns, 0, 0)

    assert poll(fd_read(1, 3), clock(2, 30_000_000)) == [(2, 0, 0, 0, 0)]
    with connect(listener) as client:
        assert poll(fd_read(1, 3), clock(2, 5_000_000_000)) == [(1, 0, 1, 0, 0)]
        _, conn = g.accept(3)
        client.sendall(b"12345")
        assert poll(fd_read(3, conn), clock(2, 5_000_000_000)) == [(3, 0, 1, 5, 0)]


# -- errors -----------------------------------------------------------------------

def test_not_a_socket_and_bad_fd(listener: socket.socket, tmp_path: pathlib.Path) -> None:
    g = Guest(preopens={"/d": str(tmp_path)}, sockets=[listener])
    for fd in (0, 1, 3):  # stdio and a directory
        assert g.sock_shutdown(fd, Sdflags.RD) == Errno.NOTSOCK
        assert g.accept(fd)[0] == Errno.NOTSOCK
        assert g.recv(fd, 4)[0] == Errno.NOTSOCK
        assert g.send(fd, b"x")[0] == Errno.NOTSOCK
    for fd in (9, 1000):
        assert g.sock_shutdown(fd, Sdflags.RD) == Errno.BADF
        assert g.accept(fd)[0] == Errno.BADF
        assert g.recv(fd, 4)[0] == Errno.BADF
        assert g.send(fd, b"x")[0] == Errno.BADF


def test_flag_errors(listener: socket.socket) -> None:
    g = Guest(sockets=[listener])
    with connect(listener):
        _, conn = g.accept(3)
        assert g.sock_shutdown(conn, 0) == Errno.INVAL
        assert g.sock_shutdown(conn, 4) == Errno.INVAL
        assert g.recv(conn, 4, flags=4)[0] == Errno.INVAL
        assert g.send(conn, b"x", flags=1)[0] == Errno.INVAL
        # A listener cannot send or receive; a connection cannot accept.
        assert g.recv(3, 4)[0] == Errno.NOTCONN
        assert g.accept(conn)[0] == Errno.NOTCAPABLE  # a connection has no SOCK_ACCEPT


def test_rights_the_guest_removes_are_enforced(listener: socket.socket) -> None:
    """Rights removed with fd_fdstat_set_rights are enforced (docs/sandbox.md):
    a connection narrowed to FD_READ cannot send. Between #28's first slice
    and its refinement this test asserted the opposite (every drop was
    advisory); a deliberate drop is the guest sandboxing itself, as uvwasi
    and the spec have it. What the host withholds is refused too: a
    connection has no SOCK_ACCEPT."""
    g = Guest(sockets=[listener])
    with connect(listener):
        _, conn = g.accept(3)
        g.wasi._fds.get(conn).set_rights(int(Rights.FD_READ), 0)
        assert g.send(conn, b"x")[0] == Errno.NOTCAPABLE
        assert g.sock_shutdown(conn, Sdflags.WR) == Errno.NOTCAPABLE
        assert g.accept(conn)[0] == Errno.NOTCAPABLE
    # Removed from the listener's inheriting rights, what it hands down is
    # narrowed too: the connection can read and not send.
    listening = g.wasi._fds.get(3)
    listening.set_rights(listening.rights_base, int(Rights.FD_READ))
    with connect(listener) as peer:
        _, conn = g.accept(3)
        assert g.wasi._fds.get(conn).rights_base == Rights.FD_READ
        assert g.send(conn, b"y")[0] == Errno.NOTCAPABLE
        peer.sendall(b"z")
        assert g.recv(conn, 1)[:2] == (Errno.SUCCESS, b"z")


def test_user_socket_is_duplicated_not_taken(listener: socket.socket) -> None:
    g = Guest(sockets=[listener])
    assert g.fd_close(3) == 0
    g.wasi.close()
    # The caller's own socket still listens.
    with connect(listener):
        conn, _ = listener.accept()
        conn.close()


def test_listen_address_strings() -> None:
    g = Guest(sockets=["127.0.0.1:0"])
    host, port = g.wasi.sockets[3]
    assert host == "127.0.0.1" and port > 0
    with socket.create_connection((host, port), timeout=10):
        assert g.accept(3) == (0, 4)
    g.wasi.close()
    with pytest.raises(ValueError):
        pywasi.WASI(version="preview1", sockets=["nonsense"])
    with pytest.raises(TypeError):
        pywasi.WASI(version="preview1", sockets="127.0.0.1:0")
    with pytest.raises(TypeError):
        pywasi.WASI(version="preview1", sockets=[3])


def test_unstable_has_no_sock_accept_but_the_rest() -> None:
    wasi = pywasi.WASI(version="unstable", sockets=["127.0.0.1:0"])
    assert "sock_accept" not in wasi.wasi_import
    assert {"sock_recv", "sock_send", "sock_shutdown"} <= set(wasi.wasi_import)
    wasi.close()


# -- a real server under the CLI ---------------------------------------------------

def _start_server(*flags: str, connections: int, fd: int = 3,
                  **popen: Any) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "pywasi", "run", *flags, str(build_c("sock_echo")),
         str(fd), str(connections)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, **popen)


def _read_port(proc: subprocess.Popen[bytes], deadline: float) -> int:
    assert proc.stderr is not None
    line = b""
    while not line.endswith(b"\n"):
        ready, _, _ = select.select([proc.stderr], [], [], max(0, deadline - time.monotonic()))
        assert ready, "the server did not report its address in time"
        byte = os.read(proc.stderr.fileno(), 1)
        assert byte, "the server exited before reporting its address"
        line += byte
    match = re.fullmatch(rb"pywasi: fd 3 listening on 127\.0\.0\.1:(\d+)\n", line)
    assert match, line
    return int(match.group(1))


def _echo(port: int, payload: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=20) as client:
        client.sendall(payload)
        client.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := client.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_c_echo_server_under_tcplisten() -> None:
    proc = _start_server("--tcplisten", "127.0.0.1:0", connections=2)
    try:
        port = _read_port(proc, time.monotonic() + 60)
        assert _echo(port, b"ping\n") == b"ping\n"
        big = os.urandom(300_000)
        assert _echo(port, big) == big
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 0, err
    assert out.decode().splitlines() == ["accepted 4", "echoed 5", "accepted 4",
                                         "echoed 300000", "done"]


def test_c_echo_server_under_listenfd(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    env = {**os.environ, "LISTEN_FDS": "1"}
    env.pop("LISTEN_PID", None)
    # The child gets the socket as its fd 3, as systemd hands it over.
    # (close_fds=False: Python closes fds past stdio after preexec_fn runs;
    # every other fd of ours is close-on-exec anyway.)
    proc = _start_server("--listenfd", connections=1, env=env, close_fds=False,
                         preexec_fn=lambda: os.dup2(listener.fileno(), 3))
    try:
        assert _echo(port, b"inherited") == b"inherited"
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 0, err
    assert out.decode().splitlines() == ["accepted 4", "echoed 9", "done"]


def test_cli_tcplisten_usage_errors() -> None:
    proc = subprocess.run([sys.executable, "-m", "pywasi", "run", "--tcplisten", "nope",
                           str(build_c("sock_echo"))], capture_output=True, timeout=60)
    assert proc.returncode == 2
    assert b"--tcplisten" in proc.stderr and b"Traceback" not in proc.stderr
