"""pywasi.preinitialize (Wizer's pre-initialisation under pywasi's WASI).

The differential tests run each C program two ways and compare everything
it prints and returns: "instantiate, call wizer.initialize, then run" in one
instance, and "pre-initialise, then instantiate the result and run". WAT
modules pin what C cannot reach: every global type bit for bit, a start
function, memory growth, the custom sections kept and dropped, and each
refusal (one line, PreinitError)."""

from __future__ import annotations

import pathlib
import re
from typing import Any

import pytest
import wasmtime

import pywasi
import pywasi.fs
from pywasi import _wasm
from pywasi._preinit import MAX_DATA_SEGMENTS, PreinitError, nonzero_ranges, preinitialize
from wasmbuild import build_c, build_c_source, build_wat

CONFIG = b"mode=fast;level=3"


def command() -> pathlib.Path:
    return build_c("preinit_command")


def reactor() -> pathlib.Path:
    return build_c("preinit_reactor", flags=["-mexec-model=reactor"])


def _wasi(out: list[bytes], **options: Any) -> pywasi.WASI:
    return pywasi.WASI(version="preview1", stdout=out.append, stderr=out.append, **options)


def _run_command(module: bytes | pathlib.Path, wasi: pywasi.WASI, *, init: bool) -> int:
    """_start (after the init, in the same instance, when ``init``)."""
    instance = pywasi.instantiate(pywasi.compile(module), wasi.get_import_object())
    if not init:
        return wasi.start(instance)
    wasi.finalize_bindings(instance)
    instance.exports["wizer.initialize"]()
    try:
        instance.exports["_start"]()
        return 0
    except pywasi.WasiExit as e:
        return e.code


def _sections(wasm: bytes) -> dict[int, list[_wasm.Section]]:
    found: dict[int, list[_wasm.Section]] = {}
    for s in _wasm.read_module(wasm):
        found.setdefault(s.id, []).append(s)
    return found


def _compiles(wasm: bytes) -> wasmtime.Module:
    """The output validates: a plain wasmtime engine compiles it."""
    return wasmtime.Module(wasmtime.Engine(), wasm)


def test_command_runs_as_if_initialised_in_the_same_instance() -> None:
    run_args = {"args": ["prog", "A"], "env": {"GREETING": "hi"}}
    data = {"/data": pywasi.fs.MemoryFS({"config.txt": CONFIG})}
    reference: list[bytes] = []
    code = _run_command(command(), _wasi(reference, preopens=data, **run_args), init=True)

    init_out: list[bytes] = []
    snapshot = preinitialize(command(), wasi=_wasi(init_out, preopens={
        "/data": pywasi.fs.MemoryFS({"config.txt": CONFIG})}))
    _compiles(snapshot)
    # Run without the preopen: the file's bytes are in the snapshot's memory.
    out: list[bytes] = []
    assert _run_command(snapshot, _wasi(out, **run_args), init=False) == code == 0
    assert b"".join(out) == b"".join(reference)
    assert b"initialized=1 counter=42 ratio=1.5 config=mode=fast;level=3" in b"".join(out)
    assert b"arg1=A env=hi" in b"".join(out)
    exports = [name for name, _ in pywasi.compile(snapshot).exports]
    assert "wizer.initialize" not in exports and "_start" in exports


def test_memory_snapshot_is_non_zero_ranges_with_the_grown_size() -> None:
    original = command().read_bytes()
    snapshot = preinitialize(command(), wasi=_wasi([], preopens={"/data": pywasi.fs.MemoryFS()}))
    before, after = _sections(original), _sections(snapshot)
    old_memory = _wasm.read_memories(before[_wasm.MEMORY][0].payload)[0]
    new_memory = _wasm.read_memories(after[_wasm.MEMORY][0].payload)[0]
    # 40 pages of heap were written: the minimum is the size the init left.
    assert new_memory.minimum >= old_memory.minimum + 40
    assert new_memory.maximum == old_memory.maximum
    segments = _wasm.read_data(after[_wasm.DATA][0].payload)
    old_count = len(_wasm.read_data(before[_wasm.DATA][0].payload))
    # The old active segments stay as empty passive ones (their indices).
    assert all(s.passive and not len(s.data) for s in segments[:old_count])
    new = segments[old_count:]
    assert all(not s.passive for s in new) and 10 <= len(new) < 100
    # Every fourth page of the heap was left zero: no segment holds 4 KiB of zeros.
    assert all(b"\0" * 4096 not in bytes(s.data) for s in new)
    assert sum(len(s.data) for s in new) < 33 * 65536
    assert _wasm.write_module(_wasm.read_module(snapshot)) == snapshot


def test_reactor_runs_as_if_initialised_in_the_same_instance() -> None:
    def calls(instance: pywasi.Instance) -> list[int]:
        exports = instance.exports
        return [exports.lookup(3), exports.lookup(1000), exports.lookup(327679), exports.report()]

    reference: list[bytes] = []
    wasi = _wasi(reference)
    instance = pywasi.instantiate(pywasi.compile(reactor()), wasi.get_import_object())
    wasi.initialize(instance)
    instance.exports["wizer.initialize"]()
    expected = calls(instance)

    snapshot = preinitialize(reactor())
    _compiles(snapshot)
    out: list[bytes] = []
    wasi = _wasi(out)
    instance = pywasi.instantiate(pywasi.compile(snapshot), wasi.get_import_object())
    assert "_initialize" not in instance.exports and "wizer.initialize" not in instance.exports
    wasi.initialize(instance)  # nothing to call: _initialize ran before the snapshot
    assert calls(instance) == expected == [10, 1000001, (327679 * 327679 + 1) % 2**32 - 2**32, 1]
    assert b"".join(out) == b"".join(reference)
    assert b"ctor_runs=1 calls=3 ready=1" in b"".join(out)


def test_initialize_as_the_init_function_runs_once() -> None:
    snapshot = preinitialize(reactor(), init="_initialize")
    out: list[bytes] = []
    wasi = _wasi(out)
    instance = pywasi.instantiate(pywasi.compile(snapshot), wasi.get_import_object())
    wasi.initialize(instance)
    instance.exports.report()
    assert b"ctor_runs=1 calls=0 ready=0" in b"".join(out)
    # Not removed when it is not the init function's own export... it is: the
    # reactor's _initialize and the init are one export here, and gone.
    assert "_initialize" not in instance.exports


GLOBALS_WAT = """
(module
  (memory (export "memory") 1 10)
  (global $i (mut i32) (i32.const 1))
  (global $l (mut i64) (i64.const 2))
  (global $f (mut f32) (f32.const 3))
  (global $d (mut f64) (f64.const 4))
  (global $v (mut v128) (v128.const i64x2 0 0))
  (global $k i32 (i32.const 99))
  (global $runs (mut i32) (i32.const 0))
  (func $start (global.set $runs (i32.add (global.get $runs) (i32.const 1))))
  (start $start)
  (func (export "wizer.initialize")
    (global.set $i (i32.const -123456))
    (global.set $l (i64.const 0x7fffffffffff0001))
    ;; a NaN with a payload: kept bit for bit, not through a Python float
    (global.set $f (f32.reinterpret_i32 (i32.const 0x7fa00001)))
    (global.set $d (f64.const -0x1.23456789abcdep+100))
    (global.set $v (v128.const i32x4 1 2 3 0xffffffff))
    (drop (memory.grow (i32.const 3)))
    (i32.store (i32.const 262140) (i32.const 0x01020304))
    (i32.store8 (i32.const 100) (i32.const 7)))
  (func (export "bits") (result i32 i64 i32 f64 i32 i32)
    (global.get $i) (global.get $l) (i32.reinterpret_f32 (global.get $f)) (global.get $d)
    (i32x4.extract_lane 3 (global.get $v)) (global.get $runs))
  (func (export "peek") (param i32) (result i32) (i32.load (local.get 0)))
  (@custom "producers" "\\01\\0cprocessed-by\\01\\04test\\011")
  (@custom "reloc.DATA" "stale")
  (@custom "linking" "stale")
  (@custom "tool-notes" "kept"))
"""


def _bits(wasm: bytes) -> Any:
    module = pywasi.compile(wasm)
    instance = pywasi.instantiate(module, {})
    exports = instance.exports
    return exports.bits(), exports.peek(100), exports.peek(262140), exports.memory.size


def test_globals_start_and_memory_growth_as_after_the_init() -> None:
    wasm = build_wat(GLOBALS_WAT)
    module = pywasi.compile(wasm)
    instance = pywasi.instantiate(module, {})
    instance.exports["wizer.initialize"]()
    reference = (instance.exports.bits(), instance.exports.peek(100),
                 instance.exports.peek(262140), instance.exports.memory.size)

    snapshot = preinitialize(wasm)
    assert _bits(snapshot) == reference
    bits, first, last, pages = reference
    assert bits == [-123456, 0x7FFFFFFFFFFF0001, 0x7FA00001, float.fromhex("-0x1.23456789abcdep+100"), -1, 1]
    assert (first, last, pages) == (7, 0x01020304, 4)
    sections = _sections(snapshot)
    assert _wasm.START not in sections  # it ran once, before the snapshot
    assert _wasm.read_memories(sections[_wasm.MEMORY][0].payload)[0] == (1, 4, 10, None)
    globals_ = _wasm.read_globals(sections[_wasm.GLOBAL][0].payload)
    assert globals_[2].init == _wasm.const_f32(0x7FA00001)
    assert globals_[5].init == _wasm.const_i32(99)  # immutable: as it was
    names = [_wasm.custom_name(s) for s in sections[_wasm.CUSTOM]]
    assert names == ["producers", "tool-notes", "name"]  # reloc.* and linking describe the old layout
    _compiles(snapshot)


def test_the_name_section_stays_true() -> None:
    wasm = build_wat(GLOBALS_WAT)
    snapshot = preinitialize(wasm)
    old = [s for s in _wasm.read_module(wasm) if _wasm.custom_name(s) == "name"]
    new = [s for s in _wasm.read_module(snapshot) if _wasm.custom_name(s) == "name"]
    assert bytes(old[0].payload) == bytes(new[0].payload)
    # ... and it comes after the data section, where tools look for it last.
    ids = [s.id if s.id else _wasm.custom_name(s) for s in _wasm.read_module(snapshot)]
    assert ids.index(_wasm.DATA) < ids.index("name")


def test_deterministic_init_gives_byte_identical_output() -> None:
    wat = """(module
      (import "wasi_snapshot_preview1" "random_get" (func $random (param i32 i32) (result i32)))
      (import "wasi_snapshot_preview1" "clock_time_get"
        (func $clock (param i32 i64 i32) (result i32)))
      (memory (export "memory") 1)
      (func (export "wizer.initialize")
        (drop (call $random (i32.const 64) (i32.const 32)))
        (drop (call $clock (i32.const 0) (i64.const 1) (i32.const 128)))))"""
    wasm = build_wat(wat)

    def once(deterministic: bool) -> bytes:
        return preinitialize(wasm, wasi=pywasi.WASI(version="preview1",
                                                    deterministic=deterministic))

    assert once(True) == once(True)
    assert once(False) != once(False)


def test_rename_and_keep_init_func() -> None:
    wat = """(module (memory (export "memory") 1)
      (func (export "wizer.initialize")) (func (export "main2")) (func (export "_start")))"""
    snapshot = preinitialize(build_wat(wat), keep_init_func=True, rename_funcs={"_start": "main2"})
    exports = _wasm.read_exports(_sections(snapshot)[_wasm.EXPORT][0].payload)
    assert sorted(e.name for e in exports) == ["_start", "memory", "wizer.initialize"]
    assert next(e.index for e in exports if e.name == "_start") == 1


def test_nonzero_ranges_merge_as_wizer_does() -> None:
    memory = bytearray(1000)
    memory[10:20] = b"a" * 10
    memory[24:30] = b"b" * 6        # a gap of 4 zeros: merged
    memory[35:40] = b"c" * 5        # a gap of 5: a new range
    memory[999] = 1
    assert nonzero_ranges(memoryview(memory)) == [(10, 30), (35, 40), (999, 1000)]
    assert nonzero_ranges(memoryview(bytes(100))) == []
    many = bytearray(20 * (MAX_DATA_SEGMENTS + 50))
    many[::20] = b"\1" * (MAX_DATA_SEGMENTS + 50)
    many[40 * 20 + 10] = 2           # one gap made smaller: merged first
    ranges = nonzero_ranges(memoryview(many))
    assert len(ranges) == MAX_DATA_SEGMENTS
    assert (800, 811) in ranges or any(a <= 800 and b >= 811 for a, b in ranges)


REFUSALS = [
    ('(module (import "env" "m" (memory 1)) (func (export "wizer.initialize")))',
     "it imports a memory (env.m)"),
    ('(module (import "env" "g" (global i32)) (func (export "wizer.initialize")))',
     "it imports a global (env.g)"),
    ('(module (import "env" "t" (table 1 funcref)) (func (export "wizer.initialize")))',
     "it imports a table (env.t)"),
    ('(module (memory 1 1 shared) (func (export "wizer.initialize")))',
     "memory 0 is shared"),
    ('(module (import "wasi" "thread-spawn" (func (param i32) (result i32)))'
     ' (memory 1) (func (export "wizer.initialize")))', "wasi.thread-spawn"),
    ('(module (memory 1) (func (export "other")))', "does not export 'wizer.initialize'"),
    ('(module (memory 1) (global (export "wizer.initialize") i32 (i32.const 0)))',
     "is not a function"),
    ('(module (memory 1) (func (export "wizer.initialize") (param i32)))',
     "is not a function [] -> []"),
    ('(module (memory 1) (func (export "wizer.initialize") unreachable))',
     "wizer.initialize trapped: "),
    ('(module (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))'
     ' (memory (export "memory") 1) (func (export "wizer.initialize") (call $exit (i32.const 3))))',
     "wizer.initialize called proc_exit(3)"),
    ('(module (table 2 funcref) (func $f) (elem (i32.const 0) $f)'
     ' (func (export "wizer.initialize") (table.set (i32.const 1) (ref.func $f))))',
     "the init changed a table"),
    ('(module (table 1 funcref) (func (export "wizer.initialize")'
     ' (drop (table.grow (ref.null func) (i32.const 1)))))', "the init changed a table"),
    ('(module (memory 1) (data $d "x") (func (export "wizer.initialize") (data.drop $d)))',
     "passive data segments"),
    ('(module (table 1 funcref) (func $f) (elem $e func $f)'
     ' (func (export "wizer.initialize") (elem.drop $e)))', "passive element segments"),
    ('(module (global (mut funcref) (ref.null func)) (func (export "wizer.initialize")))',
     "a mutable reference"),
]


@pytest.mark.parametrize("wat,message", REFUSALS, ids=[m for _, m in REFUSALS])
def test_what_cannot_be_snapshotted_is_refused_in_one_line(wat: str, message: str) -> None:
    with pytest.raises(PreinitError, match=re.escape(message)) as caught:
        preinitialize(build_wat(wat), imports={"env": {}})
    assert "\n" not in str(caught.value)


def test_a_table_the_init_left_alone_is_fine() -> None:
    wat = """(module (table 3 funcref) (memory (export "memory") 1) (func $f) (func $g)
      (elem (i32.const 0) $f $g)
      (func (export "wizer.initialize") (table.set (i32.const 1) (table.get (i32.const 1))))
      (func (export "call") (param i32) (call_indirect (local.get 0))))"""
    snapshot = preinitialize(build_wat(wat))
    instance = pywasi.instantiate(pywasi.compile(snapshot), {})
    instance.exports.call(1)
    with pytest.raises(pywasi.Trap):
        instance.exports.call(2)


def test_a_file_left_open_is_refused() -> None:
    path = build_c_source("""
        #include <stdio.h>
        static FILE *kept;
        __attribute__((export_name("wizer.initialize")))
        void init(void) { kept = fopen("/data/config.txt", "r"); }
        int main(void) { return kept == 0; }
    """)
    wasi = pywasi.WASI(version="preview1",
                       preopens={"/data": pywasi.fs.MemoryFS({"config.txt": CONFIG})})
    with pytest.raises(PreinitError, match=r"the init left fd 4 open"):
        preinitialize(path, wasi=wasi)


def test_bad_input_is_a_preinit_error() -> None:
    with pytest.raises(PreinitError, match="not a WebAssembly module"):
        preinitialize(b"\xff\xfe")
    with pytest.raises(PreinitError, match="cannot read"):
        preinitialize("/nonexistent/x.wasm")
    with pytest.raises(PreinitError, match="cannot rename 'nope'"):
        preinitialize(build_wat('(module (func (export "wizer.initialize")))'),
                      rename_funcs={"x": "nope"})
    with pytest.raises(TypeError, match="wasi must be a pywasi.WASI"):
        preinitialize(build_wat('(module (func (export "wizer.initialize")))'), wasi=object())


def test_unknown_imports_trap_when_called() -> None:
    wat = """(module (import "host" "call" (func $call (param i32) (result i32)))
      (memory (export "memory") 1)
      (func (export "wizer.initialize")) (func (export "calls") (drop (call $call (i32.const 1)))))"""
    with pytest.raises(PreinitError, match="cannot instantiate the module"):
        preinitialize(build_wat(wat))
    snapshot = preinitialize(build_wat(wat), unknown_imports_trap=True)
    assert [i.name for s in _wasm.read_module(snapshot) if s.id == _wasm.IMPORT
            for i in _wasm.read_imports(s.payload)] == ["call"]   # the output still imports it
    with pytest.raises(PreinitError, match="calls trapped: .*it called host.call, an import nobody"):
        preinitialize(build_wat(wat), init="calls", unknown_imports_trap=True)
