"""pywasi's objects travel to other processes (issue 27): filesystems with
their contents, the exceptions and results of a run with their fields.
Compiled modules: test_pickle_module.py; process pools, Dask and Ray:
test_many_runs.py."""

from __future__ import annotations

import os
import pathlib
import pickle
import zipfile
from typing import Any

import pytest

import pywasi
import pywasi.fs
from pywasi.fs import MemoryFS, Overlay, ReadOnly, Symlink, ZipFS
from wasmbuild import build_wat

# A guest that writes "guest" to /t/out.txt: path_open, fd_write.
WRITER = r'''
(module
  (import "wasi_snapshot_preview1" "path_open"
    (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write"
    (func $write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "out.txt")
  (data (i32.const 32) "guest")
  (func (export "_start")
    ;; fd 3, no follow, "out.txt", O_CREAT|O_TRUNC, FD_WRITE, into [64]
    (drop (call $open (i32.const 3) (i32.const 0) (i32.const 16) (i32.const 7)
                (i32.const 9) (i64.const 64) (i64.const 0) (i32.const 0) (i32.const 64)))
    (i32.store (i32.const 0) (i32.const 32))
    (i32.store (i32.const 4) (i32.const 5))
    (drop (call $write (i32.load (i32.const 64)) (i32.const 0) (i32.const 1) (i32.const 8)))))
'''


def roundtrip(value: Any) -> Any:
    return pickle.loads(pickle.dumps(value))


def everything(fs: MemoryFS) -> dict[str, Any]:
    """Each path's stat (inode, kind, nlink, size, times) and contents."""
    out = {}
    pending = [""]
    while pending:
        here = pending.pop()
        for name in fs.listdir(here):
            path = f"{here}/{name}".lstrip("/")
            info = fs.stat(path, follow_symlinks=False)
            if info.filetype == 3:  # a directory
                pending.append(path)
                out[path] = (info, None)
            elif info.filetype == 7:  # a symlink
                out[path] = (info, fs.readlink(path))
            else:
                out[path] = (info, fs.read(path))
    return out


def sample() -> MemoryFS:
    fs = MemoryFS({"in.txt": b"hello", "a/b/c.bin": bytes(range(256)) * 40, "empty": {}},
                  max_bytes=1 << 20, max_entries=50)
    fs.symlink("a/b/c.bin", "link")
    fs.link("in.txt", "a/hard")
    fs.utime("in.txt", (1_000_000_000, 2_000_000_000))
    return fs


def test_a_memoryfs_pickles_with_its_files_links_times_and_quotas() -> None:
    fs = sample()
    copy = roundtrip(fs)
    assert everything(copy) == everything(fs)
    assert copy.to_dict() == fs.to_dict()
    assert (copy.used_bytes, copy.used_entries) == (fs.used_bytes, fs.used_entries)
    assert (copy._tree.max_bytes, copy._tree.max_entries) == (1 << 20, 50)
    # A hard link is still one file; a new file takes the next inode number.
    copy.write("a/hard", b"changed")
    assert copy.read("in.txt") == b"changed" and fs.read("in.txt") == b"hello"
    copy.write("new", b"")
    fs.write("new", b"")
    assert copy.stat("new").ino == fs.stat("new").ino
    assert copy._tree.lock is not fs._tree.lock


def test_a_deep_tree_pickles_without_recursion() -> None:
    fs = MemoryFS()
    fs.write("/".join(["d"] * 3000) + "/leaf", b"deep")
    assert roundtrip(fs).read("/".join(["d"] * 3000) + "/leaf") == b"deep"


def test_a_quota_holds_in_the_copy() -> None:
    copy = roundtrip(MemoryFS({"f": b"x" * 10}, max_bytes=12))
    assert pywasi.run(build_wat(WRITER), preopens={"/t": copy}).exit_code == 0
    # The guest's 5 bytes would pass 12: NOSPC, the file made but empty.
    assert copy.read("out.txt") == b"" and copy.used_bytes == 10


def test_read_only_zip_and_overlay_pickle_with_their_contents(tmp_path: pathlib.Path) -> None:
    assert roundtrip(ReadOnly(sample())).tree.to_dict() == sample().to_dict()
    assert roundtrip(ReadOnly(str(tmp_path))).tree == str(tmp_path)
    with zipfile.ZipFile(tmp_path / "a.zip", "w") as z:
        z.writestr("pkg/mod.py", b"x = 1\n")
    zipped = roundtrip(ZipFS(tmp_path / "a.zip"))
    assert type(zipped) is ZipFS and zipped.to_dict() == {"pkg": {"mod.py": b"x = 1\n"}}
    # Still read-only: the guest cannot write into it.
    result = pywasi.run(build_wat(WRITER), preopens={"/t": zipped})
    assert result.exit_code == 0 and not zipped.exists("out.txt")

    # An overlay on a MemoryFS, and on a host directory: the lower tree is
    # read whole into the copy, changes() is the same on both sides.
    lower = tmp_path / "lower"
    (lower / "sub").mkdir(parents=True)
    (lower / "keep.txt").write_bytes(b"keep")
    (lower / "sub" / "gone.txt").write_bytes(b"gone")
    os.symlink("keep.txt", lower / "ln")
    for overlay in (Overlay(MemoryFS.from_host(lower)), Overlay(str(lower))):
        overlay.upper.write("added.txt", b"new")
        overlay.upper.write("keep.txt", b"changed")
        copy = roundtrip(overlay)
        assert copy.changes() == overlay.changes() == {
            "added": ["added.txt"], "modified": ["keep.txt"], "deleted": []}
        assert copy.upper.to_dict() == {"keep.txt": b"changed", "ln": Symlink("keep.txt"),
                                        "sub": {"gone.txt": b"gone"}, "added.txt": b"new"}
    # The copy of a host overlay needs no host directory.
    copy = roundtrip(Overlay(str(lower)))
    (lower / "sub" / "gone.txt").unlink()
    (lower / "sub").rmdir()
    assert copy.upper.read("sub/gone.txt") == b"gone"
    assert copy.changes() == {"added": [], "modified": [], "deleted": []}


def test_a_memoryfs_a_guest_wrote_in_pickles_with_its_files() -> None:
    fs = roundtrip(MemoryFS({"in.txt": b"input"}))
    assert pywasi.run(build_wat(WRITER), preopens={"/t": fs}).exit_code == 0
    back = roundtrip(fs)
    assert back.to_dict() == {"in.txt": b"input", "out.txt": b"guest"}


def test_results_and_errors_pickle_with_their_fields() -> None:
    result = pywasi.RunResult(exit_code=None, stdout=b"out", stderr=b"err", limit="timeout",
                              trap="time limit of 2s reached", fuel_consumed=None,
                              memory_peak=65536, wall_time=2.01)
    copy = roundtrip(result)
    assert repr(copy) == repr(result)

    error = roundtrip(pywasi.RunError(result))
    assert type(error) is pywasi.RunError and str(error) == str(pywasi.RunError(result))
    assert repr(error.result) == repr(result)

    limit = roundtrip(pywasi.LimitExceeded("fuel", "fuel of 100 used up"))
    assert type(limit) is pywasi.LimitExceeded and isinstance(limit, pywasi.Trap)
    assert (limit.limit, str(limit)) == ("fuel", "fuel of 100 used up")

    exited = roundtrip(pywasi.WasiExit(3))
    assert (type(exited), exited.code, str(exited)) == (
        pywasi.WasiExit, 3, "the program exited with code 3")

    trap = roundtrip(pywasi.Trap("wasm trap: unreachable"))
    assert (type(trap), str(trap)) == (pywasi.Trap, "wasm trap: unreachable")

    with pytest.raises(pywasi.PreopenError) as raised:
        pywasi.WASI(version="preview1", preopens={"/x": "/no/such/dir"})
    preopen = roundtrip(raised.value)
    assert type(preopen) is pywasi.PreopenError and str(preopen) == str(raised.value)
    assert isinstance(preopen, ValueError)

    # Notes and attributes a caller added travel too.
    noted = pywasi.WasiExit(1)
    noted.add_note("task 7")
    noted.extra = "x"  # type: ignore[attr-defined]
    copy_noted = roundtrip(noted)
    assert copy_noted.__notes__ == ["task 7"] and copy_noted.extra == "x"
