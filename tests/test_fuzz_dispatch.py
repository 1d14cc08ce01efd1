"""The dispatcher's invariant, fuzzed: whatever arguments a guest passes to
whatever function, the outcome is an errno, a trap or an exit, never any
other exception and never a crash of the host (h11's fuzz-the-invariant
test, applied to both host-call routes)."""

from __future__ import annotations

import pathlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pywasi
from pywasi._abi import PREVIEW1
from pywasi._errors import GuestFault, ProcExit

NAMES = sorted(PREVIEW1)
# Values that find edges: 0, small fds and lengths, the last pages, negative
# (i.e. huge unsigned) values, and anything else.
I32 = st.one_of(st.sampled_from([0, 1, 2, 3, 4, 8, 64, 65535, 65536, -1, -16, 2**31 - 1, -2**31]),
                st.integers(-2**31, 2**31 - 1))
I64 = st.one_of(st.sampled_from([0, 1, -1, 2**63 - 1, -2**63, 10**9]),
                st.integers(-2**63, 2**63 - 1))


def forwarding_module() -> bytes:
    """Exports ``call_<name>`` for every preview1 function, forwarding its params."""
    imports, exports = [], []
    for name in NAMES:
        sig = PREVIEW1[name]
        params = " ".join(sig.param_types)
        result = f"(result {' '.join(sig.results)})" if sig.results else ""
        ptype = f"(param {params})" if params else ""
        imports.append(f'(import "wasi_snapshot_preview1" "{name}" (func ${name} {ptype} {result}))')
        gets = " ".join(f"(local.get {i})" for i in range(len(sig.params)))
        exports.append(f'(func (export "call_{name}") {ptype} {result} (call ${name} {gets}))')
    return ("(module\n" + "\n".join(imports) + '\n(memory (export "memory") 1)\n'
            + "\n".join(exports) + ")").encode()


@pytest.fixture(scope="module")
def module() -> pywasi.Module:
    return pywasi.compile(forwarding_module())


def args_for(name: str) -> st.SearchStrategy[list[int]]:
    return st.tuples(*[I64 if t == "i64" else I32 for t in PREVIEW1[name].param_types]).map(list)


call = st.sampled_from(NAMES).flatmap(lambda n: st.tuples(st.just(n), args_for(n)))


def fresh(module: pywasi.Module, tmp: pathlib.Path) -> tuple[pywasi.WASI, pywasi.Instance]:
    wasi = pywasi.WASI(version="preview1", args=["fuzz", "x"], env={"A": "b"},
                       preopens={"/sandbox": str(tmp)}, stdin=b"input",
                       stdout=lambda b: None, stderr=lambda b: None)
    instance = pywasi.instantiate(module, wasi.get_import_object())
    wasi.initialize(instance)
    return wasi, instance


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(call)
def test_raw_route_gives_errno_trap_or_exit(module: pywasi.Module, tmp_path: pathlib.Path,
                                            case: tuple[str, list[int]]) -> None:
    name, args = case
    wasi, instance = fresh(module, tmp_path)
    try:
        result = instance.exports[f"call_{name}"](*args)
    except (pywasi.Trap, pywasi.WasiExit) as e:
        assert "internal error" not in str(e), e
        return
    finally:
        wasi.close()
    if PREVIEW1[name].results:
        assert isinstance(result, int) and 0 <= result <= 76, (name, args, result)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(call)
def test_public_route_gives_errno_fault_or_exit(module: pywasi.Module, tmp_path: pathlib.Path,
                                                case: tuple[str, list[int]]) -> None:
    name, args = case
    wasi, _ = fresh(module, tmp_path)
    try:
        result = wasi.wasi_import[name](*args)
    except (GuestFault, ProcExit):
        return
    finally:
        wasi.close()
    if PREVIEW1[name].results:
        assert isinstance(result, int) and 0 <= result <= 76, (name, args, result)
