"""The rights policy (issue 28, docs/sandbox.md "Rights"): the rights a guest
leaves out when it asks in path_open are advisory; the host's restrictions,
and the rights a guest removes with fd_fdstat_set_rights, are enforced.

The guest does what Go's ``os.Root`` does (GOOS=wasip1): it opens a
directory with the write rights removed from its base and inheriting rights
(Go's syscall package does so for a directory opened O_RDONLY), then opens a
file under it with CREAT|TRUNC asking for every right but the socket ones,
writes, and reads back through a second open. Under wasmtime this works;
before #28 pywasi answered NOTCAPABLE at the CREAT|TRUNC open (the spec's
letter: TRUNC needs PATH_FILESTAT_SET_SIZE on the directory), and so did
uvwasi (node:wasi) -- a difference from node kept on purpose. The same
guest on a ``pywasi.fs.ReadOnly`` tree and a ``--dir ...::ro`` preopen is
refused at that open, NOTCAPABLE, as docs/filesystems.md says.

Then the guests that remove rights with fd_fdstat_set_rights, as the
wasi-testsuite's truncation_rights and path_open_read_without_rights do:
what they removed refuses the calls needing it (as uvwasi and the spec).
"""

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


# -- rights removed with fd_fdstat_set_rights are enforced ----------------------------
#
# Each guest is a list of steps, every step one call whose errno is stored at
# 100 + 4 * step. Opened fds land at 200.. (D: the directory at 200), fdstat
# records at 600.. (24 bytes each, 8-aligned), bytes read at 400.

FILE = int(Rights.FD_READ | Rights.FD_WRITE | Rights.FD_SEEK | Rights.FD_TELL)
PFSS = int(Rights.PATH_FILESTAT_SET_SIZE)
# Every right a directory can have (asking for more is narrowed away; a write
# right asked for a directory is ISDIR).
DIR_ASK = ALL & ~SOCK & ~int(Rights.FD_READ | Rights.FD_WRITE | Rights.FD_ALLOCATE
                             | Rights.FD_FILESTAT_SET_SIZE | Rights.FD_SEEK | Rights.FD_TELL)
NO_FD = 0xAAAAAAAA  # what an fd slot holds until an open writes it
_UNSET_FDS = "\\aa" * 32  # the fd slots at 200.., as WAT data


def _fd(at: int) -> str:
    return f"(i32.load (i32.const {at}))"


def _open(dirfd: str, path: tuple[int, int], oflags: int, base: int | str, inheriting: int | str,
          out: int, follow: int = 0) -> str:
    base = base if isinstance(base, str) else f"(i64.const {base})"
    inheriting = inheriting if isinstance(inheriting, str) else f"(i64.const {inheriting})"
    return (f"(call $path_open {dirfd} (i32.const {follow}) (i32.const {path[0]}) "
            f"(i32.const {path[1]}) (i32.const {oflags}) {base} {inheriting} (i32.const 0) "
            f"(i32.const {out}))")


def _fdstat(fd: str, at: int) -> str:
    return f"(call $fd_fdstat_get {fd} (i32.const {at}))"


def _set_rights(fd: str, base: str, inheriting: str) -> str:
    return f"(call $fd_fdstat_set_rights {fd} {base} {inheriting})"


def _shown(at: int, *, base: bool = True, less: int = 0) -> str:
    """The rights an fdstat record at ``at`` shows, less ``less``."""
    return f"(i64.and (i64.load (i32.const {at + (8 if base else 16)})) (i64.const {~less}))"


def _io(call: str, fd: str, iov: int) -> str:
    return f"(call ${call} {fd} (i32.const {iov}) (i32.const 1) (i32.const 96))"


def _steps_guest(namespace: str, steps: list[str], data: dict[int, bytes]) -> bytes:
    sigs = {"path_open": "(param i32 i32 i32 i32 i32 i64 i64 i32 i32)",
            "fd_close": "(param i32)", "fd_fdstat_get": "(param i32 i32)",
            "fd_fdstat_set_rights": "(param i32 i64 i64)",
            "fd_read": "(param i32 i32 i32 i32)", "fd_write": "(param i32 i32 i32 i32)",
            "fd_seek": "(param i32 i64 i32 i32)"}
    imports = "".join(f'  (import "{namespace}" "{name}" (func ${name} {sig} (result i32)))\n'
                      for name, sig in sigs.items())
    datas = "".join(f'  (data (i32.const {at}) "{text.decode()}")\n' for at, text in data.items())
    body = "".join(f"    (i32.store (i32.const {100 + 4 * i}) {step})\n"
                   for i, step in enumerate(steps))
    return build_wat(f"""(module
{imports}  (memory (export "memory") 1)
  (data (i32.const 200) "{_UNSET_FDS}")
{datas}  (func (export "_start")
{body}))""")


def _run_steps(preopen: object, wasm: bytes, n: int, version: str = "preview1"
               ) -> tuple[list[Errno], bytes]:
    wasi = pywasi.WASI(version=version, preopens={"/sandbox": preopen})
    instance = pywasi.instantiate(pywasi.compile(wasm), wasi.get_import_object())
    assert wasi.start(instance) == 0
    mem = bytes(instance.exports.memory.buffer[:1024])
    return [Errno(v) for v in struct.unpack_from(f"<{n}I", mem, 100)], mem


def _rights(mem: bytes, at: int) -> tuple[int, int]:
    base, inheriting = struct.unpack_from("<QQ", mem, at + 8)
    return base, inheriting


D = _fd(200)
NAMES = {0: b"d", 16: b"file", 32: b"abc", 40: b"sub", 56: b"g"}
D_NAME, FILE_NAME, SUB_NAME, G_NAME = (0, 1), (16, 4), (40, 3), (56, 1)
ABC_IOV = 48   # -> "abc" at 32
READ_IOV = 80  # -> 16 bytes at 400


def _iovecs() -> list[str]:
    return [f"(i32.store (i32.const {ABC_IOV}) (i32.const 32))",
            f"(i32.store (i32.const {ABC_IOV + 4}) (i32.const 3))",
            f"(i32.store (i32.const {READ_IOV}) (i32.const 400))",
            f"(i32.store (i32.const {READ_IOV + 4}) (i32.const 16))"]


def _with_iovecs(steps: list[str]) -> list[str]:
    """The steps, the iovecs set up by a first step that always succeeds."""
    return [f"(block (result i32) {' '.join(_iovecs())} (i32.const 0))", *steps]


@pytest.mark.parametrize("version", ["preview1", "unstable"])
def test_a_removed_path_filestat_set_size_refuses_trunc(tree: Tree, version: str) -> None:
    """wasi-testsuite's truncation_rights, in both ABIs: TRUNC under a
    directory works; once the guest removed PATH_FILESTAT_SET_SIZE from the
    directory's base rights with fd_fdstat_set_rights, fd_fdstat_get shows it
    gone and a TRUNC open is refused, NOTCAPABLE, the file untouched (the
    testsuite expects PERM, wasi-common's mapping; the spec and uvwasi say
    NOTCAPABLE -- _fdtable's NOTE). An open without TRUNC still works."""
    tree.mkdir("d")
    tree.write("d/file", b"an older, longer content")
    namespace = "wasi_unstable" if version == "unstable" else P1
    steps = _with_iovecs([
        _open("(i32.const 3)", D_NAME, 2, DIR_ASK, ALL & ~SOCK, 200, follow=1)  ,  # 1
        _open(D, FILE_NAME, 8, int(Rights.FD_WRITE), 0, 204),                        # 2 TRUNC
        _io("fd_write", _fd(204), ABC_IOV),                                           # 3
        f"(call $fd_close {_fd(204)})",                                               # 4
        _fdstat(D, 600),                                                              # 5
        _set_rights(D, _shown(600, less=PFSS), _shown(600, base=False)),              # 6
        _fdstat(D, 640),                                                              # 7
        _open(D, FILE_NAME, 8, 0, 0, 208),                                            # 8 TRUNC
        _open(D, FILE_NAME, 0, int(Rights.FD_READ), 0, 212),                          # 9
    ])
    errnos, mem = _run_steps(tree.preopen, _steps_guest(namespace, steps, NAMES), len(steps),
                             version)
    assert errnos == [Errno.SUCCESS] * 8 + [Errno.NOTCAPABLE, Errno.SUCCESS]
    before, after = _rights(mem, 600), _rights(mem, 640)
    assert before[0] & PFSS and after == (before[0] & ~PFSS, before[1])
    assert struct.unpack_from("<I", mem, 208)[0] == NO_FD  # no fd on failure
    assert tree.read("d/file") == b"abc"  # truncated once, before the drop


def test_a_removed_fd_read_is_not_handed_down(tree: Tree) -> None:
    """wasi-testsuite's path_open_read_without_rights: FD_READ removed from a
    directory's base and inheriting rights; a file opened under it (no
    rights asked, as the testsuite opens it) shows no FD_READ and cannot be
    read. fd_read answers NOTCAPABLE (the testsuite expects BADF, wasmtime's
    answer for a file not opened for reading; wasi-libc's read() reports
    NOTCAPABLE as EBADF -- _fdtable's NOTE). Asking for FD_READ under the
    directory, or under a directory opened from it, is refused: the dropped
    inheriting right is handed down no further."""
    tree.mkdir("d")
    tree.mkdir("d/sub")
    tree.write("d/file", b"secret")
    tree.write("d/sub/g", b"secret")
    read = int(Rights.FD_READ)
    steps = _with_iovecs([
        _open("(i32.const 3)", D_NAME, 2, DIR_ASK, ALL & ~SOCK, 200, follow=1)  ,  # 1
        _fdstat(D, 600),                                                              # 2
        _set_rights(D, _shown(600, less=read), _shown(600, base=False, less=read)),   # 3
        _fdstat(D, 640),                                                              # 4
        _open(D, FILE_NAME, 0, 0, 0, 204),                                            # 5
        _fdstat(_fd(204), 680),                                                       # 6
        _io("fd_read", _fd(204), READ_IOV),                                           # 7
        _open(D, FILE_NAME, 0, read, 0, 208),                                         # 8
        _open(D, SUB_NAME, 2, int(Rights.PATH_OPEN | Rights.FD_READDIR), ALL & ~SOCK,
              212),                                                                   # 9
        _open(_fd(212), G_NAME, 0, read, 0, 216),                                     # 10
    ])
    errnos, mem = _run_steps(tree.preopen, _steps_guest(P1, steps, NAMES), len(steps))
    assert errnos == [Errno.SUCCESS] * 7 + [Errno.NOTCAPABLE, Errno.NOTCAPABLE, Errno.SUCCESS,
                                            Errno.NOTCAPABLE]
    before, after = _rights(mem, 600), _rights(mem, 640)
    assert before[1] & read  # (a directory's base has no FD_READ to remove)
    assert after == (before[0] & ~read, before[1] & ~read)
    file_base, file_inheriting = _rights(mem, 680)
    assert file_base & read == 0 and file_inheriting & read == 0
    assert mem[400:416] == bytes(16)  # nothing read
    assert struct.unpack_from("<I", mem, 208)[0] == NO_FD


def test_a_removed_right_cannot_come_back_and_refuses_its_calls(tree: Tree) -> None:
    """fd_fdstat_set_rights only narrows (adding a right back: NOTCAPABLE),
    and what it removed refuses the calls that need it: a file without
    FD_WRITE and FD_SEEK cannot write or seek, and still reads."""
    tree.write("f", b"0123")
    removed = int(Rights.FD_WRITE | Rights.FD_SEEK)
    f = _fd(200)
    steps = _with_iovecs([
        _open("(i32.const 3)", (16, 1), 0, FILE, 0, 200),                             # 1
        _fdstat(f, 600),                                                              # 2
        _set_rights(f, _shown(600, less=removed), "(i64.const 0)"),                   # 3
        _set_rights(f, _shown(600), "(i64.const 0)"),                                 # 4 back
        _fdstat(f, 640),                                                              # 5
        _io("fd_write", f, ABC_IOV),                                                  # 6
        f"(call $fd_seek {f} (i64.const 0) (i32.const 0) (i32.const 96))",            # 7
        _io("fd_read", f, READ_IOV),                                                  # 8
    ])
    errnos, mem = _run_steps(tree.preopen, _steps_guest(P1, steps, {16: b"f", 32: b"abc"}),
                             len(steps))
    assert errnos == [Errno.SUCCESS] * 4 + [Errno.NOTCAPABLE, Errno.SUCCESS, Errno.NOTCAPABLE,
                                            Errno.NOTCAPABLE, Errno.SUCCESS]
    assert _rights(mem, 640)[0] == _rights(mem, 600)[0] & ~removed
    assert mem[400:404] == b"0123"
    assert tree.read("f") == b"0123"


def test_only_what_set_rights_removes_is_enforced(tree: Tree) -> None:
    """A directory opened as Go's os.Root opens one (its write rights left
    out: advisory) and then narrowed with fd_fdstat_set_rights: the right
    removed there (PATH_CREATE_FILE) refuses CREAT, while TRUNC, left out
    only at the open, still works -- removing one right does not turn the
    advisory ones into refusals. Nor can the removed right be added back."""
    tree.mkdir("d")
    tree.write("d/file", b"an older, longer content")
    create = int(Rights.PATH_CREATE_FILE)
    steps = _with_iovecs([
        _open("(i32.const 3)", D_NAME, 2, ROOT_RIGHTS, ROOT_RIGHTS, 200, follow=1),   # 1
        _fdstat(D, 600),                                                              # 2
        _set_rights(D, _shown(600, less=create), _shown(600, base=False)),            # 3
        _open(D, (32, 3), 1, ALL & ~SOCK, 0, 204),                                    # 4 CREAT
        _open(D, FILE_NAME, 8, ALL & ~SOCK, 0, 208),                                  # 5 TRUNC
        _io("fd_write", _fd(208), ABC_IOV),                                           # 6
        _set_rights(D, _shown(600), _shown(600, base=False)),                         # 7 back
    ])
    errnos, mem = _run_steps(tree.preopen, _steps_guest(P1, steps, NAMES), len(steps))
    assert _rights(mem, 600)[0] & (PFSS | create) == create  # PFSS left out at the open
    assert errnos == [Errno.SUCCESS] * 4 + [Errno.NOTCAPABLE, Errno.SUCCESS, Errno.SUCCESS,
                                            Errno.NOTCAPABLE]
    assert not tree.exists("d/abc")
    assert tree.read("d/file") == b"abc"
