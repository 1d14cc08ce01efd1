"""Lifetime: once the user drops the WASI object and the instance, the
wasmtime store, its linear memory and the WASI context are freed, on every
host-call route, after a command, a reactor and a wasi-threads program.

wasmtime holds the syscalls (bound methods of the context) until the store
is deleted, so a context that held the store would be a cycle through C that
no collector breaks: the leak these tests catch. And since the context no
longer keeps the memory it is bound to alive, a syscall that runs after that
memory is gone (from another instance importing the same WASI) must fault,
not touch unmapped bytes.
"""

from __future__ import annotations

import gc
import pathlib
import weakref
from typing import Any

import pytest

import pywasi
from pywasi._engine import _hostcall, _stores
from pywasi._errors import GuestFault
from test_accel import _accel
from test_threads import COUNTER, run_threads
from wasmbuild import build_c

RUNS = 3


@pytest.fixture(params=["accel", "ctypes", "public"])
def route(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "public":
        monkeypatch.setattr(_hostcall, "RAW_ROUTE", False)
    monkeypatch.setattr(_hostcall, "ACCEL", _accel() if request.param == "accel" else None)
    assert _hostcall.host_call_route() == request.param
    return str(request.param)


def watch(wasi: pywasi.WASI, instance: pywasi.Instance) -> list[weakref.ref[Any]]:
    return [weakref.ref(wasi), weakref.ref(wasi._ctx), weakref.ref(instance.store)]


def assert_freed(refs: list[weakref.ref[Any]]) -> None:
    gc.collect()
    gc.collect()  # the store's finalizers release the syscalls; then their cycles go
    alive = [ref() for ref in refs if ref() is not None]
    assert alive == [], f"still alive: {alive}"


def test_a_command_run_many_times_frees_everything(route: str) -> None:
    module = pywasi.compile(build_c("hello"))
    refs: list[weakref.ref[Any]] = []
    for _ in range(RUNS):
        out: list[bytes] = []
        wasi = pywasi.WASI(version="preview1", args=["hello"], stdout=out.append)
        instance = pywasi.instantiate(module, wasi.get_import_object())
        assert wasi.start(instance) == 0
        assert b"".join(out) == b"hello from C\n"
        refs += watch(wasi, instance)
        del wasi, instance
    assert_freed(refs)


def test_a_reactor_lives_while_its_instance_is_held(route: str, tmp_path: pathlib.Path) -> None:
    (tmp_path / "in.txt").write_bytes(b"data\n")
    module = pywasi.compile(build_c("reactor_cat", flags=["-mexec-model=reactor"]))
    refs: list[weakref.ref[Any]] = []
    for _ in range(RUNS):
        out: list[bytes] = []
        wasi = pywasi.WASI(version="preview1", preopens={"/data": str(tmp_path)},
                           stdout=out.append, stderr=out.append)
        instance = pywasi.instantiate(module, wasi.get_import_object())
        wasi.initialize(instance)
        cat = instance.exports.cat_file
        gc.collect()
        assert cat() == 5  # the store and its memory are still there
        assert cat() == 5
        assert b"".join(out) == b"data\ndata\n"
        refs += watch(wasi, instance)
        del wasi, instance, cat
    assert_freed(refs)


def test_a_threads_program_run_many_times_frees_every_store(route: str) -> None:
    gc.collect()
    stores = len(_stores._STORE_SWITCHES)  # every store on the threads engine, weakly
    refs: list[weakref.ref[Any]] = []
    real = pywasi.WASI.start

    def start(wasi: pywasi.WASI, instance: pywasi.Instance) -> int:
        refs.extend(watch(wasi, instance))
        return real(wasi, instance)

    for _ in range(RUNS):
        with pytest.MonkeyPatch.context() as m:
            m.setattr(pywasi.WASI, "start", start)
            assert run_threads(COUNTER)[0] == 4  # 4 threads (4 more stores) each run
    assert_freed(refs)
    assert len(_stores._STORE_SWITCHES) == stores


WRITE = b"""(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "\\10\\00\\00\\00\\03\\00\\00\\00")  ;; an iovec: 3 bytes at 16
  (data (i32.const 16) "hi\\n")
  (func (export "write") (result i32)
    (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))))"""


def test_a_call_after_the_bound_memory_is_gone_traps(route: str, tmp_path: pathlib.Path) -> None:
    """Two instances (two stores) import one WASI, bound to the first one's
    memory; once that instance is dropped, the second one's fd_write (to a
    host file: the accelerator's C fast path) traps instead of writing from
    freed memory."""
    module = pywasi.compile(WRITE)
    with open(tmp_path / "out", "wb") as f:
        wasi = pywasi.WASI(version="preview1", stdout=f)
        bound = pywasi.instantiate(module, wasi.get_import_object())
        other = pywasi.instantiate(module, wasi.get_import_object())
        wasi.finalize_bindings(bound)
        assert other.exports.write() == 0  # the syscall reads the bound memory
        store = weakref.ref(bound.store)
        del bound
        gc.collect()
        assert store() is None
        # The public route hands a syscall's fault back through wasmtime-py as it is.
        fault = GuestFault if route == "public" else pywasi.Trap
        with pytest.raises(fault, match="the memory WASI is bound to is gone"):
            other.exports.write()
    assert (tmp_path / "out").read_bytes() == b"hi\n"
