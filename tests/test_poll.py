"""poll_oneoff: clocks (every id, relative and absolute), descriptors of every
kind, per-subscription errors, exact event bytes; real C programs that sleep
and that read stdin with a timeout."""

from __future__ import annotations

import os
import pathlib
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import pywasi
from pywasi._abi import (
    EVENT, SUBSCRIPTION_CLOCK, SUBSCRIPTION_FD_READWRITE, Clockid, Errno,
    Eventrwflags, Eventtype, Subclockflags,
)
from helpers import fill_pipe
from wasmbuild import build_c, build_wat

ABSTIME = int(Subclockflags.SUBSCRIPTION_CLOCK_ABSTIME)
HANGUP = int(Eventrwflags.FD_READWRITE_HANGUP)
IN, OUT, NEVENTS = 0x1000, 0x4000, 0x8000
MS = 1_000_000

HARNESS = """
(module
  (import "{ns}" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "poll") (param i32 i32 i32 i32) (result i32)
    local.get 0 local.get 1 local.get 2 local.get 3 call $poll))
"""


class Harness:
    """A WAT module that re-exports poll_oneoff; subscriptions are written
    into its memory from Python, events read back as bytes."""

    def __init__(self, wasi: pywasi.WASI) -> None:
        self.wasi = wasi
        module = pywasi.compile(build_wat(HARNESS.format(ns=wasi.namespace)))
        self.instance = pywasi.instantiate(module, wasi.get_import_object())
        wasi.finalize_bindings(self.instance)
        self.mem = self.instance.exports["memory"]

    def put(self, subs: list[bytes]) -> None:
        buf = self.mem.buffer
        data = b"".join(subs)
        buf[IN:IN + len(data)] = data
        buf[OUT:OUT + 32 * len(subs)] = b"\xee" * 32 * len(subs)
        buf[NEVENTS:NEVENTS + 4] = b"\xee" * 4

    def poll(self, subs: list[bytes], n: int | None = None) -> tuple[int, list[bytes]]:
        self.put(subs)
        errno = self.instance.exports["poll"](IN, OUT, len(subs) if n is None else n, NEVENTS)
        buf = self.mem.buffer
        if errno:
            return errno, []
        nevents = struct.unpack_from("<I", buf, NEVENTS)[0]
        return 0, [bytes(buf[OUT + 32 * i:OUT + 32 * (i + 1)]) for i in range(nevents)]


def clock(userdata: int, timeout: int, *, id: int = Clockid.MONOTONIC, flags: int = 0,
          precision: int = 0) -> bytes:
    buf = bytearray(48)
    SUBSCRIPTION_CLOCK.struct.pack_into(buf, 0, userdata, Eventtype.CLOCK, id, timeout,
                                        precision, flags)
    return bytes(buf)


def fdsub(userdata: int, fd: int, *, write: bool = False) -> bytes:
    buf = bytearray(48)
    SUBSCRIPTION_FD_READWRITE.struct.pack_into(
        buf, 0, userdata, Eventtype.FD_WRITE if write else Eventtype.FD_READ, fd)
    return bytes(buf)


def event(userdata: int, type: int, error: int = 0, nbytes: int = 0, flags: int = 0) -> bytes:
    return EVENT.struct.pack(userdata, error, type, nbytes, flags)


@pytest.fixture
def pipe() -> Iterator[tuple[int, int]]:
    r, w = os.pipe()
    yield r, w
    os.close(r)  # never closed by the tests: a number closed twice may be someone else's
    os.close(w)


def make(tmp_path: pathlib.Path | None = None, **kw: Any) -> Harness:
    kw.setdefault("stdin", b"")
    kw.setdefault("stdout", lambda b: None)
    kw.setdefault("stderr", lambda b: None)
    return Harness(pywasi.WASI(version="preview1", **kw))


# -- the call's own errors ----------------------------------------------------

def test_zero_subscriptions_is_inval_and_writes_nothing() -> None:
    h = make()
    errno, _ = h.poll([clock(1, 0)], n=0)
    assert errno == Errno.INVAL
    assert bytes(h.mem.buffer[NEVENTS:NEVENTS + 4]) == b"\xee" * 4


def test_unknown_tag_is_inval() -> None:
    bad = bytearray(clock(1, 0))
    bad[8] = 3
    h = make()
    assert h.poll([clock(2, 0), bytes(bad)])[0] == Errno.INVAL
    assert bytes(h.mem.buffer[OUT:OUT + 32]) == b"\xee" * 32


@pytest.mark.parametrize("sub", [clock(1, 0, id=4), clock(1, 0, flags=2)],
                         ids=["clock id 4", "subclockflags bit 1"])
def test_undecodable_clock_is_inval(sub: bytes) -> None:
    assert make().poll([sub])[0] == Errno.INVAL


def test_bad_pointers_trap() -> None:
    h = make()
    ex = h.instance.exports["poll"]
    h.put([clock(1, 0)])
    with pytest.raises(pywasi.Trap, match="poll_oneoff"):
        ex(IN, 65536 - 16, 1, NEVENTS)           # events past the end
    with pytest.raises(pywasi.Trap, match="poll_oneoff"):
        ex(65536 - 48, OUT, 2, NEVENTS)          # subscriptions past the end
    with pytest.raises(pywasi.Trap, match="poll_oneoff"):
        ex(IN + 4, OUT, 1, NEVENTS)              # misaligned
    start = time.monotonic()
    with pytest.raises(pywasi.Trap):
        # A 10 s clock with a bad event array traps before waiting.
        h.put([clock(1, 10_000 * MS)])
        ex(IN, 0xFFFFFF00, 1, NEVENTS)
    assert time.monotonic() - start < 2


# -- clocks ---------------------------------------------------------------------

def test_clock_event_bytes() -> None:
    errno, events = make().poll([clock(0x1122334455667788, 0)])
    assert errno == 0
    assert events == [bytes.fromhex("8877665544332211" "0000" "00" "0000000000"
                                    "0000000000000000" "0000" "000000000000")]


@pytest.mark.parametrize("id", [Clockid.REALTIME, Clockid.MONOTONIC])
def test_relative_clock_waits(id: int) -> None:
    start = time.monotonic_ns()
    errno, events = make().poll([clock(7, 60 * MS, id=id)])
    elapsed = time.monotonic_ns() - start
    assert (errno, events) == (0, [event(7, Eventtype.CLOCK)])
    assert 60 * MS <= elapsed < 2000 * MS


def test_absolute_monotonic_and_realtime() -> None:
    h = make()
    start = time.monotonic_ns()
    errno, events = h.poll([clock(1, time.monotonic_ns() + 50 * MS, flags=ABSTIME)])
    assert (errno, events) == (0, [event(1, Eventtype.CLOCK)])
    assert time.monotonic_ns() - start >= 50 * MS
    start = time.monotonic_ns()
    errno, events = h.poll([clock(2, time.time_ns() + 50 * MS, id=Clockid.REALTIME,
                                  flags=ABSTIME)])
    assert (errno, events) == (0, [event(2, Eventtype.CLOCK)])
    assert 45 * MS <= time.monotonic_ns() - start < 2000 * MS
    # A deadline in the past fires at once.
    start = time.monotonic_ns()
    assert h.poll([clock(3, 1, flags=ABSTIME)]) == (0, [event(3, Eventtype.CLOCK)])
    assert h.poll([clock(4, 1, id=Clockid.REALTIME, flags=ABSTIME)]) == \
        (0, [event(4, Eventtype.CLOCK)])
    assert time.monotonic_ns() - start < 500 * MS


@pytest.mark.parametrize("id", [Clockid.PROCESS_CPUTIME_ID, Clockid.THREAD_CPUTIME_ID])
def test_cpu_clocks(id: int) -> None:
    h = make()
    # Reached deadlines fire; unreachable ones (waiting uses no CPU) are NOTSUP events.
    assert h.poll([clock(1, 0, id=id)]) == (0, [event(1, Eventtype.CLOCK)])
    assert h.poll([clock(2, 1, id=id, flags=ABSTIME)]) == (0, [event(2, Eventtype.CLOCK)])
    start = time.monotonic()
    assert h.poll([clock(3, 10**12, id=id)]) == \
        (0, [event(3, Eventtype.CLOCK, error=Errno.NOTSUP)])
    assert time.monotonic() - start < 1


def test_earliest_clock_wins_and_only_it_is_reported() -> None:
    errno, events = make().poll([clock(1, 5000 * MS), clock(2, 30 * MS), clock(3, 4000 * MS)])
    assert (errno, events) == (0, [event(2, Eventtype.CLOCK)])


def test_huge_timeout_with_ready_fd_returns() -> None:
    h = make()
    errno, events = h.poll([clock(1, 2**64 - 1), fdsub(2, 1, write=True)])
    assert (errno, events) == (0, [event(2, Eventtype.FD_WRITE)])


def test_precision_bounds_lateness() -> None:
    # A 3 ms sleep with precision 0 (the tightest): not early, and late by
    # far less than a poll() rounded to milliseconds several times over.
    h = make()
    late = []
    for _ in range(5):
        start = time.monotonic_ns()
        h.poll([clock(1, 3 * MS + 300_000, precision=0)])
        late.append(time.monotonic_ns() - start - (3 * MS + 300_000))
    assert min(late) >= 0
    assert sorted(late)[2] < 5 * MS  # the median; generous for loaded CI


def test_waiting_is_not_a_busy_loop(pipe: tuple[int, int]) -> None:
    r, _ = pipe
    h = make(stdin=r)
    cpu = time.process_time()
    h.poll([clock(1, 300 * MS), fdsub(2, 0)])
    assert time.process_time() - cpu < 0.1


# -- descriptors -------------------------------------------------------------------

def test_per_subscription_errors_are_events(tmp_path: pathlib.Path) -> None:
    h = make(preopens={"/d": str(tmp_path)})
    errno, events = h.poll([fdsub(1, 99), fdsub(2, 3), fdsub(3, 3, write=True),
                            fdsub(4, 0, write=True), fdsub(5, 1), clock(6, 5000 * MS)])
    assert errno == 0
    assert events == [
        event(1, Eventtype.FD_READ, error=Errno.BADF),
        event(2, Eventtype.FD_READ, error=Errno.NOTCAPABLE),   # a directory: no FD_READ
        event(3, Eventtype.FD_WRITE, error=Errno.NOTCAPABLE),
        event(4, Eventtype.FD_WRITE, error=Errno.NOTCAPABLE),  # stdin is not writable
        event(5, Eventtype.FD_READ, error=Errno.NOTCAPABLE),   # stdout is not readable
    ]


def test_python_reader_and_writer_are_ready() -> None:
    h = make(stdin=b"abc", stdout=lambda b: None)
    errno, events = h.poll([fdsub(1, 0), fdsub(2, 1, write=True), clock(3, 5000 * MS)])
    assert (errno, events) == (0, [event(1, Eventtype.FD_READ), event(2, Eventtype.FD_WRITE)])


def test_regular_file_is_ready_with_bytes_left(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "in.txt"
    path.write_bytes(b"0123456789")
    with open(path, "rb") as f:
        f.seek(4)
        h = make(stdin=f.fileno())
        errno, events = h.poll([fdsub(9, 0), clock(3, 5000 * MS)])
    assert (errno, events) == (0, [event(9, Eventtype.FD_READ, nbytes=6)])


def test_pipe_read_times_out_then_reports_nbytes(pipe: tuple[int, int]) -> None:
    r, w = pipe
    h = make(stdin=r)
    assert h.poll([fdsub(1, 0), clock(2, 40 * MS)]) == (0, [event(2, Eventtype.CLOCK)])
    os.write(w, b"hello")
    # Both ready at once: both reported, in subscription order.
    errno, events = h.poll([fdsub(1, 0), clock(2, 0)])
    assert (errno, events) == (0, [event(1, Eventtype.FD_READ, nbytes=5),
                                   event(2, Eventtype.CLOCK)])


def test_pipe_wait_returns_as_soon_as_data_arrives(pipe: tuple[int, int]) -> None:
    r, w = pipe
    h = make(stdin=r)
    timer = threading.Timer(0.1, os.write, (w, b"xy"))
    timer.start()
    start = time.monotonic()
    try:
        errno, events = h.poll([clock(1, 10_000 * MS), fdsub(2, 0)])
    finally:
        timer.join()
    assert (errno, events) == (0, [event(2, Eventtype.FD_READ, nbytes=2)])
    assert 0.09 < time.monotonic() - start < 5


def test_pipe_hangup() -> None:
    # Not the ``pipe`` fixture: it closes both ends, and a number closed here
    # is reused at once (by wasmtime, for the module's file), so closing it
    # again would close that file under wasmtime.
    r, w = os.pipe()
    os.close(w)
    try:
        h = make(stdin=r)
        assert h.poll([fdsub(1, 0)]) == (0, [event(1, Eventtype.FD_READ, flags=HANGUP)])
    finally:
        os.close(r)


def test_pipe_write_reports_room(pipe: tuple[int, int]) -> None:
    r, w = pipe
    h = make(stdout=w)
    errno, events = h.poll([fdsub(1, 1, write=True)])
    assert errno == 0 and len(events) == 1
    userdata, error, type_, nbytes, flags = EVENT.struct.unpack(events[0])
    assert (userdata, error, type_, flags) == (1, 0, Eventtype.FD_WRITE, 0)
    assert nbytes >= 4096  # a pipe holds at least a page (Linux: 64 KiB)


def test_full_pipe_is_not_writable(pipe: tuple[int, int]) -> None:
    r, w = pipe
    fill_pipe(w)
    h = make(stdout=w)
    assert h.poll([fdsub(1, 1, write=True), clock(2, 30 * MS)]) == \
        (0, [event(2, Eventtype.CLOCK)])


def test_socket_readiness() -> None:
    import socket
    a, b = socket.socketpair()
    with a, b:
        h = make(stdin=a.fileno(), stdout=a.fileno())
        assert h.poll([fdsub(1, 0), clock(2, 20 * MS)]) == (0, [event(2, Eventtype.CLOCK)])
        b.sendall(b"1234")
        errno, events = h.poll([fdsub(1, 0), fdsub(3, 1, write=True)])
        assert errno == 0
        assert events[0] == event(1, Eventtype.FD_READ, nbytes=4)
        assert events[1][:11] == event(3, Eventtype.FD_WRITE)[:11]


def test_same_fd_read_and_write_subscriptions(pipe: tuple[int, int]) -> None:
    import socket
    a, b = socket.socketpair()
    with a, b:
        h = make(stdin=a.fileno())
        b.sendall(b"z")
        errno, events = h.poll([fdsub(1, 0), fdsub(2, 0), clock(3, 1000 * MS)])
        assert (errno, events) == (0, [event(1, Eventtype.FD_READ, nbytes=1),
                                       event(2, Eventtype.FD_READ, nbytes=1)])


# -- real programs -----------------------------------------------------------------

def _run(module: pathlib.Path, *args: str, **kw: Any) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "pywasi", "run", str(module), *args],
                          capture_output=True, timeout=60, **kw)


def test_c_sleeps_measure_at_least_what_they_asked() -> None:
    proc = _run(build_c("poll_sleep"))
    assert proc.returncode == 0, proc.stderr
    seen = set()
    for line in proc.stdout.decode().splitlines():
        name, requested, measured, rc = line.split()
        seen.add(name)
        assert rc == "0", line
        assert int(measured) >= int(requested), line
        assert int(measured) < int(requested) + 1_500 * MS, line
    assert seen == {"nanosleep", "usleep", "sleep", "clock_nanosleep_monotonic",
                    "clock_nanosleep_abs_monotonic", "clock_nanosleep_abs_realtime",
                    "clock_nanosleep_past"}


def _poll_stdin(timeout_ms: int, feed: list[tuple[float, bytes]]) -> tuple[list[str], float]:
    proc = subprocess.Popen([sys.executable, "-m", "pywasi", "run",
                             str(build_c("poll_stdin")), str(timeout_ms)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdin is not None
    start = time.monotonic()
    try:
        for delay, data in feed:
            time.sleep(delay)
            proc.stdin.write(data)
            proc.stdin.flush()
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 0, err
    return out.decode().splitlines(), time.monotonic() - start


def test_c_poll_stdin_written_early() -> None:
    # A 10 s timeout and data at once: the read happens long before the timeout.
    lines, elapsed = _poll_stdin(10_000, [(0, b"early")])
    assert lines == ["got early", "eof"]
    assert elapsed < 9


def test_c_poll_stdin_written_late() -> None:
    # Python start-up takes a while; wait long enough for several timeouts.
    lines, _ = _poll_stdin(100, [(2.0, b"late")])
    assert lines[-2:] == ["got late", "eof"]
    assert "timeout" in lines[:-2]
    assert set(lines[:-2]) == {"timeout"}


def test_files_opened_by_path_regular_and_fifo(tmp_path: pathlib.Path) -> None:
    """HostFile (what path_open hands out): a regular file is ready with the
    bytes left; a FIFO is really waited on."""
    from pywasi._fs._dir import FILE_RIGHTS
    from pywasi._fs._file import HostFile

    (tmp_path / "data").write_bytes(b"abcdef")
    os.mkfifo(tmp_path / "fifo")
    h = make()
    regular = h.wasi._fds.allocate(HostFile(os.open(tmp_path / "data", os.O_RDONLY),
                                            rights_base=FILE_RIGHTS, rights_inheriting=0))
    fifo_r = os.open(tmp_path / "fifo", os.O_RDONLY | os.O_NONBLOCK)
    fifo_w = os.open(tmp_path / "fifo", os.O_WRONLY)
    try:
        fifo = h.wasi._fds.allocate(HostFile(fifo_r, rights_base=FILE_RIGHTS, rights_inheriting=0))
        assert h.poll([fdsub(1, regular), clock(2, 5000 * MS)]) == (
            0, [event(1, Eventtype.FD_READ, nbytes=6)])
        assert h.poll([fdsub(1, fifo), clock(2, 30 * MS)]) == (0, [event(2, Eventtype.CLOCK)])
        os.write(fifo_w, b"xyz")
        assert h.poll([fdsub(1, fifo), clock(2, 5000 * MS)]) == (
            0, [event(1, Eventtype.FD_READ, nbytes=3)])
    finally:
        os.close(fifo_w)
        h.wasi.close()
