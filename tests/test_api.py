"""The node:wasi API in Python spelling: options, import object, start /
initialize / finalize_bindings and each of their refusals, the engine facade."""

from __future__ import annotations

import gc
import io
import os
import pathlib

import pytest
import wasmtime

import pywasi
from pywasi._abi import PREVIEW1, UNSTABLE
from helpers import instantiate_in_user_linker, run_module

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"
DEMO = EXAMPLES / "demo.wat"

REACTOR = b"""(module
  (import "wasi_snapshot_preview1" "random_get" (func $r (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (global $inits (mut i32) (i32.const 0))
  (func (export "_initialize") (global.set $inits (i32.add (global.get $inits) (i32.const 1))))
  (func (export "inits") (result i32) (global.get $inits)))"""

NO_MEMORY = b"""(module
  (import "wasi_snapshot_preview1" "sched_yield" (func $y (result i32)))
  (func (export "_start")))"""

BOTH = b"""(module (memory (export "memory") 1)
  (func (export "_start")) (func (export "_initialize")))"""

EXIT_7 = b"""(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (func (export "_start") (call $exit (i32.const 7)) unreachable))"""


def demo_instance(wasi: pywasi.WASI) -> pywasi.Instance:
    return pywasi.instantiate(pywasi.compile(DEMO), wasi.get_import_object())


# -- the constructor -----------------------------------------------------

def test_version_is_required() -> None:
    with pytest.raises(TypeError, match="version"):
        pywasi.WASI()  # type: ignore[call-arg]


@pytest.mark.parametrize("bad", ["preview2", "", "snapshot1"])
def test_version_must_be_known(bad: str) -> None:
    with pytest.raises(ValueError, match="preview1.*unstable"):
        pywasi.WASI(version=bad)


def test_version_type() -> None:
    with pytest.raises(TypeError, match="version"):
        pywasi.WASI(version=1)  # type: ignore[arg-type]


@pytest.mark.parametrize("kwargs, word", [
    ({"args": "not-a-list"}, "args"),
    ({"args": [1, 2]}, "args"),
    ({"env": ["A=1"]}, "env"),
    ({"env": {"A": 1}}, "env"),
    ({"preopens": ["/x"]}, "preopens"),
    ({"preopens": {1: "/tmp"}}, "preopens"),
    ({"return_on_exit": 1}, "return_on_exit"),
    ({"stdout": 1.5}, "stdout"),
    ({"stdin": 2.5}, "stdin"),
    ({"stderr": True}, "stderr"),
])
def test_options_are_type_checked(kwargs: dict, word: str) -> None:
    with pytest.raises(TypeError, match=word):
        pywasi.WASI(version="preview1", **kwargs)


def test_env_values_are_checked() -> None:
    with pytest.raises(ValueError, match="NUL"):
        pywasi.WASI(version="preview1", env={"A": "x\0y"})
    with pytest.raises(ValueError, match="invalid variable name"):
        pywasi.WASI(version="preview1", env={"A=B": "x"})


def test_stdio_fd_must_be_open() -> None:
    with pytest.raises(ValueError, match="stdout: file descriptor 987 is not open"):
        pywasi.WASI(version="preview1", stdout=987)


def test_preopen_missing_directory(tmp_path: pathlib.Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(pywasi.PreopenError) as info:
        pywasi.WASI(version="preview1", preopens={"/data": str(missing)})
    message = str(info.value)
    assert "'/data'" in message and str(missing) in message and "No such file" in message


def test_preopen_not_a_directory(tmp_path: pathlib.Path) -> None:
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(pywasi.PreopenError, match="Not a directory"):
        pywasi.WASI(version="preview1", preopens={"/f": f})


# -- the import object -----------------------------------------------------

def test_import_object_preview1() -> None:
    wasi = pywasi.WASI(version="preview1")
    imports = wasi.get_import_object()
    assert list(imports) == ["wasi_snapshot_preview1"]
    assert imports["wasi_snapshot_preview1"] is wasi.wasi_import
    assert len(wasi.wasi_import) == 46
    assert set(wasi.wasi_import) == set(PREVIEW1)


def test_import_object_unstable() -> None:
    wasi = pywasi.WASI(version="unstable")
    imports = wasi.get_import_object()
    assert list(imports) == ["wasi_unstable"]
    assert set(wasi.wasi_import) == set(UNSTABLE)


def test_host_functions_are_callable_from_python() -> None:
    wasi = pywasi.WASI(version="preview1")
    # Unbound memory: a call that needs memory is a fault, not an AttributeError.
    with pytest.raises(pywasi._errors.GuestFault, match="not bound"):
        wasi.wasi_import["args_sizes_get"](0, 4)
    assert wasi.wasi_import["sched_yield"]() == 0
    assert wasi.wasi_import["proc_raise"](9) == 58  # NOTSUP, and no signal was sent


# -- start / initialize / finalize_bindings ------------------------------------

def test_demo_prints_hello_world() -> None:
    result = run_module(DEMO)
    assert result.stdout == b"hello world\n"
    assert result.code == 0


def test_start_returns_proc_exit_code() -> None:
    assert run_module(EXIT_7).code == 7


def test_start_twice_is_refused() -> None:
    wasi = pywasi.WASI(version="preview1", stdout=lambda b: None)
    instance = demo_instance(wasi)
    assert wasi.start(instance) == 0
    with pytest.raises(pywasi.PywasiError, match="already started"):
        wasi.start(instance)


def test_start_refuses_a_reactor() -> None:
    wasi = pywasi.WASI(version="preview1")
    instance = pywasi.instantiate(pywasi.compile(REACTOR), wasi.get_import_object())
    with pytest.raises(pywasi.PywasiError, match="_initialize"):
        wasi.start(instance)


def test_start_refuses_both_entry_points() -> None:
    wasi = pywasi.WASI(version="preview1")
    instance = pywasi.instantiate(pywasi.compile(BOTH), {})
    with pytest.raises(pywasi.PywasiError, match="_initialize"):
        wasi.start(instance)
    with pytest.raises(pywasi.PywasiError, match="_start"):
        pywasi.WASI(version="preview1").initialize(instance)


def test_start_requires_start_export() -> None:
    wasi = pywasi.WASI(version="preview1")
    module = pywasi.compile(b'(module (memory (export "memory") 1))')
    with pytest.raises(pywasi.PywasiError, match="does not export a _start"):
        wasi.start(pywasi.instantiate(module, {}))


def test_start_requires_memory_export() -> None:
    wasi = pywasi.WASI(version="preview1")
    instance = pywasi.instantiate(pywasi.compile(NO_MEMORY), wasi.get_import_object())
    with pytest.raises(pywasi.PywasiError, match="memory"):
        wasi.start(instance)


def test_start_requires_an_instance() -> None:
    with pytest.raises(TypeError, match="Instance"):
        pywasi.WASI(version="preview1").start(object())  # type: ignore[arg-type]


def test_initialize_runs_initialize_once() -> None:
    wasi = pywasi.WASI(version="preview1")
    instance = pywasi.instantiate(pywasi.compile(REACTOR), wasi.get_import_object())
    wasi.initialize(instance)
    assert instance.exports.inits() == 1
    with pytest.raises(pywasi.PywasiError, match="already started"):
        wasi.initialize(instance)
    assert instance.exports.inits() == 1


def test_initialize_without_initialize_export() -> None:
    wasi = pywasi.WASI(version="preview1")
    module = pywasi.compile(b'(module (memory (export "memory") 1) (func (export "f")))')
    wasi.initialize(pywasi.instantiate(module, {}))


def test_initialize_requires_memory() -> None:
    module = pywasi.compile(b'(module (func (export "_initialize")))')
    with pytest.raises(pywasi.PywasiError, match="memory"):
        pywasi.WASI(version="preview1").initialize(pywasi.instantiate(module, {}))


def test_finalize_bindings_twice_is_refused() -> None:
    wasi = pywasi.WASI(version="preview1", stdout=lambda b: None)
    instance = demo_instance(wasi)
    wasi.finalize_bindings(instance)
    with pytest.raises(pywasi.PywasiError, match="already finalized"):
        wasi.finalize_bindings(instance)


def test_finalize_bindings_then_start_is_refused() -> None:
    # start() finalizes internally, and bindings are made once (node:wasi).
    wasi = pywasi.WASI(version="preview1", stdout=lambda b: None)
    instance = demo_instance(wasi)
    wasi.finalize_bindings(instance)
    with pytest.raises(pywasi.PywasiError, match="already finalized"):
        wasi.start(instance)


def test_finalize_bindings_with_explicit_memory() -> None:
    """An imported memory, given explicitly: WASI's calls write into it."""
    out: list[bytes] = []
    wasi = pywasi.WASI(version="preview1", stdout=out.append)
    provider = pywasi.instantiate(pywasi.compile(b'(module (memory (export "mem") 1))'), {})
    memory = provider.exports.mem
    memory.buffer[100:103] = b"hi\n"
    module = pywasi.compile(b"""(module
      (import "env" "mem" (memory 1))
      (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
      (func (export "go") (result i32)
        (i32.store (i32.const 0) (i32.const 100)) (i32.store (i32.const 4) (i32.const 3))
        (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))))""")
    imports = wasi.get_import_object()
    imports["env"] = {"mem": memory}
    instance = pywasi.instantiate(module, imports)
    with pytest.raises(pywasi.PywasiError, match="memory"):
        pywasi.WASI(version="preview1").finalize_bindings(instance)
    wasi.finalize_bindings(instance, memory=memory)
    assert instance.exports.go() == 0
    assert out == [b"hi\n"]
    assert int.from_bytes(memory.buffer[8:12], "little") == 3


def test_return_on_exit_false_exits_the_process() -> None:
    wasi = pywasi.WASI(version="preview1", return_on_exit=False)
    instance = pywasi.instantiate(pywasi.compile(EXIT_7), wasi.get_import_object())
    with pytest.raises(SystemExit) as info:
        wasi.start(instance)
    assert info.value.code == 7


def test_proc_exit_from_an_export_raises_wasi_exit() -> None:
    wasi = pywasi.WASI(version="preview1")
    module = pywasi.compile(b"""(module
      (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
      (memory (export "memory") 1)
      (func (export "quit") (call $exit (i32.const 3))))""")
    instance = pywasi.instantiate(module, wasi.get_import_object())
    wasi.initialize(instance)
    with pytest.raises(pywasi.WasiExit) as info:
        instance.exports.quit()
    assert info.value.code == 3


def test_trap_is_reported_as_trap() -> None:
    wasi = pywasi.WASI(version="preview1")
    module = pywasi.compile(b'(module (memory (export "memory") 1) (func (export "_start") unreachable))')
    with pytest.raises(pywasi.Trap, match="unreachable"):
        wasi.start(pywasi.instantiate(module, wasi.get_import_object()))


# -- stdio as Python objects ---------------------------------------------------

ECHO = b"""(module
  (import "wasi_snapshot_preview1" "fd_read" (func $r (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "_start") (local $n i32)
    (i32.store (i32.const 0) (i32.const 64)) (i32.store (i32.const 4) (i32.const 100))
    (block $done (loop $more
      (br_if $done (call $r (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 16)))
      (local.set $n (i32.load (i32.const 16)))
      (br_if $done (i32.eqz (local.get $n)))
      (i32.store (i32.const 8) (i32.const 64)) (i32.store (i32.const 12) (local.get $n))
      (drop (call $w (i32.const 1) (i32.const 8) (i32.const 1) (i32.const 20)))
      (drop (call $w (i32.const 2) (i32.const 8) (i32.const 1) (i32.const 20)))
      (br $more)))))"""


def test_stdin_bytes_stdout_callable() -> None:
    data = bytes(range(256)) * 3
    result = run_module(ECHO, stdin=data)
    assert result.stdout == data and result.stderr == data


def test_stdio_file_objects(tmp_path: pathlib.Path) -> None:
    source = io.BytesIO(b"from a file object")
    sink = io.BytesIO()
    with open(tmp_path / "err", "wb") as err:
        wasi = pywasi.WASI(version="preview1", stdin=source, stdout=sink, stderr=err)
        wasi.start(pywasi.instantiate(pywasi.compile(ECHO), wasi.get_import_object()))
    assert sink.getvalue() == b"from a file object"
    assert (tmp_path / "err").read_bytes() == b"from a file object"


def test_a_file_object_nobody_else_holds_stays_open(tmp_path: pathlib.Path) -> None:
    # WASI(stdout=open(...)): the WASI object is the file's only holder. Were
    # it collected, its fd would close and the next open take the number:
    # the guest's output would land in that other file.
    wasi = pywasi.WASI(version="preview1", stdin=b"the guest's output",
                       stdout=open(tmp_path / "out", "wb"),  # noqa: SIM115
                       stderr=open(tmp_path / "err", "wb"))  # noqa: SIM115
    gc.collect()
    with open(tmp_path / "bystander", "wb") as bystander:
        wasi.start(pywasi.instantiate(pywasi.compile(ECHO), wasi.get_import_object()))
        wasi.close()
        bystander.flush()
    assert (tmp_path / "bystander").read_bytes() == b""
    assert (tmp_path / "out").read_bytes() == b"the guest's output"
    assert (tmp_path / "err").read_bytes() == b"the guest's output"


def test_stdio_host_fds(tmp_path: pathlib.Path) -> None:
    read_end, write_end = os.pipe()
    os.write(write_end, b"through a pipe")
    os.close(write_end)
    out = os.open(tmp_path / "out", os.O_WRONLY | os.O_CREAT)
    try:
        wasi = pywasi.WASI(version="preview1", stdin=read_end, stdout=out, stderr=out)
        wasi.start(pywasi.instantiate(pywasi.compile(ECHO), wasi.get_import_object()))
    finally:
        os.close(read_end)
        os.close(out)
    assert (tmp_path / "out").read_bytes() == b"through a pipe" * 2


# -- the engine facade -------------------------------------------------------------

def test_compile_from_path_bytes_and_str(tmp_path: pathlib.Path) -> None:
    binary = wasmtime.wat2wasm(DEMO.read_text())
    (tmp_path / "demo.wasm").write_bytes(binary)
    for source in (binary, tmp_path / "demo.wasm", str(tmp_path / "demo.wasm"), DEMO.read_bytes()):
        module = pywasi.compile(source)
        assert ("wasi_snapshot_preview1", "fd_write", "function") in module.imports
        assert ("_start", "function") in module.exports


def test_compile_rejects_garbage() -> None:
    with pytest.raises(pywasi.PywasiError, match="not a valid WebAssembly module"):
        pywasi.compile(b"\0asm garbage")
    with pytest.raises(TypeError):
        pywasi.compile(42)  # type: ignore[arg-type]


def test_missing_import_is_a_link_error() -> None:
    module = pywasi.compile(DEMO)
    with pytest.raises(pywasi.LinkError, match="no module 'wasi_snapshot_preview1'"):
        pywasi.instantiate(module, {})
    with pytest.raises(pywasi.LinkError, match="fd_write"):
        pywasi.instantiate(module, {"wasi_snapshot_preview1": {}})


def test_wrong_signature_is_a_link_error() -> None:
    wasi = pywasi.WASI(version="preview1")
    module = pywasi.compile(b"""(module (import "wasi_snapshot_preview1" "fd_write"
        (func (param i32) (result i32))))""")
    with pytest.raises(pywasi.LinkError, match="fd_write"):
        pywasi.instantiate(module, wasi.get_import_object())


def test_python_callables_beside_wasi() -> None:
    seen: list[int] = []
    module = pywasi.compile(b"""(module
      (import "env" "report" (func $report (param i32) (result i32)))
      (import "wasi_snapshot_preview1" "sched_yield" (func $y (result i32)))
      (memory (export "memory") 1)
      (global (export "g") (mut i32) (i32.const 5))
      (func (export "_start") (drop (call $report (i32.const 41)))))""")
    wasi = pywasi.WASI(version="preview1")
    imports = wasi.get_import_object()
    imports["env"] = {"report": lambda x: seen.append(x) or x + 1}
    instance = pywasi.instantiate(module, imports)
    assert wasi.start(instance) == 0
    assert seen == [41]
    assert instance.exports.g.value == 5
    assert set(instance.exports) == {"memory", "g", "_start"}
    with pytest.raises(AttributeError, match="nope"):
        instance.exports.nope


def test_user_linker_and_store() -> None:
    """A user with their own wasmtime Linker/Store plugs WASI in."""
    out: list[bytes] = []
    wasi = pywasi.WASI(version="preview1", stdout=out.append)
    assert wasi.start(instantiate_in_user_linker(wasi, DEMO.read_text())) == 0
    assert out == [b"hello world\n"]
