"""The compiled host-call trampoline (``pywasi._accel``) against the ctypes
route: the dispatcher's rules hold on both, a fuzzed call gives identical
outcomes on both, the extension is really in use where CI builds it, and the
package still builds without a C compiler.

Each test picks its route by setting ``_hostcall.ACCEL`` (read at every
definition), so both routes run in one process whatever ``PYWASI_ACCEL`` says.
"""

from __future__ import annotations

import errno
import gc
import importlib.util
import os
import pathlib
import shutil
import stat
import struct
import subprocess
import sys
import threading
import time
import weakref
import zipfile
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pywasi
from pywasi._engine import _hostcall
from pywasi._abi import PREVIEW1, Errno, Rights
from pywasi._dispatch import HostFunction, HostState
from pywasi._errors import GuestFault, ProcExit, WasiError
from test_fuzz_dispatch import call, forwarding_module

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _accel() -> object:
    module = _hostcall.load_accel()
    assert module is not None, "pywasi._accel is not built (no C compiler when installing?)"
    return module


@pytest.fixture(params=["accel", "ctypes"])
def route(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setattr(_hostcall, "ACCEL", _accel() if request.param == "accel" else None)
    assert _hostcall.host_call_route() == request.param
    return str(request.param)


def test_the_accelerator_is_in_use_where_it_is_built() -> None:
    """CI has gcc: there the extension must be built and loaded, never a
    silent fallback. Elsewhere: loaded whenever it was built."""
    built = importlib.util.find_spec("pywasi._accel") is not None
    if os.environ.get("CI") == "true":
        assert built, "CI must build pywasi._accel"
    if os.environ.get("PYWASI_ACCEL") == "0":
        assert _hostcall.host_call_route() == "ctypes"
    else:
        assert _hostcall.host_call_route() == ("accel" if built else "ctypes")


def test_without_the_extension_the_ctypes_route_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where no compiler built it, importing it fails and pywasi goes on."""
    monkeypatch.delattr(pywasi, "_accel", raising=False)
    monkeypatch.setitem(sys.modules, "pywasi._accel", None)  # import fails with ImportError
    assert _hostcall.load_accel() is None


def test_pywasi_accel_0_forces_the_ctypes_route() -> None:
    code = "from pywasi import _engine; print(_engine.host_call_route())"
    for value, want in (("0", "ctypes"), ("1", "accel")):
        env = dict(os.environ, PYWASI_ACCEL=value)
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                             text=True, check=True).stdout.strip()
        assert out == want


# -- the dispatcher's rules, on both routes --------------------------------------

CLOCK = PREVIEW1["clock_time_get"]   # (i32 id, i64 precision, i32 time_ptr) -> errno
EXIT = PREVIEW1["proc_exit"]         # (i32 rval) -> nothing


def host_call(impl: Callable[..., None], signature: object = CLOCK) -> tuple[HostState, Callable[..., int]]:
    """An export ``go`` that calls ``impl`` as a WASI host function with the
    arguments it is given."""
    state = HostState()
    fn = HostFunction(signature, impl, state)  # type: ignore[arg-type]
    params = " ".join(fn.params)
    result = f"(result {' '.join(fn.results)})" if fn.results else ""
    gets = " ".join(f"(local.get {i})" for i in range(len(fn.params)))
    module = pywasi.compile(f"""(module
      (import "wasi_snapshot_preview1" "{fn.name}" (func $f (param {params}) {result}))
      (func (export "go") (param {params}) {result} (call $f {gets})))""".encode())
    instance = pywasi.instantiate(module, {"wasi_snapshot_preview1": {fn.name: fn}})
    return state, instance.exports.go


def raising(error: BaseException) -> Callable[..., None]:
    def impl(*args: int) -> None:
        raise error
    return impl


def test_arguments_arrive_unsigned_and_success_is_0(route: str) -> None:
    seen: list[tuple[int, ...]] = []
    _, go = host_call(lambda *args: seen.append(args))
    assert go(-16, -1, 2**31 - 1) == 0
    assert go(1, -2**63, -2**31) == 0
    assert seen == [(2**32 - 16, 2**64 - 1, 2**31 - 1), (1, 2**63, 2**31)]


@pytest.mark.parametrize("error, expected", [
    (WasiError(Errno.NOENT), Errno.NOENT),
    (OSError(errno.EACCES, "denied"), Errno.ACCES),
    (OSError(errno.EDQUOT, "quota"), Errno.DQUOT),
    (FileNotFoundError(errno.ENOENT, "gone"), Errno.NOENT),
])
def test_errors_become_the_errno(route: str, error: BaseException, expected: Errno) -> None:
    _, go = host_call(raising(error))
    assert go(0, 0, 0) == expected


def test_a_guest_fault_traps_naming_the_call(route: str) -> None:
    _, go = host_call(raising(GuestFault("out of bounds memory access: 8 bytes at 0xfffffff0")))
    with pytest.raises(pywasi.Trap, match=r"clock_time_get: out of bounds memory access: 8 bytes at 0xfffffff0"):
        go(0, 0, 0)


def test_proc_exit_records_the_code(route: str) -> None:
    state, go = host_call(raising(ProcExit(7)))
    with pytest.raises(pywasi.WasiExit) as info:
        go(0, 0, 0)
    assert info.value.code == 7
    assert state.exit_code is None  # taken by the export call


def test_a_bug_in_pywasi_is_an_internal_error_trap(route: str) -> None:
    _, go = host_call(raising(ZeroDivisionError("division by zero")))
    with pytest.raises(pywasi.Trap, match="pywasi internal error in clock_time_get: "
                                          "ZeroDivisionError: division by zero"):
        go(0, 0, 0)


def test_an_interrupt_unwinds_the_guest_and_is_re_raised(route: str) -> None:
    state, go = host_call(raising(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        go(0, 0, 0)
    assert state.interrupt is None  # taken by the export call


def test_an_errno_from_a_function_without_result_traps(route: str) -> None:
    _, go = host_call(raising(WasiError(Errno.BADF)), EXIT)
    with pytest.raises(pywasi.Trap, match="proc_exit: failed with errno BADF"):
        go(1)


def test_a_trap_message_with_lone_surrogates_still_traps(route: str) -> None:
    _, go = host_call(raising(GuestFault("no such file: b\udcff")))
    with pytest.raises(pywasi.Trap, match="clock_time_get: no such file: b"):
        go(0, 0, 0)


def test_the_syscall_is_released_with_its_store(route: str) -> None:
    """wasmtime calls the finalizer when the store is gone; the host's
    objects (the WASI context and everything it holds) are freed then.
    (After ``initialize`` too: tests/test_lifetime.py.)"""
    wasi = pywasi.WASI(version="preview1")
    instance = pywasi.instantiate(pywasi.compile(forwarding_module()), wasi.get_import_object())
    assert instance.exports.call_sched_yield() == 0
    alive = weakref.ref(wasi.wasi_import["sched_yield"].wasi_host)
    del wasi, instance
    gc.collect()  # the store: its finalizers release the syscalls,
    gc.collect()  # then the context's own cycles go
    assert alive() is None


def test_host_calls_from_several_threads(route: str) -> None:
    """The trampoline takes the GIL itself: calls from other threads, each
    with its own store, all count."""
    counts: list[int] = []

    def work() -> None:
        seen: list[int] = []
        _, go = host_call(lambda *args: seen.append(args[0]))
        for i in range(2000):
            assert go(i, 0, 0) == 0
        counts.append(len(seen) if seen == list(range(2000)) else -1)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert counts == [2000] * 4


# -- the C fast path of clock_time_get ----------------------------------------------

def bound_forwarder() -> tuple[pywasi.WASI, pywasi.Instance]:
    wasi = pywasi.WASI(version="preview1")
    instance = pywasi.instantiate(pywasi.compile(forwarding_module()), wasi.get_import_object())
    wasi.initialize(instance)
    return wasi, instance


def clock_outcome(instance: pywasi.Instance, clock_id: int, ptr: int) -> object:
    try:
        return instance.exports.call_clock_time_get(clock_id, 0, ptr)
    except pywasi.Trap as e:
        return str(e).splitlines()[-1].strip()  # the cause, after wasmtime's backtrace


def test_clock_time_get_checks_bounds_and_alignment_as_python_does(route: str) -> None:
    """The fast path answers only what it can prove in bounds; every other
    pointer gets the Python syscall's answer, and the cell follows memory.grow."""
    wasi, instance = bound_forwarder()
    memory = instance.exports.memory
    before = time.monotonic_ns()
    assert clock_outcome(instance, 1, 65536 - 8) == 0
    assert before <= struct.unpack_from("<Q", memory.buffer, 65536 - 8)[0] <= time.monotonic_ns()
    before = time.time_ns()
    assert clock_outcome(instance, 0, 0) == 0
    assert before <= struct.unpack_from("<Q", memory.buffer, 0)[0] <= time.time_ns()
    assert clock_outcome(instance, 4, 0) == Errno.INVAL
    assert clock_outcome(instance, 1, 65536 - 4) == \
        "clock_time_get: misaligned pointer 0xfffc (needs 8-byte alignment)"
    for ptr in (65536, 0xFFFFFFF8):
        assert clock_outcome(instance, 1, ptr) == \
            f"clock_time_get: out of bounds memory access: 8 bytes at 0x{ptr:x} (memory is 65536 bytes)"
    memory.grow(1)
    for _ in range(2):  # the first call refreshes the bounds, the second takes the fast path
        assert clock_outcome(instance, 1, 65536) == 0
        assert struct.unpack_from("<Q", memory.buffer, 65536)[0] > 0


def python_calls(function: str, call: Callable[[], object], times: int = 100) -> int:
    """How often the Python function named ``function`` runs in ``times`` calls of ``call``."""
    calls: list[str] = []

    def profile(frame: object, event: str, arg: object) -> None:
        if event == "call" and getattr(frame, "f_code").co_name == function:
            calls.append(event)

    sys.setprofile(profile)
    try:
        for _ in range(times):
            assert call() == 0
    finally:
        sys.setprofile(None)
    return len(calls)


def test_clock_time_get_is_answered_in_c(route: str) -> None:
    """The point of the fast path: no Python frame at all for the hot case."""
    wasi, instance = bound_forwarder()
    count = python_calls("clock_time_get", lambda: instance.exports.call_clock_time_get(1, 0, 8))
    assert count == (0 if route == "accel" else 100)


# -- the C fast path of fd_write to a host stream ------------------------------------

def write_outcome(instance: pywasi.Instance, fd: int, iovs: int, iovs_len: int,
                  nwritten_ptr: int) -> object:
    try:
        return instance.exports.call_fd_write(fd, iovs, iovs_len, nwritten_ptr)
    except pywasi.Trap as e:
        return str(e).splitlines()[-1].strip()


def stream_forwarder(stdout: int) -> tuple[pywasi.WASI, pywasi.Instance, memoryview]:
    wasi = pywasi.WASI(version="preview1", stdin=b"", stdout=stdout)
    instance = pywasi.instantiate(pywasi.compile(forwarding_module()), wasi.get_import_object())
    wasi.initialize(instance)
    return wasi, instance, instance.exports.memory.buffer


def test_fd_write_to_a_host_stream_checks_as_python_does(route: str, tmp_path: pathlib.Path) -> None:
    """One iovec to a HostStream is the fast path; every check gives the
    Python syscall's answer, in its order (the bytes go out before a bad
    nwritten_ptr traps)."""
    with open(tmp_path / "out", "wb") as f:
        wasi, instance, mem = stream_forwarder(f.fileno())
        mem[1000:1005] = b"hello"
        struct.pack_into("<II", mem, 16, 1000, 5)
        assert write_outcome(instance, 1, 16, 1, 32) == 0
        assert struct.unpack_from("<I", mem, 32)[0] == 5
        struct.pack_into("<II", mem, 24, 1000, 0)
        assert write_outcome(instance, 1, 24, 1, 32) == 0
        assert struct.unpack_from("<I", mem, 32)[0] == 0
        assert write_outcome(instance, 9, 16, 1, 32) == Errno.BADF
        assert write_outcome(instance, 0, 16, 1, 32) == Errno.NOTCAPABLE  # stdin: no FD_WRITE
        assert write_outcome(instance, 1, 18, 1, 32) == \
            "fd_write: misaligned pointer 0x12 (needs 4-byte alignment)"
        struct.pack_into("<II", mem, 40, 65530, 7)
        assert write_outcome(instance, 1, 40, 1, 32) == \
            "fd_write: out of bounds memory access: 7 bytes at 0xfffa (memory is 65536 bytes)"
        assert write_outcome(instance, 1, 16, 1, 65536) == \
            "fd_write: out of bounds memory access: 4 bytes at 0x10000 (memory is 65536 bytes)"
        assert write_outcome(instance, 1, 16, 1, 34) == \
            "fd_write: misaligned pointer 0x22 (needs 4-byte alignment)"
    assert (tmp_path / "out").read_bytes() == b"hello" * 3


def test_fd_write_short_and_failed_writes_as_python_does(route: str) -> None:
    """A short write to a full non-blocking pipe reports what went out; a
    full pipe is AGAIN, a pipe without reader PIPE."""
    read_end, write_end = os.pipe()
    try:
        os.set_blocking(write_end, False)
        os.write(write_end, b"x" * (65536 - 4096))  # one page of the pipe left
        wasi, instance, mem = stream_forwarder(write_end)
        struct.pack_into("<II", mem, 16, 1024, 8192)
        assert write_outcome(instance, 1, 16, 1, 32) == 0
        assert struct.unpack_from("<I", mem, 32)[0] == 4096
        assert write_outcome(instance, 1, 16, 1, 32) == Errno.AGAIN
        os.close(read_end)
        read_end = -1
        assert write_outcome(instance, 1, 16, 1, 32) == Errno.PIPE
    finally:
        os.close(write_end)
        if read_end >= 0:
            os.close(read_end)


def test_fd_write_to_a_host_stream_is_answered_in_c(route: str, tmp_path: pathlib.Path) -> None:
    with open(tmp_path / "out", "wb") as f:
        wasi, instance, mem = stream_forwarder(f.fileno())
        struct.pack_into("<II", mem, 16, 1000, 3)
        count = python_calls("fd_write", lambda: instance.exports.call_fd_write(1, 16, 1, 32))
    assert count == (0 if route == "accel" else 100)
    assert (tmp_path / "out").stat().st_size == 300


# -- the C fast path of fd_read/fd_write/fd_pread/fd_pwrite on a host file -----------

def open_file(instance: pywasi.Instance, name: bytes, *, oflags: int = 0, fdflags: int = 0,
              rights: int | None = None) -> int:
    """path_open ``name`` in the preopen fd 3 (by default with every right it
    passes on), through the guest's import: the new fd. Scratch at 60000."""
    ex, mem = instance.exports, instance.exports.memory.buffer
    if rights is None:
        assert ex.call_fd_fdstat_get(3, 60000) == 0
        rights = struct.unpack_from("<q", mem, 60000 + 16)[0]
    mem[60100:60100 + len(name)] = name
    assert ex.call_path_open(3, 0, 60100, len(name), oflags, rights, rights, fdflags, 60000) == 0
    return int(struct.unpack_from("<I", mem, 60000)[0])


def file_forwarder(tmp: pathlib.Path,
                   fdflags: int = 0) -> tuple[pywasi.WASI, pywasi.Instance, memoryview, int]:
    """A forwarder with ``tmp/f`` open, created if need be (``fdflags``): its fd."""
    wasi = pywasi.WASI(version="preview1", preopens={"/d": str(tmp)})
    instance = pywasi.instantiate(pywasi.compile(forwarding_module()), wasi.get_import_object())
    wasi.initialize(instance)
    fd = open_file(instance, b"f", oflags=1, fdflags=fdflags)
    return wasi, instance, instance.exports.memory.buffer, fd


def test_file_io_is_answered_in_c(route: str, tmp_path: pathlib.Path) -> None:
    """One iovec to a HostFile: no Python frame of the syscall on the accelerator."""
    (tmp_path / "f").write_bytes(b"0123456789")
    wasi, instance, mem, fd = file_forwarder(tmp_path)
    mem[1000:1003] = b"abc"
    struct.pack_into("<II", mem, 16, 1000, 3)
    ex = instance.exports
    counts = [python_calls("fd_read", lambda: ex.call_fd_read(fd, 16, 1, 32), times=4),
              python_calls("fd_write", lambda: ex.call_fd_write(fd, 16, 1, 32), times=2),
              python_calls("fd_pread", lambda: ex.call_fd_pread(fd, 16, 1, 1, 32), times=1),
              python_calls("fd_pwrite", lambda: ex.call_fd_pwrite(fd, 16, 1, 14, 32), times=1)]
    assert counts == ([0, 0, 0, 0] if route == "accel" else [4, 2, 1, 1])
    # 4 reads of 3 ("012" ... the short "9") left "978" in the buffer; two
    # writes append it at 10 and 13; pread at 1 gives "123", pwritten at 14.
    assert (tmp_path / "f").read_bytes() == b"0123456789" + b"978" + b"9" + b"123"
    assert ex.call_fd_tell(fd, 40) == 0
    assert struct.unpack_from("<Q", mem, 40)[0] == 16
    wasi.close()


def test_file_io_keeps_append_and_the_position_as_python_does(route: str, tmp_path: pathlib.Path) -> None:
    """APPEND sends fd_write and fd_pwrite to the end (Linux's pwrite(2)),
    fd_pread and fd_pwrite leave the position alone, fd_read moves it."""
    (tmp_path / "f").write_bytes(b"0123456789")
    wasi, instance, mem, fd = file_forwarder(tmp_path, fdflags=1)  # APPEND
    ex = instance.exports
    mem[1000:1002] = b"xy"
    struct.pack_into("<II", mem, 16, 1000, 2)
    assert ex.call_fd_write(fd, 16, 1, 32) == 0
    assert ex.call_fd_pwrite(fd, 16, 1, 0, 32) == 0
    assert struct.unpack_from("<I", mem, 32)[0] == 2
    assert ex.call_fd_tell(fd, 40) == 0
    assert struct.unpack_from("<Q", mem, 40)[0] == 12  # after the fd_write, not moved by pwrite
    assert (tmp_path / "f").read_bytes() == b"0123456789xyxy"
    assert ex.call_fd_seek(fd, 3, 0, 40) == 0
    assert ex.call_fd_pread(fd, 16, 1, 8, 32) == 0
    assert bytes(mem[1000:1002]) == b"89"
    assert ex.call_fd_read(fd, 16, 1, 32) == 0
    assert bytes(mem[1000:1002]) == b"34"
    assert ex.call_fd_tell(fd, 40) == 0
    assert struct.unpack_from("<Q", mem, 40)[0] == 5
    assert ex.call_fd_pread(fd, 16, 1, (1 << 63) - 1, 32) == Errno.INVAL  # offset + len past OFF_MAX
    assert ex.call_fd_pread(fd, 16, 1, 1 << 63, 32) == Errno.INVAL
    wasi.close()


def test_file_io_errors_as_python_does(route: str, tmp_path: pathlib.Path) -> None:
    """A read-only file: fd_write NOTCAPABLE; a FIFO opened by path: fd_pread
    SPIPE (the host's errno, from the Python route the C path hands it to)."""
    (tmp_path / "f").write_bytes(b"0123456789")
    os.mkfifo(tmp_path / "p")
    wasi, instance, mem, fd = file_forwarder(tmp_path)
    ex = instance.exports
    struct.pack_into("<II", mem, 16, 1000, 4)
    read_only = open_file(instance, b"f", rights=int(Rights.FD_READ))
    assert ex.call_fd_write(read_only, 16, 1, 32) == Errno.NOTCAPABLE
    assert ex.call_fd_read(read_only, 16, 1, 32) == 0
    assert bytes(mem[1000:1004]) == b"0123"
    # FD_SEEK not asked for: advisory (docs/sandbox.md, #28), the file can seek.
    assert ex.call_fd_pread(read_only, 16, 1, 0, 32) == 0
    fifo = open_file(instance, b"p", fdflags=4, rights=int(Rights.FD_READ | Rights.FD_SEEK))  # NONBLOCK
    assert ex.call_fd_pread(fifo, 16, 1, 0, 32) == Errno.SPIPE
    assert ex.call_fd_read(fifo, 16, 1, 32) == 0  # no writer: end of file
    assert struct.unpack_from("<I", mem, 32)[0] == 0
    with pytest.raises(pywasi.Trap, match="fd_write: out of bounds memory access: 4 bytes at 0x10000"):
        ex.call_fd_write(fd, 16, 1, 65536)
    assert (tmp_path / "f").read_bytes() == b"0123" + b"456789"  # written before the trap
    wasi.close()


def test_file_io_from_several_threads(route: str, tmp_path: pathlib.Path) -> None:
    """The C file path drops the GIL around each syscall: threads, each with
    its own instance and file, write and read back all their bytes."""
    results: list[bytes] = []

    def work(k: int) -> None:
        (tmp_path / str(k)).mkdir()
        wasi, instance, mem, fd = file_forwarder(tmp_path / str(k), fdflags=1)  # APPEND
        ex = instance.exports
        struct.pack_into("<II", mem, 16, 1000, 2)
        for i in range(500):
            mem[1000:1002] = b"%02d" % (i % 100)
            assert ex.call_fd_write(fd, 16, 1, 32) == 0
        struct.pack_into("<II", mem, 16, 8192, 1000)
        assert ex.call_fd_pread(fd, 16, 1, 0, 32) == 0
        results.append(bytes(mem[8192:9192]))
        wasi.close()

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [b"".join(b"%02d" % (i % 100) for i in range(500))] * 4


# -- the C fast path of fd_fdstat_get on a directory ----------------------------------

def test_fd_fdstat_get_of_a_directory_is_answered_in_c(route: str, tmp_path: pathlib.Path) -> None:
    """wasi-libc asks for the directory's fdstat before every open under it:
    no Python frame for it on the accelerator, and the same 24 bytes, also
    after its rights were narrowed. A file or stream goes to Python (its
    fdflags are the host's)."""
    wasi, instance, mem, fd = file_forwarder(tmp_path)
    ex = instance.exports
    mem[200:224] = b"\xee" * 24  # the padding is written as zeros
    assert python_calls("fd_fdstat_get", lambda: ex.call_fd_fdstat_get(3, 200), times=3) == \
        (0 if route == "accel" else 3)
    filetype, flags, base, inheriting = struct.unpack_from("<BxHxxxxQQ", mem, 200)
    assert (filetype, flags) == (3, 0) and bytes(mem[201:202]) + bytes(mem[204:208]) == bytes(5)
    assert base & Rights.PATH_OPEN and inheriting & Rights.FD_READ
    narrowed = base & ~int(Rights.PATH_OPEN)
    assert ex.call_fd_fdstat_set_rights(3, narrowed, Rights.FD_READ) == 0
    assert ex.call_fd_fdstat_get(3, 200) == 0
    assert struct.unpack_from("<BxHxxxxQQ", mem, 200) == (3, 0, narrowed, Rights.FD_READ)
    assert python_calls("fd_fdstat_get", lambda: ex.call_fd_fdstat_get(fd, 200), times=2) == 2
    assert ex.call_fd_fdstat_get(9, 200) == Errno.BADF
    with pytest.raises(pywasi.Trap, match="misaligned pointer 0xcc"):
        ex.call_fd_fdstat_get(3, 204)
    with pytest.raises(pywasi.Trap, match="out of bounds memory access: 24 bytes at 0xfff0"):
        ex.call_fd_fdstat_get(3, 65520)
    wasi.close()


# -- the resolver's host syscalls (openat2, fstatat) ------------------------------------

def test_fstatat_gives_what_os_stat_gives(tmp_path: pathlib.Path) -> None:
    """lstat_at's C route and its os.stat route agree for every kind of
    file, times before 1970 included (wrapped to u64 as st_*time_ns & mask)."""
    from pywasi._fs import _stat
    accel = _accel()
    (tmp_path / "f").write_bytes(b"12345")
    (tmp_path / "d").mkdir()
    os.symlink("f", tmp_path / "l")
    os.mkfifo(tmp_path / "p")
    os.utime(tmp_path / "f", ns=(-1_500_000_001, 1_234_567_891))
    dir_fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for name in ("f", "d", "l", "p"):
            with_c = _stat.lstat_at(dir_fd, name)
            without = _stat.filestat_values(os.stat(name, dir_fd=dir_fd, follow_symlinks=False))
            assert with_c == without, name
        assert _stat.lstat_at(dir_fd, "f")[5] == (-1_500_000_001) & ((1 << 64) - 1)
        raw = accel.fstatat(dir_fd, b"l", True)  # type: ignore[attr-defined]
        assert raw[4] == 5 and stat.S_ISREG(raw[2])
        with pytest.raises(FileNotFoundError):
            accel.fstatat(dir_fd, "missing", False)  # type: ignore[attr-defined]
        with pytest.raises(ValueError):
            accel.fstatat(dir_fd, "nul\0", False)  # type: ignore[attr-defined]
    finally:
        os.close(dir_fd)


def test_openat2_answers_an_fd_or_minus_errno(tmp_path: pathlib.Path) -> None:
    accel = _accel()
    if not sys.platform.startswith("linux"):
        assert accel.openat2(-100, b".", 0, 0, 0) == -errno.ENOSYS  # type: ignore[attr-defined]
        return
    (tmp_path / "f").write_bytes(b"x")
    dir_fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        beneath = 0x08  # RESOLVE_BENEATH
        fd = accel.openat2(dir_fd, b"f", os.O_RDONLY | os.O_CLOEXEC, 0, beneath)  # type: ignore[attr-defined]
        assert fd >= 0 and os.read(fd, 5) == b"x"
        os.close(fd)
        assert accel.openat2(dir_fd, b"../x", os.O_RDONLY, 0, beneath) == -errno.EXDEV  # type: ignore[attr-defined]
        assert accel.openat2(dir_fd, b"missing", os.O_RDONLY, 0, beneath) == -errno.ENOENT  # type: ignore[attr-defined]
    finally:
        os.close(dir_fd)


# -- differential: any call, both routes, the same outcome ------------------------

def outcome(module: pywasi.Module, tmp: pathlib.Path, name: str, args: list[int]) -> tuple[object, ...]:
    """The call's result, what it wrote to stdout (a host file: fd_write's C
    path) and stderr (a Python callable), and the sandbox's names."""
    err: list[bytes] = []
    sandbox = tmp / "sandbox"
    sandbox.mkdir()
    with open(tmp / "stdout", "wb") as stdout:
        wasi = pywasi.WASI(version="preview1", args=["fuzz", "x"], env={"A": "b"},
                           preopens={"/sandbox": str(sandbox)}, stdin=b"input",
                           stdout=stdout.fileno(), stderr=err.append)
        instance = pywasi.instantiate(module, wasi.get_import_object())
        wasi.initialize(instance)
        ex = instance.exports
        mem = ex.memory.buffer
        # Host files (the fd_read family's C path): fd 4 on sandbox/f, fd 5
        # on it with APPEND, both at position 3.
        (sandbox / "f").write_bytes(b"file-data-0123456789")
        for fdflags in (0, 1):
            assert ex.call_fd_seek(open_file(instance, b"f", fdflags=fdflags), 3, 0, 8) == 0
        # Small pointers find iovecs: (64, 16) at 0, (1000, 5) at 8.
        struct.pack_into("<IIII", mem, 0, 64, 16, 1000, 5)
        mem[64:80] = b"0123456789abcdef"
        try:
            result: tuple[object, ...] = ("errno", ex[f"call_{name}"](*args))
        except pywasi.WasiExit as e:
            result = ("exit", e.code)
        except pywasi.Trap as e:
            result = ("trap", str(e))
        # What a read put in memory (other calls may write times or random bytes).
        memory = bytes(mem) if name in ("fd_read", "fd_pread", "fd_fdstat_get") else None
        positions = [ex.call_fd_tell(fd, 8) or struct.unpack_from("<Q", mem, 8)[0] for fd in (4, 5)]
        wasi.close()
    return (result, (tmp / "stdout").read_bytes(), b"".join(err),
            sorted(p.name for p in sandbox.iterdir()), memory, positions,
            (sandbox / "f").read_bytes() if (sandbox / "f").is_file() else None)


def assert_same_on_both_routes(module: pywasi.Module, tmp_path_factory: pytest.TempPathFactory,
                               monkeypatch: pytest.MonkeyPatch, name: str, args: list[int]) -> None:
    results = []
    for accel in (_accel(), None):
        monkeypatch.setattr(_hostcall, "ACCEL", accel)
        results.append(outcome(module, tmp_path_factory.mktemp("route"), name, args))
    assert results[0] == results[1], (name, args)


@pytest.fixture(scope="module")
def fuzz_module() -> pywasi.Module:
    return pywasi.compile(forwarding_module())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(call)
def test_both_routes_give_identical_outcomes(fuzz_module: pywasi.Module, tmp_path_factory: pytest.TempPathFactory,
                                             monkeypatch: pytest.MonkeyPatch, case: tuple[str, list[int]]) -> None:
    assert_same_on_both_routes(fuzz_module, tmp_path_factory, monkeypatch, *case)


NEAR = st.sampled_from([0, 1, 2, 4, 8, 16, 64, 65528, 65532, 65536, -1, -8])


# Weighted toward what the C paths answer (the host files 4 and 5, the
# iovecs at 0 and 8, one of them) and the edges around it.
FD = st.sampled_from([0, 1, 2, 3, 4, 4, 5, 5, 9, -1])
IOVS = st.sampled_from([0, 8, 8, 4, 2, 65528, 65532, -8])
IOVS_LEN = st.sampled_from([1, 1, 1, 0, 2, -1])
OFFSET = st.sampled_from([0, 2, 19, 4096, (1 << 63) - 8, (1 << 63) - 1, -1])
IO = st.sampled_from(["fd_read", "fd_write"]).flatmap(
    lambda n: st.tuples(st.just(n), st.tuples(FD, IOVS, IOVS_LEN, NEAR).map(list)))
PIO = st.sampled_from(["fd_pread", "fd_pwrite"]).flatmap(
    lambda n: st.tuples(st.just(n), st.tuples(FD, IOVS, IOVS_LEN, OFFSET, NEAR).map(list)))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(IO, PIO, st.tuples(st.just("clock_time_get"), st.tuples(NEAR, NEAR, NEAR).map(list)),
                st.tuples(st.just("fd_fdstat_get"), st.tuples(FD, NEAR).map(list))))
def test_the_fast_paths_give_identical_outcomes(fuzz_module: pywasi.Module,
                                                tmp_path_factory: pytest.TempPathFactory,
                                                monkeypatch: pytest.MonkeyPatch,
                                                case: tuple[str, list[int]]) -> None:
    """The fd_read family, clock_time_get and fd_fdstat_get near the edges
    (stdio, host files with and without APPEND, a directory, pointers and
    offsets at the ends): the C fast paths and the Python syscalls agree, in
    the result, guest memory, the files and the positions."""
    assert_same_on_both_routes(fuzz_module, tmp_path_factory, monkeypatch, *case)


# -- building -----------------------------------------------------------------

def _wheel(tmp: pathlib.Path, env: dict[str, str]) -> list[str]:
    """Build a wheel from a copy of the project; the names in it."""
    src = tmp / "project"
    src.mkdir(parents=True)
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "src", src / "src",
                    ignore=shutil.ignore_patterns("*.so", "__pycache__", "*.egg-info"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(tmp / "dist"),
                    str(src)], env=env, check=True, capture_output=True, timeout=300)
    (wheel,) = (tmp / "dist").glob("pywasi-*.whl")
    with zipfile.ZipFile(wheel) as z:
        return z.namelist()


def test_the_wheel_carries_the_accelerator_and_builds_without_a_compiler(tmp_path: pathlib.Path) -> None:
    names = _wheel(tmp_path / "with", dict(os.environ))
    assert any(n.startswith("pywasi/_accel.") and n.endswith(".so") for n in names), names
    # CC=false: every compile fails, as where no compiler exists; the build
    # goes on (optional extension) and the wheel is the pure-Python package.
    names = _wheel(tmp_path / "without", dict(os.environ, CC="false"))
    assert "pywasi/_engine/__init__.py" in names
    assert not any(n.endswith(".so") for n in names), names
