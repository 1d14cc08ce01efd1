"""What the WASI layer costs to import: the modules ``pywasi run`` loads for a
plain program (issue 28, start-up) must not pull in typing (and the re it
imports: ~10 ms of wall time), enum (the ABI's enums are ``_abi._enum``'s
lighter classes: ~5 ms), pathlib, platform, wasmtime-py or the engine
facade. Annotation-only names live under a module-level ``TYPE_CHECKING =
False`` (mypy reads any name TYPE_CHECKING as true).

Each check runs in a fresh interpreter. ``pywasi/__init__`` imports its
names on first use, so importing these modules runs only them (and
``_errors``). tests/test_startup.py checks a real ``pywasi run``'s whole
import list; this one names the module that brought a forbidden import in."""

from __future__ import annotations

import subprocess
import sys

import pytest

# The modules a plain ``pywasi run`` imports from the WASI layer.
RUN_PATH = ["pywasi", "pywasi.cli", "pywasi._lean", "pywasi._wasi", "pywasi._threads",
            "pywasi._dispatch", "pywasi._abi", "pywasi._errors", "pywasi._memory", "pywasi._native", "pywasi._fdtable",
            "pywasi._cache", "pywasi._fs._dir", "pywasi._fs._file", "pywasi._fs._stream",
            "pywasi._syscalls"]

# Imported only when asked for (in-memory trees, output limits, sockets).
ON_DEMAND = ["pywasi._fs._memory", "pywasi._fs._output", "pywasi._fs._socket"]

FORBIDDEN = {"typing", "re", "enum", "pathlib", "platform", "urllib", "ipaddress", "contextlib", "argparse",
             "tempfile", "hashlib", "importlib.metadata", "dataclasses", "inspect", "wasmtime",
             "pywasi._engine"}

_CHILD = """
import sys
before = set(sys.modules)
for name in {modules!r}:
    __import__(name)
print("\\n".join(sorted(set(sys.modules) - before)))
"""


def imported_by(modules: list[str]) -> set[str]:
    """Every module a fresh interpreter loads to import ``modules``."""
    code = _CHILD.format(modules=modules)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def forbidden(loaded: set[str]) -> list[str]:
    return sorted(m for m in loaded
                  if any(m == bad or m.startswith(bad + ".") for bad in FORBIDDEN))


# (modules, forbidden ones they may import): the standard library's socket
# imports enum itself.
@pytest.mark.parametrize("modules, allowed", [(RUN_PATH, []), (ON_DEMAND, ["enum"])],
                         ids=["run-path", "on-demand"])
def test_wasi_layer_imports_nothing_heavy(modules: list[str], allowed: list[str]) -> None:
    loaded = imported_by(modules)
    assert set(modules) <= loaded  # the check did import them
    assert forbidden(loaded) == allowed


def test_the_check_sees_a_typing_import() -> None:
    """Importing typing next to the run path is reported."""
    assert {"typing", "re"} <= set(forbidden(imported_by(RUN_PATH + ["typing"])))
