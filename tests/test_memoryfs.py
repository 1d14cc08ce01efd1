"""``pywasi.fs.MemoryFS`` (issue 15): a tree in Python as a preopen.

The same C programs as on a host directory run in test_path.py and
test_fs_fd.py (the ``tree`` fixture); here: a differential test that makes
random sequences of path and fd calls on a host directory and on a MemoryFS
and compares every errno and result; the host-side API; what cannot escape;
the cases the programs do not reach (an unlinked open file, hard links,
rename between trees, the virtual clock's timestamps)."""

from __future__ import annotations

import os
import pathlib
import struct
import tempfile
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pywasi
import pywasi.fs
from pywasi._abi import FILESTAT, Errno, Filetype, Oflags, Rights
from pywasi._fs._dir import DIR_INHERITING, FILE_RIGHTS
from helpers import run_module
from wasmbuild import build_c, build_wat

MEMORY = '(module (memory (export "memory") 1) (func (export "_start")))'
PATH, PATH2, IOV, BUF, OUT = 0x100, 0x200, 0x300, 0x400, 0x800
DIR = 3


class Side:
    """One WASI environment with one preopen (fd 3), its calls made through
    the host functions, guest memory written from Python."""

    def __init__(self, preopen: Any, **options: Any) -> None:
        self.wasi = pywasi.WASI(version="preview1", preopens={"/t": preopen}, **options)
        self.instance = pywasi.instantiate(pywasi.compile(build_wat(MEMORY)),
                                           self.wasi.get_import_object())
        self.wasi.finalize_bindings(self.instance)
        self.mem = self.instance.exports["memory"]

    def put(self, at: int, data: bytes) -> None:
        self.mem.buffer[at:at + len(data)] = data

    def call(self, name: str, *args: int) -> int:
        return int(self.wasi.wasi_import[name](*args) or 0)

    def u32(self, at: int) -> int:
        return int(struct.unpack_from("<I", self.mem.buffer, at)[0])

    def path_call(self, name: str, path: str, *rest: int, second: str | None = None) -> int:
        self.put(PATH, path.encode())
        if second is not None:
            self.put(PATH2, second.encode())
        return self.call(name, *rest)

    # -- the operations of the differential test -----------------------------
    def op(self, op: tuple[Any, ...]) -> tuple[Any, ...]:
        kind = op[0]
        if kind == "open":
            _, path, oflags, follow, write = op
            rights = FILE_RIGHTS if write else int(Rights.FD_READ | Rights.FD_READDIR
                                                   | Rights.FD_FILESTAT_GET)
            self.put(PATH, path.encode())
            errno = self.call("path_open", DIR, int(follow), PATH, len(path.encode()), oflags,
                              rights, DIR_INHERITING, 0, OUT)
            if errno:
                return (errno,)
            fd = self.u32(OUT)
            stat = self._fd_stat(fd)
            if write:
                self.put(BUF, b"data")
                self.put(IOV, struct.pack("<II", BUF, 4))
                stat += (self.call("fd_write", fd, IOV, 1, OUT), self.u32(OUT))
            self.call("fd_close", fd)
            return (0, *stat)
        if kind == "read":
            _, path = op
            errno = self.path_call("path_open", path, DIR, 1, PATH, len(path.encode()), 0,
                                   int(Rights.FD_READ | Rights.FD_READDIR), 0, 0, OUT)
            if errno:
                return (errno,)
            fd = self.u32(OUT)
            self.put(IOV, struct.pack("<II", BUF, 64))
            errno = self.call("fd_read", fd, IOV, 1, OUT)
            data = bytes(self.mem.buffer[BUF:BUF + self.u32(OUT)]) if not errno else b""
            listing = self._names(fd)
            self.call("fd_close", fd)
            return (errno, data, listing)
        if kind == "stat":
            _, path, follow = op
            errno = self.path_call("path_filestat_get", path, DIR, int(follow), PATH,
                                   len(path.encode()), OUT)
            if errno:
                return (errno,)
            _, _, ftype, nlink, size, *_ = struct.unpack_from(FILESTAT.struct.format,
                                                              self.mem.buffer, OUT)
            return (0, ftype, nlink, size if ftype != Filetype.DIRECTORY else None)
        if kind in ("mkdir", "rmdir", "unlink"):
            name = {"mkdir": "path_create_directory", "rmdir": "path_remove_directory",
                    "unlink": "path_unlink_file"}[kind]
            return (self.path_call(name, op[1], DIR, PATH, len(op[1].encode())),)
        if kind == "readlink":
            errno = self.path_call("path_readlink", op[1], DIR, PATH, len(op[1].encode()), BUF,
                                   64, OUT)
            return (errno,) if errno else (0, bytes(self.mem.buffer[BUF:BUF + self.u32(OUT)]))
        if kind == "symlink":
            _, target, path = op
            return (self.path_call("path_symlink", target, PATH, len(target.encode()), DIR,
                                   PATH2, len(path.encode()), second=path),)
        if kind == "rename":
            _, old, new = op
            return (self.path_call("path_rename", old, DIR, PATH, len(old.encode()), DIR, PATH2,
                                   len(new.encode()), second=new),)
        if kind == "link":
            _, old, new, follow = op
            return (self.path_call("path_link", old, DIR, int(follow), PATH, len(old.encode()),
                                   DIR, PATH2, len(new.encode()), second=new),)
        raise AssertionError(kind)

    def _fd_stat(self, fd: int) -> tuple[int, ...]:
        self.call("fd_filestat_get", fd, OUT)
        _, _, ftype, nlink, size, *_ = struct.unpack_from(FILESTAT.struct.format,
                                                          self.mem.buffer, OUT)
        return (ftype, nlink, size if ftype != Filetype.DIRECTORY else -1)

    def _names(self, fd: int) -> tuple[str, ...] | int:
        errno = self.call("fd_readdir", fd, BUF, 0x400, 0, OUT)
        if errno:
            return errno
        data, names, at = bytes(self.mem.buffer[BUF:BUF + self.u32(OUT)]), [], 0
        while at + 24 <= len(data):
            namlen = struct.unpack_from("<I", data, at + 16)[0]
            names.append(data[at + 24:at + 24 + namlen].decode())
            at += 24 + namlen
        return tuple(sorted(names))


NAMES = ["a", "b", "d", "d/e", "d/f", "l", "m", "a/", "d/", "l/", "d/..", "d/../a", "..",
         "../a", ".", "d/e/x", "l/e", ""]
TARGETS = ["a", "d", "d/e", "l", "m", "..", "../a", "d/..", "missing", "/etc", "."]
OFLAGS = [0, int(Oflags.CREAT), int(Oflags.CREAT | Oflags.EXCL), int(Oflags.TRUNC),
          int(Oflags.DIRECTORY), int(Oflags.CREAT | Oflags.TRUNC)]
name = st.sampled_from(NAMES)
OPS = st.one_of(
    st.tuples(st.just("open"), name, st.sampled_from(OFLAGS), st.booleans(), st.booleans()),
    st.tuples(st.just("read"), name),
    st.tuples(st.just("stat"), name, st.booleans()),
    st.tuples(st.sampled_from(["mkdir", "rmdir", "unlink", "readlink"]), name),
    st.tuples(st.just("symlink"), st.sampled_from(TARGETS), name),
    st.tuples(st.just("rename"), name, name),
    st.tuples(st.just("link"), name, name, st.booleans()),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(OPS, min_size=1, max_size=25))
def test_memoryfs_answers_as_the_host_does(ops: list[tuple[Any, ...]]) -> None:
    with tempfile.TemporaryDirectory() as host_dir:
        host, memory = Side(host_dir), Side(pywasi.fs.MemoryFS())
        try:
            for i, op in enumerate(ops):
                expected, got = host.op(op), memory.op(op)
                assert got == expected, (f"step {i}: {op}: host {_named(expected)}, "
                                         f"MemoryFS {_named(got)}; the steps: {ops[:i + 1]}")
        finally:
            host.wasi.close()
            memory.wasi.close()


def _named(result: tuple[Any, ...]) -> tuple[Any, ...]:
    return (Errno(result[0]).name, *result[1:])


# -- the host side ------------------------------------------------------------

def test_files_in_and_out() -> None:
    fs = pywasi.fs.MemoryFS({"in.txt": b"hi", "sub": {"deep.txt": b"x"}, "a/b/c.txt": b"c"})
    assert fs.listdir() == ["in.txt", "sub", "a"] and fs.listdir("a/b") == ["c.txt"]
    r = run_module(build_c("fs_file"), preopens={"/sandbox": fs})
    assert (r.code, r.stdout) == (0, b"ok\n")
    tree = fs.to_dict()
    assert tree["log.txt"] == b"one\ntwo\n" and tree["sub"] == {"deep.txt": b"x"}
    assert fs.read("a/b/c.txt") == b"c" and fs.stat("in.txt").size == 2


def test_from_host_and_to_host(tmp_path: pathlib.Path) -> None:
    (tmp_path / "src" / "d").mkdir(parents=True)
    (tmp_path / "src" / "d" / "f").write_bytes(b"data")
    os.symlink("d/f", tmp_path / "src" / "link")
    fs = pywasi.fs.MemoryFS.from_host(tmp_path / "src")
    assert fs.to_dict() == {"d": {"f": b"data"}, "link": pywasi.fs.Symlink("d/f")}
    assert fs.read("link") == b"data" and fs.readlink("link") == "d/f"
    fs.write("d/new", b"more")
    (tmp_path / "src" / "d" / "f").write_bytes(b"changed on the host")
    assert fs.read("d/f") == b"data"  # a copy, not a view
    fs.to_host(tmp_path / "out")
    assert (tmp_path / "out" / "d" / "new").read_bytes() == b"more"
    assert os.readlink(tmp_path / "out" / "link") == "d/f"


@pytest.mark.parametrize("bad, error", [
    ({"x": 1}, TypeError), ({"": b""}, ValueError), ({"/": b""}, ValueError), ([b"x"], TypeError),
])
def test_bad_trees_are_named(bad: Any, error: type) -> None:
    with pytest.raises(error, match="MemoryFS"):
        pywasi.fs.MemoryFS(bad)


def test_bad_preopen_is_named() -> None:
    with pytest.raises(TypeError, match=r"preopens\['/x'\]: expected a host path .*MemoryFS"):
        pywasi.WASI(version="preview1", preopens={"/x": 42})


def test_host_side_paths_stay_in_the_tree() -> None:
    fs = pywasi.fs.MemoryFS({"f": b""})
    fs.symlink("../../etc/passwd", "out")
    for path in ("../etc/passwd", "out"):
        assert not fs.exists(path)
        with pytest.raises(FileNotFoundError):
            fs.read(path)


# -- what the programs do not reach ----------------------------------------------

def test_nothing_leads_out_of_the_tree(tmp_path: pathlib.Path) -> None:
    (tmp_path / "secret").write_bytes(b"host data")
    side = Side(pywasi.fs.MemoryFS({"d": {}}))
    for path in ("../secret", "d/../../secret", str(tmp_path / "secret"), "/etc/passwd"):
        assert side.op(("read", path)) == (Errno.PERM,)
    assert side.op(("symlink", "../secret", "up")) == (0,)  # only text until followed
    assert side.op(("read", "up")) == (Errno.PERM,)
    assert side.op(("symlink", "/etc", "abs")) == (Errno.PERM,)
    assert side.op(("symlink", "loop", "loop")) == (0,)
    assert side.op(("read", "loop")) == (Errno.LOOP,)


def test_an_unlinked_open_file_stays_readable() -> None:
    fs = pywasi.fs.MemoryFS({"f": b"still here"})
    side = Side(fs)
    side.put(PATH, b"f")
    assert side.call("path_open", DIR, 0, PATH, 1, 0, int(Rights.FD_READ | Rights.FD_FILESTAT_GET),
                     0, 0, OUT) == 0
    fd = side.u32(OUT)
    assert side.op(("unlink", "f")) == (0,) and not fs.exists("f")
    side.put(IOV, struct.pack("<II", BUF, 64))
    assert side.call("fd_read", fd, IOV, 1, OUT) == 0
    assert bytes(side.mem.buffer[BUF:BUF + side.u32(OUT)]) == b"still here"
    assert side._fd_stat(fd) == (Filetype.REGULAR_FILE, 0, 10)


def test_hard_links_share_one_inode_and_its_data() -> None:
    fs = pywasi.fs.MemoryFS({"f": b"one"})
    side = Side(fs)
    assert side.op(("link", "f", "g", False)) == (0,)
    assert fs.stat("f").ino == fs.stat("g").ino and fs.stat("g").nlink == 2
    assert side.op(("open", "g", int(Oflags.TRUNC), False, True))[0] == 0
    assert fs.read("f") == b"data"


def test_rename_and_link_between_trees_are_xdev(tmp_path: pathlib.Path) -> None:
    out: list[bytes] = []
    wasi = pywasi.WASI(version="preview1", stdout=out.append,
                       preopens={"/m": pywasi.fs.MemoryFS({"f": b""}), "/h": str(tmp_path),
                                 "/n": pywasi.fs.MemoryFS()})
    instance = pywasi.instantiate(pywasi.compile(build_wat(MEMORY)), wasi.get_import_object())
    wasi.finalize_bindings(instance)
    instance.exports["memory"].buffer[PATH:PATH + 1] = b"f"
    for new_fd in (4, 5):
        assert wasi.wasi_import["path_rename"](3, PATH, 1, new_fd, PATH, 1) == Errno.XDEV
        assert wasi.wasi_import["path_link"](3, 0, PATH, 1, new_fd, PATH, 1) == Errno.XDEV
    assert not (tmp_path / "f").exists()


def test_timestamps_follow_the_virtual_clock() -> None:
    fs = pywasi.fs.MemoryFS()
    clock = pywasi.VirtualClock(realtime=10**18, step=1)
    side = Side(fs, clock=clock)
    assert side.op(("open", "new", int(Oflags.CREAT), False, True))[0] == 0
    info = fs.stat("new")
    assert 10**18 < info.mtime_ns < 10**18 + 100 and info.ctime_ns == info.mtime_ns
    # Deterministic runs: the same times twice, to the nanosecond.
    trees = [pywasi.fs.MemoryFS() for _ in range(2)]
    for each in trees:
        s = Side(each, deterministic=True)
        s.op(("mkdir", "d"))
        s.op(("open", "d/f", int(Oflags.CREAT), False, True))
    assert trees[0].stat("d/f")[1:] == trees[1].stat("d/f")[1:]
    assert trees[0].stat("d/f").mtime_ns < 1_700_000_000 * 10**9 + 10**9
