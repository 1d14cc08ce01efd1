"""wasi-threads: thread-spawn over a shared memory, the ending of a program
with several threads, and the host-side pieces threads share (the raw
host-call callback, the descriptor table)."""

from __future__ import annotations

import ctypes
import gc
import sys
import threading
import time

from pywasi._dispatch import HostState, _make_raw


def test_raw_callback_keeps_each_threads_arguments_and_result() -> None:
    """Two threads call one raw callback, each with its own argument array
    (as wasmtime gives each thread); a thread switch inside the syscall must
    not make one thread's result land in the other's array."""
    seen: list[str] = []

    def impl(fd: int, value: int) -> None:
        time.sleep(0)  # let the other thread in, as a blocking syscall would
        if value != fd * 1000:
            seen.append(f"args {fd}, {value}")

    def outcome(error: BaseException) -> int:
        seen.append(f"raised {error!r}")
        return 28

    callback = _make_raw(("i32", "i64"), True, impl, outcome)

    def worker(fd: int) -> None:
        array = (ctypes.c_uint64 * 4)()
        for _ in range(3000):
            array[0], array[2] = fd, fd * 1000
            callback(None, None, ctypes.addressof(array), 2)
            if array[0] != 0:
                seen.append(f"result {array[0]} in thread {fd}")

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=worker, args=(fd,)) for fd in (7, 9)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(old)
    assert seen == []


# -- programs -------------------------------------------------------------------

import fcntl  # noqa: E402
import os  # noqa: E402
import struct  # noqa: E402
from typing import Any  # noqa: E402
import pathlib  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402

import pytest  # noqa: E402
import wasmtime  # noqa: E402

import pywasi  # noqa: E402
from helpers import fill_pipe  # noqa: E402
from pywasi import _engine  # noqa: E402
from pywasi._engine import _shared  # noqa: E402
from pywasi._abi import Oflags, Rights  # noqa: E402

# Memory map of the programs: 0 counter, 4 threads done, 12 "thread started",
# 16 a futex nobody notifies, 256 a poll_oneoff clock subscription (10 s),
# 512 its event, 600 nevents, 700 an iovec over 800..816, 708 nread,
# 720 an iovec over 4096..8192 and 728 nwritten (fd_write, sock_send).
PRELUDE = """
  (import "env" "memory" (memory 1 1 shared))
  (import "wasi" "thread-spawn" (func $spawn (param i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll_oneoff (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "sock_accept" (func $sock_accept (param i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "sock_recv"
    (func $sock_recv (param i32 i32 i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "sock_send" (func $sock_send (param i32 i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_open"
    (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
"""
WRITE_IOVEC = """(i32.store (i32.const 720) (i32.const 4096))
                 (i32.store (i32.const 724) (i32.const 4096))"""
BLOCK = {
    "busy": "(loop $l (br $l))",
    "wait": "(loop $l (drop (memory.atomic.wait32 (i32.const 16) (i32.const 0) (i64.const -1))) (br $l))",
    "sleep": """(i32.store8 (i32.const 264) (i32.const 0))
                (i32.store (i32.const 272) (i32.const 1))
                (i64.store (i32.const 280) (i64.const 10000000000))
                (drop (call $poll_oneoff (i32.const 256) (i32.const 512) (i32.const 1) (i32.const 600)))""",
    "stdin": """(i32.store (i32.const 700) (i32.const 800))
                (i32.store (i32.const 704) (i32.const 16))
                (drop (call $fd_read (i32.const 0) (i32.const 700) (i32.const 1) (i32.const 708)))""",
    # fd 3: a listening socket nobody connects to; fd 4: a connection that never sends.
    "accept": "(drop (call $sock_accept (i32.const 3) (i32.const 0) (i32.const 900)))",
    "recv": """(i32.store (i32.const 700) (i32.const 800))
                (i32.store (i32.const 704) (i32.const 16))
                (drop (call $sock_recv (i32.const 4) (i32.const 700) (i32.const 1) (i32.const 0)
                                       (i32.const 708) (i32.const 712)))""",
    # stdout: a pipe that is full and nobody reads; fd 4's peer never reads
    # and its send buffer is full (``full_pipe``, ``fill_send_buffer``).
    "write": f"""{WRITE_IOVEC}
                (drop (call $fd_write (i32.const 1) (i32.const 720) (i32.const 1) (i32.const 728)))""",
    "send": f"""{WRITE_IOVEC}
                (drop (call $sock_send (i32.const 4) (i32.const 720) (i32.const 1) (i32.const 0)
                                       (i32.const 728)))""",
}
STARTED = "(i32.atomic.store (i32.const 12) (i32.const 1))"
WAIT_STARTED = "(loop $w (br_if $w (i32.eqz (i32.atomic.load (i32.const 12)))))"
SPAWN = "(drop (call $spawn (i32.const 0)))"


def program(main: str, thread: str, *, thread_start: bool = True) -> bytes:
    start = (f'(func (export "wasi_thread_start") (param $tid i32) (param $arg i32) {thread})'
             if thread_start else "")
    return f'(module {PRELUDE} {start} (func (export "_start") {main}))'.encode()


COUNTER = program(
    main="""(local $i i32)
      (loop $s
        (if (i32.lt_s (call $spawn (local.get $i)) (i32.const 1)) (then (call $proc_exit (i32.const 99))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br_if $s (i32.lt_u (local.get $i) (i32.const 4))))
      (loop $w
        (if (i32.lt_u (i32.atomic.load (i32.const 4)) (i32.const 4)) (then
          (drop (memory.atomic.wait32 (i32.const 4) (i32.atomic.load (i32.const 4)) (i64.const 100000000)))
          (br $w))))
      (call $proc_exit (i32.div_u (i32.atomic.load (i32.const 0)) (i32.const 1000)))""",
    thread="""(local $i i32)
      (loop $a
        (drop (i32.atomic.rmw.add (i32.const 0) (i32.const 1)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br_if $a (i32.lt_u (local.get $i) (i32.const 1000))))
      (drop (i32.atomic.rmw.add (i32.const 4) (i32.const 1)))
      (drop (memory.atomic.notify (i32.const 4) (i32.const 1)))""")


def wasi_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("wasi-thread-")]


def run_threads(source: bytes, stdin: object = b"",
                sockets: list[socket.socket] | None = None, stdout: object = None,
                preopens: dict[str, str] | None = None) -> tuple[int | BaseException, bytes]:
    """start() the program in a helper thread (a hang fails the test after
    5 s instead of hanging the suite); its code or exception, and stdout
    (unless ``stdout`` is given)."""
    out: list[bytes] = []
    wasi = pywasi.WASI(version="preview1", args=["t"], stdin=stdin,
                       stdout=out.append if stdout is None else stdout,
                       sockets=sockets or [], preopens=preopens or {})
    instance = pywasi.instantiate(pywasi.compile(source), wasi.get_import_object())
    result: list[int | BaseException] = []

    def main() -> None:
        try:
            result.append(wasi.start(instance))
        except BaseException as e:  # noqa: BLE001 - handed to the test
            result.append(e)

    runner = threading.Thread(target=main)
    runner.start()
    runner.join(5)
    assert not runner.is_alive(), "the program did not end within 5 s"
    assert wasi_threads() == []
    wasi.close()
    return result[0], b"".join(out)


def test_threads_add_to_a_shared_counter() -> None:
    code, _ = run_threads(COUNTER)
    assert code == 4  # 4 threads x 1000 atomic increments


CASES = [
    # (name, main's code, thread's code, expected code or trap message)
    *[(f"main exits, thread {what}", f"{SPAWN} {WAIT_STARTED} (call $proc_exit (i32.const 7))",
       f"{STARTED} {block}", 7) for what, block in BLOCK.items()],
    *[(f"thread exits, main {what}", f"{SPAWN} {block}", "(call $proc_exit (i32.const 9))", 9)
      for what, block in BLOCK.items()],
    ("main returns, thread busy", f"{SPAWN} {WAIT_STARTED}", f"{STARTED} {BLOCK['busy']}", 0),
    ("thread traps, main waits", f"{SPAWN} {BLOCK['wait']}", "unreachable", "unreachable"),
    *[(f"main traps, thread {what}", f"{SPAWN} {WAIT_STARTED} unreachable",
       f"{STARTED} {BLOCK[what]}", "unreachable") for what in ("write", "send")],
]


def full_pipe() -> tuple[int, int]:
    """A pipe whose write end blocks (full), left in blocking mode."""
    read, write = os.pipe()
    fill_pipe(write)
    return read, write


def fill_send_buffer(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    try:
        while True:
            sock.send(b"x" * 65536, socket.MSG_DONTWAIT)
    except BlockingIOError:
        pass


@pytest.mark.parametrize("name, main, thread, expected", CASES, ids=[c[0] for c in CASES])
def test_ending_stops_every_thread(name: str, main: str, thread: str,
                                   expected: int | str) -> None:
    read, write = os.pipe()  # stdin that never has data
    out_read, out_write = full_pipe()  # stdout
    listener = socket.create_server(("127.0.0.1", 0))
    # fd 4: a connected pair's end; nothing drains its peer (as TCP's
    # acknowledgements would), so its full send buffer stays full.
    server, client = socket.socketpair()
    fill_send_buffer(server)
    try:
        outcome, _ = run_threads(program(main, thread), stdin=read, sockets=[listener, server],
                                 stdout=out_write)
    finally:
        # Without the fix: closing the readers releases a blocked write (EPIPE).
        for s in (listener, client, server):
            s.close()
        for fd in (read, write, out_read, out_write):
            os.close(fd)
    if isinstance(expected, str):
        assert isinstance(outcome, pywasi.Trap) and expected in str(outcome)
    else:
        assert outcome == expected


def test_spawn_failure_is_a_negative_id() -> None:
    # No wasi_thread_start export: the thread cannot be started.
    source = program("(call $proc_exit (i32.add (i32.const 100) (call $spawn (i32.const 0))))",
                     "", thread_start=False)
    code, _ = run_threads(source)
    assert code == 100 - 6  # -AGAIN


@pytest.mark.parametrize("failing", ["instantiate", "start"])
def test_a_spawn_that_fails_in_the_host_is_a_negative_id(
        monkeypatch: pytest.MonkeyPatch, failing: str) -> None:
    """A thread spawns a second one and the host cannot make it (out of
    memory while instantiating; the OS refuses a new thread): -AGAIN, and the
    program still ends (the reserved id is not left for end() to join)."""
    from pywasi import _engine   # _threads imports it from there at each spawn
    made: list[int] = []
    real_instantiate, real_start = _engine.instantiate, threading.Thread.start

    def instantiate(*args: Any, **kwargs: Any) -> Any:
        if "store" not in kwargs:   # the program's own instance, not a thread's
            return real_instantiate(*args, **kwargs)
        made.append(1)
        if failing == "instantiate" and len(made) == 2:
            raise MemoryError
        return real_instantiate(*args, **kwargs)

    def start(self: threading.Thread) -> None:
        if failing == "start" and self.name.startswith("wasi-thread-") and len(made) == 2:
            raise RuntimeError("can't start new thread")
        real_start(self)

    monkeypatch.setattr(_engine, "instantiate", instantiate)
    monkeypatch.setattr(threading.Thread, "start", start)
    source = program(f"{SPAWN} {BLOCK['wait']}",
                     "(call $proc_exit (i32.add (i32.const 100) (call $spawn (i32.const 0))))")
    assert run_threads(source)[0] == 100 - 6


def test_repeated_runs_leave_no_thread_or_descriptor() -> None:
    def open_fds() -> int:
        gc.collect()  # a trap's traceback and the program's objects form cycles
        return len(os.listdir("/proc/self/fd"))

    run_threads(COUNTER)
    before = open_fds(), threading.active_count()
    for _ in range(3):
        assert run_threads(COUNTER)[0] == 4
        for _name, main, thread, _expected in CASES:
            read, write = os.pipe()
            run_threads(program(main, thread), stdin=read)
            os.close(read)
            os.close(write)
    assert (open_fds(), threading.active_count()) == before


def test_cli_runs_threads_and_reports_a_threads_trap(tmp_path: pathlib.Path) -> None:
    counter = tmp_path / "counter.wat"
    counter.write_bytes(COUNTER)
    trap = tmp_path / "trap.wat"
    trap.write_bytes(program(f"{SPAWN} {BLOCK['wait']}", "unreachable"))
    run = [sys.executable, "-m", "pywasi", "run"]
    ok = subprocess.run([*run, str(counter)], capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
    assert (ok.returncode, ok.stderr) == (4, b"")
    bad = subprocess.run([*run, str(trap)], capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
    assert bad.returncode == 134 and b"unreachable" in bad.stderr and b"Traceback" not in bad.stderr


def test_threads_modules_get_the_interruptible_engine() -> None:
    assert pywasi.compile(COUNTER).engine is _engine.threads_engine()
    assert pywasi.compile(b'(module (memory (export "memory") 1))').engine is _engine.default_engine()


def test_finalize_bindings_with_a_shared_memory_across_threads() -> None:
    """A caller that runs threads itself: one WASI, a shared memory it made,
    one instance (own store) per Python thread, all writing to stdout."""
    source = b"""(module
      (import "env" "memory" (memory 1 1 shared))
      (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
      (func (export "say") (param $at i32)
        (i32.store (local.get $at) (i32.add (local.get $at) (i32.const 16)))
        (i32.store (i32.add (local.get $at) (i32.const 4)) (i32.const 2))
        (i32.store (i32.add (local.get $at) (i32.const 16))
                   (i32.add (i32.const 0x0a40) (i32.shr_u (local.get $at) (i32.const 6))))
        (drop (call $fd_write (i32.const 1) (local.get $at) (i32.const 1) (i32.add (local.get $at) (i32.const 8))))))"""
    out: list[bytes] = []
    wasi = pywasi.WASI(version="preview1", stdout=out.append)
    module = pywasi.compile(source)
    memory = wasmtime.SharedMemory(module.engine, wasmtime.MemoryType(wasmtime.Limits(1, 1), shared=True))
    imports = {**wasi.get_import_object(), "env": {"memory": memory}}
    instances = [pywasi.instantiate(module, imports) for _ in range(2)]
    wasi.finalize_bindings(instances[0], memory=memory)

    def say(i: int) -> None:
        instances[i].exports.say(64 * (i + 1))

    threads = [threading.Thread(target=say, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(out) == [b"A\n", b"B\n"]


def test_shared_memory_workaround_is_still_needed() -> None:
    """wasmtime-py 50's and 51's SharedMemory cannot be imported through
    Linker.define nor report its size; pywasi defines it through the C API
    once the public call fails so, and takes its size from data_len
    (``_engine.SharedMemory``). When this fails, upstream changed: drop or
    re-check the workaround (README, "Taking up a new wasmtime major")."""
    engine = _engine.threads_engine()
    memory = wasmtime.SharedMemory(engine, wasmtime.MemoryType(wasmtime.Limits(1, 2), shared=True))
    with pytest.raises(TypeError):
        wasmtime.Linker(engine).define(wasmtime.Store(engine), "env", "memory", memory)
    with pytest.raises(ctypes.ArgumentError):
        memory.size()
    ours = _engine.SharedMemory(memory)
    ours.define(wasmtime.Linker(engine), wasmtime.Store(engine), "env", "memory")
    assert _shared.define_workaround_used()
    assert (ours.size, ours.grow(1), ours.size, len(ours.buffer)) == (1, 1, 2, 2 * 65536)


# -- descriptors shared between threads -------------------------------------------

class HostCalls:
    """The WASI host functions of one WASI object with a preopen (fd 3),
    called from Python threads as guest threads call them; guest memory is
    a plain exported memory."""

    def __init__(self, root: pathlib.Path) -> None:
        self.wasi = pywasi.WASI(version="preview1", preopens={"/": str(root)})
        instance = pywasi.instantiate(pywasi.compile(b'(module (memory (export "memory") 1))'),
                                      self.wasi.get_import_object())
        self.wasi.finalize_bindings(instance)
        self.mem = instance.exports.memory.buffer

    def __getattr__(self, name: str) -> Any:
        return self.wasi.wasi_import[name]

    def open(self, name: str, at: int) -> int:
        """path_open ``name`` under the preopen for writing (CREAT); the fd."""
        self.mem[at:at + len(name)] = name.encode()
        assert self.path_open(3, 0, at, len(name), Oflags.CREAT, Rights.FD_WRITE, 0, 0, at + 32) == 0
        return int(struct.unpack_from("<I", self.mem, at + 32)[0])


def open_to(host_fd: int, path: pathlib.Path) -> bool:
    try:
        return os.readlink(f"/proc/self/fd/{host_fd}") == str(path)
    except OSError:
        return False


@pytest.mark.parametrize("action", ["fd_close", "fd_renumber"])
def test_a_call_in_flight_keeps_the_file_it_looked_up(
        tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, action: str) -> None:
    """A thread has looked up fd N (file a) and is about to write; another
    thread closes N (or renumbers b over it) and opens more files, which get
    the lowest free host fd numbers. The write must still reach a -- not the
    file that now has a's old host number -- and a's host fd must be closed
    once the write has returned."""
    calls = HostCalls(tmp_path)
    fd = calls.open("a", 1000)
    in_write, opened = threading.Event(), threading.Event()
    worker_thread: list[threading.Thread] = []
    host_fds: list[int] = []
    real_writev = os.writev

    def writev(host_fd: int, bufs: list[memoryview]) -> int:
        if threading.current_thread() in worker_thread:
            host_fds.append(host_fd)
            in_write.set()
            assert opened.wait(5)  # the switch: the other thread acts now
        return real_writev(host_fd, bufs)

    monkeypatch.setattr(os, "writev", writev)
    calls.mem[100:104] = b"data"
    struct.pack_into("<II", calls.mem, 200, 100, 4)
    results: list[int] = []
    worker = threading.Thread(target=lambda: results.append(calls.fd_write(fd, 200, 1, 208)))
    worker_thread.append(worker)
    worker.start()
    assert in_write.wait(5)
    if action == "fd_close":
        assert calls.fd_close(fd) == 0
        assert calls.open("b", 1000) == fd  # the guest number is free at once
    else:
        assert calls.fd_renumber(calls.open("b", 1000), fd) == 0
    calls.open("c", 1100)
    opened.set()
    worker.join(5)
    assert results == [0] and struct.unpack_from("<I", calls.mem, 208)[0] == 4
    assert [(tmp_path / n).read_bytes() for n in "abc"] == [b"data", b"", b""]
    assert not open_to(host_fds[0], tmp_path / "a")
    calls.wasi.close()


def test_two_threads_reading_one_pipe_are_both_released_at_the_end() -> None:
    """Both threads wait to read stdin (a pipe); one byte comes. The thread
    that gets it exits the program; the other, told "readable" too, must not
    be left blocked in a read that the end of the program cannot reach."""
    reader = f"{BLOCK['stdin']} (call $proc_exit (i32.const 7))"
    for _ in range(5):
        read, write = os.pipe()
        # Both threads are in their wait before the byte arrives.
        timer = threading.Timer(0.3, os.write, (write, b"x"))
        timer.start()
        try:
            assert run_threads(program(f"{SPAWN} {reader}", reader), stdin=read)[0] == 7
        finally:
            timer.join()
            os.close(write)  # without the fix: EOF releases the blocked read
            os.close(read)


def test_each_thread_takes_its_own_exit() -> None:
    """Thread A's proc_exit is recorded; before A has unwound to take it,
    thread B (trapping at the same time) asks for its outcome: B must find
    no exit -- taking A's code would leave A reporting a trap."""
    host = HostState()
    recorded, asked = threading.Event(), threading.Event()
    taken: list[int | None] = []

    def a() -> None:
        host.exit_code = 3
        recorded.set()
        assert asked.wait(5)
        taken.append(host.take_exit())

    thread = threading.Thread(target=a)
    thread.start()
    assert recorded.wait(5)
    taken.append(host.take_exit())
    asked.set()
    thread.join(5)
    assert taken == [None, 3]


def test_no_wake_pass_when_no_other_thread_can_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    """Notifying every address of the memory is a pass over all of it; a
    program ending with no other thread alive does not pay for one, one
    ending with a thread in memory.atomic.wait does (and that thread ends)."""
    passes: list[int] = []
    real = _engine.SharedMemory.wake_waiters

    def counting(self: _engine.SharedMemory) -> None:
        passes.append(1)
        real(self)

    monkeypatch.setattr(_engine.SharedMemory, "wake_waiters", counting)
    assert run_threads(program("(call $proc_exit (i32.const 5))", ""))[0] == 5
    assert passes == []
    waiting = program(f"{SPAWN} {WAIT_STARTED} (call $proc_exit (i32.const 6))",
                      f"{STARTED} {BLOCK['wait']}")
    assert run_threads(waiting)[0] == 6
    assert passes


# 61,440 bytes at 4096..65536, byte a = a % 251 (a period that no piece size
# divides, so pieces out of order or repeated would show), written four times
# as two iovecs (4096..34096, 34096..65536); nwritten must be all of it.
DRAINED = """(local $a i32) (local $i i32) (local $fd i32)
  (local.set $a (i32.const 4096))
  (loop $f
    (i32.store8 (local.get $a) (i32.rem_u (local.get $a) (i32.const 251)))
    (local.set $a (i32.add (local.get $a) (i32.const 1)))
    (br_if $f (i32.lt_u (local.get $a) (i32.const 65536))))
  (i32.store (i32.const 720) (i32.const 4096)) (i32.store (i32.const 724) (i32.const 30000))
  (i32.store (i32.const 728) (i32.const 34096)) (i32.store (i32.const 732) (i32.const 31440))
  {open}
  {spawn}
  (loop $w
    (if (call $fd_write (local.get $fd) (i32.const 720) (i32.const 2) (i32.const 736))
      (then (call $proc_exit (i32.const 1))))
    (if (i32.ne (i32.load (i32.const 736)) (i32.const 61440)) (then (call $proc_exit (i32.const 2))))
    (local.set $i (i32.add (local.get $i) (i32.const 1)))
    (br_if $w (i32.lt_u (local.get $i) (i32.const 4))))"""
STDOUT = "(local.set $fd (i32.const 1))"
# path_open(3, 0, "f", O_WRONLY: FD_WRITE) into $fd, or exit 3.
OPEN_FIFO = f"""(i32.store8 (i32.const 740) (i32.const 102))
  (if (call $path_open (i32.const 3) (i32.const 0) (i32.const 740) (i32.const 1) (i32.const 0)
                       (i64.const {int(Rights.FD_WRITE)}) (i64.const 0) (i32.const 0) (i32.const 744))
    (then (call $proc_exit (i32.const 3))))
  (local.set $fd (i32.load (i32.const 744)))"""


@pytest.mark.parametrize("target", ["stdout pipe", "fifo"])
def test_writes_that_wait_for_room_still_write_everything_in_order(
        target: str, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """While threads run, fd_write to a pipe waits for room where the end of
    the program can cancel it and writes what fits; a pipe drained slowly
    (one page, 3000 bytes a read) still gets every byte, in order. A FIFO
    opened by path_open takes the PIPE_BUF pieces (no RWF_NOWAIT on it)."""
    from pywasi._fs._file import HostFile
    from pywasi._fs._stream import HostStream
    pieces: list[int] = []
    kind = HostStream if target == "stdout pipe" else HostFile
    real = kind.write_nowait

    def counting(self: Any, bufs: list[memoryview]) -> int:
        n = real(self, bufs)
        pieces.append(n)
        return n

    monkeypatch.setattr(kind, "write_nowait", counting)
    if target == "stdout pipe":
        read, write = os.pipe()
        stdout, open_, preopens = write, STDOUT, None
    else:
        os.mkfifo(tmp_path / "f")
        read = os.open(tmp_path / "f", os.O_RDONLY | os.O_NONBLOCK)  # so the guest's open does not wait
        os.set_blocking(read, True)
        write, stdout, open_, preopens = -1, None, OPEN_FIFO, {"/d": str(tmp_path)}
    fcntl.fcntl(read, fcntl.F_SETPIPE_SZ, 4096)
    expected = bytes(a % 251 for a in range(4096, 65536)) * 4
    got = bytearray()

    def drain() -> None:
        # Up to the expected length: a FIFO reads as at its end (b"") until
        # the guest has opened it.
        deadline = time.monotonic() + 5
        while len(got) < len(expected) and time.monotonic() < deadline:
            got.extend(os.read(read, 3000))
            time.sleep(0.0005)

    reader = threading.Thread(target=drain)
    reader.start()
    try:
        source = program(DRAINED.format(open=open_, spawn=SPAWN), BLOCK["wait"])
        assert run_threads(source, stdout=stdout, preopens=preopens)[0] == 0
    finally:
        if write >= 0:
            os.close(write)
        reader.join(5)
        os.close(read)
    assert not reader.is_alive()
    assert bytes(got) == expected
    assert sum(pieces) == len(got) and len(pieces) > 4  # the cancellable route, in pieces


def test_a_waiting_thread_of_a_fuel_program_is_woken() -> None:
    """A module compiled to count fuel has an engine of its own, whose
    stores start with no fuel: the wake pass at the end of the program runs
    there, with fuel of its own (else it would stop on its first
    instruction and leave the waiter asleep)."""
    waiting = program(f"{SPAWN} {WAIT_STARTED} (call $proc_exit (i32.const 6))",
                      f"{STARTED} {BLOCK['wait']}")
    result = pywasi.run(waiting, fuel=10**12, timeout=60.0)
    assert (result.exit_code, result.trap) == (6, None)
