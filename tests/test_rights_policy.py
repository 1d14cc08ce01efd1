"""The rights policy (issue 28, docs/sandbox.md "Rights"): the rights a guest
drops are advisory, the host's restrictions are not.

The guest does what Go's ``os.Root`` does (GOOS=wasip1): it opens a
directory with the write rights removed from its base and inheriting rights
(Go's syscall package does so for a directory opened O_RDONLY), then opens a
file under it with CREAT|TRUNC asking for every right but the socket ones,
writes, and reads back through a second open. Under wasmtime this works;
before #28 pywasi answered NOTCAPABLE at the CREAT|TRUNC open (the spec's
letter: TRUNC needs PATH_FILESTAT_SET_SIZE on the directory), and so did
uvwasi (node:wasi) -- a difference from node kept on purpose. The same
guest on a ``pywasi.fs.ReadOnly`` tree and a ``--dir ...::ro`` preopen is
refused at that open, NOTCAPABLE, as docs/filesystems.md says."""

from __future__ import annotations

import pathlib
import struct
import subprocess
import sys

import pytest

import pywasi
import pywasi.fs
from conftest import Tree
from pywasi._abi import Errno, Rights
from wasmbuild import build_wat

ALL = (1 << 30) - 1
SOCK = int(Rights.SOCK_SHUTDOWN | Rights.SOCK_ACCEPT)
# What a directory opened read-only loses, as Go's os.Root opens one.
WRITE_AND_READ = int(Rights.FD_DATASYNC | Rights.FD_READ | Rights.FD_WRITE | Rights.FD_ALLOCATE
                     | Rights.FD_FILESTAT_SET_SIZE | Rights.PATH_FILESTAT_SET_SIZE
                     | Rights.FD_SEEK | Rights.FD_TELL)
ROOT_RIGHTS = ALL & ~WRITE_AND_READ & ~SOCK
P1 = "wasi_snapshot_preview1"

# Errnos at 100.. (one i32 per step), the bytes read back at 400, fd_read's
# count at 96. Steps: 0 open "root" (DIRECTORY, narrowed rights) -> fd at 200;
# 1 open "root/target" CREAT|TRUNC -> fd at 204; 2 fd_write "hello";
# 3 open "target" again, FD_READ only -> fd at 208; 4 fd_read it.
def guest(*, exit_with_step_1: bool = False) -> str:
    """The guest; ``exit_with_step_1``: it ends with proc_exit(step 1's errno)."""
    end = "(call $exit (i32.load (i32.const 104)))" if exit_with_step_1 else ""
    return f"""(module
  (import "{P1}" "proc_exit" (func $exit (param i32)))
  (import "{P1}" "path_open" (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "{P1}" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (import "{P1}" "fd_read" (func $read (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "root")
  (data (i32.const 16) "target")
  (data (i32.const 32) "hello")
  (func (export "_start")
    (i32.store (i32.const 100) (call $open (i32.const 3) (i32.const 1) (i32.const 0) (i32.const 4)
      (i32.const 2) (i64.const {ROOT_RIGHTS}) (i64.const {ROOT_RIGHTS}) (i32.const 0) (i32.const 200)))
    (i32.store (i32.const 104) (call $open (i32.load (i32.const 200)) (i32.const 0) (i32.const 16)
      (i32.const 6) (i32.const 9) (i64.const {ALL & ~SOCK}) (i64.const {ALL & ~SOCK}) (i32.const 0)
      (i32.const 204)))
    (i32.store (i32.const 48) (i32.const 32)) (i32.store (i32.const 52) (i32.const 5))
    (i32.store (i32.const 108) (call $write (i32.load (i32.const 204)) (i32.const 48) (i32.const 1)
      (i32.const 92)))
    (i32.store (i32.const 112) (call $open (i32.load (i32.const 200)) (i32.const 0) (i32.const 16)
      (i32.const 6) (i32.const 0) (i64.const {int(Rights.FD_READ)}) (i64.const 0) (i32.const 0)
      (i32.const 208)))
    (i32.store (i32.const 56) (i32.const 400)) (i32.store (i32.const 60) (i32.const 64))
    (i32.store (i32.const 116) (call $read (i32.load (i32.const 208)) (i32.const 56) (i32.const 1)
      (i32.const 96)))
    {end}))"""


def _run(preopen: object) -> tuple[list[Errno], bytes]:
    wasi = pywasi.WASI(version="preview1", preopens={"/sandbox": preopen})
    instance = pywasi.instantiate(pywasi.compile(build_wat(guest())), wasi.get_import_object())
    assert wasi.start(instance) == 0
    mem = bytes(instance.exports.memory.buffer[:512])
    errnos = [Errno(v) for v in struct.unpack_from("<5I", mem, 100)]
    nread = struct.unpack_from("<I", mem, 96)[0] if errnos[4] == Errno.SUCCESS else 0
    return errnos, mem[400:400 + nread]


def test_a_root_without_write_rights_creates_and_truncates(tree: Tree) -> None:
    tree.mkdir("root")
    tree.write("root/target", b"an older, longer content")
    errnos, read_back = _run(tree.preopen)
    assert errnos == [Errno.SUCCESS] * 5
    assert read_back == b"hello"
    assert tree.read("root/target") == b"hello"  # truncated, then written


def test_a_read_only_tree_still_refuses(tmp_path: pathlib.Path) -> None:
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "target").write_bytes(b"kept")
    errnos, read_back = _run(pywasi.fs.ReadOnly(str(tmp_path)))
    # The directory opens; the CREAT|TRUNC open is the host's refusal (the
    # write then goes to the fd it never got, 0: stdin, not writable);
    # reading works.
    assert errnos[:3] == [Errno.SUCCESS, Errno.NOTCAPABLE, Errno.NOTCAPABLE]
    assert errnos[3:] == [Errno.SUCCESS, Errno.SUCCESS] and read_back == b"kept"
    assert (tmp_path / "root" / "target").read_bytes() == b"kept"


def test_the_command_line_ro_dir_still_refuses(tmp_path: pathlib.Path) -> None:
    """The same through ``pywasi run --dir HOST::GUEST::ro``; the guest's
    errnos are its exit code's bits (0: every step as expected)."""
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "target").write_bytes(b"kept")
    # It exits with step 1's errno: NOTCAPABLE (76) under ::ro.
    (tmp_path / "m.wasm").write_bytes(build_wat(guest(exit_with_step_1=True)))
    for mode, status in (("::ro", int(Errno.NOTCAPABLE)), ("", 0)):
        proc = subprocess.run([sys.executable, "-m", "pywasi", "run", "--dir",
                               f"{tmp_path}::/sandbox{mode}", str(tmp_path / "m.wasm")],
                              capture_output=True, timeout=120)
        assert proc.returncode == status, proc.stderr
    assert (tmp_path / "root" / "target").read_bytes() == b"hello"  # the writable run


@pytest.mark.parametrize("kind", ["host", "memory"])
def test_what_the_guest_dropped_is_still_what_fdstat_shows(kind: str, tmp_path: pathlib.Path) -> None:
    """Advisory, not forgotten: fd_fdstat_get reports the narrowed rights
    (wasi-libc's fcntl(F_GETFL) and the wasi-testsuite read them back)."""
    tree = Tree(kind, tmp_path)
    tree.mkdir("root")
    wasi = pywasi.WASI(version="preview1", preopens={"/sandbox": tree.preopen})
    instance = pywasi.instantiate(pywasi.compile(build_wat(guest())), wasi.get_import_object())
    assert wasi.start(instance) == 0
    mem = instance.exports.memory.buffer
    root_fd = struct.unpack_from("<I", mem, 200)[0]
    call = wasi.wasi_import["fd_fdstat_get"]
    assert call(root_fd, 600) == 0
    _, _, base, inheriting = struct.unpack_from("<BxHxxxxQQ", mem, 600)
    assert base & WRITE_AND_READ == 0 and inheriting & WRITE_AND_READ == 0
    assert base & Rights.PATH_OPEN and base & Rights.PATH_CREATE_FILE
