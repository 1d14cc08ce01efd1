"""Limits that stop any guest (timeout, fuel, max_memory, max_open_files,
max_output), ``pywasi.run()`` and its ``RunResult``, many runs in one
process, and the ``pywasi run`` flags for them.

The guests are real programs: ``tests/c/limits.c`` (one mode per argv[1])
and WAT for the threads program and byte-exact cases. Timing: a timeout
must stop the guest within 0.5 s of it (the issue's bound). That bound is
generous for a timer and an epoch tick (~1 ms here) but meaningful on a
loaded 2-core machine; nothing else here asserts speed.
"""

from __future__ import annotations

import gc
import os
import socket
import subprocess
import sys
import threading
import time
from typing import Any

import pytest

import pywasi
from pywasi._engine import _engines
from test_threads import BLOCK, SPAWN, program, wasi_threads
from wasmbuild import build_c

STOP_WITHIN = 0.5  # seconds after the timeout (issue 13, item 5)
LIMITS = build_c("limits")


@pytest.fixture(scope="module")
def plain() -> pywasi.Module:
    return pywasi.compile(LIMITS)


@pytest.fixture(scope="module")
def interruptible() -> pywasi.Module:
    return pywasi.compile(LIMITS, interruptible=True)


@pytest.fixture(scope="module")
def metered() -> pywasi.Module:
    return pywasi.compile(LIMITS, consume_fuel=True)


def assert_unharmed(module: pywasi.Module) -> None:
    """A later run in the same process works."""
    result = pywasi.run(module, args=["limits", "hello"])
    assert (result.exit_code, result.stdout, result.limit, result.trap) == (0, b"hello\n", None, None)


def timed_run(module: pywasi.Module, timeout: float, **kwargs: Any) -> tuple[pywasi.RunResult, float]:
    began = time.monotonic()
    result = pywasi.run(module, timeout=timeout, **kwargs)
    return result, time.monotonic() - began


def assert_stopped_in_time(result: pywasi.RunResult, elapsed: float, timeout: float) -> None:
    assert result.limit == "timeout", result
    assert result.exit_code is None
    assert result.trap == f"time limit of {int(timeout * 1000)}ms reached"
    assert timeout <= elapsed < timeout + STOP_WITHIN, elapsed


# -- engines and compile flags ------------------------------------------------

def test_each_feature_has_its_own_engine_and_the_default_has_none(plain: pywasi.Module,
                                                                  interruptible: pywasi.Module,
                                                                  metered: pywasi.Module) -> None:
    assert (plain.interruptible, plain.consume_fuel) == (False, False)
    assert (interruptible.interruptible, interruptible.consume_fuel) == (True, False)
    assert (metered.interruptible, metered.consume_fuel) == (False, True)
    both = pywasi.compile(LIMITS, interruptible=True, consume_fuel=True)
    assert (both.interruptible, both.consume_fuel) == (True, True)
    engines = {id(m.engine) for m in (plain, interruptible, metered, both)}
    assert len(engines) == 4
    assert plain.engine is _engines.default_engine()
    assert interruptible.engine is _engines.threads_engine()  # one epoch engine
    # The cache key is the engine's settings: each variant has its own entry.
    assert _engines.settings_of(plain.engine) == _engines.ENGINE_SETTINGS
    assert _engines.settings_of(metered.engine) == _engines.ENGINE_SETTINGS + _engines.FUEL_SETTINGS
    assert _engines.settings_of(both.engine) == (_engines.ENGINE_SETTINGS + _engines.EPOCH_SETTINGS
                                                 + _engines.FUEL_SETTINGS)


def test_limits_need_a_module_compiled_for_them(plain: pywasi.Module) -> None:
    wasi = pywasi.WASI(version="preview1", args=["limits", "hello"])
    with pytest.raises(ValueError, match="consume_fuel=True"):
        pywasi.instantiate(plain, wasi.get_import_object(), fuel=1000)
    instance = pywasi.instantiate(plain, wasi.get_import_object())
    with pytest.raises(pywasi.PywasiError, match="interruptible=True"):
        wasi.start(instance, timeout=1)
    with pytest.raises(ValueError, match="interruptible=True"):
        pywasi.run(plain, timeout=1)
    with pytest.raises(ValueError, match="consume_fuel=True"):
        pywasi.run(plain, fuel=1)


@pytest.mark.parametrize("kwargs, error", [
    ({"fuel": -1}, ValueError), ({"fuel": 1.5}, TypeError), ({"max_memory": 0}, ValueError),
    ({"max_memory": True}, TypeError),
])
def test_bad_store_limits_are_refused(metered: pywasi.Module, kwargs: dict[str, Any],
                                      error: type[Exception]) -> None:
    with pytest.raises(error):
        pywasi.instantiate(metered, pywasi.WASI(version="preview1").get_import_object(), **kwargs)


@pytest.mark.parametrize("timeout, error", [(0, ValueError), (-1, ValueError), ("1s", TypeError),
                                            (float("nan"), ValueError), (float("inf"), ValueError)])
def test_bad_timeouts_are_refused(interruptible: pywasi.Module, timeout: Any,
                                  error: type[Exception]) -> None:
    wasi = pywasi.WASI(version="preview1", args=["limits", "hello"])
    instance = pywasi.instantiate(interruptible, wasi.get_import_object())
    with pytest.raises(error):
        wasi.start(instance, timeout=timeout)


def test_bad_environment_limits_are_refused(tmp_path: Any) -> None:
    with pytest.raises(ValueError, match="less than the 4 descriptors"):
        pywasi.WASI(version="preview1", preopens={"/d": str(tmp_path)}, max_open_files=3)
    with pytest.raises(TypeError):
        pywasi.WASI(version="preview1", max_output="1M")
    with pytest.raises(ValueError):
        pywasi.WASI(version="preview1", max_output=-1)


# -- timeout ------------------------------------------------------------------

def test_timeout_stops_a_compute_loop(interruptible: pywasi.Module) -> None:
    result, elapsed = timed_run(interruptible, 0.3, args=["limits", "spin"])
    assert_stopped_in_time(result, elapsed, 0.3)
    assert_unharmed(interruptible)


def test_timeout_stops_a_sleep_in_poll_oneoff(interruptible: pywasi.Module) -> None:
    result, elapsed = timed_run(interruptible, 0.3, args=["limits", "sleep"])
    assert_stopped_in_time(result, elapsed, 0.3)
    assert result.stdout == b""  # it never woke
    assert_unharmed(interruptible)


def test_timeout_stops_a_read_of_a_pipe_nobody_writes(interruptible: pywasi.Module) -> None:
    read, write = os.pipe()
    try:
        result, elapsed = timed_run(interruptible, 0.3, args=["limits", "read"], stdin=read)
    finally:
        os.close(read)
        os.close(write)
    assert_stopped_in_time(result, elapsed, 0.3)
    assert_unharmed(interruptible)


ACCEPT = b"""(module
  (import "wasi_snapshot_preview1" "sock_accept" (func $accept (param i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "_start") (drop (call $accept (i32.const 3) (i32.const 0) (i32.const 900)))))"""


def test_timeout_stops_sock_accept() -> None:
    """fd 3: a listening socket nobody connects to."""
    module = pywasi.compile(ACCEPT, interruptible=True)
    listener = socket.create_server(("127.0.0.1", 0))
    try:
        wasi = pywasi.WASI(version="preview1", sockets=[listener])
        instance = pywasi.instantiate(module, wasi.get_import_object())
        began = time.monotonic()
        with pytest.raises(pywasi.LimitExceeded) as caught:
            wasi.start(instance, timeout=0.3)
        elapsed = time.monotonic() - began
        wasi.close()
    finally:
        listener.close()
    assert (caught.value.limit, str(caught.value)) == ("timeout", "time limit of 300ms reached")
    assert 0.3 <= elapsed < 0.3 + STOP_WITHIN


def test_timeout_stops_every_thread_of_a_threads_program() -> None:
    # Main spawns a thread that spins, then spins itself.
    source = program(main=f"{SPAWN} {BLOCK['busy']}", thread=BLOCK["busy"])
    module = pywasi.compile(source)
    assert module.interruptible  # a threads module always is
    result, elapsed = timed_run(module, 0.3, args=["t"])
    assert_stopped_in_time(result, elapsed, 0.3)
    assert wasi_threads() == []  # every thread has ended
    assert pywasi.run(pywasi.compile(program(main="(call $proc_exit (i32.const 7))", thread="")),
                      args=["t"]).exit_code == 7


def test_a_program_that_ends_before_its_timeout_is_not_stopped(interruptible: pywasi.Module) -> None:
    result = pywasi.run(interruptible, args=["limits", "hello"], timeout=30)
    assert (result.exit_code, result.stdout, result.limit) == (0, b"hello\n", None)
    assert threading.active_count() < 50  # the timer went with the run


# -- fuel -----------------------------------------------------------------------

def test_fuel_stops_a_compute_loop(metered: pywasi.Module) -> None:
    result = pywasi.run(metered, args=["limits", "spin"], fuel=5_000_000)
    assert (result.exit_code, result.limit, result.trap) == (None, "fuel", "fuel of 5000000 used up")
    assert result.fuel_consumed == 5_000_000
    assert_unharmed(metered)


def test_fuel_consumed_is_deterministic_and_below_the_budget(metered: pywasi.Module) -> None:
    runs = [pywasi.run(metered, args=["limits", "hello"], fuel=10**9) for _ in range(2)]
    assert [r.exit_code for r in runs] == [0, 0]
    assert runs[0].fuel_consumed == runs[1].fuel_consumed
    assert runs[0].fuel_consumed is not None and 0 < runs[0].fuel_consumed < 10**9
    # Without a fuel limit a metered module runs as if unlimited.
    assert pywasi.run(metered, args=["limits", "hello"]).fuel_consumed == runs[0].fuel_consumed


def test_fuel_and_timeout_together() -> None:
    both = pywasi.compile(LIMITS, interruptible=True, consume_fuel=True)
    assert pywasi.run(both, args=["limits", "spin"], fuel=1_000_000, timeout=30).limit == "fuel"
    result, elapsed = timed_run(both, 0.3, args=["limits", "sleep"], fuel=10**12)
    assert_stopped_in_time(result, elapsed, 0.3)


def test_no_fuel_counted_for_a_module_that_does_not_count_it(plain: pywasi.Module) -> None:
    assert pywasi.run(plain, args=["limits", "hello"]).fuel_consumed is None


# -- memory ---------------------------------------------------------------------

def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_a_memory_bomb_gets_null_at_the_cap(plain: pywasi.Module) -> None:
    cap = 64 << 20
    before = _rss()
    result = pywasi.run(plain, args=["limits", "bomb"], max_memory=cap)
    assert result.exit_code == 3  # the guest's malloc returned NULL and it said so
    assert result.stdout.startswith(b"bomb ") and result.stdout.endswith(b" NULL\n")
    assert cap - (4 << 20) < result.memory_peak <= cap  # short of a block and its header
    assert result.limit == "memory"
    gc.collect()
    # The store and its memory are gone with the run: the process holds far
    # less than the bomb's 64 MiB more than before it (RSS bounded).
    assert _rss() - before < cap // 2
    assert_unharmed(plain)


def test_a_program_that_stays_under_the_cap_reports_no_limit(plain: pywasi.Module) -> None:
    result = pywasi.run(plain, args=["limits", "hello"], max_memory=64 << 20)
    assert (result.exit_code, result.limit) == (0, None)
    assert 0 < result.memory_peak <= 64 << 20


def test_memory_a_module_needs_to_start_above_the_cap() -> None:
    module = pywasi.compile(b'(module (memory (export "memory") 200) (func (export "_start")))')
    result = pywasi.run(module, max_memory=1 << 20)
    assert (result.exit_code, result.limit) == (None, "memory")
    assert result.trap is not None and result.trap.startswith("memory limit of 1048576 bytes")


# memory.grow by 100 pages twice: the first fits under a 10 MiB cap (160
# pages), the second does not; exit code 1 + the second grow's result (-1 -> 0).
SHARED_GROW = program(
    main="""(drop (memory.grow (i32.const 100)))
            (call $proc_exit (i32.add (i32.const 1) (memory.grow (i32.const 100))))""",
    thread="").replace(b"(memory 1 1 shared)", b"(memory 1 1000 shared)")


def test_a_shared_memory_is_capped_too() -> None:
    module = pywasi.compile(SHARED_GROW)
    assert pywasi.run(module, args=["t"]).exit_code == 102  # uncapped: the grow gives 101
    result = pywasi.run(module, args=["t"], max_memory=10 << 20)
    assert result.exit_code == 0
    assert result.memory_peak == 101 * 65536
    too_small = pywasi.run(pywasi.compile(program(main="", thread="")), args=["t"], max_memory=1000)
    assert (too_small.exit_code, too_small.limit) == (None, "memory")


# -- open files -----------------------------------------------------------------

def test_an_fd_bomb_gets_emfile(plain: pywasi.Module, tmp_path: Any) -> None:
    result = pywasi.run(plain, args=["limits", "fds", "/d"], preopens={"/d": str(tmp_path)},
                        max_open_files=10)
    # 3 stdio + 1 preopen + 6 opened = 10.
    assert (result.exit_code, result.stdout) == (0, b"fds 6 EMFILE\n")
    unlimited = pywasi.run(plain, args=["limits", "fds", "/d"], preopens={"/d": str(tmp_path)},
                           max_open_files=1000)
    assert unlimited.stdout == b"fds 996 EMFILE\n"
    assert_unharmed(plain)


def test_a_closed_descriptor_makes_room_again() -> None:
    """path_open at the limit is MFILE (33), after fd_close it succeeds."""
    source = b"""(module
      (import "wasi_snapshot_preview1" "path_open"
        (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
      (import "wasi_snapshot_preview1" "fd_close" (func $close (param i32) (result i32)))
      (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
      (memory (export "memory") 1) (data (i32.const 0) ".")
      (func $open_dot (result i32)
        (call $open (i32.const 3) (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 2)
                    (i64.const 0) (i64.const 0) (i32.const 0) (i32.const 16)))
      (func (export "_start") (local $a i32) (local $b i32)
        (local.set $a (call $open_dot))                 ;; 0: fd 4 is the fifth
        (local.set $b (call $open_dot))                 ;; 33: MFILE
        (drop (call $close (i32.load (i32.const 16))))
        (call $exit (i32.add (i32.mul (local.get $b) (i32.const 10))
                             (i32.add (local.get $a) (call $open_dot))))))"""
    result = pywasi.run(pywasi.compile(source), preopens={"/": "."}, max_open_files=5)
    assert result.exit_code == 330


# -- output ---------------------------------------------------------------------

def test_an_output_flood_is_stopped_at_the_limit(plain: pywasi.Module) -> None:
    result = pywasi.run(plain, args=["limits", "flood"], max_output=100_500)
    assert (result.exit_code, result.limit) == (None, "output")
    assert result.trap == "output limit of 100500 bytes reached"
    assert result.stdout == (b"x" * 999 + b"\n") * 100 + b"x" * 500  # what fits is delivered
    assert_unharmed(plain)


def test_output_up_to_the_limit_is_allowed(plain: pywasi.Module) -> None:
    result = pywasi.run(plain, args=["limits", "hello"], max_output=6)
    assert (result.exit_code, result.stdout, result.limit) == (0, b"hello\n", None)
    assert pywasi.run(plain, args=["limits", "hello"], max_output=5).stdout == b"hello"


def test_output_limit_counts_stdout_and_stderr_together() -> None:
    source = b"""(module
      (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
      (memory (export "memory") 1) (data (i32.const 0) "abcdefghijkl")
      (func (export "_start")
        (i32.store (i32.const 16) (i32.const 0)) (i32.store (i32.const 20) (i32.const 6))
        (drop (call $write (i32.const 1) (i32.const 16) (i32.const 1) (i32.const 32)))
        (i32.store (i32.const 16) (i32.const 6))
        (drop (call $write (i32.const 2) (i32.const 16) (i32.const 1) (i32.const 32)))))"""
    result = pywasi.run(source, max_output=9)
    assert (result.stdout, result.stderr, result.limit) == (b"abcdef", b"ghi", "output")
    assert pywasi.run(source, max_output=12).stderr == b"ghijkl"


def test_output_limit_on_a_host_fd(plain: pywasi.Module, tmp_path: Any) -> None:
    """On host stdio (the accelerator's fast path takes HostStream writes) the
    limit still holds: the limited stream is a class of its own."""
    path = tmp_path / "out"
    with open(path, "wb") as f:
        wasi = pywasi.WASI(version="preview1", args=["limits", "flood"], stdout=f.fileno(),
                           max_output=2500)
        instance = pywasi.instantiate(plain, wasi.get_import_object())
        with pytest.raises(pywasi.LimitExceeded) as caught:
            wasi.start(instance)
    assert caught.value.limit == "output"
    assert path.read_bytes() == (b"x" * 999 + b"\n") * 2 + b"x" * 500
    assert wasi.output_written == 2500


# -- run() ----------------------------------------------------------------------

def test_run_takes_bytes_a_path_or_a_module(plain: pywasi.Module) -> None:
    for module in (LIMITS, str(LIMITS), LIMITS.read_bytes(), plain):
        result = pywasi.run(module, args=["limits", "hello"])  # type: ignore[arg-type]
        assert (result.exit_code, result.stdout, result.stderr) == (0, b"hello\n", b"")
        assert result.wall_time > 0 and result.trap is None
    # From bytes or a path, run() compiles with what its limits need.
    assert pywasi.run(LIMITS, args=["limits", "spin"], timeout=0.1).limit == "timeout"
    assert pywasi.run(LIMITS, args=["limits", "spin"], fuel=1000).limit == "fuel"


def test_run_passes_stdin(plain: pywasi.Module) -> None:
    assert pywasi.run(plain, args=["limits", "read"], stdin=b"abc").stdout == b"eof\n"
    assert pywasi.run(plain, args=["limits", "read"]).stdout == b"eof\n"  # empty by default


def test_check_raises_with_the_result(plain: pywasi.Module) -> None:
    with pytest.raises(pywasi.RunError) as caught:
        pywasi.run(plain, args=["limits", "bomb"], max_memory=32 << 20, check=True)
    assert caught.value.result.exit_code == 3
    assert caught.value.result.stdout.endswith(b"NULL\n")
    assert "exited with code 3" in str(caught.value)
    with pytest.raises(pywasi.RunError, match="stopped by its fuel limit"):
        pywasi.run(LIMITS, args=["limits", "spin"], fuel=1000, check=True)
    assert pywasi.run(plain, args=["limits", "hello"], check=True).exit_code == 0


def test_a_trap_is_reported_not_raised() -> None:
    result = pywasi.run(b'(module (memory (export "memory") 1) (func (export "_start") unreachable))')
    assert (result.exit_code, result.limit) == (None, None)
    assert result.trap is not None and "unreachable" in result.trap


def test_without_capture_the_guest_writes_to_our_stdout(tmp_path: Any) -> None:
    code = ("import pywasi, sys; r = pywasi.run(sys.argv[1], args=['l', 'hello'], "
            "capture_output=False); print(r.stdout, r.exit_code)")
    proc = subprocess.run([sys.executable, "-c", code, str(LIMITS)], capture_output=True, timeout=60)
    assert proc.stdout == b"hello\nNone 0\n"


def test_runs_from_several_threads_at_once_are_isolated(plain: pywasi.Module,
                                                        interruptible: pywasi.Module) -> None:
    """One compiled module, many runs at once: each has its own store,
    memory and descriptors; a stopped run stops only itself."""
    errors: list[str] = []

    def hellos() -> None:
        for _ in range(10):
            r = pywasi.run(plain, args=["limits", "hello"])
            if (r.exit_code, r.stdout) != (0, b"hello\n"):
                errors.append(repr(r))

    def bombs() -> None:
        for _ in range(3):
            r = pywasi.run(plain, args=["limits", "bomb"], max_memory=32 << 20)
            if r.exit_code != 3 or r.memory_peak > 32 << 20:
                errors.append(repr(r))

    def spins() -> None:
        r = pywasi.run(interruptible, args=["limits", "spin"], timeout=0.3)
        if r.limit != "timeout":
            errors.append(repr(r))

    workers = [threading.Thread(target=f) for f in (hellos, hellos, bombs, spins, spins)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    assert not any(w.is_alive() for w in workers)
    assert errors == []


# -- the command line ---------------------------------------------------------

def cli(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "pywasi", "run", *args], input=stdin,
                          capture_output=True, timeout=60)


@pytest.mark.parametrize("flags, mode, status, message", [
    (["-W", "timeout=300ms"], "spin", 124, b"pywasi: time limit of 300ms reached\n"),
    (["-Wtimeout=1s"], "sleep", 124, b"pywasi: time limit of 1s reached\n"),
    (["-W", "fuel=1000000"], "spin", 134, b"pywasi: fuel of 1000000 used up\n"),
    (["-W", "timeout=1m,fuel=2000"], "spin", 134, b"pywasi: fuel of 2000 used up\n"),
    (["--max-output", "1K"], "flood", 134, b"pywasi: output limit of 1024 bytes reached\n"),
    (["--max-output=3000"], "flood", 134, b"pywasi: output limit of 3000 bytes reached\n"),
])
def test_cli_limits_that_stop_the_guest(flags: list[str], mode: str, status: int,
                                        message: bytes) -> None:
    proc = cli(*flags, str(LIMITS), mode)
    assert (proc.returncode, proc.stderr) == (status, message)


def test_cli_memory_and_open_files(tmp_path: Any) -> None:
    proc = cli("-W", "max-memory-size=32MiB", str(LIMITS), "bomb")
    assert proc.returncode == 3 and proc.stdout.endswith(b" NULL\n")
    proc = cli("-W", "max-memory-size=1M", str(LIMITS), "hello")  # it needs more to start
    assert proc.returncode == 134
    assert proc.stderr.startswith(b"pywasi: memory limit of 1048576 bytes")
    proc = cli("--dir", f"{tmp_path}::/d", "--max-open-files", "8", str(LIMITS), "fds", "/d")
    assert (proc.returncode, proc.stdout) == (0, b"fds 4 EMFILE\n")


@pytest.mark.parametrize("flags, words", [
    (["-W", "timeout=abc"], "expected a duration"),
    (["-W", "timeout=0s"], "must be positive"),
    (["-W", "fuel=lots"], "whole number"),
    (["-W", "max-memory-size=12X"], "number of bytes"),
    (["-W", "max-memory-size=0"], "at least 1 byte"),
    (["-W", "nosuch=1"], "unknown -W option 'nosuch'"),
    (["-W", "timeout"], "expected NAME=VALUE"),
    (["--max-open-files", "2"], "less than the 3 descriptors"),
    (["--max-output", "-1"], "number of bytes"),
])
def test_cli_bad_limit_flags(flags: list[str], words: str) -> None:
    proc = cli(*flags, str(LIMITS), "hello")
    assert proc.returncode == 2, proc.stderr
    assert words.encode() in proc.stderr and b"Traceback" not in proc.stderr


def test_many_timeouts_at_once_on_one_engine_all_fire(interruptible: pywasi.Module) -> None:
    """Every run with a timeout ends, however many stop at once on one
    engine. A stop is an engine-wide epoch tick, and a tick can be lost to
    a store whose epoch callback ran just before its own stop (it renews
    the deadline past the tick): the ending keeps ticking until the run has
    left wasm. Many short timeouts at once make that race likely; a lost
    tick shows as a thread still spinning at the join."""
    limits: list[str | None] = []
    together = threading.Barrier(6)

    def spins() -> None:
        for _ in range(8):
            together.wait(30)  # the six runs of a round start, and their timers fire, together
            limits.append(pywasi.run(interruptible, args=["limits", "spin"], timeout=0.05).limit)

    workers = [threading.Thread(target=spins, daemon=True) for _ in range(6)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    assert not any(w.is_alive() for w in workers), "a run's timeout never stopped it"
    assert limits == ["timeout"] * 48
