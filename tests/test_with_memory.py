"""Host functions with the caller's memory (#25 item 5): ``pywasi.with_memory``.

The guest is ``tests/c/host_json.c``: it sends a JSON request to a Python
function through its memory (a pointer and a length) and prints the reply
the function wrote there. Also: a bad pointer traps as a WASI call's does,
the function's own exception comes out of the call into wasm, the raw
(fast) route is the one used, and a wasi-threads thread reaches the shared
memory the same way."""

from __future__ import annotations

import json
from typing import Any

import pytest
import wasmtime

import pywasi
from test_threads import program
from wasmbuild import build_c

GUEST = build_c("host_json")


@pywasi.with_memory
def call(memory: pywasi.CallerMemory, request: int, length: int, reply: int, cap: int) -> int:
    asked = json.loads(memory.read(request, length))
    assert asked["op"] == "add"
    answer = json.dumps({"sum": sum(asked["args"]), "memory": memory.size > 0}).encode()
    if len(answer) > cap:
        return -len(answer)
    memory.write(reply, answer)
    return len(answer)


def start(mode: str, host_call: Any = call) -> tuple[int, bytes]:
    out: list[bytes] = []
    wasi = pywasi.WASI(version="preview1", args=["host_json", mode], stdout=out.append)
    imports: dict[str, Any] = dict(wasi.get_import_object())
    imports["host"] = {"call": host_call}
    code = wasi.start(pywasi.instantiate(pywasi.compile(GUEST), imports))
    return code, b"".join(out)


def test_a_json_request_and_its_reply() -> None:
    assert start("ok") == (0, b'reply {"sum": 42, "memory": true}\n')


def test_a_reply_larger_than_the_buffer_is_asked_again() -> None:
    assert start("small") == (0, b'needs 27 bytes\nreply {"sum": 42, "memory": true}\n')


def test_a_bad_pointer_traps_naming_the_function() -> None:
    with pytest.raises(pywasi.Trap, match=r"host\.call: out of bounds memory access: 1000 bytes "
                                          r"at 0xffffff00 \(memory is \d+ bytes\)"):
        start("bad")


def test_the_functions_own_exception_comes_out_of_the_call() -> None:
    @pywasi.with_memory
    def broken(memory: pywasi.CallerMemory, *args: int) -> int:
        raise KeyError("no such op")

    with pytest.raises(KeyError, match="no such op"):
        start("ok", broken)


def test_it_takes_the_raw_route(monkeypatch: pytest.MonkeyPatch) -> None:
    """Not wasmtime-py's public ``define_func`` (~10 us a call)."""
    from pywasi._engine import host_call_route
    assert host_call_route() != "public"

    def refuse(*args: Any) -> None:
        raise AssertionError("the public route was used")

    monkeypatch.setattr(wasmtime.Linker, "define_func", refuse)
    assert start("ok")[0] == 0


def test_values_of_every_type_and_several_results() -> None:
    seen: list[tuple[Any, ...]] = []

    @pywasi.with_memory
    def f(memory: pywasi.CallerMemory, a: int, b: int, c: float, d: float) -> tuple[int, ...]:
        seen.append((a, b, c, d, memory.read(0, 3)))
        return (-1, 1 << 40, 0.5, 2.25)

    module = pywasi.compile(b"""(module
      (import "host" "f" (func $f (param i32 i64 f32 f64) (result i32 i64 f32 f64)))
      (memory (export "memory") 1) (data (i32.const 0) "abc")
      (func (export "go") (result i32 i64 f32 f64)
        (call $f (i32.const -5) (i64.const 7) (f32.const 1.5) (f64.const -3.0))))""")
    instance = pywasi.instantiate(module, {"host": {"f": f}})
    assert instance.exports.go() == [-1, 1 << 40, 0.5, 2.25]
    assert seen == [(-5, 7, 1.5, -3.0, b"abc")]


def test_a_module_without_memory_traps_on_access() -> None:
    @pywasi.with_memory
    def f(memory: pywasi.CallerMemory) -> None:
        memory.read(0, 1)

    module = pywasi.compile(b"""(module (import "host" "f" (func $f))
      (func (export "go") (call $f)))""")
    instance = pywasi.instantiate(module, {"host": {"f": f}})
    with pytest.raises(pywasi.Trap, match="host.f: the calling instance's memory is not available"):
        instance.exports.go()


def test_a_wasi_threads_thread_reads_the_shared_memory() -> None:
    got: list[bytes] = []

    @pywasi.with_memory
    def log(memory: pywasi.CallerMemory, ptr: int, length: int) -> None:
        got.append(memory.read(ptr, length))

    source = program(
        main="""(drop (call $spawn (i32.const 0)))
          (loop $w (br_if $w (i32.eqz (i32.atomic.load (i32.const 4)))))
          (call $proc_exit (i32.const 0))""",
        thread="""(i32.store (i32.const 64) (i32.const 0x64726874))
          (call $log (i32.const 64) (i32.const 4))
          (i32.atomic.store (i32.const 4) (i32.const 1))""")
    source = source.replace(b'(import "wasi" "thread-spawn"',
                            b'(import "host" "log" (func $log (param i32 i32))) '
                            b'(import "wasi" "thread-spawn"', 1)
    wasi = pywasi.WASI(version="preview1")
    imports: dict[str, Any] = dict(wasi.get_import_object())
    imports["host"] = {"log": log}
    assert wasi.start(pywasi.instantiate(pywasi.compile(source), imports)) == 0
    assert got == [b"thrd"]


def test_with_memory_keeps_the_function_callable() -> None:
    class Fake:
        def read(self, ptr: int, length: int) -> bytes:
            return b'{"op": "add", "args": [1]}'

        def write(self, ptr: int, data: bytes) -> None:
            pass

        size = 1

    assert call(Fake(), 0, 0, 0, 100) > 0  # type: ignore[arg-type]
    assert call.__name__ == "call"
    with pytest.raises(TypeError):
        pywasi.with_memory(42)  # type: ignore[arg-type]


def test_the_public_route_where_the_raw_one_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    """A wasmtime-py without the raw route's symbols (``_ffi`` falls back)."""
    from pywasi._engine import _withmemory
    monkeypatch.setattr(_withmemory, "RAW_ROUTE", False)
    assert start("ok") == (0, b'reply {"sum": 42, "memory": true}\n')
    with pytest.raises(pywasi.Trap, match=r"host\.call: out of bounds memory access"):
        start("bad")
