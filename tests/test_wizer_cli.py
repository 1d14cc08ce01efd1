"""``pywasi wizer``: wasmtime wizer's flags, pywasi run's WASI flags for the
init (a --dir of each kind, --env, --deterministic, --trace), the module to
a file or to stdout, and every failure as one line (never a traceback)."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import zipfile

import pytest

from pywasi import _wasm
from wasmbuild import build_c, build_wat


def pywasi(*args: str, cwd: pathlib.Path | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "pywasi", *args], capture_output=True,
                          timeout=300, cwd=cwd)


def command() -> str:
    return str(build_c("preinit_command"))


@pytest.mark.parametrize("mode", ["", "::ro", "::overlay", "::zip"])
def test_init_reads_a_file_from_each_kind_of_preopen(tmp_path: pathlib.Path, mode: str) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "config.txt").write_bytes(b"from-" + (mode.strip(":") or "host").encode())
    source = str(data)
    if mode == "::zip":
        source = str(tmp_path / "data.zip")
        with zipfile.ZipFile(source, "w") as archive:
            archive.write(data / "config.txt", "config.txt")
    out = tmp_path / "out.wasm"
    proc = pywasi("wizer", "--dir", f"{source}::/data{mode}", "-o", str(out), command())
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, b"", b"")
    run = pywasi("run", "--env", "GREETING=yo", str(out), "one")
    assert run.returncode == 0, run.stderr
    expected = f"config=from-{mode.strip(':') or 'host'} ".encode()
    assert expected in run.stdout and b"arg1=one env=yo" in run.stdout


def test_module_to_stdout_and_the_init_output_to_stderr(tmp_path: pathlib.Path) -> None:
    wat = """(module
      (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
      (memory (export "memory") 1)
      (data (i32.const 8) "\\10\\00\\00\\00\\05\\00\\00\\00init!")
      (func (export "wizer.initialize") (drop (call $w (i32.const 1) (i32.const 8) (i32.const 1)
                                                        (i32.const 100)))))"""
    (tmp_path / "m.wat").write_text(wat)
    proc = pywasi("wizer", "m.wat", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == b"init!"
    assert proc.stdout.startswith(b"\0asm")
    assert _wasm.write_module(_wasm.read_module(proc.stdout)) == proc.stdout


def test_deterministic_trace_init_func_and_renames(tmp_path: pathlib.Path) -> None:
    wat = """(module
      (import "wasi_snapshot_preview1" "random_get" (func $r (param i32 i32) (result i32)))
      (memory (export "memory") 1)
      (func (export "setup") (drop (call $r (i32.const 0) (i32.const 16))))
      (func (export "alt")) (func (export "_start")))"""
    (tmp_path / "m.wat").write_text(wat)
    outputs = []
    for n in range(2):
        proc = pywasi("wizer", "--deterministic", "--seed", "7", "-f", "setup", "--trace",
                      "-r", "_start=alt", "--keep-init-func", "-o", f"o{n}.wasm", "m.wat",
                      cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        assert proc.stderr.startswith(b"random_get(0x0, 16) = SUCCESS"), proc.stderr
        outputs.append((tmp_path / f"o{n}.wasm").read_bytes())
    assert outputs[0] == outputs[1]
    sections = [s for s in _wasm.read_module(outputs[0]) if s.id == _wasm.EXPORT]
    names = sorted(e.name for e in _wasm.read_exports(sections[0].payload))
    assert names == ["_start", "memory", "setup"]


@pytest.mark.parametrize("args,status,words", [
    (["wizer"], 2, "no MODULE given"),
    (["wizer", "-o"], 2, "-o needs a value"),
    (["wizer", "-r", "nope", "m.wat"], 2, "expected DST=SRC"),
    (["wizer", "--keep-init-func=maybe", "m.wat"], 2, "expected true or false"),
    (["wizer", "-W", "fuel=10", "m.wat"], 2, "-W fuel is not an option of wizer"),
    (["wizer", "-Wunknown-imports-trap=maybe", "m.wat"], 2, "expected y or n"),
    (["wizer", "-f", "go", "-o", "x.wasm", "i.wat"], 1, "no module 'host' (an import the init never calls"),
    (["wizer", "--bogus", "m.wat"], 2, "unknown option '--bogus'"),
    (["wizer", "missing.wasm"], 1, "cannot pre-initialise missing.wasm: cannot read"),
    (["wizer", "m.wat"], 1, "does not export 'wizer.initialize'"),
    (["wizer", "-f", "trap", "-o", "x.wasm", "m.wat"], 1, "trap trapped: "),
    (["wizer", "-f", "go", "-o", "no/such/dir/x.wasm", "m.wat"], 2, "cannot write"),
])
def test_failures_are_one_line(tmp_path: pathlib.Path, args: list[str], status: int,
                               words: str) -> None:
    (tmp_path / "m.wat").write_text("""(module (memory (export "memory") 1)
      (func (export "go")) (func (export "trap") unreachable))""")
    (tmp_path / "i.wat").write_text("""(module (import "host" "call" (func))
      (memory (export "memory") 1) (func (export "go")))""")
    proc = pywasi(*args, cwd=tmp_path)
    assert proc.returncode == status, proc.stderr
    assert proc.stdout == b""
    assert b"Traceback" not in proc.stderr
    assert words.encode() in proc.stderr, proc.stderr
    assert proc.stderr.count(b"\n") == 1


def test_unknown_imports_trap(tmp_path: pathlib.Path) -> None:
    (tmp_path / "i.wat").write_text("""(module (import "host" "call" (func))
      (memory (export "memory") 1) (func (export "go")))""")
    proc = pywasi("wizer", "-W", "unknown-imports-trap=y", "-f", "go", "-o", "x.wasm", "i.wat",
                  cwd=tmp_path)
    assert (proc.returncode, proc.stderr) == (0, b"")
    assert (tmp_path / "x.wasm").read_bytes().startswith(b"\0asm")


def test_help_names_the_subcommand() -> None:
    proc = pywasi("wizer", "--help")
    assert proc.returncode == 0 and b"--init-func NAME" in proc.stdout
