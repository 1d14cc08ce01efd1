"""``pywasi run``'s lean route (``pywasi._lean``): a run that loads its
compiled code from the cache without importing wasmtime-py.

- its C declarations are wasmtime-py's, on the installed major (CI runs the
  suite on both supported majors): a changed signature fails here, not as a
  crash of a user's run;
- it keys the cache as the engine layer does, so one compile serves both;
- on every kind of run it takes, the command's output, files and exit
  status are the full route's (``PYWASI_LEAN=0``), byte for byte, and the
  run really was lean (no ``wasmtime`` module loaded);
- whatever it does not take (a reactor, a non-WASI import, a limit, a link
  error) runs on the full route with the full route's answer.
"""

from __future__ import annotations

import ctypes
import os
import pathlib
import subprocess
import sys

import pytest
import wasmtime
from wasmtime import _ffi as ffi

from pywasi import _lean
from pywasi._engine import _engines
from pywasi._engine._ffi import _mismatch
from wasmbuild import build_c, build_c_source, build_wat


@pytest.mark.parametrize("name,restype,argtypes", _lean.SIGNATURES,
                         ids=[s[0] for s in _lean.SIGNATURES])
def test_each_c_declaration_is_wasmtime_pys(name: str, restype: object,
                                            argtypes: tuple[object, ...]) -> None:
    assert _mismatch(name, restype, list(argtypes)) is None


def test_layouts_and_constants_are_wasmtime_pys() -> None:
    assert ctypes.sizeof(ffi.wasmtime_extern_t) <= _lean._EXTERN_SIZE
    assert ffi.wasmtime_extern_t.of.offset == _lean._EXTERN_UNION
    assert ctypes.sizeof(ffi.wasmtime_instance_t) <= _lean._INSTANCE_SIZE
    assert ctypes.sizeof(_lean._Vec) == ctypes.sizeof(ffi.wasm_byte_vec_t)
    assert ffi.wasmtime_trap_code_enum.WASMTIME_TRAP_CODE_STACK_OVERFLOW.value == \
        _lean.WASMTIME_TRAP_CODE_STACK_OVERFLOW
    assert ffi.WASM_I32.value == _lean.WASM_I32 and ffi.WASM_I64.value == _lean.WASM_I64
    assert ffi.WASMTIME_EXTERN_FUNC.value == _lean.WASMTIME_EXTERN_FUNC
    assert ffi.WASMTIME_EXTERN_MEMORY.value == _lean.WASMTIME_EXTERN_MEMORY


def test_it_finds_the_library_and_release_wasmtime_py_loads() -> None:
    assert _lean.library_path() == ffi.dll._name
    package = os.path.dirname(wasmtime.__file__)
    from importlib import metadata
    assert _lean.release(package) == metadata.version("wasmtime")
    assert int(metadata.version("wasmtime").split(".")[0]) in _lean.TESTED_MAJORS
    import platform
    assert _lean.machine() == platform.machine()


def test_it_keys_the_cache_as_the_engine_layer_does() -> None:
    identity = _lean.library_identity(ffi.dll._name)
    assert identity is not None
    assert _engines.cache_context(_engines.ENGINE_SETTINGS) == \
        _lean.cache_context(_lean.ENGINE_SETTINGS, identity)


# The command line's main() in a process of its own, then whether the lean
# route ran the module (tests/test_startup.py: without importing wasmtime-py).
_PROBE = """
import sys
from pywasi import _lean
from pywasi.cli import main
took = []
real = _lean._run_module
def spy(*args, **kwargs):
    try:
        result = real(*args, **kwargs)
    except BaseException:
        took.append(True)
        raise
    took.append(result is not None)
    return result
_lean._run_module = spy
status = main(sys.argv[1:])
sys.stdout.flush()
sys.stderr.write("\\nLEAN " + str(any(took)) + "\\n")
raise SystemExit(status)
"""


def _command(tmp: pathlib.Path, args: list[str], *, lean: bool,
             stdin: bytes = b"") -> tuple[int, bytes, bytes, bool]:
    env = dict(os.environ, PYWASI_CACHE_DIR=str(tmp / "cache"), PYWASI_LEAN="1" if lean else "0")
    proc = subprocess.run([sys.executable, "-c", _PROBE, *args], input=stdin,
                          capture_output=True, timeout=120, env=env, cwd=tmp)
    stderr, _, took = proc.stderr.rpartition(b"\nLEAN ")
    return proc.returncode, proc.stdout, stderr, took.strip() == b"True"


def _both(tmp: pathlib.Path, args: list[str], *, lean_expected: bool = True,
          stdin: bytes = b"", reset: pathlib.Path | None = None) -> tuple[int, bytes, bytes]:
    """Run ``pywasi ARGS`` on the full route (which stores the compiled
    code), then again where the lean route may take it; both must answer
    the same. ``reset``: a directory to empty before each run."""
    answers = []
    for lean in (False, True):
        if reset is not None:
            for item in reset.iterdir():
                item.unlink()
        status, out, err, took = _command(tmp, args, lean=lean, stdin=stdin)
        assert took == (lean and lean_expected), (lean, status, err)
        answers.append((status, out, err))
    assert answers[0] == answers[1]
    return answers[1]


def test_hello_world(tmp_path: pathlib.Path) -> None:
    assert _both(tmp_path, ["run", str(build_c("hello"))]) == (0, b"hello from C\n", b"")


def test_args_env_exit_code_and_both_outputs(tmp_path: pathlib.Path) -> None:
    status, out, err = _both(tmp_path, ["run", "--env", "GREETING=hi", "--env", "EMPTY=",
                                        str(build_c("core_env")), "7", "two words"])
    assert status == 7 and b"GREETING=hi" in out and b"two words" in out


def test_files_in_a_preopen_and_stdin(tmp_path: pathlib.Path) -> None:
    source = r"""
#include <stdio.h>
int main(void) {
    char line[64] = {0};
    fgets(line, sizeof line, stdin);
    FILE *f = fopen("/data/out.txt", "w");
    if (!f) return 3;
    fprintf(f, "got %s", line);
    fclose(f);
    f = fopen("/data/out.txt", "r");
    fgets(line, sizeof line, f);
    printf("read back: %s", line);
    return fopen("/data/../escape.txt", "w") ? 4 : 0;
}
"""
    data = tmp_path / "data"
    data.mkdir()
    status, out, _ = _both(tmp_path, ["run", "--dir", f"{data}::/data",
                                      str(build_c_source(source))],
                           stdin=b"line one\n", reset=data)
    assert (status, out) == (0, b"read back: got line one\n")
    assert (data / "out.txt").read_bytes() == b"got line one\n"
    assert not (tmp_path / "escape.txt").exists()


def test_a_read_only_directory(tmp_path: pathlib.Path) -> None:
    source = r"""
#include <stdio.h>
int main(void) { return fopen("/ro/new.txt", "w") ? 1 : 5; }
"""
    (tmp_path / "ro").mkdir()
    assert _both(tmp_path, ["run", "--dir", f"{tmp_path / 'ro'}::/ro::ro",
                            str(build_c_source(source))])[0] == 5


def test_a_trap_and_a_stack_overflow_report_as_the_full_route(tmp_path: pathlib.Path) -> None:
    trap = tmp_path / "trap.wasm"
    trap.write_bytes(build_wat("""(module
      (import "wasi_snapshot_preview1" "proc_exit" (func (param i32)))
      (memory (export "memory") 1)
      (func (export "_start") unreachable))"""))
    status, out, err = _both(tmp_path, ["run", str(trap)])
    assert status == 134 and b"error while running" in err and b"unreachable" in err
    status, out, err = _both(tmp_path, ["run", str(build_c("stack")), "100000000"])
    assert status == 134 and b"The wasm stack (512 KiB) is exhausted" in err


def _write_and_exit(namespace: str, text: str, code: int, *, in_start_function: bool) -> bytes:
    """A module that writes ``text`` to stdout and exits with ``code``, from
    ``_start`` or from its start function (which runs while instantiating)."""
    body = f"""
        (i32.store (i32.const 0) (i32.const 16))
        (i32.store (i32.const 4) (i32.const {len(text.encode())}))
        (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
        (call $exit (i32.const {code}))"""
    funcs = (f'(func $init {body}) (start $init) (func (export "_start"))' if in_start_function
             else f'(func (export "_start") {body})')
    escaped = text.replace("\n", "\\n")   # WAT's string escape
    return build_wat(f"""(module
      (import "{namespace}" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
      (import "{namespace}" "proc_exit" (func $exit (param i32)))
      (memory (export "memory") 1)
      (data (i32.const 16) "{escaped}")
      {funcs})""")


def test_a_trap_in_the_start_function(tmp_path: pathlib.Path) -> None:
    module = tmp_path / "start.wasm"
    module.write_bytes(_write_and_exit("wasi_snapshot_preview1", "init", 9, in_start_function=True))
    # Reported as the full route reports it (wasmtime gives a host trap in
    # the start function as an error: "cannot instantiate"; WASI's memory is
    # bound after instantiation, so the write faults), by the lean route
    # itself: the start function ran once, not again on the full route.
    status, out, err = _both(tmp_path, ["run", str(module)])
    assert status == 1 and err.startswith(b"pywasi: cannot instantiate "), err


def test_wasi_unstable(tmp_path: pathlib.Path) -> None:
    module = tmp_path / "old.wasm"
    module.write_bytes(_write_and_exit("wasi_unstable", "old abi\n", 3, in_start_function=False))
    assert _both(tmp_path, ["run", str(module)]) == (3, b"old abi\n", b"")


def test_a_text_module(tmp_path: pathlib.Path) -> None:
    """WAT: the cache keys it on its text, so a second run is a hit too."""
    module = tmp_path / "m.wat"
    module.write_text("""(module
      (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
      (memory (export "memory") 1)
      (func (export "_start") (call $exit (i32.const 5))))""")
    assert _both(tmp_path, ["run", str(module)]) == (5, b"", b"")


def test_a_damaged_entry_is_one_warning_line(tmp_path: pathlib.Path) -> None:
    """The lean route's lookup discards a damaged entry with the command's
    one-line warning, as the full route's does, and the module runs."""
    hello = str(build_c("hello"))
    answers = []
    for lean in (False, True):
        tmp = tmp_path / str(lean)
        tmp.mkdir()
        assert _command(tmp, ["run", hello], lean=False)[0] == 0   # stores the entry
        [entry] = (tmp / "cache").glob("*.cwasm")
        entry.write_bytes(entry.read_bytes()[:-1])   # truncated: its name's size no longer holds
        status, out, err, _ = _command(tmp, ["run", hello], lean=lean)
        answers.append((status, out, err))
    assert answers[0] == answers[1]
    status, out, err = answers[1]
    assert (status, out) == (0, b"hello from C\n")
    lines = err.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "pywasi: warning: compiled-module cache: discarding entry "), lines


def test_a_precompiled_file_is_the_full_routes(tmp_path: pathlib.Path) -> None:
    """Native code is run only with --allow-precompiled (the full route):
    never from the lean route, whose cache holds no entry for it."""
    source = tmp_path / "m.wasm"
    source.write_bytes(build_wat('(module (memory (export "memory") 1) (func (export "_start")))'))
    subprocess.run([sys.executable, "-m", "pywasi", "compile", str(source), "-o",
                    str(tmp_path / "m.cwasm")], check=True, capture_output=True, timeout=120)
    status, _, err = _both(tmp_path, ["run", str(tmp_path / "m.cwasm")], lean_expected=False)
    assert status == 1 and b"--allow-precompiled" in err, err


@pytest.mark.parametrize("case", ["reactor", "env-import", "bad-type", "limit", "no-memory"])
def test_what_it_does_not_take_runs_on_the_full_route(tmp_path: pathlib.Path, case: str) -> None:
    write = '(import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))'
    bodies = {
        "reactor": f'{write} (memory (export "memory") 1) (func (export "_initialize"))',
        "env-import": f'{write} (import "env" "f" (func)) (memory (export "memory") 1) '
                      f'(func (export "_start"))',
        "bad-type": '(import "wasi_snapshot_preview1" "fd_write" (func (param i32)))'
                    ' (memory (export "memory") 1) (func (export "_start"))',
        "limit": f'{write} (memory (export "memory") 1) (func (export "_start"))',
        "no-memory": f'{write} (func (export "_start"))',
    }
    text = f"(module {bodies[case]})"
    module = tmp_path / "m.wasm"
    module.write_bytes(build_wat(text))
    args = ["run", *(["--max-output", "100"] if case == "limit" else []), str(module)]
    status, _, err = _both(tmp_path, args, lean_expected=False)
    # A reactor with nothing else to run, an unknown import, a bad type, no
    # memory: the full route's errors (status 1).
    assert status == (0 if case == "limit" else 1), err
