"""Project-wide guards: every preview1 function is implemented and named in
some test, the package is mypy-strict clean, and the public API is exactly
what __all__ says."""

from __future__ import annotations

import pathlib
import re
import subprocess
import sys

import pywasi
from pywasi._abi import PREVIEW1
from pywasi._syscalls import UNIMPLEMENTED

ROOT = pathlib.Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"


def test_no_function_is_a_stub() -> None:
    assert UNIMPLEMENTED == frozenset()


def test_every_function_has_tests() -> None:
    """Each preview1 function is called by name in a test (WAT, a direct
    host-function call or a raw __wasi_* call in a C program)."""
    text = "\n".join(p.read_text(errors="replace") for p in TESTS.rglob("*")
                     if p.suffix in {".py", ".c", ".wat"} and p.name != "test_project.py"
                     and ".wasm-cache" not in p.parts)
    missing = [name for name in PREVIEW1
               if not re.search(rf'["$_]{name}\b|__wasi_{name}\b', text)]
    assert missing == []


def test_mypy_strict() -> None:
    proc = subprocess.run([sys.executable, "-m", "mypy", "--strict", "src/pywasi"], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_public_api() -> None:
    import types
    public = {name for name in dir(pywasi)
              if not name.startswith("_") and not isinstance(getattr(pywasi, name), types.ModuleType)}
    assert public | {"__version__"} == set(pywasi.__all__)


def test_raw_host_call_route_is_in_use() -> None:
    """The fast route needs wasmtime-py's private C symbols; if an upgrade
    drops them pywasi still works (public route) but this test says so."""
    from pywasi._engine import _hostcall
    assert _hostcall.RAW_ROUTE
    wasi = pywasi.WASI(version="preview1")
    assert wasi.wasi_import["fd_write"].raw_callback() is not None


def test_documentation_links_resolve() -> None:
    """The README is kept short and sends readers to docs/: every relative
    link in it and in docs/*.md names a file that exists."""
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    broken = []
    for page in pages:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if "://" not in target and not (page.parent / target).exists():
                broken.append(f"{page.relative_to(ROOT)} -> {target}")
    assert pages[1:], "docs/ has no pages"
    assert broken == []
