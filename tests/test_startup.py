"""Start-up stays cheap, checked without timing anything: a hello world run
by the command line, as every start after the first (a compiled-module cache
hit: the lean route, ``pywasi._lean``), imports only what a run needs -- no
wasmtime-py, no typing, re or enum -- and none of the modules that only some
programs need; the full route (``PYWASI_LEAN=0``, or whatever the lean one
does not take) adds only its own run path to wasmtime-py's; and the command
skips the interpreter's teardown without losing what the guest wrote. How
fast it starts is measured in bench/ (the START workload), never here."""

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
    # pre-initialisation: `pywasi wizer` and pywasi.preinitialize only
    "pywasi._preinit", "pywasi._wasm", "pywasi._wizer_cli",
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


def _run_cli(cache: pathlib.Path, *args: str,
             lean: bool = True) -> tuple[subprocess.CompletedProcess[bytes], set[str]]:
    env = dict(os.environ, PYWASI_CACHE_DIR=str(cache), PYWASI_LEAN="1" if lean else "0")
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
        assert sorted(modules & NOT_AT_STARTUP) == [], attempt
        # The probe sees them: the first run compiles on the full route.
        assert "pywasi._syscalls" in modules
        assert ("wasmtime" in modules) == (attempt == "compiles and stores")


# Every module ``pywasi run`` of a hello world may import beyond what
# ``import wasmtime`` itself loads (typing, re, ctypes, pathlib, ...: the floor
# of a wasmtime-py tool, docs/performance.md "Start-up"). A module that is not
# here fails the test below: if the run really needs it, add it here (and say
# why in the commit); if only some runs need it, import it where it is used
# (the help text of each entry: what needs it).
RUN_MODULES = frozenset({
    # pywasi's own run path: the command, the API, the engine facade, the
    # syscalls (one import object of every function), stdio and the preopen
    # descriptors, the compiled-module cache (a hit: its lookup and checksum).
    "pywasi", "pywasi.cli", "pywasi._abi", "pywasi._abi._enum", "pywasi._abi._errno", "pywasi._abi._layout",
    "pywasi._abi._signatures", "pywasi._abi._types", "pywasi._accel", "pywasi._native",
    "pywasi._cache", "pywasi._dispatch", "pywasi._errors", "pywasi._fdtable", "pywasi._memory",
    "pywasi._threads", "pywasi._wasi", "pywasi._lean",
    "pywasi._engine", "pywasi._engine._engines", "pywasi._engine._ffi", "pywasi._engine._hostcall",
    "pywasi._engine._instance", "pywasi._engine._link", "pywasi._engine._module",
    "pywasi._engine._shared", "pywasi._engine._stores",
    "pywasi._fs", "pywasi._fs._base", "pywasi._fs._dir", "pywasi._fs._file", "pywasi._fs._resolve",
    "pywasi._fs._stat", "pywasi._fs._stream",
    "pywasi._syscalls", "pywasi._syscalls._context", "pywasi._syscalls.args_env",
    "pywasi._syscalls.clock", "pywasi._syscalls.fd", "pywasi._syscalls.fs_fd",
    "pywasi._syscalls.path", "pywasi._syscalls.poll", "pywasi._syscalls.proc",
    "pywasi._syscalls.random", "pywasi._syscalls.sock", "pywasi._syscalls.unstable",
    # The standard library they use: the fd table's free list (heapq), stdio
    # (fcntl, termios, select, array), the cache's checksum and key digest
    # (zlib; _sha256, _sha2 from 3.12), the end of the command (atexit,
    # threading), weak references to stores, poll's timeouts (math).
    "__future__", "heapq", "_heapq", "array", "fcntl", "termios", "select", "zlib", "_sha256",
    "_sha2", "atexit", "threading", "_weakrefset", "weakref", "math",
    # What the interpreter's stdio may load in a subprocess (its locale).
    "encodings.ascii", "encodings.latin_1",
})

_BASELINE = "import sys, wasmtime; sys.stderr.write('MODULES ' + ' '.join(sorted(sys.modules)))"


def test_the_full_route_imports_only_its_run_path(tmp_path: pathlib.Path) -> None:
    """The allow-list above, against a real run of the command on the full
    route (a cache hit). The floor is what ``import wasmtime`` loads in the
    same interpreter, so the list names only what pywasi adds."""
    hello = str(build_c("hello"))
    for _ in range(2):  # the first compiles and stores, the second loads from the cache
        proc, modules = _run_cli(tmp_path / "cache", "run", hello, lean=False)
        assert proc.returncode == 0, proc.stderr
    floor = subprocess.run([sys.executable, "-c", _BASELINE], capture_output=True, timeout=120)
    _, _, names = floor.stderr.rpartition(b"MODULES ")
    added = modules - set(names.decode().split())
    unexpected = sorted(added - RUN_MODULES)
    assert not unexpected, (
        f"`pywasi run` of a hello world imported {unexpected}, which are not in "
        f"tests/test_startup.py's RUN_MODULES. Import them where they are used (lazily) if only "
        f"some runs need them; else add them to RUN_MODULES, saying what needs them.")


# Every module the lean route (a cache hit) may import beyond what Python
# itself loads to run `python -c pass`: RUN_MODULES without the engine facade,
# plus what the route binds and calls itself and the standard library it and
# the WASI layer use (import wasmtime brought these before).
LEAN_RUN_MODULES = (RUN_MODULES - {m for m in RUN_MODULES if m.startswith("pywasi._engine")}
                    # poll_oneoff and blocking waits import select and math; threads
                    # and a cache entry's write, threading (zlib stays: the first hits
                    # of a new entry check its CRC-32, see _cache)
                    # and weakref is not needed for a WASI's descriptors (_weakref)
                    - {"select", "math", "threading", "weakref", "_weakrefset"}) | {
    "pywasi._lean",
    # its own binding of wasmtime's C API, and finding wasmtime-py's library
    # without importing it
    "ctypes", "_ctypes", "ctypes._endian", "struct", "_struct", "importlib.machinery",
    # the syscalls' and the descriptors' standard library: the ABI's errno
    # (errno), guest memory (struct), the syscall table's closures and the fd
    # table's weak references (functools, collections, weakref, ...)
    "errno", "collections", "collections.abc", "functools", "_functools", "itertools", "keyword",
    "operator", "_operator", "reprlib", "_collections", "types",
}
# Never on the lean route: each costs milliseconds (typing ~10 ms with re,
# enum ~5 ms; wasmtime-py ~40 ms).
NEVER_LEAN = frozenset({"wasmtime", "typing", "re", "enum", "pathlib", "platform", "contextlib",
                        "importlib.util", "importlib.metadata", "argparse", "inspect",
                        "dataclasses", "threading", "weakref"})

_FLOOR = "import sys; sys.stderr.write('MODULES ' + ' '.join(sorted(sys.modules)))"


def test_the_lean_route_imports_only_what_a_run_needs(tmp_path: pathlib.Path) -> None:
    """The lean route's allow-list, against a real run of the command (a
    cache hit: every start after the first), over what ``python -c`` loads
    by itself; and it imports none of NEVER_LEAN."""
    hello = str(build_c("hello"))
    for _ in range(2):  # the first compiles and stores, the second loads from the cache
        proc, modules = _run_cli(tmp_path / "cache", "run", hello)
        assert proc.returncode == 0, proc.stderr
    floor = subprocess.run([sys.executable, "-c", _FLOOR], capture_output=True, timeout=120)
    _, _, names = floor.stderr.rpartition(b"MODULES ")
    added = modules - set(names.decode().split())
    assert sorted(added & NEVER_LEAN) == []
    unexpected = sorted(added - LEAN_RUN_MODULES)
    assert not unexpected, (
        f"`pywasi run` of a hello world (a cache hit) imported {unexpected}, which are not in "
        f"tests/test_startup.py's LEAN_RUN_MODULES. Import them where they are used (lazily) if "
        f"only some runs need them; else add them there, saying what needs them.")


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
