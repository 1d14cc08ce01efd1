"""The core calls, byte for byte through WAT programs: args, environ, clocks,
random, sched_yield, proc_exit / proc_raise, stdio fd_read / fd_write /
fd_fdstat_get / fd_close, the preopen queries, and the dispatcher's rules for
bad pointers and signed arguments."""

from __future__ import annotations

import pathlib
import struct
import time

import pytest

import pywasi
from pywasi._abi import Errno, Filetype, Rights
from helpers import instantiate_in_user_linker, run_module


def probe(imports: list[str], body: str, **kwargs: object) -> tuple[pywasi.Instance, bytes]:
    """Run a module whose _start is ``body``; return the instance (memory
    readable afterwards) and stdout."""
    lines = "\n".join(f'(import "wasi_snapshot_preview1" "{name}" (func ${name} {sig}))'
                      for name, sig in (i.split(" ", 1) for i in imports))
    wat = f"""(module {lines}
      (memory (export "memory") 1)
      (func (export "_start") {body}))"""
    result = run_module(wat.encode(), **kwargs)  # type: ignore[arg-type]
    return result.instance, result.stdout


def mem(instance: pywasi.Instance, start: int, length: int) -> bytes:
    return bytes(instance.exports.memory.buffer[start:start + length])


def u32(instance: pywasi.Instance, at: int) -> int:
    return int(struct.unpack_from("<I", instance.exports.memory.buffer, at)[0])


def u64(instance: pywasi.Instance, at: int) -> int:
    return int(struct.unpack_from("<Q", instance.exports.memory.buffer, at)[0])


TWO = "(param i32 i32) (result i32)"
THREE = "(param i32 i32 i32) (result i32)"
FOUR = "(param i32 i32 i32 i32) (result i32)"


# -- args and environ ------------------------------------------------------------

def test_args_sizes_and_get() -> None:
    inst, _ = probe([f"args_sizes_get {TWO}", f"args_get {TWO}"], """
        (i32.store (i32.const 1000) (call $args_sizes_get (i32.const 0) (i32.const 4)))
        (i32.store (i32.const 1004) (call $args_get (i32.const 100) (i32.const 200)))""",
        args=["prog", "héllo", ""])
    assert u32(inst, 1000) == 0 and u32(inst, 1004) == 0
    assert u32(inst, 0) == 3
    assert u32(inst, 4) == len(b"prog\0h\xc3\xa9llo\0\0")
    pointers = [u32(inst, 100 + 4 * i) for i in range(3)]
    assert pointers == [200, 205, 212]
    assert mem(inst, 200, 13) == b"prog\0h\xc3\xa9llo\0\0"


def test_environ_sizes_and_get() -> None:
    inst, _ = probe([f"environ_sizes_get {TWO}", f"environ_get {TWO}"], """
        (i32.store (i32.const 1000) (call $environ_sizes_get (i32.const 0) (i32.const 4)))
        (i32.store (i32.const 1004) (call $environ_get (i32.const 100) (i32.const 200)))""",
        env={"A": "1", "EMPTY": ""})
    assert (u32(inst, 1000), u32(inst, 1004)) == (0, 0)
    assert (u32(inst, 0), u32(inst, 4)) == (2, len(b"A=1\0EMPTY=\0"))
    assert [u32(inst, 100), u32(inst, 104)] == [200, 204]
    assert mem(inst, 200, 11) == b"A=1\0EMPTY=\0"


def test_args_get_out_of_bounds_traps_without_writing() -> None:
    with pytest.raises(pywasi.Trap, match="args_get: out of bounds"):
        probe([f"args_get {TWO}"], "(drop (call $args_get (i32.const 100) (i32.const 65534)))",
              args=["a-long-argument"])


# -- clocks ---------------------------------------------------------------------------

CLOCK_TIME = "clock_time_get (param i32 i64 i32) (result i32)"


@pytest.mark.parametrize("clock_id", [0, 1, 2, 3])
def test_clock_time_get_every_clock(clock_id: int) -> None:
    before = time.time_ns()
    inst, _ = probe([CLOCK_TIME], f"""
        (i32.store (i32.const 100) (call $clock_time_get (i32.const {clock_id}) (i64.const 1) (i32.const 0)))
        (i32.store (i32.const 104) (call $clock_time_get (i32.const {clock_id}) (i64.const 1) (i32.const 8)))""")
    assert u32(inst, 100) == 0 and u32(inst, 104) == 0
    first, second = u64(inst, 0), u64(inst, 8)
    assert second >= first > 0
    if clock_id == 0:
        assert before <= first <= time.time_ns()


def test_clock_time_get_bad_id_is_inval() -> None:
    inst, _ = probe([CLOCK_TIME], """
        (i32.store (i32.const 100) (call $clock_time_get (i32.const 4) (i64.const 1) (i32.const 0)))
        (i32.store (i32.const 104) (call $clock_time_get (i32.const -1) (i64.const 1) (i32.const 0)))""")
    assert u32(inst, 100) == Errno.INVAL and u32(inst, 104) == Errno.INVAL
    assert u64(inst, 0) == 0  # nothing written on failure


def test_clock_res_get() -> None:
    body = "".join(f"""(i32.store (i32.const {200 + 4 * i})
        (call $clock_res_get (i32.const {i}) (i32.const {8 * i})))""" for i in range(5))
    inst, _ = probe(["clock_res_get (param i32 i32) (result i32)"], body)
    for i in range(4):
        assert u32(inst, 200 + 4 * i) == 0
        assert 1 <= u64(inst, 8 * i) <= 1_000_000_000
    assert u32(inst, 216) == Errno.INVAL


def test_clock_time_get_misaligned_pointer_traps() -> None:
    with pytest.raises(pywasi.Trap, match="clock_time_get: misaligned"):
        probe([CLOCK_TIME], "(drop (call $clock_time_get (i32.const 1) (i64.const 1) (i32.const 3)))")


# -- random, sched_yield, proc ------------------------------------------------------------

def test_random_get_fills_the_buffer() -> None:
    inst, _ = probe([f"random_get {TWO}"], """
        (i32.store (i32.const 0) (call $random_get (i32.const 16) (i32.const 4096)))
        (i32.store (i32.const 4) (call $random_get (i32.const 8192) (i32.const 0)))""")
    assert u32(inst, 0) == 0 and u32(inst, 4) == 0
    data = mem(inst, 16, 4096)
    assert len(set(data)) > 200  # 4 KiB of CSPRNG output uses most byte values
    assert mem(inst, 4112, 16) == bytes(16)  # nothing past the end


def test_random_get_out_of_bounds_traps() -> None:
    with pytest.raises(pywasi.Trap, match="random_get: out of bounds"):
        probe([f"random_get {TWO}"], "(drop (call $random_get (i32.const 65000) (i32.const 1000)))")


def test_pointer_arguments_are_unsigned() -> None:
    """0xFFFFFFF0 must be a pointer near 4 GiB (a trap), not -16 (the end of memory)."""
    with pytest.raises(pywasi.Trap, match="out of bounds"):
        probe([f"random_get {TWO}"], "(drop (call $random_get (i32.const -16) (i32.const 8)))")


def test_sched_yield() -> None:
    inst, _ = probe(["sched_yield (result i32)"], "(i32.store (i32.const 0) (call $sched_yield))")
    assert u32(inst, 0) == 0


def test_proc_exit_code() -> None:
    result = run_module(b"""(module (import "wasi_snapshot_preview1" "proc_exit" (func $e (param i32)))
        (memory (export "memory") 1) (func (export "_start") (call $e (i32.const 42)) unreachable))""")
    assert result.code == 42


def test_proc_raise_never_signals_the_host() -> None:
    # SIGKILL (9) would end pytest if it reached the host.
    inst, _ = probe(["proc_raise (param i32) (result i32)"], """
        (i32.store (i32.const 0) (call $proc_raise (i32.const 9)))
        (i32.store (i32.const 4) (call $proc_raise (i32.const 99)))""")
    assert u32(inst, 0) == Errno.NOTSUP
    assert u32(inst, 4) == Errno.INVAL


# -- stdio -------------------------------------------------------------------------------------

def test_fd_write_gathers_iovecs() -> None:
    inst, out = probe([f"fd_write {FOUR}"], """
        (i32.store (i32.const 0) (i32.const 100)) (i32.store (i32.const 4) (i32.const 3))
        (i32.store (i32.const 8) (i32.const 200)) (i32.store (i32.const 12) (i32.const 0))
        (i32.store (i32.const 16) (i32.const 300)) (i32.store (i32.const 20) (i32.const 2))
        (i32.store8 (i32.const 100) (i32.const 97)) (i32.store8 (i32.const 101) (i32.const 98))
        (i32.store8 (i32.const 102) (i32.const 99)) (i32.store8 (i32.const 300) (i32.const 33))
        (i32.store8 (i32.const 301) (i32.const 10))
        (i32.store (i32.const 500) (call $fd_write (i32.const 1) (i32.const 0) (i32.const 3) (i32.const 40)))""")
    assert out == b"abc!\n"
    assert u32(inst, 500) == 0 and u32(inst, 40) == 5


def test_fd_write_errors() -> None:
    inst, out = probe([f"fd_write {FOUR}"], """
        (i32.store (i32.const 500) (call $fd_write (i32.const 77) (i32.const 0) (i32.const 0) (i32.const 40)))
        (i32.store (i32.const 504) (call $fd_write (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 40)))""")
    assert u32(inst, 500) == Errno.BADF
    assert u32(inst, 504) == Errno.NOTCAPABLE  # stdin has no FD_WRITE right


def test_fd_write_bad_iovec_traps_before_writing() -> None:
    out: list[bytes] = []
    wasi = pywasi.WASI(version="preview1", stdout=out.append)
    module = pywasi.compile(b"""(module
      (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
      (memory (export "memory") 1)
      (func (export "_start")
        (i32.store (i32.const 0) (i32.const 100)) (i32.store (i32.const 4) (i32.const 3))
        (i32.store (i32.const 8) (i32.const 65530)) (i32.store (i32.const 12) (i32.const 100))
        (drop (call $w (i32.const 1) (i32.const 0) (i32.const 2) (i32.const 40)))))""")
    with pytest.raises(pywasi.Trap, match="fd_write: out of bounds"):
        wasi.start(pywasi.instantiate(module, wasi.get_import_object()))
    assert out == []


def test_fd_read_from_stdin_and_eof() -> None:
    inst, _ = probe([f"fd_read {FOUR}"], """
        (i32.store (i32.const 0) (i32.const 100)) (i32.store (i32.const 4) (i32.const 4))
        (i32.store (i32.const 8) (i32.const 200)) (i32.store (i32.const 12) (i32.const 10))
        (i32.store (i32.const 500) (call $fd_read (i32.const 0) (i32.const 0) (i32.const 2) (i32.const 40)))
        (i32.store (i32.const 504) (call $fd_read (i32.const 0) (i32.const 0) (i32.const 2) (i32.const 44)))
        (i32.store (i32.const 508) (call $fd_read (i32.const 1) (i32.const 0) (i32.const 2) (i32.const 44)))""",
        stdin=b"scattered")
    assert u32(inst, 500) == 0 and u32(inst, 40) == 9
    assert mem(inst, 100, 4) + mem(inst, 200, 5) == b"scattered"
    assert u32(inst, 504) == 0 and u32(inst, 44) == 0  # EOF
    assert u32(inst, 508) == Errno.NOTCAPABLE  # stdout is not readable


def test_fd_fdstat_get_on_stdio(tmp_path: pathlib.Path) -> None:
    with open(tmp_path / "out", "wb") as f:
        wasi = pywasi.WASI(version="preview1", stdout=f.fileno())
        module = pywasi.compile(b"""(module
          (import "wasi_snapshot_preview1" "fd_fdstat_get" (func $s (param i32 i32) (result i32)))
          (memory (export "memory") 1)
          (func (export "_start")
            (i32.store (i32.const 100) (call $s (i32.const 1) (i32.const 0)))
            (i32.store (i32.const 104) (call $s (i32.const 9) (i32.const 32)))))""")
        instance = pywasi.instantiate(module, wasi.get_import_object())
        wasi.start(instance)
    filetype, flags, base, inheriting = struct.unpack_from("<BxHxxxxQQ", instance.exports.memory.buffer, 0)
    assert filetype == Filetype.REGULAR_FILE
    assert flags == 0
    assert base & Rights.FD_WRITE and not base & Rights.FD_READ
    assert not base & (Rights.FD_SEEK | Rights.FD_TELL)  # wasi-libc's isatty() relies on it
    assert inheriting == 0
    assert u32(instance, 100) == 0 and u32(instance, 104) == Errno.BADF


def test_fd_close_stdio_then_badf() -> None:
    inst, out = probe([f"fd_write {FOUR}", "fd_close (param i32) (result i32)"], """
        (i32.store (i32.const 500) (call $fd_close (i32.const 1)))
        (i32.store (i32.const 504) (call $fd_write (i32.const 1) (i32.const 0) (i32.const 0) (i32.const 40)))
        (i32.store (i32.const 508) (call $fd_close (i32.const 1)))""")
    assert [u32(inst, 500), u32(inst, 504), u32(inst, 508)] == [0, Errno.BADF, Errno.BADF]


# -- preopens ------------------------------------------------------------------------------------

PRESTAT = f"fd_prestat_get {TWO}"
PRESTAT_NAME = f"fd_prestat_dir_name {THREE}"


def test_prestat_get_and_dir_name(tmp_path: pathlib.Path) -> None:
    inst, _ = probe([PRESTAT, PRESTAT_NAME], """
        (i32.store (i32.const 500) (call $fd_prestat_get (i32.const 3) (i32.const 0)))
        (i32.store (i32.const 504) (call $fd_prestat_dir_name (i32.const 3) (i32.const 100) (i32.const 8)))
        (i32.store (i32.const 508) (call $fd_prestat_get (i32.const 4) (i32.const 8)))
        (i32.store (i32.const 512) (call $fd_prestat_dir_name (i32.const 4) (i32.const 200) (i32.const 2)))
        (i32.store (i32.const 516) (call $fd_prestat_get (i32.const 5) (i32.const 16)))
        (i32.store (i32.const 520) (call $fd_prestat_get (i32.const 1) (i32.const 16)))""",
        preopens={"/sandbox": tmp_path, "/data/x": tmp_path})
    assert u32(inst, 500) == 0
    assert mem(inst, 0, 8) == b"\0\0\0\0" + (8).to_bytes(4, "little")  # tag DIR, name length
    assert u32(inst, 504) == 0 and mem(inst, 100, 8) == b"/sandbox"
    assert u32(inst, 508) == 0 and u32(inst, 12) == 7
    assert u32(inst, 512) == Errno.NAMETOOLONG and mem(inst, 200, 2) == b"\0\0"
    assert u32(inst, 516) == Errno.BADF  # past the preopens: wasi-libc stops here
    assert u32(inst, 520) == Errno.BADF  # stdio is not a preopen


def test_preopen_host_path_is_never_revealed(tmp_path: pathlib.Path) -> None:
    secret = tmp_path / "host-secret-name"
    secret.mkdir()
    inst, _ = probe([PRESTAT, PRESTAT_NAME], """
        (drop (call $fd_prestat_get (i32.const 3) (i32.const 0)))
        (drop (call $fd_prestat_dir_name (i32.const 3) (i32.const 100) (i32.const 500)))""",
        preopens={"/d": secret})
    assert b"host-secret-name" not in mem(inst, 0, 65536)


def test_closing_a_preopen_then_reuse(tmp_path: pathlib.Path) -> None:
    inst, _ = probe([PRESTAT, "fd_close (param i32) (result i32)"], """
        (i32.store (i32.const 500) (call $fd_close (i32.const 3)))
        (i32.store (i32.const 504) (call $fd_prestat_get (i32.const 3) (i32.const 0)))""",
        preopens={"/d": tmp_path})
    assert u32(inst, 500) == 0 and u32(inst, 504) == Errno.BADF


def test_fd_renumber_moves_and_closes(tmp_path: pathlib.Path) -> None:
    inst, _ = probe([PRESTAT, PRESTAT_NAME, f"fd_renumber {TWO}"], """
        (i32.store (i32.const 500) (call $fd_renumber (i32.const 4) (i32.const 3)))
        (i32.store (i32.const 504) (call $fd_prestat_get (i32.const 4) (i32.const 0)))
        (i32.store (i32.const 508) (call $fd_prestat_get (i32.const 3) (i32.const 0)))
        (i32.store (i32.const 512) (call $fd_prestat_dir_name (i32.const 3) (i32.const 100) (i32.const 2)))
        (i32.store (i32.const 516) (call $fd_renumber (i32.const 3) (i32.const 9)))""",
        preopens={"/a": tmp_path, "/b": tmp_path})
    assert u32(inst, 500) == 0
    assert u32(inst, 504) == Errno.BADF
    assert u32(inst, 508) == 0 and mem(inst, 100, 2) == b"/b"
    assert u32(inst, 516) == Errno.BADF


def test_fd_fdstat_set_rights_only_narrows(tmp_path: pathlib.Path) -> None:
    inst, _ = probe(["fd_fdstat_set_rights (param i32 i64 i64) (result i32)",
                     f"fd_fdstat_get {TWO}"], f"""
        (i32.store (i32.const 500) (call $fd_fdstat_set_rights (i32.const 3)
            (i64.const {int(Rights.PATH_OPEN)}) (i64.const 0)))
        (i32.store (i32.const 504) (call $fd_fdstat_set_rights (i32.const 3)
            (i64.const {int(Rights.PATH_OPEN | Rights.FD_READDIR)}) (i64.const 0)))
        (i32.store (i32.const 508) (call $fd_fdstat_get (i32.const 3) (i32.const 0)))""",
        preopens={"/a": tmp_path})
    assert u32(inst, 500) == 0
    assert u32(inst, 504) == Errno.NOTCAPABLE
    assert u64(inst, 8) == Rights.PATH_OPEN and u64(inst, 16) == 0


GROW_THEN_WRITE = """(module
  (import "wasi_snapshot_preview1" "clock_time_get" (func $t (param i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "_start")
    (drop (memory.grow (i32.const 2)))
    ;; after growth: a clock value and an iovec in the new pages
    (i32.store (i32.const 131000) (call $t (i32.const 1) (i64.const 1) (i32.const 140000)))
    (i32.store8 (i32.const 150000) (i32.const 111)) (i32.store8 (i32.const 150001) (i32.const 107))
    (i32.store (i32.const 140008) (i32.const 150000)) (i32.store (i32.const 140012) (i32.const 2))
    (drop (call $w (i32.const 1) (i32.const 140008) (i32.const 1) (i32.const 140016)))))"""


def test_host_calls_see_memory_after_it_grows() -> None:
    """The view of guest memory follows memory.grow (pywasi's engine)."""
    result = run_module(GROW_THEN_WRITE.encode())
    assert result.stdout == b"ok"
    buf = result.instance.exports.memory.buffer
    assert struct.unpack_from("<I", buf, 131000)[0] == 0
    assert struct.unpack_from("<Q", buf, 140000)[0] > 0
    assert struct.unpack_from("<I", buf, 140016)[0] == 2


def test_memory_of_a_foreign_engine_is_re_read() -> None:
    """With a user's engine (memory may move), every access re-reads the memory."""
    out: list[bytes] = []
    wasi = pywasi.WASI(version="preview1", stdout=out.append)
    instance = instantiate_in_user_linker(wasi, GROW_THEN_WRITE)
    assert not instance.exports.memory.stable
    assert wasi.start(instance) == 0
    assert out == [b"ok"]
