"""What the WASI layer costs to import: the modules ``pywasi run`` loads for a
plain program (issue 28, start-up) must not pull in typing (and the re it
imports: ~10 ms of wall time), enum (the ABI's enums are ``_abi._enum``'s
lighter classes: ~5 ms), pathlib, platform, wasmtime-py or the engine
facade. Annotation-only names live under a module-level ``TYPE_CHECKING =
False`` (mypy reads any name TYPE_CHECKING as true).

Each check runs in a fresh interpreter, with the ``pywasi`` package replaced
by an empty one over the same directory: today ``pywasi/__init__`` imports the
engine (wasmtime) itself, and the point is what *these* modules import.
``pywasi._dispatch`` (the integrator's, which still imports ``_engine``) is
stubbed by the two names the syscalls take from it, so that a typing import
in a syscall module is seen, not hidden behind the dispatcher's own."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

# The modules a plain ``pywasi run`` imports from the WASI layer.
RUN_PATH = ["pywasi._abi", "pywasi._errors", "pywasi._memory", "pywasi._native", "pywasi._fdtable",
            "pywasi._cache", "pywasi._fs._dir", "pywasi._fs._file", "pywasi._fs._stream",
            "pywasi._syscalls"]

# Imported only when asked for (in-memory trees, output limits, sockets).
ON_DEMAND = ["pywasi._fs._memory", "pywasi._fs._output", "pywasi._fs._socket"]

FORBIDDEN = {"typing", "re", "enum", "pathlib", "platform", "urllib", "ipaddress", "contextlib", "argparse",
             "tempfile", "hashlib", "importlib.metadata", "dataclasses", "inspect", "wasmtime",
             "pywasi._engine"}

_CHILD = """
import sys, types
pkg = types.ModuleType("pywasi")
pkg.__path__ = [{path!r}]
sys.modules["pywasi"] = pkg
dispatch = types.ModuleType("pywasi._dispatch")
dispatch.HostState = type("HostState", (), {{}})
dispatch.HostFunction = type("HostFunction", (), {{}})
sys.modules["pywasi._dispatch"] = dispatch
before = set(sys.modules)
for name in {modules!r}:
    __import__(name)
print("\\n".join(sorted(set(sys.modules) - before)))
"""


def _package_dir() -> str:
    spec = importlib.util.find_spec("pywasi")  # finds, does not run, pywasi/__init__
    assert spec is not None and spec.submodule_search_locations
    return list(spec.submodule_search_locations)[0]


def imported_by(modules: list[str]) -> set[str]:
    """Every module a fresh interpreter loads to import ``modules``."""
    code = _CHILD.format(path=_package_dir(), modules=modules)
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
    """The stub package does not hide what a module imports: importing typing
    next to the run path is reported."""
    assert {"typing", "re"} <= set(forbidden(imported_by(RUN_PATH + ["typing"])))
