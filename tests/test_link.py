"""Linking a module that imports one name more than once (AssemblyScript
emits ``wasi_snapshot_preview1.fd_write`` twice): every entry of the same
type is served by the one definition, through ``instantiate`` (WASI's
functions on every host-call route, Python callables, another instance's
exports, a shared memory) and through ``define_imports`` into a user's
Linker; two entries of different types are a ``LinkError`` naming the
import, never wasmtime's "defined twice"."""

from __future__ import annotations

import pytest
import wasmtime

import pywasi
from pywasi._engine import _hostcall
from helpers import instantiate_in_user_linker, run_module

FD_WRITE = "(func (param i32 i32 i32 i32) (result i32))"


def _twice_fd_write(namespace: str) -> str:
    """A command that writes "hi\\n" through each of its two fd_write imports."""
    return f"""(module
      (import "{namespace}" "fd_write" (func $w1 (param i32 i32 i32 i32) (result i32)))
      (import "{namespace}" "proc_exit" (func $exit (param i32)))
      (import "{namespace}" "fd_write" (func $w2 (param i32 i32 i32 i32) (result i32)))
      (memory (export "memory") 1)
      (data (i32.const 16) "hi\\n")
      (func (export "_start")
        (i32.store (i32.const 0) (i32.const 16)) (i32.store (i32.const 4) (i32.const 3))
        (drop (call $w1 (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
        (drop (call $w2 (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
        (call $exit (i32.add (i32.load (i32.const 8)) (i32.const 4)))))"""


@pytest.fixture(params=["accel", "ctypes", "public"])
def host_route(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "public":
        monkeypatch.setattr(_hostcall, "RAW_ROUTE", False)
    elif request.param == "ctypes":
        monkeypatch.setattr(_hostcall, "ACCEL", None)
    elif _hostcall.ACCEL is None:
        pytest.fail("the accelerator was not built (tests/test_accel.py says why)")
    assert _hostcall.host_call_route() == request.param
    return str(request.param)


@pytest.mark.parametrize("version, namespace", [("preview1", "wasi_snapshot_preview1"),
                                                ("unstable", "wasi_unstable")])
def test_a_wasi_function_imported_twice_links_and_runs(host_route: str, version: str,
                                                       namespace: str) -> None:
    r = run_module(_twice_fd_write(namespace).encode(), version=version)
    # Both calls wrote; the exit code is the last nwritten (3) + 4.
    assert (r.code, r.stdout) == (7, b"hi\nhi\n")


def test_a_wasi_function_imported_twice_through_a_users_linker(host_route: str) -> None:
    out: list[bytes] = []
    wasi = pywasi.WASI(version="preview1", stdout=out.append)
    instance = instantiate_in_user_linker(wasi, _twice_fd_write("wasi_snapshot_preview1"))
    assert wasi.start(instance) == 7
    assert b"".join(out) == b"hi\nhi\n"


def test_other_modules_of_the_import_object_imported_twice() -> None:
    # A Python callable, another instance's function, memory and global: each
    # imported twice under one name.
    lib = pywasi.instantiate(pywasi.compile(b"""(module
      (memory (export "mem") 1) (global (export "g") i32 (i32.const 40))
      (func (export "add1") (param i32) (result i32) (i32.add (local.get 0) (i32.const 1))))"""))
    seen: list[int] = []
    module = pywasi.compile(b"""(module
      (import "env" "report" (func $r1 (param i32)))
      (import "lib" "add1" (func $a1 (param i32) (result i32)))
      (import "lib" "mem" (memory 1))
      (import "lib" "g" (global $g1 i32))
      (import "env" "report" (func $r2 (param i32)))
      (import "lib" "add1" (func $a2 (param i32) (result i32)))
      (import "lib" "mem" (memory 1))
      (import "lib" "g" (global $g2 i32))
      (func (export "run") (result i32)
        (call $r1 (i32.const 1)) (call $r2 (i32.const 2))
        (i32.store (i32.const 0) (i32.const 77))
        (i32.add (call $a1 (global.get $g1)) (call $a2 (global.get $g2)))))""")
    instance = pywasi.instantiate(module, {"env": {"report": seen.append},
                                           "lib": {"add1": lib.exports.add1, "mem": lib.exports.mem,
                                                   "g": lib.exports.g}})
    assert instance.exports.run() == 82
    assert seen == [1, 2]
    assert bytes(lib.exports.mem.buffer[:4]) == (77).to_bytes(4, "little")


def test_a_shared_memory_and_thread_spawn_imported_twice() -> None:
    # A wasi-threads program importing its memory and thread-spawn twice:
    # one memory is made (the thread's write is seen through it), one spawner.
    wat = """(module
      (import "env" "memory" (memory 1 1 shared))
      (import "wasi" "thread-spawn" (func $spawn (param i32) (result i32)))
      (import "env" "memory" (memory 1 1 shared))
      (import "wasi" "thread-spawn" (func $spawn2 (param i32) (result i32)))
      (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
      (func (export "wasi_thread_start") (param i32 i32)
        (i32.atomic.store (i32.const 64) (i32.const 9))
        (drop (memory.atomic.notify (i32.const 64) (i32.const 1))))
      (func (export "_start")
        (drop (call $spawn2 (i32.const 0)))
        (drop (memory.atomic.wait32 (i32.const 64) (i32.const 0) (i64.const 5000000000)))
        (call $exit (i32.atomic.load (i32.const 64)))))"""
    assert run_module(wat.encode()).code == 9


DIFFERENT_TYPES = [
    ('(import "wasi_snapshot_preview1" "fd_write" {fd_write}) '
     '(import "wasi_snapshot_preview1" "fd_write" (func (param i32) (result i32)))',
     "import wasi_snapshot_preview1.fd_write: imported twice with different types "
     "(a function ['i32', 'i32', 'i32', 'i32'] -> ['i32'], then a function ['i32'] -> ['i32'])"),
    ('(import "wasi_snapshot_preview1" "fd_write" {fd_write}) '
     '(import "wasi_snapshot_preview1" "fd_write" (global i32))',
     "import wasi_snapshot_preview1.fd_write: imported twice with different types "
     "(a function ['i32', 'i32', 'i32', 'i32'] -> ['i32'], then a constant global i32)"),
    ('(import "env" "f" (func (param i32))) (import "env" "f" (func (param i64)))',
     "import env.f: imported twice with different types (a function ['i32'] -> [], "
     "then a function ['i64'] -> [])"),
    ('(import "env" "m" (memory 1)) (import "env" "m" (memory 2 3))',
     "import env.m: imported twice with different types (a memory of 1.. pages, "
     "then a memory of 2..3 pages)"),
]


@pytest.mark.parametrize("imports, message", DIFFERENT_TYPES)
def test_a_name_imported_twice_with_different_types_is_a_link_error(imports: str,
                                                                    message: str) -> None:
    wasi = pywasi.WASI(version="preview1")
    module = pywasi.compile(f"(module {imports.format(fd_write=FD_WRITE)})".encode())
    import_object = {**wasi.get_import_object(),
                     "env": {"f": lambda x: None, "m": pywasi.instantiate(pywasi.compile(
                         b'(module (memory (export "m") 2 3))')).exports.m}}
    with pytest.raises(pywasi.LinkError) as raised:
        pywasi.instantiate(module, import_object)
    assert str(raised.value) == message


def test_different_types_through_a_users_linker_are_wasmtimes_error() -> None:
    # In the user's own Linker the refusal is wasmtime's, naming the import.
    wasi = pywasi.WASI(version="preview1")
    with pytest.raises(wasmtime.WasmtimeError, match="wasi_snapshot_preview1::fd_write"):
        instantiate_in_user_linker(wasi, f"""(module
          (import "wasi_snapshot_preview1" "fd_write" {FD_WRITE})
          (import "wasi_snapshot_preview1" "fd_write" (func (param i64) (result i32))))""")


def test_thread_spawn_of_the_wrong_type_is_a_link_error() -> None:
    wasi = pywasi.WASI(version="preview1")
    module = pywasi.compile(b"""(module (import "env" "memory" (memory 1 1 shared))
      (import "wasi" "thread-spawn" (func (param i32))))""")
    with pytest.raises(pywasi.LinkError, match=r"import wasi.thread-spawn: the module imports "
                       r"a function \['i32'\] -> \[\], wasi-threads' thread-spawn is a "
                       r"function \['i32'\] -> \['i32'\]"):
        pywasi.instantiate(module, wasi.get_import_object())


def test_a_module_instantiated_again_links_from_its_import_table(monkeypatch: pytest.MonkeyPatch) -> None:
    """The import entries are read from wasmtime once per Module (each read
    builds new type objects: ~2 ms for CPython's 43), then every
    instantiation links from that table."""
    module = pywasi.compile(_twice_fd_write("wasi_snapshot_preview1").encode())
    entries = module.import_entries
    assert [(e.module, e.name) for e in entries] == [
        ("wasi_snapshot_preview1", "fd_write"), ("wasi_snapshot_preview1", "proc_exit"),
        ("wasi_snapshot_preview1", "fd_write")]
    assert entries[0].text == entries[2].text == "a function ['i32', 'i32', 'i32', 'i32'] -> ['i32']"
    reads: list[int] = []
    real = wasmtime.Module.imports
    monkeypatch.setattr(wasmtime.Module, "imports",
                        property(lambda self: reads.append(1) or real.fget(self)))  # type: ignore[attr-defined]
    for _ in range(3):
        out: list[bytes] = []
        wasi = pywasi.WASI(version="preview1", stdout=out.append)
        assert wasi.start(pywasi.instantiate(module, wasi.get_import_object())) == 7
        assert out == [b"hi\n", b"hi\n"]
    assert reads == []
    assert module.imports == [("wasi_snapshot_preview1", "fd_write", "function"),
                              ("wasi_snapshot_preview1", "proc_exit", "function"),
                              ("wasi_snapshot_preview1", "fd_write", "function")]


def test_wasi_functions_defined_on_many_engines_in_one_process(host_route: str) -> None:
    """The function types define_raw reuses are per engine: wasmtime binds a
    type to the first engine it serves and aborts the process on another."""
    for _ in range(3):  # each a new wasmtime.Engine, then pywasi's own engines
        out: list[bytes] = []
        wasi = pywasi.WASI(version="preview1", stdout=out.append)
        assert wasi.start(instantiate_in_user_linker(wasi, _twice_fd_write("wasi_snapshot_preview1"))) == 7
        assert out == [b"hi\n", b"hi\n"]
    for options in ({}, {"interruptible": True}, {"consume_fuel": True}):
        r = pywasi.run(pywasi.compile(_twice_fd_write("wasi_snapshot_preview1").encode(), **options))
        assert (r.exit_code, r.stdout) == (7, b"hi\nhi\n")
