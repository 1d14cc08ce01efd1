"""A compiled ``Module`` pickles (issue 27): wasmtime's serialized code, what
it was compiled for and the code's digest; a damaged copy is a clear error,
never a crash; a process loads each code once."""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import textwrap

import pytest
import wasmtime

import pywasi
from pywasi._engine import _pickled
from wasmbuild import build_wat

HELLO = r'''
(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func $write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "hello\n")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 6))
    (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))
'''


@pytest.fixture(scope="module")
def hello() -> pywasi.Module:
    return pywasi.compile(build_wat(HELLO), cache=False)


def args_of(module: pywasi.Module, protocol: int = pickle.HIGHEST_PROTOCOL) -> tuple[object, ...]:
    loader, args = module.__reduce_ex__(protocol)
    assert loader is _pickled.load
    return args


def fresh() -> None:
    """Forget what this process loaded, as a new worker would know nothing."""
    _pickled._LOADED.clear()
    _pickled._RECENT.clear()


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_a_module_pickles_and_runs_in_every_protocol(hello: pywasi.Module, protocol: int) -> None:
    fresh()
    copy = pickle.loads(pickle.dumps(hello, protocol=protocol))
    assert copy is not hello and copy.imports == hello.imports and copy.exports == hello.exports
    assert pywasi.run(copy).stdout == b"hello\n"


def test_the_code_can_travel_out_of_band(hello: pywasi.Module) -> None:
    buffers: list[pickle.PickleBuffer] = []
    data = pickle.dumps(hello, protocol=5, buffer_callback=buffers.append)
    assert len(buffers) == 1 and len(data) < 1000
    fresh()
    # As a transport hands it back: a read-only view of memory it holds.
    copy = pickle.loads(data, buffers=[memoryview(bytes(buffers[0].raw()))])
    assert pywasi.run(copy).stdout == b"hello\n"


def test_the_pickle_is_plain_data_for_one_loader(hello: pywasi.Module) -> None:
    form, header, digest, code = args_of(hello, 4)
    assert form == _pickled.FORMAT
    assert set(header) == {"wasmtime", "machine", "settings"}
    assert header["settings"] == pywasi._engine._engines.settings_of(hello.engine)
    assert isinstance(code, bytes) and code.startswith(b"\x7fELF") and len(digest) == 32
    # What it was compiled for goes along: epochs and fuel.
    both = pywasi.compile(build_wat(HELLO), cache=False, interruptible=True, consume_fuel=True)
    fresh()
    copy = pickle.loads(pickle.dumps(both))
    assert (copy.interruptible, copy.consume_fuel) == (True, True)
    assert copy.engine is both.engine
    result = pywasi.run(copy, timeout=5, fuel=10_000)
    assert result.stdout == b"hello\n" and result.fuel_consumed
    # And its stack size.
    deep = pywasi.compile(build_wat(HELLO), cache=False, max_wasm_stack=2 << 20)
    copy = pickle.loads(pickle.dumps(deep))
    # (Not run here: a larger stack runs on a worker thread that ends when
    # idle, which test_threads' count of threads would see.)
    assert copy.max_wasm_stack == 2 << 20 and copy.engine is deep.engine


def test_a_process_loads_each_code_once(hello: pywasi.Module, monkeypatch: pytest.MonkeyPatch
                                        ) -> None:
    fresh()
    loads: list[int] = []
    real = wasmtime.Module.deserialize
    monkeypatch.setattr(wasmtime.Module, "deserialize",
                        lambda engine, data: loads.append(1) or real(engine, data))
    data = pickle.dumps(hello)
    first = pickle.loads(data)
    assert [pickle.loads(data) for _ in range(5)] == [first] * 5
    assert pickle.loads(pickle.dumps(first)) is first
    assert len(loads) == 1
    # Kept while no task holds it, the last KEEP of them.
    del first
    assert pickle.loads(data) is not None and len(loads) == 1


def test_a_damaged_pickle_is_a_clear_error(hello: pywasi.Module) -> None:
    form, header, digest, code = args_of(hello, 4)
    assert isinstance(code, bytes)
    for damaged in (code[:len(code) // 2], code[:-1], code[:100] + bytes([code[100] ^ 1])
                    + code[101:], code[:-1] + bytes([code[-1] ^ 0x80])):
        fresh()
        with pytest.raises(pywasi.PywasiError, match="damaged"):
            _pickled.load(form, header, digest, damaged)
    # A byte flipped in the pickle itself: an error from pickle or from the
    # check, never a crash (a child process, so a crash would show).
    data = pickle.dumps(hello)
    script = textwrap.dedent(f"""
        import pickle, sys
        import pywasi
        data = {data!r}
        at = data.index(b"\\x7fELF") + 4096
        for damaged in (data[:at] + bytes([data[at] ^ 1]) + data[at + 1:], data[:at], data[:-1]):
            try:
                pickle.loads(damaged)
            except (pywasi.PywasiError, pickle.UnpicklingError, EOFError, ValueError) as e:
                print(type(e).__name__)
            else:
                print("loaded")
        """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.split()
    assert lines[0] == "PywasiError" and "loaded" not in lines, out.stdout


def test_a_damaged_header_is_a_clear_error(hello: pywasi.Module) -> None:
    form, header, digest, code = args_of(hello, 4)
    for bad in ((form, None, digest, code), (form, header, digest[:-1], code),
                (form, header, "digest", code)):
        with pytest.raises(pywasi.PywasiError, match="damaged"):
            _pickled.load(*bad)


def test_a_process_forked_while_a_load_holds_the_lock_can_load(hello: pywasi.Module) -> None:
    data = pickle.dumps(hello)
    fresh()
    with _pickled._LOCK:
        pid = os.fork()
        if pid == 0:  # the child: a load must not wait for the parent's lock
            signal.alarm(60)
            try:
                pickle.loads(data)
            finally:
                os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


def test_a_module_another_process_cannot_load_is_an_error_naming_why(
        hello: pywasi.Module) -> None:
    form, header, digest, code = args_of(hello, 4)
    fresh()
    with pytest.raises(pywasi.PywasiError, match=r"wasmtime 1\.0\.0 for x86_64.*this process "
                                                 r"has wasmtime"):
        _pickled.load(form, {**header, "wasmtime": "1.0.0", "machine": "x86_64"}, digest, code)
    with pytest.raises(pywasi.PywasiError, match="engine settings"):
        _pickled.load(form, {**header, "settings": (("strategy", "winch"),)}, digest, code)
    with pytest.raises(pywasi.PywasiError, match="format 99"):
        _pickled.load(99, header, digest, code)
    # wasmtime's own refusal (here: code for other settings than it says).
    other = pywasi.compile(build_wat(HELLO), cache=False, consume_fuel=True)
    _, other_header, other_digest, other_code = args_of(other, 4)
    with pytest.raises(pywasi.PywasiError, match="cannot load the pickled module here"):
        _pickled.load(form, header, other_digest, other_code)


def test_a_module_of_a_users_engine_does_not_pickle() -> None:
    engine = wasmtime.Engine()
    module = pywasi.compile(build_wat(HELLO), engine=engine)
    with pytest.raises(TypeError, match="engine of your own"):
        pickle.dumps(module)


def test_pickling_is_not_imported_by_a_run() -> None:
    out = subprocess.run([sys.executable, "-c", "import sys, pywasi, pywasi.cli; "
                          "print('pywasi._engine._pickled' in sys.modules)"],
                         capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False", out.stderr
