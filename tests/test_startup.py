"""Start-up stays cheap, checked without timing anything: a hello world run
by the command line, as every start after the first (a compiled-module cache
hit), imports none of the modules that only some programs need. How fast it
starts is measured in bench/ (the START workload), never here."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

from wasmbuild import build_c

# Each costs milliseconds of every start-up and is needed only by some runs:
# sockets (the sock_* calls, --tcplisten), writing a cache entry (a miss).
NOT_AT_STARTUP = frozenset({
    "socket", "selectors", "pywasi._fs._socket", "tempfile", "shutil", "random",
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
