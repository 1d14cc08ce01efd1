"""version="unstable": the real wasi_unstable (snapshot 0) ABI, checked byte
for byte through a WAT module that imports from ``wasi_unstable`` exactly as
an old program does. Every number here is the snapshot-0 witx's
(legacy/preview0/witx/typenames.witx), written out by hand, not taken from
pywasi's layouts."""

from __future__ import annotations

import struct
import time
from typing import Any

import pywasi
from conftest import Tree
from pywasi._abi import UNSTABLE, Errno
from wasmbuild import build_wat

SCRATCH = 0x100
OUT = 0x1000
RESULT = 0x2000


def harness_wat(namespace: str, names: list[str]) -> str:
    lines = ["(module"]
    for name in names:
        sig = UNSTABLE[name]
        params = " ".join(sig.param_types)
        results = " ".join(sig.results)
        lines.append(f'  (import "{namespace}" "{name}" (func ${name} (param {params}) '
                     f'(result {results})))')
        lines.append(f'  (export "{name}" (func ${name}))')
    lines.append('  (memory (export "memory") 1))')
    return "\n".join(lines)


class Old:
    """A module compiled against wasi_unstable; its exports are the imports."""

    NAMES = ["fd_seek", "fd_tell", "fd_filestat_get", "path_filestat_get", "path_open",
             "fd_fdstat_get", "fd_fdstat_set_rights", "poll_oneoff", "fd_write"]

    def __init__(self, **kw: Any) -> None:
        kw.setdefault("stdin", b"")
        kw.setdefault("stdout", lambda b: None)
        self.wasi = pywasi.WASI(version="unstable", **kw)
        module = pywasi.compile(build_wat(harness_wat("wasi_unstable", self.NAMES)))
        self.instance = pywasi.instantiate(module, self.wasi.get_import_object())
        self.wasi.finalize_bindings(self.instance)
        self.mem = self.instance.exports["memory"]

    def __getattr__(self, name: str) -> Any:
        return self.instance.exports[name]

    def put(self, ptr: int, data: bytes) -> None:
        self.mem.buffer[ptr:ptr + len(data)] = data

    def get(self, ptr: int, n: int) -> bytes:
        return bytes(self.mem.buffer[ptr:ptr + n])

    def open(self, name: bytes) -> int:
        self.put(SCRATCH, name)
        rights = (1 << 1) | (1 << 2) | (1 << 5) | (1 << 6) | (1 << 21) | (1 << 27)
        assert self.path_open(3, 0, SCRATCH, len(name), 0, rights, 0, 0, RESULT) == 0
        return int(struct.unpack("<I", self.get(RESULT, 4))[0])


def test_the_module_imports_wasi_unstable_only() -> None:
    module = pywasi.compile(build_wat(harness_wat("wasi_unstable", Old.NAMES)))
    assert {m for m, _, _ in module.imports} == {"wasi_unstable"}
    assert "sock_accept" not in pywasi.WASI(version="unstable").wasi_import


# -- poll_oneoff: 56-byte subscriptions -------------------------------------------

def clock_sub(userdata: int, identifier: int, clock_id: int, timeout: int, flags: int = 0,
              precision: int = 0) -> bytes:
    # subscription: userdata u64 @0, tag u8 @8, subscription_clock @16:
    # identifier u64 @16, id u32 @24, timeout u64 @32, precision u64 @40, flags u16 @48.
    return (struct.pack("<QB7x", userdata, 0)
            + struct.pack("<QI4xQQH6x", identifier, clock_id, timeout, precision, flags))


def fd_sub(userdata: int, tag: int, fd: int) -> bytes:
    return struct.pack("<QB7xI36x", userdata, tag, fd)


def test_subscription_sizes_are_56() -> None:
    assert len(clock_sub(0, 0, 0, 0)) == 56
    assert len(fd_sub(0, 1, 0)) == 56


def test_poll_oneoff_clock_and_fd_events_byte_for_byte() -> None:
    old = Old(stdin=b"data")
    # The identifier (0xAAAA...) sits where preview1 would read the clock id
    # and its low half where preview1's timeout is: read with the preview1
    # layout, this would be clock id 0xAAAAAAAA (INVAL).
    subs = (clock_sub(0x0102030405060708, 0xAAAAAAAAAAAAAAAA, 1, 5_000_000_000)
            + fd_sub(0x1111, 1, 0) + fd_sub(0x2222, 2, 1) + fd_sub(0x3333, 1, 42))
    old.put(SCRATCH, subs)
    assert old.poll_oneoff(SCRATCH, OUT, 4, RESULT) == 0
    assert old.get(RESULT, 4) == struct.pack("<I", 3)
    # event (same as preview1, 32 bytes): userdata u64 @0, error u16 @8,
    # type u8 @10, nbytes u64 @16, flags u16 @24.
    assert old.get(OUT, 96) == (
        struct.pack("<QHB5xQH6x", 0x1111, 0, 1, 0, 0)
        + struct.pack("<QHB5xQH6x", 0x2222, 0, 2, 0, 0)
        + struct.pack("<QHB5xQH6x", 0x3333, Errno.BADF, 1, 0, 0))


def test_poll_oneoff_clock_waits_on_the_snapshot0_timeout() -> None:
    old = Old()
    old.put(SCRATCH, clock_sub(77, 0xFFFFFFFFFFFFFFFF, 1, 40_000_000))
    start = time.monotonic_ns()
    assert old.poll_oneoff(SCRATCH, OUT, 1, RESULT) == 0
    assert time.monotonic_ns() - start >= 40_000_000
    assert old.get(OUT, 32) == struct.pack("<QHB5xQH6x", 77, 0, 0, 0, 0)
    # ABSTIME (flags @48 in snapshot 0) on the monotonic clock, already past.
    old.put(SCRATCH, clock_sub(78, 0, 1, 1, flags=1))
    assert old.poll_oneoff(SCRATCH, OUT, 1, RESULT) == 0
    assert old.get(OUT, 32) == struct.pack("<QHB5xQH6x", 78, 0, 0, 0, 0)


def test_poll_oneoff_unstable_zero_subscriptions_is_inval() -> None:
    assert Old().poll_oneoff(SCRATCH, OUT, 0, RESULT) == Errno.INVAL


# -- rights: snapshot 0 has no sock_accept bit -------------------------------------
# The fd/path tests take conftest's ``tree``: every kind of preopen speaks the
# same snapshot-0 ABI (issue 15).

def test_fdstat_rights_have_no_bit_29(tree: Tree) -> None:
    old = Old(preopens={"/": tree.preopen})
    for fd in (0, 1, 3):
        assert old.fd_fdstat_get(fd, OUT) == 0
        base, inheriting = struct.unpack("<QQ", old.get(OUT + 8, 16))
        assert not (base | inheriting) >> 29, (fd, hex(base), hex(inheriting))
    assert old.fd_fdstat_set_rights(3, 1 << 29, 0) == Errno.INVAL
    # Narrowing with snapshot-0 bits works as in preview1.
    assert old.fd_fdstat_set_rights(1, 1 << 6, 0) == 0
    assert old.fd_fdstat_get(1, OUT) == 0
    assert struct.unpack("<QQ", old.get(OUT + 8, 16)) == (1 << 6, 0)


# -- fd_seek whence and the 56-byte filestat (fs_fd.py / path.py) ------------------

def test_fd_seek_whence_is_cur_end_set(tree: Tree) -> None:
    tree.write("f", b"0123456789")
    old = Old(preopens={"/": tree.preopen})
    fd = old.open(b"f")

    def seek(offset: int, whence: int) -> tuple[int, int]:
        errno = old.fd_seek(fd, offset, whence, RESULT)
        return errno, struct.unpack("<Q", old.get(RESULT, 8))[0]

    assert seek(3, 2) == (0, 3)          # SET = 2
    assert seek(2, 0) == (0, 5)          # CUR = 0
    assert seek(-1, 1) == (0, 9)         # END = 1
    assert seek(0, 0) == (0, 9)
    assert old.fd_seek(fd, 0, 3, RESULT) == Errno.INVAL


def test_filestat_is_56_bytes_with_u32_nlink(tree: Tree) -> None:
    tree.write("f", b"x" * 1234)
    tree.link("f", "g")
    st = tree.filestat("f")
    old = Old(preopens={"/": tree.preopen})
    fd = old.open(b"f")
    guard = b"\xee" * 16

    def expect(raw: bytes) -> None:
        # dev u64 @0, ino u64 @8, filetype u8 @16, nlink u32 @20, size u64 @24,
        # atim @32, mtim @40, ctim @48; nothing written past 56.
        dev, ino, filetype, nlink, size, atim, mtim, ctim = struct.unpack("<QQB3xIQQQQ", raw[:56])
        assert (dev, ino, filetype, nlink, size) == (st.dev, st.ino, 4, 2, 1234)
        assert mtim == st.mtim and ctim == st.ctim and atim > 0
        assert raw[56:] == guard

    old.put(OUT, b"\0" * 56 + guard)
    assert old.fd_filestat_get(fd, OUT) == 0
    expect(old.get(OUT, 72))
    old.put(OUT, b"\0" * 56 + guard)
    old.put(SCRATCH, b"g")
    assert old.path_filestat_get(3, 0, SCRATCH, 1, OUT) == 0
    expect(old.get(OUT, 72))
