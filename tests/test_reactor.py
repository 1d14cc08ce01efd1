"""Reactors and bindings: ``initialize()`` then exports called from Python
that make working WASI calls; ``finalize_bindings`` with an explicitly given
or imported memory; one WASI object binds once."""

from __future__ import annotations

import pathlib

import pytest

import pywasi
from wasmbuild import build_c, build_wat


def reactor() -> pywasi.Module:
    return pywasi.compile(build_c("reactor_cat", flags=["-mexec-model=reactor"]))


def test_c_reactor_called_repeatedly(tmp_path: pathlib.Path) -> None:
    (tmp_path / "in.txt").write_bytes(b"first\n")
    out: list[bytes] = []
    wasi = pywasi.WASI(version="preview1", preopens={"/data": str(tmp_path)},
                       stdout=out.append, stderr=out.append)
    instance = pywasi.instantiate(reactor(), wasi.get_import_object())
    assert "_initialize" in instance.exports and "_start" not in instance.exports
    wasi.initialize(instance)
    cat = instance.exports["cat_file"]
    assert cat() == 6
    (tmp_path / "in.txt").write_bytes(b"second, longer\n")
    assert cat() == 15
    assert cat() == 15
    assert instance.exports["calls"]() == 3
    assert b"".join(out) == b"first\nsecond, longer\nsecond, longer\n"
    # The file opened on each call was closed again: only stdio and the preopen remain.
    assert [fd for fd, _ in wasi._fds] == [0, 1, 2, 3]
    wasi.close()


def test_c_reactor_error_path(tmp_path: pathlib.Path) -> None:
    err: list[bytes] = []
    wasi = pywasi.WASI(version="preview1", preopens={"/data": str(tmp_path)},
                       stdout=lambda b: None, stderr=err.append)
    instance = pywasi.instantiate(reactor(), wasi.get_import_object())
    wasi.initialize(instance)
    assert instance.exports["cat_file"]() == -1
    assert b"No such file or directory" in b"".join(err)


def test_reactor_cannot_be_started_nor_initialized_twice(tmp_path: pathlib.Path) -> None:
    wasi = pywasi.WASI(version="preview1", preopens={"/data": str(tmp_path)})
    instance = pywasi.instantiate(reactor(), wasi.get_import_object())
    with pytest.raises(pywasi.PywasiError, match="initialize"):
        wasi.start(instance)
    wasi.initialize(instance)
    with pytest.raises(pywasi.PywasiError):
        wasi.initialize(instance)
    with pytest.raises(pywasi.PywasiError, match="already"):
        wasi.finalize_bindings(instance)


def test_initialize_without_an_initialize_export() -> None:
    wat = """(module (memory (export "memory") 1) (func (export "f") (result i32) i32.const 7))"""
    wasi = pywasi.WASI(version="preview1")
    instance = pywasi.instantiate(pywasi.compile(build_wat(wat)), wasi.get_import_object())
    wasi.initialize(instance)
    assert instance.exports["f"]() == 7


# A module whose memory is not exported as "memory": it writes "hi\n" with
# fd_write from an iovec at 8 in that memory.
HEAP_WAT = """
(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  {memory}
  (data (i32.const 0) "hi\\n")
  (data (i32.const 8) "\\00\\00\\00\\00\\03\\00\\00\\00")
  (func (export "say") (result i32)
    i32.const 1 i32.const 8 i32.const 1 i32.const 16 call $fd_write))
"""


def test_finalize_bindings_with_an_explicit_memory() -> None:
    out: list[bytes] = []
    wasi = pywasi.WASI(version="preview1", stdout=out.append)
    module = pywasi.compile(build_wat(HEAP_WAT.format(memory='(memory (export "heap") 1)')))
    instance = pywasi.instantiate(module, wasi.get_import_object())
    with pytest.raises(pywasi.PywasiError, match="memory"):
        wasi.finalize_bindings(instance)
    wasi.finalize_bindings(instance, memory=instance.exports["heap"])
    assert instance.exports["say"]() == 0
    assert instance.exports["say"]() == 0
    assert out == [b"hi\n", b"hi\n"]
    with pytest.raises(pywasi.PywasiError, match="already"):
        wasi.finalize_bindings(instance, memory=instance.exports["heap"])


def test_finalize_bindings_with_an_imported_memory() -> None:
    provider = pywasi.instantiate(pywasi.compile(build_wat(
        '(module (memory (export "memory") 1))')))
    out: list[bytes] = []
    wasi = pywasi.WASI(version="preview1", stdout=out.append)
    module = pywasi.compile(build_wat(HEAP_WAT.format(memory='(import "env" "mem" (memory 1))')))
    imports = {**wasi.get_import_object(), "env": {"mem": provider.exports["memory"]}}
    instance = pywasi.instantiate(module, imports)
    wasi.finalize_bindings(instance, memory=provider.exports["memory"])
    assert instance.exports["say"]() == 0
    assert out == [b"hi\n"]
    # The bytes went through the shared memory: the provider sees them.
    assert bytes(provider.exports["memory"].buffer[0:3]) == b"hi\n"


def test_finalize_bindings_rejects_a_non_memory() -> None:
    wasi = pywasi.WASI(version="preview1")
    module = pywasi.compile(build_wat(HEAP_WAT.format(memory='(memory (export "heap") 1)')))
    instance = pywasi.instantiate(module, wasi.get_import_object())
    with pytest.raises(TypeError):
        wasi.finalize_bindings(instance, memory=instance.exports["say"])
