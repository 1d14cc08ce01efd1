"""No traceback ever reaches a user of the command line: ``pywasi run`` (and
``pywasi compile``) over a corpus of broken inputs -- truncated and corrupted
modules, every kind of bad import, bad flags, unreadable files, directories
where a module or a file is expected, and modules that trap in ``_start``, in
``_initialize``, in their start function and in a thread. Each ends with its
documented status (cli.py's docstring, README "The command line") and says
why in one line on stderr (a trap: the trap's report), with nothing on
stdout and no "Traceback" anywhere. A bug in pywasi itself is one line that
says so and where to report it; its traceback only under PYWASI_DEBUG=1."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
from collections.abc import Callable

import pytest

from wasmbuild import build_c, build_wat

USAGE, LOAD, TRAP, BUG = 2, 1, 134, 70

HELLO = build_c("hello").read_bytes()


def pywasi(*args: str, cwd: pathlib.Path, env: dict[str, str] | None = None,
           ) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "pywasi", *args], capture_output=True,
                          stdin=subprocess.DEVNULL, timeout=120, cwd=cwd,
                          env=None if env is None else {**os.environ, **env})


def assert_one_line(proc: subprocess.CompletedProcess[bytes], status: int, words: str) -> None:
    assert b"Traceback" not in proc.stderr + proc.stdout, proc.stderr.decode()
    assert proc.stdout == b""
    assert proc.returncode == status, proc.stderr.decode()
    lines = proc.stderr.decode().splitlines()
    assert len(lines) == 1 and proc.stderr.endswith(b"\n"), proc.stderr.decode()
    assert lines[0].startswith("pywasi: ") and words in lines[0], lines[0]


def assert_trap_report(proc: subprocess.CompletedProcess[bytes], first: str, words: str) -> None:
    assert b"Traceback" not in proc.stderr + proc.stdout, proc.stderr.decode()
    assert proc.returncode == TRAP, proc.stderr.decode()
    text = proc.stderr.decode()
    assert text.startswith(f"pywasi: {first}"), text
    assert words in text, text


# -- modules that are not (whole) modules ---------------------------------------

def _truncated(at: int) -> bytes:
    return HELLO[:at]


def _with_byte(at: int, value: int) -> bytes:
    data = bytearray(HELLO)
    data[at] = value
    return bytes(data)


def _first_section_size_too_big() -> bytes:
    # The first section's LEB128 size (at byte 9) made to claim the maximum.
    data = bytearray(HELLO)
    return bytes(data[:9] + b"\xff\xff\xff\xff\x0f" + data[10:])


BROKEN_MODULES: dict[str, Callable[[], bytes]] = {
    "empty": lambda: b"",
    "magic only": lambda: _truncated(4),
    "header only": lambda: _truncated(8) + b"\x01",
    "cut in the middle": lambda: _truncated(len(HELLO) // 2),
    "last byte missing": lambda: _truncated(len(HELLO) - 1),
    "bad magic": lambda: _with_byte(1, ord("X")),
    "bad version": lambda: _with_byte(4, 2),
    "unknown section id": lambda: _with_byte(8, 0x7F),
    "section size past the end": _first_section_size_too_big,
    "trailing garbage": lambda: HELLO + b"\x00\x01garbage",
    "text, not wasm": lambda: b"#!/bin/sh\necho hello\n",
    "WAT that does not parse": lambda: b"(module (func",
}


@pytest.mark.parametrize("case", BROKEN_MODULES)
def test_broken_module(tmp_path: pathlib.Path, case: str) -> None:
    name = "m.wat" if case.startswith("WAT") else "m.wasm"
    (tmp_path / name).write_bytes(BROKEN_MODULES[case]())
    assert_one_line(pywasi("run", name, cwd=tmp_path), LOAD, name)


def test_broken_precompiled_module(tmp_path: pathlib.Path) -> None:
    (tmp_path / "h.wasm").write_bytes(HELLO)
    assert pywasi("compile", "h.wasm", cwd=tmp_path).returncode == 0
    assert_one_line(pywasi("run", "h.cwasm", cwd=tmp_path), LOAD, "--allow-precompiled")
    (tmp_path / "cut.cwasm").write_bytes((tmp_path / "h.cwasm").read_bytes()[:200])
    assert_one_line(pywasi("run", "--allow-precompiled", "cut.cwasm", cwd=tmp_path), LOAD,
                    "cannot load precompiled module")


# -- files that cannot be read ---------------------------------------------------

def test_unreadable_module_files(tmp_path: pathlib.Path) -> None:
    (tmp_path / "file").write_bytes(HELLO)
    os.symlink("loop2", tmp_path / "loop1")
    os.symlink("loop1", tmp_path / "loop2")
    (tmp_path / "dir.wasm").mkdir()
    for path, words in [("missing.wasm", "no such file"),
                        ("dir.wasm", "it is a directory"),
                        ("loop1", "symbolic links"),
                        ("file/m.wasm", "Not a directory"),
                        ("x" * 5000 + ".wasm", "File name too long"),
                        # Linux: reading a process's own memory at offset 0 is EIO.
                        ("/proc/self/mem", "Input/output error")]:
        assert_one_line(pywasi("run", path, cwd=tmp_path), LOAD, words)
        assert_one_line(pywasi("compile", path, cwd=tmp_path), LOAD, words)


def test_compile_output_that_cannot_be_written(tmp_path: pathlib.Path) -> None:
    (tmp_path / "h.wasm").write_bytes(HELLO)
    (tmp_path / "d").mkdir()
    for out in ("missing/x.cwasm", "d"):
        assert_one_line(pywasi("compile", "h.wasm", "-o", out, cwd=tmp_path), LOAD,
                        f"cannot write {out!r}")


def test_preopen_that_is_not_a_directory(tmp_path: pathlib.Path) -> None:
    (tmp_path / "h.wasm").write_bytes(HELLO)
    (tmp_path / "file").write_text("x")
    for host, words in [("file", "Not a directory"), ("missing", "No such file"),
                        ("h.wasm/x", "Not a directory")]:
        assert_one_line(pywasi("run", "--dir", host, "h.wasm", cwd=tmp_path), USAGE, words)


# -- bad flags -------------------------------------------------------------------

BAD_FLAGS = [
    (["run"], "no MODULE given"),
    (["run", "--bogus", "h.wasm"], "unknown option '--bogus'"),
    (["--bogus"], "unknown option '--bogus'"),
    (["run", "-x", "h.wasm"], "unknown option '-x'"),
    (["run", "--dir"], "--dir needs a value"),
    (["run", "--dir", "::g", "h.wasm"], "expected HOST, HOST::GUEST or HOST::GUEST::MODE"),
    (["run", "--dir", ".::", "h.wasm"], "expected HOST, HOST::GUEST or HOST::GUEST::MODE"),
    (["run", "--dir", ".::/g::rw", "h.wasm"], "(MODE: ro, overlay, zip)"),
    (["run", "--dir", ".::/g::ro::x", "h.wasm"], "expected HOST, HOST::GUEST or HOST::GUEST::MODE"),
    (["run", "--dir", "missing.zip::/g::zip", "h.wasm"], "--dir missing.zip (zip): No such file"),
    (["run", "--env"], "--env needs a value"),
    (["run", "--env", "=v", "h.wasm"], "expected NAME or NAME=VALUE"),
    (["run", "--tcplisten", "nope", "h.wasm"], "expected HOST:PORT"),
    (["run", "--tcplisten", "127.0.0.1:99999", "h.wasm"], "127.0.0.1:99999"),
    (["run", "--listenfd", "h.wasm"], "fd 3 is not a socket"),
    (["compile"], "no MODULE given"),
    (["compile", "h.wasm", "other.wasm"], "compile takes one MODULE"),
    (["compile", "h.wasm", "-o"], "-o needs a value"),
    (["compile", "--bogus", "h.wasm"], "unknown option '--bogus'"),
]


@pytest.mark.parametrize("argv, words", BAD_FLAGS, ids=[" ".join(a) for a, _ in BAD_FLAGS])
def test_bad_flags(tmp_path: pathlib.Path, argv: list[str], words: str) -> None:
    (tmp_path / "h.wasm").write_bytes(HELLO)
    assert_one_line(pywasi(*argv, cwd=tmp_path), USAGE, words)


# -- bad imports -------------------------------------------------------------------

P1 = "wasi_snapshot_preview1"
BAD_IMPORTS = {
    "a namespace nobody provides": ('(import "env" "f" (func))', "import env.f"),
    "a WASI name that does not exist": (f'(import "{P1}" "nope" (func))', f"import {P1}.nope"),
    "a WASI function of the wrong type": (
        f'(import "{P1}" "fd_write" (func (param i32) (result i32)))', f"import {P1}.fd_write"),
    "a WASI function with a missing result": (
        f'(import "{P1}" "proc_exit" (func (param i32) (result i32)))', f"import {P1}.proc_exit"),
    "a WASI function as a global": (f'(import "{P1}" "fd_write" (global i32))',
                                    f"import {P1}.fd_write"),
    "a WASI function as a table": (f'(import "{P1}" "fd_write" (table 1 funcref))',
                                   f"import {P1}.fd_write"),
    "a memory WASI does not provide": (f'(import "{P1}" "memory" (memory 1))',
                                       f"import {P1}.memory"),
    "both ABIs at once": (f'(import "wasi_unstable" "proc_exit" (func (param i32))) '
                          f'(import "{P1}" "proc_exit" (func (param i32)))', "proc_exit"),
    "a name twice, with different types": (
        f'(import "{P1}" "fd_close" (func (param i32) (result i32))) '
        f'(import "{P1}" "fd_close" (func (param i64) (result i32)))', f"import {P1}.fd_close"),
    "thread-spawn of the wrong type": (
        '(import "wasi" "thread-spawn" (func (param i64)))', "import wasi.thread-spawn"),
}


@pytest.mark.parametrize("case", BAD_IMPORTS)
def test_bad_import(tmp_path: pathlib.Path, case: str) -> None:
    imports, words = BAD_IMPORTS[case]
    (tmp_path / "m.wat").write_text(f'(module {imports} (memory (export "memory") 1) '
                                    f'(func (export "_start")))')
    assert_one_line(pywasi("run", "m.wat", cwd=tmp_path), LOAD, words)


# -- modules that link but cannot run ------------------------------------------------

NOT_RUNNABLE = {
    "no memory export": ('(func (export "_start"))', "memory"),
    "_start takes parameters": ('(memory (export "memory") 1) (func (export "_start") (param i32))',
                                "its _start export is a function ['i32'] -> []"),
    "_start returns a value": (
        '(memory (export "memory") 1) (func (export "_start") (result i32) (i32.const 0))',
        "its _start export is a function [] -> ['i32']"),
    "_start is a global": ('(memory (export "memory") 1) (global (export "_start") i32 (i32.const 0))',
                           "its _start export is a global"),
    "_initialize takes parameters": (
        '(memory (export "memory") 1) (func (export "_initialize") (param i64))',
        "its _initialize export is a function ['i64'] -> []"),
    "a reactor": ('(memory (export "memory") 1) (func (export "_initialize"))', "is a reactor"),
    "both _start and _initialize": (
        '(memory (export "memory") 1) (func (export "_start")) (func (export "_initialize"))',
        "exports both _start and _initialize"),
}


@pytest.mark.parametrize("case", NOT_RUNNABLE)
def test_module_that_cannot_run(tmp_path: pathlib.Path, case: str) -> None:
    body, words = NOT_RUNNABLE[case]
    (tmp_path / "m.wat").write_text(f"(module {body})")
    assert_one_line(pywasi("run", "m.wat", cwd=tmp_path), LOAD, words)


# -- traps ----------------------------------------------------------------------------

TRAPS = {
    "unreachable in _start": (
        '(memory (export "memory") 1) (func (export "_start") unreachable)',
        "error while running", "unreachable"),
    "division by zero in _start": (
        '(memory (export "memory") 1) (func (export "_start") '
        '(drop (i32.div_u (i32.const 1) (i32.const 0))))', "error while running", "divide by zero"),
    "out-of-bounds load in _start": (
        '(memory (export "memory") 1) (func (export "_start") '
        '(drop (i32.load (i32.const 70000))))', "error while running", "out of bounds"),
    "stack overflow in _start": (
        '(memory (export "memory") 1) (func $f (export "_start") (call $f))',
        "error while running", "call stack exhausted"),
    "a bad pointer to a host call": (
        f'(import "{P1}" "random_get" (func $r (param i32 i32) (result i32))) '
        '(memory (export "memory") 1) (func (export "_start") '
        '(drop (call $r (i32.const -4) (i32.const 8))))', "error while running",
        "random_get: out of bounds"),
    "unreachable in _initialize": (
        '(memory (export "memory") 1) (func (export "_initialize") unreachable)',
        "error while running", "unreachable"),
    "unreachable in the start function": (
        '(memory (export "memory") 1) (func $s unreachable) (start $s) (func (export "_start"))',
        "error while instantiating", "unreachable"),
    # wasi-threads: the thread traps while _start spins; the trap ends the program.
    "unreachable in a thread": (
        '(import "env" "memory" (memory 1 1 shared)) '
        '(import "wasi" "thread-spawn" (func $spawn (param i32) (result i32))) '
        '(func (export "wasi_thread_start") (param i32 i32) unreachable) '
        '(func (export "_start") (if (i32.lt_s (call $spawn (i32.const 0)) (i32.const 0)) '
        '(then return)) (loop $spin (br $spin)))', "error while running", "unreachable"),
}


@pytest.mark.parametrize("case", TRAPS)
def test_trap_is_a_trap_report(tmp_path: pathlib.Path, case: str) -> None:
    body, first, words = TRAPS[case]
    (tmp_path / "m.wasm").write_bytes(build_wat(f"(module {body})"))
    assert_trap_report(pywasi("run", "m.wasm", cwd=tmp_path), f"{first} m.wasm", words)


# -- a bug in pywasi -----------------------------------------------------------------

# A bug in each route of `pywasi run`: the full one (pywasi.instantiate) and
# the lean one (_lean, a compiled-module cache hit: the second run).
_BUGGY_COMMAND = """\
import pywasi, pywasi.cli, pywasi._lean
def bug(*args, **kwargs):
    raise KeyError("a stand-in for a bug")
pywasi.instantiate = bug
pywasi._lean._shape = bug
pywasi.cli.command()
"""


@pytest.mark.parametrize("route", ["full", "lean"])
@pytest.mark.parametrize("debug", [False, True])
def test_internal_error_says_it_is_a_bug(tmp_path: pathlib.Path, debug: bool, route: str) -> None:
    (tmp_path / "h.wasm").write_bytes(HELLO)
    env = {**os.environ, "PYWASI_DEBUG": "1" if debug else "0",
           "PYWASI_CACHE_DIR": str(tmp_path / "cache"), "PYWASI_LEAN": "0"}
    if route == "lean":   # the entry stored by a run on the full route, then a hit
        subprocess.run([sys.executable, "-m", "pywasi", "run", "h.wasm"], check=True,
                       capture_output=True, cwd=tmp_path, env=env, timeout=120)
        env["PYWASI_LEAN"] = "1"
    proc = subprocess.run([sys.executable, "-c", _BUGGY_COMMAND, "run", "h.wasm"],
                          capture_output=True, stdin=subprocess.DEVNULL, timeout=120,
                          cwd=tmp_path, env=env)
    assert proc.returncode == BUG and proc.stdout == b""
    lines = proc.stderr.decode().splitlines()
    assert lines[-1].startswith("pywasi: internal error, a bug in pywasi: KeyError: "
                                "'a stand-in for a bug'; please report it"), lines
    assert "issue tracker" in lines[-1]
    if debug:
        assert lines[0] == "Traceback (most recent call last):" and ", in bug" in proc.stderr.decode()
    else:
        assert len(lines) == 1 and "PYWASI_DEBUG=1 shows the traceback" in lines[0]

