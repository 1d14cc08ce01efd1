"""The command line: flags, exit codes, the trap message, bad input (one
clear line, never a traceback), and a differential run against node:wasi."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest

from wasmbuild import build_c, build_wat

ROOT = pathlib.Path(__file__).resolve().parent.parent
DEMO = ROOT / "examples" / "demo.wat"


def pywasi(*args: str, stdin: bytes = b"", env: dict[str, str] | None = None,
           cwd: str | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "pywasi", *args], input=stdin, capture_output=True,
                          timeout=120, env=env, cwd=cwd)


def assert_clean_error(proc: subprocess.CompletedProcess[bytes], status: int, words: str) -> None:
    assert proc.returncode == status, proc.stderr
    assert proc.stdout == b""
    assert b"Traceback" not in proc.stderr
    assert words.encode() in proc.stderr, proc.stderr


def test_run_demo() -> None:
    proc = pywasi("run", str(DEMO))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == b"hello world\n"
    assert proc.stderr == b""


def test_module_without_run_subcommand() -> None:
    assert pywasi(str(DEMO)).stdout == b"hello world\n"


def test_version() -> None:
    proc = pywasi("--version")
    assert proc.returncode == 0 and proc.stdout.startswith(b"pywasi ")


def test_help() -> None:
    proc = pywasi("run", "--help")
    assert proc.returncode == 0 and b"--dir HOST[::GUEST]" in proc.stdout


def test_args_env_and_exit_code() -> None:
    wasm = build_c("core_env")
    env = dict(os.environ, FROM_HOST="inherited")
    proc = pywasi("run", "--env", "PYWASI_TEST=x y", "--env", "FROM_HOST", "--env=EMPTY=",
                  "--env", "UNSET_ANYWHERE_123", str(wasm), "5", "--not-a-flag", env=env)
    assert proc.returncode == 5, proc.stderr
    out = proc.stdout.decode()
    assert f'argv[0]: "{wasm}"' in out
    assert 'argv[2]: "--not-a-flag"' in out
    assert 'environ[0]: "PYWASI_TEST=x y"' in out
    assert 'environ[1]: "FROM_HOST=inherited"' in out
    assert 'environ[2]: "EMPTY="' in out
    assert "environ count: 3" in out
    assert b"this line goes to stderr" in proc.stderr


def test_environment_is_only_what_is_passed() -> None:
    proc = pywasi("run", str(build_c("core_env")), env=dict(os.environ, HOME="/root"))
    assert "environ count: 0" in proc.stdout.decode()
    assert "getenv(HOME): (unset)" in proc.stdout.decode()


def test_inherit_env() -> None:
    proc = pywasi("run", "--inherit-env", str(build_c("core_env")),
                  env=dict(os.environ, HOME="/home/someone"))
    assert 'getenv(HOME): "/home/someone"' in proc.stdout.decode()


def test_dir_preopen(tmp_path: pathlib.Path) -> None:
    wat = b"""(module
      (import "wasi_snapshot_preview1" "fd_prestat_dir_name" (func $n (param i32 i32 i32) (result i32)))
      (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
      (memory (export "memory") 1)
      (func (export "_start")
        (drop (call $n (i32.const 3) (i32.const 100) (i32.const 6)))
        (i32.store (i32.const 0) (i32.const 100)) (i32.store (i32.const 4) (i32.const 6))
        (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"""
    module = tmp_path / "m.wasm"
    module.write_bytes(build_wat(wat.decode()))
    assert pywasi("run", "--dir", f"{tmp_path}::/guest", str(module)).stdout == b"/guest"
    assert pywasi("run", f"--dir={tmp_path}::/other", str(module)).stdout == b"/other"


def test_trap_exits_134_with_message(tmp_path: pathlib.Path) -> None:
    module = tmp_path / "trap.wat"
    module.write_text('(module (memory (export "memory") 1) (func (export "_start") unreachable))')
    proc = pywasi("run", str(module))
    assert_clean_error(proc, 134, "unreachable")


def test_guest_fault_names_the_call(tmp_path: pathlib.Path) -> None:
    module = tmp_path / "fault.wat"
    module.write_text("""(module
      (import "wasi_snapshot_preview1" "random_get" (func $r (param i32 i32) (result i32)))
      (memory (export "memory") 1)
      (func (export "_start") (drop (call $r (i32.const -4) (i32.const 8)))))""")
    assert_clean_error(pywasi("run", str(module)), 134, "random_get: out of bounds")


@pytest.mark.parametrize("argv, status, words", [
    ([], 2, "usage"),
    (["run"], 2, "no MODULE given"),
    (["run", "--bogus", "x.wasm"], 2, "unknown option '--bogus'"),
    (["--bogus"], 2, "unknown option '--bogus'"),
    (["run", "--dir"], 2, "--dir needs a value"),
    (["run", "--dir", "::g", "x.wasm"], 2, "expected HOST, HOST::GUEST or HOST::GUEST::MODE"),
    (["run", "--env", "=v", "x.wasm"], 2, "expected NAME or NAME=VALUE"),
    (["run", "missing.wasm"], 1, "cannot read module 'missing.wasm': no such file"),
    (["run", "--dir", "/definitely/not/here", str(DEMO)], 2, "/definitely/not/here"),
])
def test_bad_input_is_one_clear_line(argv: list[str], status: int, words: str) -> None:
    assert_clean_error(pywasi(*argv), status, words)


def test_not_wasm(tmp_path: pathlib.Path) -> None:
    junk = tmp_path / "junk.wasm"
    junk.write_bytes(b"this is not wasm")
    assert_clean_error(pywasi("run", str(junk)), 1, "not a valid WebAssembly module")
    assert_clean_error(pywasi("run", str(tmp_path)), 1, "is a directory")


def test_missing_import(tmp_path: pathlib.Path) -> None:
    module = tmp_path / "imp.wat"
    module.write_text('(module (import "env" "nothing" (func)) (func (export "_start")))')
    assert_clean_error(pywasi("run", str(module)), 1, "env.nothing")


def test_exit_code_above_255(tmp_path: pathlib.Path) -> None:
    module = tmp_path / "exit.wat"
    module.write_text("""(module (import "wasi_snapshot_preview1" "proc_exit" (func $e (param i32)))
      (memory (export "memory") 1) (func (export "_start") (call $e (i32.const 256))))""")
    assert pywasi("run", str(module)).returncode == 255


def test_same_output_as_node(run_node_wasi) -> None:  # type: ignore[no-untyped-def]
    """printf, argv, getenv, clock_gettime and getentropy behave as under node:wasi."""
    wasm = build_c("core_env")
    args = ["3", "two words", "ünï"]
    env = {"PYWASI_TEST": "value=with=equals", "EMPTY": ""}
    code, out, err = run_node_wasi(wasm, args=[str(wasm), *args], env=env)
    flags = [f"--env={k}={v}" for k, v in env.items()]
    ours = pywasi("run", *flags, str(wasm), *args)
    assert (ours.returncode, ours.stdout, ours.stderr) == (code, out, err)
    assert code == 3 and b"argc: 4" in out


def test_ctrl_c_while_the_command_waits_for_threads_ends_it_with_130(monkeypatch: pytest.MonkeyPatch) -> None:
    """A Ctrl-C while ``pywasi`` joins the threads left at its end (as during
    the run: status 130, no traceback); atexit handlers still run."""
    from pywasi import cli

    class Stuck:
        daemon = False

        def join(self) -> None:
            raise KeyboardInterrupt

    import threading   # _end_process joins threads when threading was imported
    ran: list[str] = []
    monkeypatch.setattr(threading, "enumerate", lambda: [threading.main_thread(), Stuck()])
    monkeypatch.setattr(cli.atexit, "_run_exitfuncs", lambda: ran.append("atexit"))

    def exit_(status: int) -> None:
        raise SystemExit(status)
    monkeypatch.setattr(cli.os, "_exit", exit_)
    with pytest.raises(SystemExit) as ended:
        cli._end_process(0)
    assert (ended.value.code, ran) == (130, ["atexit"])


def test_main_gives_the_cache_its_warnings_back(tmp_path: pathlib.Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The command turns cache warnings into its own lines only while it
    runs: a caller of main() in a process that goes on gets them as
    warnings again, on either route."""
    from pywasi import _cache, cli
    module = tmp_path / "m.wasm"
    module.write_bytes(build_wat('(module (memory (export "memory") 1) (func (export "_start")))'))
    monkeypatch.setenv("PYWASI_CACHE_DIR", str(tmp_path / "cache"))
    for _ in range(2):  # the full route stores the entry, the lean route loads it
        assert cli.main(["run", str(module)]) == 0
        assert _cache._REPORT is None
