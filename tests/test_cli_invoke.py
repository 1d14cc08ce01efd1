"""``pywasi run`` on every shape of module the wasmtime CLI runs (issue 28):
a command (``_start``), a reactor whose default export ``""`` is the
program (``_initialize`` then ``""``, as wasmtime), a reactor with nothing
to run (an error, after its ``_initialize``), and ``--invoke NAME ARGS...``,
whose arguments are parsed by the export's parameter types and whose results
are printed as wasmtime prints them (wasmtime 49's output, checked side by
side, is written into the expected values below). Bad invocations are one
line and status 2, in the style of tests/test_cli_errors.py."""

from __future__ import annotations

import pathlib
import subprocess

import pytest

from test_cli_errors import LOAD, TRAP, USAGE, assert_one_line, pywasi

TIMEOUT = 124  # -W timeout's status (as GNU timeout's)
from wasmbuild import build_wat

P1 = "wasi_snapshot_preview1"

# Says "init\n" from _initialize and "default\n" from the default export "";
# `echo` and `types` are for --invoke.
REACTOR = f"""(module
  (import "{P1}" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (import "{P1}" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "init\\n")
  (data (i32.const 32) "default\\n")
  (func $say (param $at i32) (param $len i32)
    (i32.store (i32.const 0) (local.get $at)) (i32.store (i32.const 4) (local.get $len))
    (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))))
  (func (export "_initialize") (call $say (i32.const 16) (i32.const 5)))
  {{default}}
  (func (export "types") (param i32 i64 f32 f64) (result i32 i64 f32 f64)
    local.get 0 local.get 1 local.get 2 local.get 3)
  (func (export "f32") (param f32) (result f32) local.get 0)
  (func (export "f64") (param f64) (result f64) local.get 0)
  (func (export "exit") (param i32) (call $exit (local.get 0)))
  (func (export "trap") unreachable)
  (func (export "spin") (loop $forever (br $forever)))
  (func $g)
  (elem declare func $g)
  (func (export "refs") (result funcref externref) (ref.func $g) (ref.null extern))
  (func (export "takes_ref") (param externref))
  (global (export "a_global") i32 (i32.const 0)))"""

DEFAULT = '(func (export "") (call $say (i32.const 32) (i32.const 8)))'


@pytest.fixture
def reactor(tmp_path: pathlib.Path) -> pathlib.Path:
    path = tmp_path / "reactor.wasm"
    path.write_bytes(build_wat(REACTOR.format(default=DEFAULT)))
    return path


def test_a_command_runs_its_start(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "command.wasm"
    path.write_bytes(build_wat(REACTOR.replace('(export "_initialize")', '(export "_start")')
                               .format(default="")))
    proc = pywasi("run", str(path), cwd=tmp_path)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, b"init\n", b"")


def test_a_reactor_runs_its_default_export_after_initialize(reactor: pathlib.Path) -> None:
    """itkwasm's modules export _initialize and "" and no _start: wasmtime
    runs both, so does pywasi."""
    proc = pywasi("run", str(reactor), cwd=reactor.parent)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, b"init\ndefault\n", b"")


def test_a_default_export_without_initialize_runs(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "m.wasm"
    path.write_bytes(build_wat(REACTOR.replace('(export "_initialize")', "").format(default=DEFAULT)))
    proc = pywasi("run", str(path), cwd=tmp_path)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, b"default\n", b"")


def test_a_reactor_with_nothing_to_run_is_an_error(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "m.wasm"
    path.write_bytes(build_wat(REACTOR.format(default="")))
    proc = pywasi("run", str(path), cwd=tmp_path)
    assert proc.returncode == LOAD and proc.stdout == b"init\n"  # its _initialize ran
    assert b"Traceback" not in proc.stderr
    assert proc.stderr.decode().count("\n") == 1 and "nothing else to run" in proc.stderr.decode()
    assert "--invoke NAME" in proc.stderr.decode()


def test_invoke_parses_every_number_type_and_prints_the_results(reactor: pathlib.Path) -> None:
    proc = pywasi("run", "--invoke", "types", str(reactor), "-7", "0x7fffffffffffffff", "1.5",
                  "-2.25e-3", cwd=reactor.parent)
    assert proc.returncode == 0, proc.stderr
    # _initialize first (as wasmtime), not the default export; then one line per result.
    assert proc.stdout == b"init\n-7\n9223372036854775807\n1.5\n-0.00225\n"
    assert proc.stderr == b""


@pytest.mark.parametrize("ty, arg, shown", [
    # What `wasmtime run --invoke` prints (wasmtime 49): Rust's Display of
    # the value, the shortest decimal for the type, never an exponent.
    ("f32", "123456789", "123456790"),
    ("f64", "123456789", "123456789"),
    ("f32", "0.1", "0.1"),
    ("f64", "1e20", "100000000000000000000"),
    ("f64", "1e-7", "0.0000001"),
    ("f32", "1e400", "inf"),
    ("f64", "-inf", "-inf"),
    ("f64", "nan", "NaN"),
    ("f32", "-0", "-0"),
    ("f64", ".5", "0.5"),
    ("f64", "+5", "5"),
])
def test_invoke_prints_floats_as_wasmtime(reactor: pathlib.Path, ty: str, arg: str, shown: str) -> None:
    proc = pywasi("run", f"--invoke={ty}", str(reactor), arg, cwd=reactor.parent)
    assert (proc.returncode, proc.stdout.decode()) == (0, f"init\n{shown}\n"), proc.stderr


def test_invoke_prints_references(reactor: pathlib.Path) -> None:
    proc = pywasi("run", "--invoke", "refs", str(reactor), cwd=reactor.parent)
    assert (proc.returncode, proc.stdout) == (0, b"init\n<funcref>\n<null externref>\n")


def test_invoke_takes_the_exit_code_and_reports_a_trap(reactor: pathlib.Path) -> None:
    proc = pywasi("run", "--invoke", "exit", str(reactor), "7", cwd=reactor.parent)
    assert (proc.returncode, proc.stdout) == (7, b"init\n")
    proc = pywasi("run", "--invoke", "trap", str(reactor), cwd=reactor.parent)
    assert proc.returncode == TRAP and b"unreachable" in proc.stderr
    assert b"Traceback" not in proc.stderr


def test_a_time_limit_bounds_initialize_and_the_export_together(
        reactor: pathlib.Path, tmp_path: pathlib.Path) -> None:
    """-W timeout as wasmtime's: one deadline for the whole run, whichever
    export is called; status 124 and the limit as the user wrote it."""
    run = ["run", "-W", "timeout=300ms"]
    proc = pywasi(*run, "--invoke", "types", str(reactor), "1", "2", "3", "4", cwd=tmp_path)
    assert (proc.returncode, proc.stdout) == (0, b"init\n1\n2\n3\n4\n"), proc.stderr
    proc = pywasi(*run, "--invoke", "exit", str(reactor), "7", cwd=tmp_path)
    assert (proc.returncode, proc.stdout) == (7, b"init\n"), proc.stderr
    proc = pywasi(*run, "--invoke", "trap", str(reactor), cwd=tmp_path)
    assert proc.returncode == TRAP and b"unreachable" in proc.stderr
    spins = "(loop $forever (br $forever))"
    default_spins = tmp_path / "default-spins.wasm"
    default_spins.write_bytes(build_wat(REACTOR.format(default=f'(func (export "") {spins})')))
    init_spins = tmp_path / "init-spins.wasm"
    init_spins.write_bytes(build_wat(REACTOR.format(default=DEFAULT).replace(
        "(export \"_initialize\") (call $say (i32.const 16) (i32.const 5))",
        f"(export \"_initialize\") {spins}")))
    for flags, path, out in ((["--invoke", "spin"], reactor, b"init\n"), ([], default_spins, b"init\n"),
                             (["--invoke", "types"], init_spins, b"")):  # stopped in _initialize
        proc = pywasi(*run, *flags, str(path), *(["1"] * 4 if flags[1:] == ["types"] else []),
                      cwd=tmp_path)
        assert proc.stdout == out
        assert_one_line(subprocess.CompletedProcess(proc.args, proc.returncode, b"", proc.stderr),
                        TIMEOUT, "time limit of 300ms reached")


def test_invoke_on_a_module_without_memory_or_wasi(tmp_path: pathlib.Path) -> None:
    """Pure computation: nothing for WASI to bind to, the export still runs."""
    path = tmp_path / "m.wat"
    path.write_text('(module (func (export "add") (param i64 i64) (result i64) '
                    '(i64.add (local.get 0) (local.get 1))))')
    proc = pywasi("run", "--invoke", "add", "m.wat", "40", "2", cwd=tmp_path)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, b"42\n", b"")


BAD_INVOCATIONS = {
    "not an integer": (["--invoke", "types", "x", "1", "1", "1"],
                       "argument 1 of `types` (i32): 'x' is not an integer"),
    "out of an i32's range": (["--invoke", "types", "2147483648", "1", "1", "1"],
                              "out of range for a signed 32-bit integer"),
    "not a float": (["--invoke", "f64", "1,5"], "argument 1 of `f64` (f64): '1,5' is not a number"),
    "a hex float (wasmtime refuses it too)": (["--invoke", "f32", "0x1p3"], "is not a number"),
    "too few arguments": (["--invoke", "types", "1"],
                          "not enough arguments for `types`: it takes 4 (i32, i64, f32, f64), 1 given"),
    "no such export": (["--invoke", "nope"], "has no function export named 'nope'"),
    "not a function": (["--invoke", "a_global"], "its export 'a_global' is not a function"),
    "a reference parameter": (["--invoke", "takes_ref"],
                              "cannot be given on the command line"),
    "--invoke without a name": (["--invoke"], "--invoke needs a value"),
}


@pytest.mark.parametrize("case", BAD_INVOCATIONS)
def test_bad_invocation_is_one_line(reactor: pathlib.Path, case: str) -> None:
    flags, words = BAD_INVOCATIONS[case]
    args = ["run", flags[0], flags[1], str(reactor), *flags[2:]] if len(flags) > 1 else \
        ["run", *flags]
    proc = pywasi(*args, cwd=reactor.parent)
    # Checked before anything runs: not even _initialize's output.
    assert_one_line(proc, USAGE, words)
