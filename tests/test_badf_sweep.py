"""Every fd-taking function, called with an fd that is not open, answers
BADF -- before it looks at any other argument (uvwasi's
test-ebadf-input-validation.c does the same sweep). Pointers and lengths are
0, so a call that read them before checking the fd would answer something
else (or trap)."""

from __future__ import annotations

import pathlib
import sys

import pytest

import pywasi
from pywasi._abi import PREVIEW1, UNSTABLE, Errno
from pywasi._syscalls import UNIMPLEMENTED

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from wasmbuild import build_wat  # noqa: E402

UNUSED_FD = 1234
FD_PARAMS = {"fd", "old_fd", "new_fd", "to"}


def _fd_taking(signatures: dict) -> list[str]:  # type: ignore[type-arg]
    return sorted(name for name, sig in signatures.items()
                  if FD_PARAMS & set(sig.param_names))


def test_the_sweep_covers_the_fd_calls() -> None:
    names = set(_fd_taking(PREVIEW1))
    assert {"fd_read", "fd_seek", "fd_readdir", "fd_pread", "path_open", "path_symlink",
            "path_link", "fd_renumber", "sock_accept"} <= names
    assert len(names) == 35  # 21 fd_*, 10 path_*, 4 sock_*


def _bound_wasi(tmp_path: pathlib.Path, version: str) -> pywasi.WASI:
    wasi = pywasi.WASI(version=version, preopens={"/sandbox": str(tmp_path)})
    module = pywasi.compile(build_wat('(module (memory (export "memory") 1))'))
    wasi.finalize_bindings(pywasi.instantiate(module, {}))
    return wasi


def _args(sig: object, fd: int) -> list[int]:
    return [fd if p in FD_PARAMS else 0 for p in sig.param_names]  # type: ignore[attr-defined]


@pytest.mark.parametrize("version, name",
                         [("preview1", n) for n in _fd_taking(PREVIEW1)]
                         + [("unstable", n) for n in _fd_taking(UNSTABLE)])
def test_unused_fd_is_badf(tmp_path: pathlib.Path, version: str, name: str) -> None:
    signatures = PREVIEW1 if version == "preview1" else UNSTABLE
    if name in UNIMPLEMENTED:
        pytest.skip(f"{name} is not implemented (NOSYS)")
    wasi = _bound_wasi(tmp_path, version)
    try:
        assert wasi.wasi_import[name](*_args(signatures[name], UNUSED_FD)) == Errno.BADF
    finally:
        wasi.close()


@pytest.mark.parametrize("name", ["path_link", "path_rename"])
def test_badf_on_either_fd(tmp_path: pathlib.Path, name: str) -> None:
    """Two-fd calls: a good first fd (the preopen) and a bad second one."""
    if name in UNIMPLEMENTED:
        pytest.skip(f"{name} is not implemented (NOSYS)")
    wasi = _bound_wasi(tmp_path, "preview1")
    sig = PREVIEW1[name]
    args = [3 if p in ("fd", "old_fd") else UNUSED_FD if p == "new_fd" else 0
            for p in sig.param_names]
    try:
        assert wasi.wasi_import[name](*args) == Errno.BADF
    finally:
        wasi.close()


def test_badf_through_wasm(tmp_path: pathlib.Path) -> None:
    """The raw route: a module calls a few fd functions with fd 1234 and
    stores each errno; then a closed fd (stdin) the same way."""
    calls = [
        ("fd_seek", "(param i32 i64 i32 i32) (result i32)", "(i64.const 0) (i32.const 0) (i32.const 0)"),
        ("fd_tell", "(param i32 i32) (result i32)", "(i32.const 0)"),
        ("fd_filestat_get", "(param i32 i32) (result i32)", "(i32.const 0)"),
        ("fd_readdir", "(param i32 i32 i32 i64 i32) (result i32)",
         "(i32.const 0) (i32.const 0) (i64.const 0) (i32.const 0)"),
        ("fd_pread", "(param i32 i32 i32 i64 i32) (result i32)",
         "(i32.const 0) (i32.const 0) (i64.const 0) (i32.const 0)"),
        ("fd_sync", "(param i32) (result i32)", ""),
        ("fd_allocate", "(param i32 i64 i64) (result i32)", "(i64.const 0) (i64.const 1)"),
    ]
    imports = "\n".join(f'(import "wasi_snapshot_preview1" "{n}" (func ${n} {t}))'
                        for n, t, _ in calls)
    close = '(import "wasi_snapshot_preview1" "fd_close" (func $fd_close (param i32) (result i32)))'
    body = "\n".join(
        f"(i32.store (i32.const {1024 + 4 * i}) (call ${n} (local.get $fd) {a}))"
        for i, (n, _, a) in enumerate(calls))
    wat = f"""(module {imports} {close}
      (memory (export "memory") 1)
      (func $sweep (param $fd i32) {body})
      (func (export "_start")
        (call $sweep (i32.const {UNUSED_FD}))
        (i32.store (i32.const 1000) (call $fd_close (i32.const 0)))
        (call $sweep (i32.const 0))))"""
    wasi = pywasi.WASI(version="preview1", preopens={"/sandbox": str(tmp_path)})
    instance = pywasi.instantiate(pywasi.compile(build_wat(wat)), wasi.get_import_object())
    assert wasi.start(instance) == 0
    mem = instance.exports.memory.buffer
    assert int.from_bytes(mem[1000:1004], "little") == 0
    got = [int.from_bytes(mem[1024 + 4 * i:1028 + 4 * i], "little") for i in range(len(calls))]
    assert got == [Errno.BADF] * len(calls)
