"""wasmtime-py releases (issue 12, item 3): the private bindings the fast
routes use are checked at import against the loaded wasmtime-py, and a
missing or changed one falls back to the public route with one warning.

The fallbacks are exercised for real: a child interpreter changes what the
loaded wasmtime-py declares (or hides a symbol of its library) before pywasi
is imported, as a new wasmtime-py major would, and then runs real programs
(``tests/c/limits.c``) on what is left."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import warnings
from importlib import metadata

import pytest

import pywasi
from pywasi._engine import _ffi, host_call_route
from wasmbuild import build_c

LIMITS = build_c("limits")

# Run in the child after the patch: one C program by the API (a real
# memory access through fd_write), the same module again (the warning is
# said once), a timeout that stops a compute loop, and what pywasi decided.
_PROBE = """
import json, warnings
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    import pywasi
    from pywasi._engine import _ffi, host_call_route
    hello = pywasi.run(MODULE, args=["limits", "hello"])
    again = pywasi.run(MODULE, args=["limits", "hello"])
    spin = pywasi.run(MODULE, args=["limits", "spin"], timeout=0.2)
print(json.dumps({
    "route": host_call_route(),
    "problems": _ffi.problems,
    "warnings": [f"{w.category.__name__}: {w.message}" for w in caught],
    "hello": [hello.exit_code, hello.stdout.decode()],
    "again": [again.exit_code, again.stdout.decode()],
    "spin": [spin.limit, spin.trap],
}))
"""


def probe(patch: str) -> dict[str, object]:
    """Run ``patch`` (it sees ``wasmtime``, ``_bindings``, ``ffi``), then the probe."""
    code = ("import wasmtime\nfrom wasmtime import _bindings, _ffi as ffi\n"
            + textwrap.dedent(patch) + f"\nMODULE = {str(LIMITS)!r}\n" + _PROBE)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout)
    # Whatever fell back, the programs ran right.
    assert result["hello"] == [0, "hello\n"]
    assert result["again"] == [0, "hello\n"]
    assert result["spin"] == ["timeout", "time limit of 200ms reached"]
    return result


def only_warning(result: dict[str, object]) -> str:
    caught = result["warnings"]
    assert isinstance(caught, list) and len(caught) == 1, caught
    text = caught[0]
    assert isinstance(text, str) and text.startswith("CompatibilityWarning: wasmtime-py ")
    return text


def test_the_loaded_release_is_tested_and_every_binding_matches() -> None:
    # The suite runs on each release of TESTED_MAJORS (.ci/run); on each,
    # nothing may fall back.
    assert int(metadata.version("wasmtime").split(".")[0]) in _ffi.TESTED_MAJORS
    assert _ffi.problems == []
    for name in ("define_unchecked", "trap_new", "memory_data", "memory_data_size",
                 "module_new", "set_epoch_callback", "error_new", "async_stack_size_set"):
        assert getattr(_ffi, name) is not None, name
    assert host_call_route() in {"accel", "ctypes"}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _ffi.warn_if_degraded()  # raises if it had anything to say


def test_an_untouched_child_warns_of_nothing() -> None:
    result = probe("")
    assert result["problems"] == [] and result["warnings"] == []
    assert result["route"] in {"accel", "ctypes"}


def test_a_changed_host_call_signature_takes_the_public_route() -> None:
    result = probe("""
        declared = _bindings._wasmtime_linker_define_func_unchecked
        declared.argtypes = list(declared.argtypes) + [wasmtime._ffi.ctypes.c_void_p]
    """)
    assert result["route"] == "public"
    assert result["problems"] == [
        "wasmtime_linker_define_func_unchecked: takes 10 arguments, pywasi passes 9; "
        "host calls take the public wasmtime.Func route (~30x slower)"]
    assert "takes 10 arguments" in only_warning(result)


def test_an_argument_of_another_size_is_a_change() -> None:
    result = probe("""
        import ctypes
        declared = _bindings._wasmtime_trap_new
        declared.argtypes = [declared.argtypes[0], ctypes.c_uint32]
    """)
    assert result["route"] == "public"
    assert result["problems"] == [
        "wasmtime_trap_new: argument 2 changed type (c_uint); "
        "host calls take the public wasmtime.Func route (~30x slower)"]
    only_warning(result)


def test_symbols_missing_from_the_library_fall_back_one_by_one() -> None:
    # The memory's address and the epoch callback: the public data_ptr, and
    # a deadline trap (the timeout still stops the loop, said as a timeout).
    result = probe("""
        class Library:
            def __init__(self, dll): self._dll = dll
            def __getitem__(self, name):
                if name in ("wasmtime_memory_data", "wasmtime_store_epoch_deadline_callback"):
                    raise KeyError(name)
                return self._dll[name]
            def __getattr__(self, name): return getattr(self._dll, name)
        ffi.dll = Library(ffi.dll)
    """)
    assert result["route"] in {"accel", "ctypes"}  # the host-call route is intact
    problems = result["problems"]
    assert isinstance(problems, list) and len(problems) == 2
    assert problems[0].startswith("wasmtime_memory_data: missing from the loaded wasmtime library; ")
    assert problems[1].startswith("wasmtime_store_epoch_deadline_callback: missing from the loaded")
    text = only_warning(result)
    assert "wasmtime_memory_data:" in text and "wasmtime_store_epoch_deadline_callback:" in text


def test_a_changed_internal_layout_turns_every_private_binding_off() -> None:
    result = probe("""
        import ctypes
        class Slot(ctypes.Structure):
            _fields_ = [("i64", ctypes.c_int64)]
        ffi.wasmtime_val_raw_t = Slot
    """)
    assert result["route"] == "public"
    assert result["problems"] == [
        "wasmtime_val_raw_t is no longer 16 bytes: no private binding is used"]
    only_warning(result)


def test_an_untested_major_is_said_but_still_checked_and_used() -> None:
    result = probe("""
        from pywasi._engine import _ffi as ours  # the warning waits for the first compile
        ours._release = lambda: "99.0.0"
    """)
    assert result["route"] in {"accel", "ctypes"} and result["problems"] == []
    assert only_warning(result) == (
        "CompatibilityWarning: wasmtime-py 99.0.0: wasmtime-py 99.0.0 is not a release pywasi "
        f"was tested with ({', '.join(map(str, _ffi.TESTED_MAJORS))})")


def test_the_command_says_it_in_one_warning_line() -> None:
    code = textwrap.dedent("""
        import sys
        from wasmtime import _bindings
        declared = _bindings._wasmtime_linker_define_func_unchecked
        declared.argtypes = list(declared.argtypes)[:-1]
        from pywasi.cli import main
        sys.exit(main(["run", sys.argv[1], "hello"]))
    """)
    # The full route: the lean one (a cache hit) binds its own declarations,
    # compared with each tested major's by tests/test_lean.py.
    done = subprocess.run([sys.executable, "-c", code, str(LIMITS)], capture_output=True,
                          text=True, timeout=120, env={**os.environ, "PYWASI_LEAN": "0"})
    assert (done.returncode, done.stdout) == (0, "hello\n"), done.stderr
    assert done.stderr == (
        f"pywasi: warning: wasmtime-py {metadata.version('wasmtime')}: "
        "wasmtime_linker_define_func_unchecked: takes 8 arguments, pywasi passes 9; "
        "host calls take the public wasmtime.Func route (~30x slower)\n")


def test_the_release_is_read_without_importlib_metadata() -> None:
    assert _ffi._release() == metadata.version("wasmtime")


def test_compatibility_warning_is_public() -> None:
    assert issubclass(pywasi.CompatibilityWarning, RuntimeWarning)
    assert "CompatibilityWarning" in pywasi.__all__


@pytest.mark.parametrize("ours, theirs, same", [
    ("c_void_p", "c_size_t", True),     # a pointer and a size_t pass alike
    ("c_uint32", "c_uint64", False),
    (None, None, True),
    (None, "c_int", False),
])
def test_signature_comparison(ours: str | None, theirs: str | None, same: bool) -> None:
    import ctypes
    a = None if ours is None else getattr(ctypes, ours)
    b = None if theirs is None else getattr(ctypes, theirs)
    assert _ffi._same(a, b) is same


def test_callback_types_compare_by_their_parameters() -> None:
    import ctypes
    two = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_size_t)
    three = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p)
    narrow = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_uint32)
    assert _ffi._same(two, ctypes.CFUNCTYPE(None, ctypes.c_char_p, ctypes.c_void_p))
    assert not _ffi._same(two, three)
    assert not _ffi._same(two, narrow)
    assert _ffi._same(two, ctypes.c_void_p)  # a function's address passes as a pointer
