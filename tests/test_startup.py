"""Start-up stays cheap, checked without timing anything: a hello world run
by the command line, as every start after the first (a compiled-module cache
hit), imports none of the modules that only some programs need, and the
command skips the interpreter's teardown without losing what the guest wrote.
How fast it starts is measured in bench/ (the START workload), never here."""

from __future__ import annotations

import importlib.metadata
import os
import pathlib
import subprocess
import sys

from wasmbuild import build_c, build_wat

# Each costs milliseconds of every start-up and is needed only by some runs:
# sockets (the sock_* calls, --tcplisten), writing a cache entry (a miss),
# OpenSSL's SHA-256 (a module of 1 MiB or more, hashed once).
NOT_AT_STARTUP = frozenset({
    "socket", "selectors", "pywasi._fs._socket", "tempfile", "shutil", "random", "_hashlib",
})

# The command line's main(), then the names of every module it loaded.
_PROBE = """
import sys
from pywasi.cli import main
status = main(sys.argv[1:])
sys.stdout.flush()
sys.stderr.write("\\nMODULES " + " ".join(sorted(sys.modules)) + "\\n")
raise SystemExit(status)
"""


def _run_cli(cache: pathlib.Path, *args: str) -> tuple[subprocess.CompletedProcess[bytes], set[str]]:
    env = dict(os.environ, PYWASI_CACHE_DIR=str(cache))
    proc = subprocess.run([sys.executable, "-c", _PROBE, *args], capture_output=True,
                          timeout=120, env=env)
    _, _, modules = proc.stderr.rpartition(b"\nMODULES ")
    return proc, set(modules.decode().split())


def test_hello_world_imports_only_what_it_needs(tmp_path: pathlib.Path) -> None:
    hello = str(build_c("hello"))
    for attempt in ("compiles and stores", "loads from the cache"):
        proc, modules = _run_cli(tmp_path / "cache", "run", hello)
        assert proc.returncode == 0, (attempt, proc.stderr)
        assert proc.stdout == b"hello from C\n", attempt
    assert "pywasi._syscalls" in modules and "wasmtime" in modules  # the probe sees them
    assert sorted(modules & NOT_AT_STARTUP) == []


_WRITE_AND_EXIT = """(module
  (import "wasi_snapshot_preview1" "path_open" (func $open
    (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 2)
  (data (i32.const 100) "out.txt")
  (func (export "_start")
    (memory.fill (i32.const 1024) (i32.const 65) (i32.const 100000))
    (i32.store (i32.const 0) (i32.const 1024))
    (i32.store (i32.const 4) (i32.const 100000))
    ;; out.txt: CREAT|TRUNC, FD_WRITE; left open when the program exits
    (drop (call $open (i32.const 3) (i32.const 0) (i32.const 100) (i32.const 7) (i32.const 9)
                      (i64.const 64) (i64.const 0) (i32.const 0) (i32.const 200)))
    (drop (call $write (i32.load (i32.const 200)) (i32.const 0) (i32.const 1) (i32.const 8)))
    (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
    (call $exit (i32.const 7))))"""


def test_the_command_skips_teardown_and_loses_nothing(tmp_path: pathlib.Path) -> None:
    """``pywasi`` and ``python -m pywasi`` end as ``os._exit`` (the
    interpreter's teardown is ~2 ms of a hello world, ~30 ms after a cold
    compile): a ``__del__`` of what is still alive never runs, but atexit
    handlers do (after non-daemon threads are joined), Python's buffered
    stdout is flushed after them, and everything the guest wrote is there,
    with its status."""
    module = tmp_path / "m.wasm"
    module.write_bytes(build_wat(_WRITE_AND_EXIT))
    probe = ("import atexit, os, runpy, sys, threading, time\n"
             "class Teardown:\n"
             "    def __del__(self):\n"
             "        os.write(2, b'teardown ')\n"
             "kept = Teardown()\n"
             "atexit.register(lambda: (os.write(2, b'atexit '), sys.stdout.write(' bye')))\n"
             "threading.Thread(target=lambda: (time.sleep(0.3), os.write(2, b'joined '))).start()\n"
             "runpy.run_module('pywasi', run_name='__main__')\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # a buffered stdout
    proc = subprocess.run([sys.executable, "-c", probe, "run", "--dir", f"{tmp_path}::/", str(module)],
                          capture_output=True, timeout=120, env=env)
    assert proc.returncode == 7, proc.stderr
    assert proc.stdout == b"A" * 100000 + b" bye"  # the guest's write went straight out
    assert (tmp_path / "out.txt").read_bytes() == b"A" * 100000
    assert proc.stderr == b"joined atexit "
    scripts = importlib.metadata.entry_points(group="console_scripts", name="pywasi")
    assert [entry.value for entry in scripts] == ["pywasi.cli:command"]
