"""The test-program builder, and the node:wasi runner that differential tests use."""

from __future__ import annotations

import pathlib
from collections.abc import Callable, Sequence

import pytest
import wasmtime

import wasmbuild
from wasmbuild import WasmBuildError, build_c, build_c_source, build_wat

# The run_node_wasi fixture (conftest.py): (exit_code, stdout, stderr).
RunNodeWasi = Callable[..., tuple[int, bytes, bytes]]


def _imports(path: pathlib.Path) -> list[tuple[str, str]]:
    module = wasmtime.Module.from_file(wasmtime.Engine(), str(path))
    return [(imp.module, imp.name or "") for imp in module.imports]


class _CountingCompiler:
    def __init__(self) -> None:
        self.calls = 0
        self._real = wasmbuild._compile

    def __call__(self, c_file: pathlib.Path, out: pathlib.Path, flags: Sequence[str]) -> None:
        self.calls += 1
        self._real(c_file, out, flags)


def test_build_c_hello_is_a_wasi_command() -> None:
    path = build_c("hello")
    assert path.parent == wasmbuild.CACHE_DIR
    assert path.read_bytes()[:4] == b"\0asm"
    module = wasmtime.Module.from_file(wasmtime.Engine(), str(path))
    exports = {exp.name for exp in module.exports}
    assert {"_start", "memory"} <= exports


def test_second_build_is_a_cache_hit(monkeypatch: pytest.MonkeyPatch) -> None:
    first = build_c("hello")
    mtime = first.stat().st_mtime_ns
    counter = _CountingCompiler()
    monkeypatch.setattr(wasmbuild, "_compile", counter)
    second = build_c("hello")
    assert second == first
    assert counter.calls == 0
    assert second.stat().st_mtime_ns == mtime


def test_cache_key_covers_source_and_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    src = "int main(void) { return 3; }\n"
    counter = _CountingCompiler()
    monkeypatch.setattr(wasmbuild, "_compile", counter)
    a = build_c_source(src)
    b = build_c_source(src)
    c = build_c_source(src, flags=["-DUNUSED=1"])
    d = build_c_source(src.replace("3", "4"))
    assert a == b
    assert len({a, c, d}) == 3
    # a may have been built by an earlier run; c and d at most once each.
    assert counter.calls <= 3
    assert build_c_source(src, flags=["-DUNUSED=1"]) == c
    assert counter.calls <= 3


def test_no_temp_files_left_in_cache() -> None:
    build_c("hello")
    build_c_source("int main(void) { return 0; }\n")
    leftovers = [p.name for p in wasmbuild.CACHE_DIR.iterdir() if p.name.startswith(".tmp-")]
    assert leftovers == []


@pytest.mark.parametrize("name", ["hello", "core_env"])
def test_modules_import_only_preview1(name: str) -> None:
    imports = _imports(build_c(name))
    assert imports, "a libc program imports at least fd_write and proc_exit"
    assert {mod for mod, _ in imports} == {"wasi_snapshot_preview1"}


def test_core_env_imports_the_calls_it_exercises() -> None:
    names = {name for _, name in _imports(build_c("core_env"))}
    assert {
        "args_get",
        "args_sizes_get",
        "environ_get",
        "environ_sizes_get",
        "clock_time_get",
        "clock_res_get",
        "random_get",
        "fd_write",
        "proc_exit",
    } <= names


def test_broken_source_raises_with_compiler_message() -> None:
    with pytest.raises(WasmBuildError) as info:
        build_c_source("int main(void) { return undeclared_thing_xyz; }\n")
    message = str(info.value)
    assert "undeclared_thing_xyz" in message
    assert "error" in message


def test_build_wat() -> None:
    wasm = build_wat('(module (func (export "f") (result i32) i32.const 7))')
    assert wasm[:4] == b"\0asm"
    store = wasmtime.Store()
    instance = wasmtime.Instance(store, wasmtime.Module(store.engine, wasm), [])
    f = instance.exports(store)["f"]
    assert isinstance(f, wasmtime.Func)
    assert f(store) == 7


def test_hello_under_node(run_node_wasi: RunNodeWasi) -> None:
    code, out, err = run_node_wasi(build_c("hello"), args=["hello"])
    assert (code, out, err) == (0, b"hello from C\n", b"")


def test_core_env_under_node(run_node_wasi: RunNodeWasi) -> None:
    code, out, err = run_node_wasi(
        build_c("core_env"),
        args=["core_env", "7", "two words"],
        env={"PYWASI_TEST": "yes", "EMPTY": ""},
    )
    assert code == 7
    assert err == b"core_env: this line goes to stderr\n"
    lines = out.decode().splitlines()
    for expected in [
        "argc: 3",
        'argv[0]: "core_env" (8 bytes)',
        'argv[2]: "two words" (9 bytes)',
        "argv[argc] is NULL: yes",
        'environ[0]: "PYWASI_TEST=yes"',
        'environ[1]: "EMPTY="',
        "environ count: 2",
        'getenv(PYWASI_TEST): "yes"',
        "getenv(HOME): (unset)",
        'getenv(EMPTY): ""',
        "realtime after 2020: yes",
        "monotonic increases: yes",
        "realtime res in (0, 1s]: yes",
        "process cputime errno: 0",
        "32 random bytes not all zero: yes",
        "random_get calls differ: yes",
        "int: [42] [   42] [42   ] [00042] [+42]",
        "float: [3.142] [    2.50] [-1.2    ] [1.234568e+04] [0.0001] [1e+20]",
        "utf-8: [h\u00e9llo \u2713]",
        "exiting with: 7",
    ]:
        assert expected in lines
    assert not any(line.endswith(": no") for line in lines), out.decode()


def test_core_env_output_is_deterministic_under_node(run_node_wasi: RunNodeWasi) -> None:
    wasm = build_c("core_env")
    first = run_node_wasi(wasm, args=["core_env"], env={"A": "1"})
    second = run_node_wasi(wasm, args=["core_env"], env={"A": "1"})
    assert first == second
    assert first[0] == 0


def test_node_runner_passes_stdin_and_reports_traps(run_node_wasi: RunNodeWasi) -> None:
    cat = build_c_source(
        "#include <stdio.h>\n"
        "int main(void) { int c; while ((c = getchar()) != EOF) putchar(c); return 0; }\n"
    )
    assert run_node_wasi(cat, stdin=b"abc\n\0xyz") == (0, b"abc\n\0xyz", b"")

    trap = build_c_source("int main(void) { __builtin_trap(); }\n")
    code, out, err = run_node_wasi(trap)
    assert (code, out) == (134, b"")
    assert b"node_runner: trap:" in err
