"""The fd_* calls on files and directories: HostFile, the filestat/time
helpers, and the fs_fd syscalls, through real programs (C and WAT)."""

from __future__ import annotations

import os
import pathlib

import pytest

from pywasi._abi import Errno, Filetype, Fstflags, Oflags
from pywasi._errors import WasiError
from pywasi._fs._file import HostFile, write_all
from pywasi._fs._stat import NOW, OMIT, filestat_values, resolve_times, set_times_at, set_times_fd

ALL = (1 << 30) - 1


# -- _stat ---------------------------------------------------------------------

def test_filestat_values_nanoseconds(tmp_path: pathlib.Path) -> None:
    p = tmp_path / "f"
    p.write_bytes(b"abc")
    os.utime(p, ns=(1_000_000_123, 2_000_000_456))
    st = os.stat(p)
    assert filestat_values(st) == (st.st_dev, st.st_ino, Filetype.REGULAR_FILE, 1, 3,
                                   1_000_000_123, 2_000_000_456, st.st_ctime_ns)


@pytest.mark.parametrize("flags", [
    Fstflags.ATIM | Fstflags.ATIM_NOW, Fstflags.MTIM | Fstflags.MTIM_NOW, 1 << 4, 0xFFFF])
def test_resolve_times_rejects(flags: int) -> None:
    with pytest.raises(WasiError) as e:
        resolve_times(1, 2, flags)
    assert e.value.errno == Errno.INVAL


def test_resolve_times_cases() -> None:
    assert resolve_times(1, 2, 0) == (OMIT, OMIT)
    assert resolve_times(1, 2, Fstflags.ATIM | Fstflags.MTIM_NOW) == (1, NOW)
    assert resolve_times(1, 2, Fstflags.ATIM_NOW | Fstflags.MTIM) == (NOW, 2)


def test_set_times_fd_and_at(tmp_path: pathlib.Path) -> None:
    p = tmp_path / "f"
    p.write_bytes(b"")
    os.utime(p, ns=(5_000_000_001, 6_000_000_002))
    fd = os.open(p, os.O_RDONLY)
    try:
        set_times_fd(fd, 7_000_000_003, 0, Fstflags.ATIM)  # mtime untouched
        st = os.stat(p)
        assert (st.st_atime_ns, st.st_mtime_ns) == (7_000_000_003, 6_000_000_002)
        set_times_fd(fd, 0, 0, Fstflags.MTIM_NOW)
        st2 = os.stat(p)
        assert st2.st_atime_ns == 7_000_000_003 and st2.st_mtime_ns > 6_000_000_002
    finally:
        os.close(fd)
    d = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.symlink("f", tmp_path / "l")
        set_times_at(d, "f", 0, 9_000_000_009, Fstflags.MTIM, follow=True)
        assert os.stat(p).st_mtime_ns == 9_000_000_009
        set_times_at(d, "l", 11, 0, Fstflags.ATIM, follow=False)
        assert os.lstat(tmp_path / "l").st_atime_ns == 11
        assert os.stat(p).st_atime_ns == 7_000_000_003
        with pytest.raises(FileNotFoundError):
            set_times_at(d, "missing", 0, 0, 0, follow=True)
    finally:
        os.close(d)


# -- HostFile --------------------------------------------------------------------

def test_hostfile_basics(tmp_path: pathlib.Path) -> None:
    p = tmp_path / "f"
    fd = os.open(p, os.O_RDWR | os.O_CREAT)
    f = HostFile(fd, rights_base=ALL, rights_inheriting=0)
    assert f.filetype == Filetype.REGULAR_FILE
    assert f.write([memoryview(b"hello "), memoryview(b""), memoryview(b"world")]) == 11
    assert f.tell() == 11
    buf = bytearray(5)
    assert f.pread([memoryview(buf)], 6) == 5 and buf == b"world"
    assert f.tell() == 11
    assert f.filestat()[4] == 11
    f.close()
    with pytest.raises(OSError):
        os.fstat(fd)


def test_write_all_retries_short_writes(monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path) -> None:
    fd = os.open(tmp_path / "f", os.O_RDWR | os.O_CREAT)
    real = os.writev
    monkeypatch.setattr(os, "writev", lambda fd, bufs: real(fd, [bufs[0][:1]]))
    assert write_all(fd, [memoryview(b"abc"), memoryview(b"de")]) == 5
    monkeypatch.undo()
    assert os.pread(fd, 10, 0) == b"abcde"
    os.close(fd)


def test_write_all_short_pwrites_continue_at_the_offset(monkeypatch: pytest.MonkeyPatch,
                                                        tmp_path: pathlib.Path) -> None:
    fd = os.open(tmp_path / "f", os.O_RDWR | os.O_CREAT)
    os.write(fd, b"0123456789")
    real = os.pwritev
    calls = []

    def two_bytes(fd: int, bufs: list[memoryview], offset: int) -> int:
        calls.append(offset)
        first = [b for b in bufs if len(b)][0]
        return real(fd, [first[:2]], offset)

    monkeypatch.setattr(os, "pwritev", two_bytes)
    bufs = [memoryview(b"ab"), memoryview(b""), memoryview(b"cde")]
    assert write_all(fd, bufs, 3) == 5
    assert write_all(fd, [memoryview(b""), memoryview(b"")], 0) == 0  # no host call at all
    monkeypatch.undo()
    assert calls == [3, 5, 7]
    assert os.pread(fd, 20, 0) == b"012abcde89"
    os.close(fd)


# -- through wasm ------------------------------------------------------------------
#
# ``Guest`` instantiates a WAT module that re-exports every WASI function as
# ``call_<name>`` (same signature), so a test drives the real raw host-call
# route with wasm's own i32/i64 values and reads guest memory afterwards.
# A host file is put in the table directly; a MemoryFS file is opened by the
# guest's own path_open (the only way to one).

import struct
import sys
from collections.abc import Iterator

import pywasi
from pywasi._abi import DIRENT, FILESTAT, FILESTAT_UNSTABLE, PREVIEW1, UNSTABLE, Rights, Whence
from pywasi._fs._dir import DIR_RIGHTS, FILE_RIGHTS

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from wasmbuild import build_c, build_wat  # noqa: E402
from conftest import Tree  # noqa: E402
from helpers import run_module  # noqa: E402


def _wrappers(version: str) -> str:
    sigs = PREVIEW1 if version == "preview1" else UNSTABLE
    ns = "wasi_snapshot_preview1" if version == "preview1" else "wasi_unstable"
    lines = []
    for name, sig in sigs.items():
        if not sig.results:  # proc_exit
            continue
        params = " ".join(sig.param_types)
        ftype = f"(param {params}) (result i32)" if params else "(result i32)"
        gets = " ".join(f"(local.get {i})" for i in range(len(sig.param_types)))
        lines.append(f'(import "{ns}" "{name}" (func ${name} {ftype}))')
        lines.append(f'(func (export "call_{name}") {ftype} (call ${name} {gets}))')
    imports = [ln for ln in lines if ln.startswith("(import")]
    funcs = [ln for ln in lines if ln.startswith("(func")]
    return "\n".join(imports + ['(memory (export "memory") 2)'] + funcs)


class Guest:
    """A WASI object with one preopen (fd 3): a host directory, or with
    ``kind="memory"`` a MemoryFS (issue 15: the same tests on both)."""

    def __init__(self, tmp_path: pathlib.Path, *, version: str = "preview1",
                 stdout: object = None, kind: str = "host") -> None:
        self.out: list[bytes] = []
        self.tree = Tree(kind, tmp_path)  # the host side's view of the preopen
        self.wasi = pywasi.WASI(version=version, preopens={"/sandbox": self.tree.preopen},
                                stdout=stdout if stdout is not None else self.out.append)
        module = pywasi.compile(build_wat(f"(module {_wrappers(version)})"))
        self.instance = pywasi.instantiate(module, self.wasi.get_import_object())
        self.wasi.finalize_bindings(self.instance)

    @property
    def root(self) -> pathlib.Path:
        return self.tree.root

    def add(self, desc: object) -> int:
        return self.wasi._ctx.fds.allocate(desc)  # type: ignore[attr-defined,arg-type]

    def open_file(self, name: str, flags: int = os.O_RDWR | os.O_CREAT,
                  rights: int = FILE_RIGHTS) -> int:
        if self.tree.fs is None:
            return self.add(HostFile(os.open(self.root / name, flags, 0o644),
                                     rights_base=rights, rights_inheriting=0))
        # A MemoryFS file: the guest's own path_open, the same flags in WASI's terms.
        oflags = (int(Oflags.CREAT) if flags & os.O_CREAT else 0) | \
            (int(Oflags.TRUNC) if flags & os.O_TRUNC else 0)
        fdflags = (1 if flags & os.O_APPEND else 0) | (2 if flags & os.O_DSYNC else 0) | \
            (4 if flags & os.O_NONBLOCK else 0)
        errno, fd = self.path_open(name.encode(), oflags, rights, fdflags)
        assert errno == 0
        return fd

    def path_open(self, name: bytes, oflags: int, rights: int, fdflags: int = 0
                  ) -> tuple[int, int]:
        """(errno, fd) of the guest's own path_open of ``name`` in the
        preopen (fd stays 0xFFFFFFFF when it fails)."""
        self.put(7000, name)
        self.put(7100, b"\xff" * 4)
        return (self.call("path_open", 3, 0, 7000, len(name), oflags, rights, 0, fdflags, 7100),
                self.u32(7100))

    def call(self, name: str, *args: int) -> int:
        return int(getattr(self.instance.exports, "call_" + name)(*args))

    @property
    def mem(self) -> memoryview:
        return self.instance.exports.memory.buffer  # type: ignore[no-any-return]

    def put(self, at: int, data: bytes) -> None:
        self.mem[at:at + len(data)] = data

    def get(self, at: int, n: int) -> bytes:
        return bytes(self.mem[at:at + n])

    def u32(self, at: int) -> int:
        return int(struct.unpack_from("<I", self.mem, at)[0])

    def u64(self, at: int) -> int:
        return int(struct.unpack_from("<Q", self.mem, at)[0])

    def iovecs(self, at: int, *bufs: tuple[int, int]) -> None:
        for i, (base, length) in enumerate(bufs):
            struct.pack_into("<II", self.mem, at + 8 * i, base, length)


@pytest.fixture
def guest(tmp_path: pathlib.Path) -> Iterator[Guest]:
    g = Guest(tmp_path)
    yield g
    g.wasi.close()


@pytest.fixture(params=["host", "memory"])
def any_guest(request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> Iterator[Guest]:
    """``guest`` on either kind of preopen: a host directory or a MemoryFS."""
    g = Guest(tmp_path, kind=request.param)
    yield g
    g.wasi.close()


@pytest.fixture(params=["host", "memory"])
def old_guest(request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> Iterator[Guest]:
    """``any_guest`` speaking wasi_unstable."""
    g = Guest(tmp_path, version="unstable", kind=request.param)
    yield g
    g.wasi.close()


def _ino(g: Guest, name: str) -> int:
    """The inode of ``name`` itself (a symlink not followed)."""
    return g.tree.filestat(name, follow_symlinks=False).ino


def _write(g: Guest, fd: int, data: bytes) -> None:
    """The guest writes ``data`` at ``fd``'s position (its own fd_write)."""
    g.put(7200, data)
    g.iovecs(7300, (7200, len(data)))
    assert g.call("fd_write", fd, 7300, 1, 7400) == 0 and g.u32(7400) == len(data)


OUT = 8000  # where results go in guest memory


def test_filestat_get_bytes_exact(any_guest: Guest) -> None:
    g = any_guest
    fd = g.open_file("f")
    _write(g, fd, b"12345")
    g.tree.utime("f", (1_234_567_891, 9_876_543_210))
    g.put(OUT, b"\xAA" * 72)
    assert g.call("fd_filestat_get", fd, OUT) == Errno.SUCCESS
    f = g.tree.filestat("f")
    expected = struct.pack("<QQB7xQQQQQ", f.dev, f.ino, Filetype.REGULAR_FILE, 1, 5,
                           1_234_567_891, 9_876_543_210, f.ctim)
    assert FILESTAT.size == 64
    assert g.get(OUT, 64) == expected
    assert g.get(OUT + 64, 8) == b"\xAA" * 8  # nothing past the struct


def test_filestat_get_unstable_layout(old_guest: Guest) -> None:
    g = old_guest
    fd = g.open_file("f")
    g.tree.utime("f", (11, 22))
    g.put(OUT, b"\xAA" * 64)
    assert g.call("fd_filestat_get", fd, OUT) == Errno.SUCCESS
    f = g.tree.filestat("f")
    assert FILESTAT_UNSTABLE.size == 56
    # nlink is u32 at 20, size at 24
    assert g.get(OUT, 56) == struct.pack("<QQB3xIQQQQ", f.dev, f.ino,
                                         Filetype.REGULAR_FILE, 1, 0, 11, 22, f.ctim)
    assert g.get(OUT + 56, 8) == b"\xAA" * 8


def test_filestat_get_stdio_and_directory(any_guest: Guest) -> None:
    g = any_guest
    assert g.call("fd_filestat_get", 1, OUT) == Errno.SUCCESS  # a Python writer
    assert g.get(OUT, 64) == bytes(64)
    assert g.call("fd_filestat_get", 3, OUT) == Errno.SUCCESS
    assert g.get(OUT + 16, 1) == bytes([Filetype.DIRECTORY])
    assert (g.u64(OUT), g.u64(OUT + 8)) == g.tree.filestat("")[:2]


# Host only: the filestat of a host fd handed in as stdio (no tree involved).
def test_filestat_get_host_stdio(tmp_path: pathlib.Path) -> None:
    with open(tmp_path / "out", "wb") as f:
        g = Guest(tmp_path, stdout=f.fileno())
        assert g.call("fd_filestat_get", 1, OUT) == Errno.SUCCESS
        assert g.u64(OUT + 8) == os.fstat(f.fileno()).st_ino
        assert g.get(OUT + 16, 1) == bytes([Filetype.REGULAR_FILE])


def test_seek_tell_signed_offsets(any_guest: Guest) -> None:
    fd = any_guest.open_file("f")
    any_guest.put(100, b"0123456789")
    any_guest.iovecs(0, (100, 10))
    assert any_guest.call("fd_write", fd, 0, 1, OUT) == 0 and any_guest.u32(OUT) == 10
    assert any_guest.call("fd_seek", fd, -3, Whence.END, OUT) == 0 and any_guest.u64(OUT) == 7
    assert any_guest.call("fd_tell", fd, OUT) == 0 and any_guest.u64(OUT) == 7
    assert any_guest.call("fd_seek", fd, -2, Whence.CUR, OUT) == 0 and any_guest.u64(OUT) == 5
    assert any_guest.call("fd_seek", fd, 1 << 40, Whence.SET, OUT) == 0 and any_guest.u64(OUT) == 1 << 40
    any_guest.put(OUT, b"\xEE" * 8)
    assert any_guest.call("fd_seek", fd, -1, Whence.SET, OUT) == Errno.INVAL
    assert any_guest.get(OUT, 8) == b"\xEE" * 8  # no output on failure
    for whence in (3, 256, -1):
        assert any_guest.call("fd_seek", fd, 0, whence, OUT) == Errno.INVAL


def test_seek_unstable_whence_order(old_guest: Guest) -> None:
    g = old_guest
    fd = g.open_file("f")
    _write(g, fd, b"abcdef")
    assert g.call("fd_seek", fd, 0, 2, OUT) == 0 and g.u64(OUT) == 0      # SET: back to 0
    assert g.call("fd_seek", fd, 2, 2, OUT) == 0 and g.u64(OUT) == 2      # SET
    assert g.call("fd_seek", fd, 1, 0, OUT) == 0 and g.u64(OUT) == 3      # CUR
    assert g.call("fd_seek", fd, -1, 1, OUT) == 0 and g.u64(OUT) == 5     # END
    assert g.call("fd_seek", fd, 0, 3, OUT) == Errno.INVAL


def test_seek_rights(any_guest: Guest) -> None:
    # Directories and stdio hold neither FD_SEEK nor FD_TELL: NOTCAPABLE.
    for fd in (0, 1, 3):
        assert any_guest.call("fd_seek", fd, 0, Whence.SET, OUT) == Errno.NOTCAPABLE
        assert any_guest.call("fd_seek", fd, 0, Whence.CUR, OUT) == Errno.NOTCAPABLE
        assert any_guest.call("fd_tell", fd, OUT) == Errno.NOTCAPABLE
    # FD_TELL alone, as the host granted it (a host file handed in with those
    # rights), allows seek(CUR, 0) (ftell) and nothing else. Asked for by the
    # guest's path_open (the MemoryFS route of open_file) the rights are
    # advisory (docs/sandbox.md, since #28): the file seeks, as in wasmtime.
    refused = Errno.NOTCAPABLE if any_guest.tree.fs is None else Errno.SUCCESS
    tell_only = any_guest.open_file("t", rights=int(Rights.FD_TELL))
    assert any_guest.call("fd_seek", tell_only, 0, Whence.CUR, OUT) == 0
    assert any_guest.call("fd_seek", tell_only, 1, Whence.CUR, OUT) == refused
    assert any_guest.call("fd_seek", tell_only, 0, Whence.SET, OUT) == refused
    seek_only = any_guest.open_file("s", rights=int(Rights.FD_SEEK))
    assert any_guest.call("fd_seek", seek_only, 0, Whence.CUR, OUT) == 0  # FD_SEEK implies FD_TELL
    assert any_guest.call("fd_tell", seek_only, OUT) == refused


# Host only: a host pipe handed in (a tree has no pipes).
def test_seek_on_a_pipe_is_spipe(guest: Guest) -> None:
    r, w = os.pipe()
    os.close(w)
    fd = guest.add(HostFile(r, rights_base=FILE_RIGHTS, rights_inheriting=0))
    assert guest.call("fd_seek", fd, 0, Whence.SET, OUT) == Errno.SPIPE
    assert guest.call("fd_tell", fd, OUT) == Errno.SPIPE
    assert guest.call("fd_pread", fd, 0, 0, 0, OUT) == Errno.SPIPE


def _rights(g: Guest, fd: int) -> int:
    assert g.call("fd_fdstat_get", fd, OUT) == 0
    return g.u64(OUT + 8)


def test_a_directory_holds_no_file_rights(any_guest: Guest) -> None:
    # A directory opened asking for file rights the preopen can pass on
    # keeps only the directory's (as wasmtime): the file calls are
    # NOTCAPABLE. The write rights cannot be had at all: ISDIR, as the
    # host's open(2) of a directory for writing.
    g = any_guest
    errno, fd = g.path_open(b".", int(Oflags.DIRECTORY),
                           DIR_RIGHTS | int(Rights.FD_SEEK | Rights.FD_TELL | Rights.FD_READ))
    assert errno == 0 and _rights(g, fd) == DIR_RIGHTS
    assert g.call("fd_seek", fd, 0, Whence.SET, OUT) == Errno.NOTCAPABLE
    assert g.call("fd_tell", fd, OUT) == Errno.NOTCAPABLE
    assert g.call("fd_read", fd, 0, 0, OUT) == Errno.NOTCAPABLE
    assert g.path_open(b".", int(Oflags.DIRECTORY), int(Rights.FD_FILESTAT_SET_SIZE)) == (
        Errno.ISDIR, 0xFFFFFFFF)


# Host only: a directory descriptor holding every file right, which no
# path_open hands out (above), made by hand.
def test_directory_with_seek_rights_still_refuses(guest: Guest) -> None:
    from pywasi._fs._dir import HostDirectory
    fd = guest.add(HostDirectory(os.open(guest.root, os.O_RDONLY | os.O_DIRECTORY),
                                 rights_base=DIR_RIGHTS | FILE_RIGHTS))
    assert guest.call("fd_seek", fd, 0, Whence.SET, OUT) == Errno.BADF
    assert guest.call("fd_read", fd, 0, 0, OUT) == Errno.BADF
    assert guest.call("fd_filestat_set_size", fd, 0) == Errno.BADF


def test_pread_pwrite_leave_the_offset(any_guest: Guest) -> None:
    fd = any_guest.open_file("f")
    any_guest.put(100, b"hello world")
    any_guest.iovecs(0, (100, 5), (105, 6))
    assert any_guest.call("fd_pwrite", fd, 0, 2, 3, OUT) == 0 and any_guest.u32(OUT) == 11
    assert any_guest.call("fd_tell", fd, OUT) == 0 and any_guest.u64(OUT) == 0
    assert any_guest.tree.read("f") == b"\0\0\0hello world"
    any_guest.iovecs(0, (200, 4), (300, 100))
    assert any_guest.call("fd_pread", fd, 0, 2, 5, OUT) == 0 and any_guest.u32(OUT) == 9
    assert any_guest.get(200, 4) == b"llo " and any_guest.get(300, 5) == b"world"
    assert any_guest.call("fd_pread", fd, 0, 2, 1 << 63, OUT) == Errno.INVAL
    assert any_guest.call("fd_pread", fd, 0, 2, 1000, OUT) == 0 and any_guest.u32(OUT) == 0


def test_pwrite_on_append_goes_to_the_end(any_guest: Guest) -> None:
    # The documented choice: Linux pwrite(2) semantics on O_APPEND.
    any_guest.tree.write("a", b"abc")
    fd = any_guest.open_file("a", os.O_RDWR | os.O_APPEND)
    assert any_guest.call("fd_fdstat_get", fd, OUT) == 0
    assert struct.unpack_from("<H", any_guest.mem, OUT + 2)[0] == 1  # APPEND, no raw host bits
    any_guest.put(100, b"XY")
    any_guest.iovecs(0, (100, 2))
    assert any_guest.call("fd_pwrite", fd, 0, 1, 0, OUT) == 0 and any_guest.u32(OUT) == 2
    if sys.platform.startswith("linux"):
        assert any_guest.tree.read("a") == b"abcXY"


def test_read_only_rights(any_guest: Guest) -> None:
    any_guest.tree.write("r", b"data")
    ro = FILE_RIGHTS & ~(Rights.FD_WRITE | Rights.FD_FILESTAT_SET_SIZE | Rights.FD_ALLOCATE
                         | Rights.FD_DATASYNC)
    fd = any_guest.open_file("r", os.O_RDONLY, rights=int(ro))
    any_guest.iovecs(0, (100, 1))
    assert any_guest.call("fd_write", fd, 0, 1, OUT) == Errno.NOTCAPABLE
    assert any_guest.call("fd_pwrite", fd, 0, 1, 0, OUT) == Errno.NOTCAPABLE
    assert any_guest.call("fd_filestat_set_size", fd, 0) == Errno.NOTCAPABLE
    assert any_guest.call("fd_allocate", fd, 0, 10) == Errno.NOTCAPABLE
    # The writes above are refused by the access the file was opened with;
    # FD_DATASYNC is refused only when the host withheld it (a host file
    # handed in so): dropped by the guest's path_open it is advisory (#28).
    assert any_guest.call("fd_datasync", fd) == (Errno.NOTCAPABLE if any_guest.tree.fs is None
                                                 else 0)
    assert any_guest.call("fd_sync", fd) == 0
    assert any_guest.tree.read("r") == b"data"
    # stdio: no filestat_set_*, no advise/allocate
    assert any_guest.call("fd_filestat_set_size", 1, 0) == Errno.NOTCAPABLE
    assert any_guest.call("fd_filestat_set_times", 1, 0, 0, 0) == Errno.NOTCAPABLE
    assert any_guest.call("fd_advise", 1, 0, 0, 0) == Errno.NOTCAPABLE


def test_set_size_allocate_advise_sync(any_guest: Guest) -> None:
    fd = any_guest.open_file("f")
    assert any_guest.call("fd_filestat_set_size", fd, 100) == 0
    assert any_guest.tree.filestat("f").size == 100
    assert any_guest.call("fd_filestat_set_size", fd, 1 << 63) == Errno.FBIG
    assert any_guest.call("fd_allocate", fd, 50, 200) == 0
    assert any_guest.tree.filestat("f").size == 250
    assert any_guest.call("fd_allocate", fd, 0, 10) == 0
    assert any_guest.tree.filestat("f").size == 250  # allocate never shrinks
    assert any_guest.call("fd_allocate", fd, 0, 0) == Errno.INVAL
    assert any_guest.call("fd_allocate", fd, (1 << 63) - 1, 2) == Errno.FBIG
    for advice in range(6):
        assert any_guest.call("fd_advise", fd, 0, 100, advice) == 0
    assert any_guest.call("fd_advise", fd, 0, 0, 6) == Errno.INVAL
    assert any_guest.call("fd_advise", fd, 0, 0, 0x100) == Errno.INVAL
    assert any_guest.call("fd_sync", fd) == 0
    assert any_guest.call("fd_datasync", fd) == 0
    assert any_guest.call("fd_sync", 3) == 0  # a directory syncs its entries


# Host only: the host's posix_fallocate refusing (a MemoryFS has none).
def test_allocate_falls_back_where_unsupported(guest: Guest, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno as host
    fd = guest.open_file("f")

    def refuse(*args: object) -> None:
        raise OSError(host.EOPNOTSUPP, "not supported")
    monkeypatch.setattr(os, "posix_fallocate", refuse)
    assert guest.call("fd_allocate", fd, 10, 20) == 0
    assert (guest.root / "f").stat().st_size == 30


def test_set_times(any_guest: Guest) -> None:
    g = any_guest
    fd = g.open_file("f")
    g.tree.utime("f", (100, 200))
    A, AN, M, MN = (int(f) for f in (Fstflags.ATIM, Fstflags.ATIM_NOW, Fstflags.MTIM,
                                    Fstflags.MTIM_NOW))
    big = 1_700_000_000_123_456_789
    assert g.call("fd_filestat_set_times", fd, big, 0, A) == 0
    assert g.tree.times("f") == (big, 200)
    assert g.call("fd_filestat_set_times", fd, 0, 0, MN) == 0
    atime, mtime = g.tree.times("f")
    assert atime == big and mtime > 200
    for bad in (A | AN, M | MN, 1 << 4):
        assert g.call("fd_filestat_set_times", fd, 0, 0, bad) == Errno.INVAL
    assert g.tree.times("f") == (atime, mtime)  # a refused call changes nothing
    assert g.call("fd_filestat_set_times", 3, 5, 6, A | M) == 0  # a directory
    assert g.tree.times("") == (5, 6)


def test_fdstat_of_a_file_reports_wasi_flags(any_guest: Guest) -> None:
    g = any_guest
    fd = g.open_file("f", os.O_RDWR | os.O_CREAT | os.O_DSYNC | os.O_NONBLOCK)
    assert g.call("fd_fdstat_get", fd, OUT) == 0
    ftype, flags, base = struct.unpack_from("<BxH4xQ", g.mem, OUT)
    assert ftype == Filetype.REGULAR_FILE
    assert flags == 2 | 4  # DSYNC | NONBLOCK, whatever the host's bits are
    assert base == FILE_RIGHTS
    assert g.call("fd_fdstat_set_flags", fd, 1 | 2) == 0  # APPEND, keep DSYNC
    assert g.call("fd_fdstat_get", fd, OUT) == 0
    assert struct.unpack_from("<H", g.mem, OUT + 2)[0] == 1 | 2
    assert g.call("fd_fdstat_set_flags", fd, 16) == Errno.NOTSUP  # SYNC can't be added


# -- fd_readdir ------------------------------------------------------------------

def parse_dirents(data: bytes) -> list[tuple[int, int, int, bytes]]:
    """Complete (d_next, d_ino, d_type, name) records; a truncated tail is dropped."""
    out = []
    at = 0
    while at + DIRENT.size <= len(data):
        d_next, d_ino, namlen, d_type = DIRENT.struct.unpack_from(data, at)
        if at + DIRENT.size + namlen > len(data):
            break
        out.append((d_next, d_ino, d_type, data[at + DIRENT.size:at + DIRENT.size + namlen]))
        at += DIRENT.size + namlen
    return out


def list_all(guest: Guest, fd: int, buf_len: int, cookie: int = 0) -> list[tuple[int, int, int, bytes]]:
    """What a guest does: read, keep complete records, resume from the last
    complete record's d_next while the buffer came back full."""
    entries: list[tuple[int, int, int, bytes]] = []
    while True:
        assert guest.call("fd_readdir", fd, 1024, buf_len, cookie, OUT) == 0
        used = guest.u32(OUT)
        records = parse_dirents(guest.get(1024, used))
        entries += records
        if used < buf_len:
            return entries
        assert records, f"buffer of {buf_len} bytes cannot hold one entry"
        cookie = records[-1][0]


def test_readdir_records_exact(any_guest: Guest) -> None:
    g = any_guest
    g.tree.write("file", b"")
    g.tree.mkdir("dir")
    g.tree.symlink("file", "link")
    assert g.call("fd_readdir", 3, 1024, 4096, 0, OUT) == 0
    used = g.u32(OUT)
    records = parse_dirents(g.get(1024, used))
    assert used == sum(24 + len(r[3]) for r in records)
    assert [r[0] for r in records] == [1, 2, 3, 4, 5]  # d_next: stable indices
    by_name = {r[3]: r for r in records}
    assert set(by_name) == {b".", b"..", b"file", b"dir", b"link"}
    assert records[0][3] == b"." and records[1][3] == b".."
    assert by_name[b"."][1] == _ino(g, "")
    assert by_name[b"file"][1:3] == (_ino(g, "file"), Filetype.REGULAR_FILE)
    assert by_name[b"dir"][1:3] == (_ino(g, "dir"), Filetype.DIRECTORY)
    assert by_name[b"link"][1:3] == (_ino(g, "link"), Filetype.SYMBOLIC_LINK)
    # The exact bytes of the first record, padding included.
    assert g.get(1024, 25) == struct.pack("<QQIB3x", 1, by_name[b"."][1], 1, 3) + b"."


def test_readdir_truncates_the_last_entry(any_guest: Guest) -> None:
    any_guest.tree.write("abcdefgh", b"")
    full_len = 24 + 1 + 24 + 2 + 24 + 8
    assert any_guest.call("fd_readdir", 3, 1024, 4096, 0, OUT) == 0
    full = any_guest.get(1024, any_guest.u32(OUT))
    assert len(full) == full_len
    for cut in (1, 24, 25, 30, 49, 60, full_len - 1):
        any_guest.put(1024, b"\xCC" * 200)
        assert any_guest.call("fd_readdir", 3, 1024, cut, 0, OUT) == 0
        assert any_guest.u32(OUT) == cut  # bufused == buf_len: "there may be more"
        assert any_guest.get(1024, cut) == full[:cut]
        assert any_guest.get(1024 + cut, 1) == b"\xCC"  # never past buf_len
    assert any_guest.call("fd_readdir", 3, 1024, full_len, 0, OUT) == 0
    assert any_guest.u32(OUT) == full_len
    assert any_guest.call("fd_readdir", 3, 1024, full_len + 1, 0, OUT) == 0
    assert any_guest.u32(OUT) == full_len  # less than the buffer: the end
    assert any_guest.call("fd_readdir", 3, 1024, 0, 0, OUT) == 0 and any_guest.u32(OUT) == 0


def test_readdir_cookies_are_stable(any_guest: Guest) -> None:
    for i in range(20):
        any_guest.tree.write(f"n{i:02}", b"")
    everything = list_all(any_guest, 3, 4096)
    assert len(everything) == 22
    for k, (d_next, *_rest) in enumerate(everything):
        # resume from any cookie given out: the same continuation
        assert list_all(any_guest, 3, 4096, cookie=d_next) == everything[k + 1:]
    assert list_all(any_guest, 3, 4096, cookie=1 << 63) == []
    # a listing only changes when the guest rewinds to cookie 0
    any_guest.tree.write("late", b"")
    assert list_all(any_guest, 3, 4096, cookie=2) == everything[2:]
    assert len(list_all(any_guest, 3, 4096)) == 23


def test_readdir_rights_and_kinds(any_guest: Guest) -> None:
    g = any_guest
    fd = g.open_file("f")
    assert g.call("fd_readdir", fd, 1024, 100, 0, OUT) == Errno.NOTCAPABLE
    assert g.call("fd_readdir", 1, 1024, 100, 0, OUT) == Errno.NOTCAPABLE
    # A file opened asking FD_READDIR does not keep it (a file's rights).
    errno, f2 = g.path_open(b"f", 0, FILE_RIGHTS | int(Rights.FD_READDIR))
    assert errno == 0 and _rights(g, f2) == FILE_RIGHTS
    assert g.call("fd_readdir", f2, 1024, 100, 0, OUT) == Errno.NOTCAPABLE
    g.tree.mkdir("sub")
    errno, d = g.path_open(b"sub", int(Oflags.DIRECTORY), int(Rights.FD_READDIR))
    assert errno == 0
    names = {r[3]: r for r in list_all(g, d, 100)}
    assert set(names) == {b".", b".."}
    assert names[b"."][1] == _ino(g, "sub") and names[b".."][1] == _ino(g, "")


# Host only: a file descriptor holding FD_READDIR, which no path_open hands
# out (above), made by hand: NOTDIR, the kind checked after the rights.
def test_readdir_of_a_file_with_the_right_is_notdir(guest: Guest) -> None:
    f2 = guest.open_file("g", rights=FILE_RIGHTS | int(Rights.FD_READDIR))
    assert guest.call("fd_readdir", f2, 1024, 100, 0, OUT) == Errno.NOTDIR


def test_readdir_out_of_bounds_buffer_traps(any_guest: Guest) -> None:
    with pytest.raises(pywasi.Trap, match="fd_readdir"):
        any_guest.call("fd_readdir", 3, 2 * 65536 - 10, 100, 0, OUT)


# Host only: it counts the host's os.scandir calls.
def test_readdir_5000_entries_reads_the_host_once_per_rewind(
        guest: Guest, monkeypatch: pytest.MonkeyPatch) -> None:
    names = {f"entry-{i:05}".encode() for i in range(5000)}
    for n in names:
        (guest.root / n.decode()).write_bytes(b"")
    calls = 0
    real = os.scandir

    def counting(*args: object, **kwargs: object) -> object:
        nonlocal calls
        calls += 1
        return real(*args, **kwargs)  # type: ignore[call-overload]
    monkeypatch.setattr(os, "scandir", counting)
    listed = list_all(guest, 3, 128)
    assert calls == 1
    got = [r[3] for r in listed]
    assert len(got) == len(set(got)) == 5002
    assert set(got) == names | {b".", b".."}
    listed_again = list_all(guest, 3, 128)
    assert calls == 2 and listed_again == listed


# -- real programs ----------------------------------------------------------------

def test_c_file_calls(tree: Tree) -> None:
    r = run_module(build_c("fs_file"), preopens={"/sandbox": tree.preopen})
    assert (r.code, r.stdout) == (0, b"ok\n")
    assert tree.read("log.txt") == b"one\ntwo\n"


def test_c_readdir(tree: Tree) -> None:
    tree.mkdir("sub")
    tree.write("file", b"")
    tree.symlink("file", "link")
    for i in range(300):
        tree.write(f"many-{i}", b"")
    r = run_module(build_c("fs_readdir"), args=["prog", "/sandbox"],
                   preopens={"/sandbox": tree.preopen})
    assert r.code == 0, r.stdout
    lines = r.stdout.decode().splitlines()
    entries = dict((name, int(t)) for t, name in (ln.split(" ", 1) for ln in lines))
    assert len(lines) == len(entries) == 305
    # wasi-libc's DT_* are the WASI filetypes
    assert entries["."] == entries[".."] == entries["sub"] == Filetype.DIRECTORY
    assert entries["file"] == Filetype.REGULAR_FILE and entries["link"] == Filetype.SYMBOLIC_LINK


def test_c_readdir_matches_node(tmp_path: pathlib.Path, run_node_wasi: object) -> None:
    for i in range(50):
        (tmp_path / f"n{i}").write_bytes(b"")
    (tmp_path / "d").mkdir()
    wasm = build_c("fs_readdir")
    ours = run_module(wasm, args=["prog", "/sandbox"], preopens={"/sandbox": str(tmp_path)})
    code, out, _ = run_node_wasi(wasm, ["prog", "/sandbox"], preopens={"/sandbox": tmp_path})  # type: ignore[operator]
    assert (ours.code, code) == (0, 0)
    # node:wasi (uvwasi, via uv_fs_scandir) leaves out "." and ".."; we list
    # them, as wasmtime does and as POSIX readdir does.
    dots = {b"3 .", b"3 .."}
    assert dots <= set(ours.stdout.splitlines())
    assert sorted(set(ours.stdout.splitlines()) - dots) == sorted(out.splitlines())
