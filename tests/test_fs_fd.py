"""The fd_* calls on files and directories: HostFile, the filestat/time
helpers, and the fs_fd syscalls, through real programs (C and WAT)."""

from __future__ import annotations

import os
import pathlib

import pytest

from pywasi._abi import Errno, Filetype, Fstflags
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
