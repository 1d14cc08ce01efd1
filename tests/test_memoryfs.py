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
        _same_answers(ops, host_dir, pywasi.fs.MemoryFS())


def _same_answers(ops: list[tuple[Any, ...]], host_dir: str, tree: Any) -> None:
    """Each of ``ops`` on a host directory and on ``tree``: the same result."""
    host, other = Side(host_dir), Side(tree)
    try:
        for i, op in enumerate(ops):
            expected, got = host.op(op), other.op(op)
            assert got == expected, (f"step {i}: {op}: host {_named(expected)}, {tree!r} "
                                     f"{_named(got)}; the steps: {ops[:i + 1]}")
    finally:
        host.wasi.close()
        other.wasi.close()


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
    # The host side's link: the same node again, and a directory refused.
    fs.link("g", "sub/h")
    assert fs.stat("sub/h").ino == fs.stat("f").ino and fs.stat("f").nlink == 3
    assert fs.read("sub/h") == b"data"
    with pytest.raises(PermissionError):
        fs.link("sub", "d2")
    with pytest.raises(FileExistsError):
        fs.link("f", "g")


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


# -- read-only, zip, overlay, quotas ------------------------------------------------

MUTATIONS = [("mkdir", "new"), ("unlink", "f"), ("rmdir", "d"), ("symlink", "f", "l"),
             ("rename", "f", "g"), ("link", "f", "g", False),
             ("open", "f", 0, False, True), ("open", "new", int(Oflags.CREAT), False, False),
             ("open", "f", int(Oflags.TRUNC), False, False)]


@pytest.mark.parametrize("kind", ["host", "memory"])
def test_read_only_refuses_every_change_and_reads_as_before(kind: str,
                                                            tmp_path: pathlib.Path) -> None:
    if kind == "host":
        (tmp_path / "f").write_bytes(b"content")
        (tmp_path / "d").mkdir()
        under: Any = str(tmp_path)
    else:
        under = pywasi.fs.MemoryFS({"f": b"content", "d": {}})
    side = Side(pywasi.fs.ReadOnly(under))
    for op in MUTATIONS:
        assert side.op(op) == (Errno.NOTCAPABLE,), op
    # A directory opened through it hands down no write rights either.
    assert side.op(("open", "d/x", int(Oflags.CREAT), False, False)) == (Errno.NOTCAPABLE,)
    assert side.op(("read", "f"))[:2] == (0, b"content")
    assert side.op(("stat", "d", False)) == (0, Filetype.DIRECTORY, 2, None)
    after = sorted(p.name for p in tmp_path.iterdir()) if kind == "host" else under.listdir()
    assert sorted(after) == ["d", "f"]


def test_a_zip_archive_as_a_read_only_tree(tmp_path: pathlib.Path) -> None:
    import zipfile
    archive = tmp_path / "data.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("top.txt", b"top")
        z.writestr("pkg/mod.py", b"x = 1\n")
        z.writestr("empty/", b"")
        link = zipfile.ZipInfo("pkg/alias.py")
        link.external_attr = (0o120777 << 16)
        z.writestr(link, b"mod.py")
    fs = pywasi.fs.ZipFS(archive)
    assert fs.to_dict() == {"top.txt": b"top", "pkg": {"mod.py": b"x = 1\n",
                                                       "alias.py": pywasi.fs.Symlink("mod.py")},
                            "empty": {}}
    side = Side(fs)
    assert side.op(("read", "pkg/alias.py"))[:2] == (0, b"x = 1\n")
    assert side.op(("open", "top.txt", 0, False, True)) == (Errno.NOTCAPABLE,)
    assert side.op(("mkdir", "new")) == (Errno.NOTCAPABLE,)
    with zipfile.ZipFile(tmp_path / "bad.zip", "w") as z:
        z.writestr("../escape", b"")
    with pytest.raises(ValueError, match="'../escape' is not a relative path"):
        pywasi.fs.ZipFS(tmp_path / "bad.zip")


def test_an_overlay_leaves_the_lower_tree_alone_and_says_what_changed(
        tmp_path: pathlib.Path) -> None:
    (tmp_path / "a").write_bytes(b"lower a")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "c").write_bytes(b"lower c")
    os.symlink("a", tmp_path / "link")
    overlay = pywasi.fs.Overlay(str(tmp_path))
    side = Side(overlay)
    assert side.op(("read", "link"))[:2] == (0, b"lower a")
    assert side.op(("open", "a", int(Oflags.TRUNC), False, True))[0] == 0
    assert side.op(("unlink", "b/c")) == (0,)
    assert side.op(("open", "new", int(Oflags.CREAT), False, True))[0] == 0
    assert overlay.changes() == {"added": ["new"], "modified": ["a"], "deleted": ["b/c"]}
    assert overlay.upper.read("a") == b"data"
    assert (tmp_path / "a").read_bytes() == b"lower a" and (tmp_path / "b" / "c").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "link"]


def test_quotas_answer_nospc_and_change_nothing() -> None:
    fs = pywasi.fs.MemoryFS({"f": b"12345678"}, max_bytes=10, max_entries=3)
    side = Side(fs)
    assert (fs.used_bytes, fs.used_entries) == (8, 1)
    side.put(PATH, b"f")
    assert side.call("path_open", DIR, 0, PATH, 1, 0, FILE_RIGHTS, 0, int(1), OUT) == 0  # APPEND
    fd = side.u32(OUT)
    side.put(BUF, b"abc")
    side.put(IOV, struct.pack("<II", BUF, 3))
    assert side.call("fd_write", fd, IOV, 1, OUT) == Errno.NOSPC
    assert fs.read("f") == b"12345678"
    assert side.call("fd_filestat_set_size", fd, 11) == Errno.NOSPC
    assert side.call("fd_filestat_set_size", fd, 10) == 0 and fs.used_bytes == 10
    assert side.op(("mkdir", "d")) == (0,) and side.op(("symlink", "f", "l")) == (0,)
    assert side.op(("mkdir", "e")) == (Errno.NOSPC,)
    assert side.op(("link", "f", "g", False)) == (Errno.NOSPC,)
    assert side.op(("unlink", "l")) == (0,) and side.op(("link", "f", "g", False)) == (0,)
    assert side.op(("unlink", "f")) == (0,) and fs.used_bytes == 10  # "g" still names it
    assert side.op(("unlink", "g")) == (0,)
    assert (fs.used_bytes, fs.used_entries) == (0, 1)


def test_bad_quotas_are_named() -> None:
    with pytest.raises(TypeError, match="max_bytes must be a non-negative int"):
        pywasi.fs.MemoryFS(max_bytes=-1)


@pytest.mark.parametrize("mode", ["ro", "overlay", "zip"])
def test_the_command_line_modes(mode: str, tmp_path: pathlib.Path) -> None:
    import subprocess
    import sys
    import zipfile
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "log.txt").write_bytes(b"kept\n")
    host = tmp_path / "in"
    if mode == "zip":
        host = tmp_path / "in.zip"
        with zipfile.ZipFile(host, "w") as z:
            z.writestr("log.txt", b"kept\n")
    result = subprocess.run([sys.executable, "-m", "pywasi", "run", "--dir",
                             f"{host}::/sandbox::{mode}", str(build_c("fs_file"))],
                            capture_output=True, timeout=60)
    # fs_file writes /sandbox/log.txt: only the overlay lets it, in memory.
    assert (result.returncode == 0) == (mode == "overlay"), result
    assert (tmp_path / "in" / "log.txt").read_bytes() == b"kept\n"
    bad = subprocess.run([sys.executable, "-m", "pywasi", "run", "--dir",
                          f"{tmp_path / 'in'}::/sandbox::zip", str(build_c("fs_file"))],
                         capture_output=True, timeout=60)
    assert bad.returncode == 2 and b"Traceback" not in bad.stderr
    assert b"(zip): Is a directory" in bad.stderr


def test_readdir_cookies_survive_entries_added_and_removed() -> None:
    fs = pywasi.fs.MemoryFS({f"n{i:02}": b"" for i in range(20)})
    side = Side(fs)

    def listing(cookie: int) -> list[tuple[int, str]]:
        """(d_next, name) from ``cookie`` on, read 100 bytes at a time."""
        out: list[tuple[int, str]] = []
        while True:
            assert side.call("fd_readdir", DIR, BUF, 100, cookie, OUT) == 0
            data = bytes(side.mem.buffer[BUF:BUF + side.u32(OUT)])
            at = 0
            while at + 24 <= len(data):
                d_next, _, namlen = struct.unpack_from("<QQI", data, at)
                if at + 24 + namlen > len(data):
                    break  # cut: read on from the last whole entry
                out.append((d_next, data[at + 24:at + 24 + namlen].decode()))
                cookie, at = d_next, at + 24 + namlen
            if len(data) < 100:
                return out

    everything = listing(0)
    assert [n for _, n in everything] == [".", ".."] + [f"n{i:02}" for i in range(20)]
    for k, (d_next, _) in enumerate(everything):
        assert listing(d_next) == everything[k + 1:]
    fs.write("late", b"")
    assert side.op(("unlink", "n05")) == (0,)
    assert listing(everything[3][0]) == everything[4:]  # the same continuation
    fresh = [n for _, n in listing(0)]  # a rewind sees the changes
    assert "late" in fresh and "n05" not in fresh


def test_poll_oneoff_finds_a_memory_file_ready() -> None:
    from pywasi._abi import EVENT, SUBSCRIPTION_FD_READWRITE, Eventtype
    side = Side(pywasi.fs.MemoryFS({"f": b"12345"}))
    side.put(PATH, b"f")
    assert side.call("path_open", DIR, 0, PATH, 1, 0, int(Rights.FD_READ | Rights.FD_WRITE
                                                          | Rights.POLL_FD_READWRITE),
                     0, 0, OUT) == 0
    fd = side.u32(OUT)
    subs = bytearray(96)
    SUBSCRIPTION_FD_READWRITE.struct.pack_into(subs, 0, 1, Eventtype.FD_READ, fd)
    SUBSCRIPTION_FD_READWRITE.struct.pack_into(subs, 48, 2, Eventtype.FD_WRITE, fd)
    side.put(0x1000, bytes(subs))
    assert side.call("poll_oneoff", 0x1000, 0x2000, 2, OUT) == 0 and side.u32(OUT) == 2
    events = [EVENT.struct.unpack_from(side.mem.buffer, 0x2000 + 32 * i) for i in range(2)]
    # Regular files never block (POSIX): both ready at once, the read with what is left.
    assert [(e[0], e[1], e[2], e[3]) for e in events] == [(1, 0, Eventtype.FD_READ, 5),
                                                         (2, 0, Eventtype.FD_WRITE, 0)]


def _lower_tree(root: pathlib.Path) -> None:
    (root / "d" / "f").mkdir(parents=True)
    (root / "a").write_bytes(b"lower a")
    (root / "d" / "e").write_bytes(b"lower e")
    os.symlink("a", root / "l")
    os.symlink("d/..", root / "m")


def _snapshot(root: pathlib.Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = pathlib.Path(dirpath) / name
            rel = str(full.relative_to(root))
            out[rel] = os.readlink(full) if full.is_symlink() else \
                "dir" if full.is_dir() else full.read_bytes()
    return out


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(OPS, min_size=1, max_size=20))
def test_an_overlay_answers_as_the_host_does_and_leaves_it_alone(ops: list[tuple[Any, ...]]
                                                                 ) -> None:
    with tempfile.TemporaryDirectory() as work:
        host_dir, lower_dir = pathlib.Path(work, "host"), pathlib.Path(work, "lower")
        for d in (host_dir, lower_dir):
            d.mkdir()
            _lower_tree(d)
        before = _snapshot(lower_dir)
        overlay = pywasi.fs.Overlay(str(lower_dir))
        _same_answers(ops, str(host_dir), overlay)
        assert _snapshot(lower_dir) == before
        # changes() tells what the host copy shows changed.
        after = _snapshot(host_dir)
        changes = overlay.changes()
        assert changes["added"] == sorted(after.keys() - before.keys())
        assert changes["deleted"] == sorted(before.keys() - after.keys())
        assert changes["modified"] == sorted(p for p in after.keys() & before.keys()
                                             if after[p] != before[p])


def test_an_overlay_reads_the_lower_tree_only_where_the_guest_looks(
        tmp_path: pathlib.Path) -> None:
    lower = tmp_path / "lower"
    for i in range(50):
        (lower / f"dir{i}").mkdir(parents=True)
        (lower / f"dir{i}" / "file").write_bytes(b"x" * 1000)
    (tmp_path / "secret").write_bytes(b"outside")
    os.symlink(str(tmp_path / "secret"), lower / "abs")
    os.symlink("../secret", lower / "up")
    overlay = pywasi.fs.Overlay(str(lower))
    assert overlay.upper.used_entries == 0  # nothing read yet
    side = Side(overlay)
    assert side.op(("stat", "dir7/file", False)) == (0, Filetype.REGULAR_FILE, 1, 1000)
    # The root's 52 entries and dir7's one; no file's bytes yet.
    assert overlay.upper.used_entries == 53
    node = overlay.upper._tree.root.entries["dir7"].entries["file"]  # type: ignore[attr-defined]
    assert not node.loaded
    assert side.op(("read", "dir7/file"))[:2] == (0, b"x" * 64) and node.loaded
    for path in ("abs", "up", "../secret"):
        assert side.op(("read", path)) == (Errno.PERM,), path
    assert overlay.changes() == {"added": [], "modified": [], "deleted": []}
