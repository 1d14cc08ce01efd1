# mypy: disable-error-code="comparison-overlap"
# (strict mypy treats `IntEnum member == int literal` as never true; here it is the point.)
"""The ABI package against the spec's own numbers (WebAssembly/WASI
legacy/preview1/witx and legacy/preview0/witx). Every number below is copied
from the spec, not from our code, so a drift in either fails here."""

from __future__ import annotations

import errno as host_errno
import struct

import pytest

import pywasi._abi as abi
from pywasi._abi import (
    CIOVEC, DIRENT, EVENT, FDSTAT, FILESTAT, FILESTAT_UNSTABLE, IOVEC, PRESTAT,
    PREVIEW1, SUBSCRIPTION_CLOCK, SUBSCRIPTION_CLOCK_UNSTABLE,
    SUBSCRIPTION_FD_READWRITE, SUBSCRIPTION_FD_READWRITE_UNSTABLE, UNSTABLE,
    Clockid, Errno, Eventtype, Fdflags, Filetype, Layout, Oflags, Rights, Signal,
    Whence, WhenceUnstable, errno_from_host,
)

# (layout, size, align, {field: offset}) -- the spec's numbers.
LAYOUTS = [
    (IOVEC, 8, 4, {"buf": 0, "buf_len": 4}),
    (CIOVEC, 8, 4, {"buf": 0, "buf_len": 4}),
    (FDSTAT, 24, 8, {"fs_filetype": 0, "fs_flags": 2, "fs_rights_base": 8,
                     "fs_rights_inheriting": 16}),
    (FILESTAT, 64, 8, {"dev": 0, "ino": 8, "filetype": 16, "nlink": 24, "size": 32,
                       "atim": 40, "mtim": 48, "ctim": 56}),
    (FILESTAT_UNSTABLE, 56, 8, {"dev": 0, "ino": 8, "filetype": 16, "nlink": 20,
                                "size": 24, "atim": 32, "mtim": 40, "ctim": 48}),
    (DIRENT, 24, 8, {"d_next": 0, "d_ino": 8, "d_namlen": 16, "d_type": 20}),
    (PRESTAT, 8, 4, {"tag": 0, "pr_name_len": 4}),
    (EVENT, 32, 8, {"userdata": 0, "error": 8, "type": 10, "fd_readwrite_nbytes": 16,
                    "fd_readwrite_flags": 24}),
    (SUBSCRIPTION_CLOCK, 48, 8, {"userdata": 0, "tag": 8, "id": 16, "timeout": 24,
                                 "precision": 32, "flags": 40}),
    (SUBSCRIPTION_FD_READWRITE, 48, 8, {"userdata": 0, "tag": 8, "file_descriptor": 16}),
    (SUBSCRIPTION_CLOCK_UNSTABLE, 56, 8, {"userdata": 0, "tag": 8, "identifier": 16,
                                          "id": 24, "timeout": 32, "precision": 40,
                                          "flags": 48}),
    (SUBSCRIPTION_FD_READWRITE_UNSTABLE, 56, 8, {"userdata": 0, "tag": 8,
                                                 "file_descriptor": 16}),
]

_WIDTH = {"u8": 1, "u16": 2, "u32": 4, "u64": 8}


@pytest.mark.parametrize("layout,size,align,offsets", LAYOUTS, ids=lambda v: getattr(v, "name", ""))
def test_layout_matches_spec(layout: Layout, size: int, align: int, offsets: dict[str, int]) -> None:
    assert layout.size == size
    assert layout.struct.size == size
    assert layout.align == align
    assert layout.offsets == offsets
    assert layout.fields == tuple(offsets)  # declaration order is the spec's


@pytest.mark.parametrize("layout", [entry[0] for entry in LAYOUTS], ids=lambda v: v.name)
def test_pack_unpack_round_trip(layout: Layout) -> None:
    # Distinct all-ones-ish values, each the full width of its field.
    values = [(1 << (8 * _WIDTH[layout.types[f]])) - 1 - i for i, f in enumerate(layout.fields)]
    buf = bytearray(b"\xaa" * (layout.size + 16))
    layout.struct.pack_into(buf, 8, *values)
    assert list(layout.struct.unpack_from(buf, 8)) == values
    assert buf[:8] == b"\xaa" * 8 and buf[8 + layout.size:] == b"\xaa" * 8
    # Each value lands at its offset, little-endian.
    for f, v in zip(layout.fields, values):
        width = _WIDTH[layout.types[f]]
        assert int.from_bytes(buf[8 + layout.offsets[f]:][:width], "little") == v


def test_padding_is_zeroed() -> None:
    buf = bytearray(b"\xff" * 24)
    FDSTAT.struct.pack_into(buf, 0, Filetype.DIRECTORY, Fdflags.APPEND, 3, 4)
    assert bytes(buf[:8]) == bytes([3, 0, 1, 0, 0, 0, 0, 0])


def test_event_bytes() -> None:
    buf = bytearray(32)
    EVENT.struct.pack_into(buf, 0, 0x1122334455667788, Errno.BADF, Eventtype.FD_WRITE, 7, 1)
    assert buf == (struct.pack("<QHB", 0x1122334455667788, 8, 2) + bytes(5)
                   + struct.pack("<QH", 7, 1) + bytes(6))


def test_layout_machinery() -> None:
    natural = Layout("t", [("a", "u8"), ("b", "u32"), ("c", "u16")])
    assert natural.offsets == {"a": 0, "b": 4, "c": 8}
    assert (natural.size, natural.align) == (12, 4)
    with pytest.raises(ValueError):
        Layout("t", [("a", "u32"), ("b", "u32", 2)])  # misaligned
    with pytest.raises(ValueError):
        Layout("t", [("a", "u64"), ("b", "u32", 4)])  # overlaps
    with pytest.raises(ValueError):
        Layout("t", [("a", "u64"), ("b", "u32")], size=8)  # too small
    with pytest.raises(ValueError):
        Layout("t", [("a", "u128")])
    with pytest.raises(ValueError):
        Layout("t", [("a", "u8"), ("a", "u8")])


# --- signatures ----------------------------------------------------------------

PREVIEW1_NAMES = [
    "args_get", "args_sizes_get", "environ_get", "environ_sizes_get", "clock_res_get",
    "clock_time_get", "fd_advise", "fd_allocate", "fd_close", "fd_datasync",
    "fd_fdstat_get", "fd_fdstat_set_flags", "fd_fdstat_set_rights", "fd_filestat_get",
    "fd_filestat_set_size", "fd_filestat_set_times", "fd_pread", "fd_prestat_get",
    "fd_prestat_dir_name", "fd_pwrite", "fd_read", "fd_readdir", "fd_renumber", "fd_seek",
    "fd_sync", "fd_tell", "fd_write", "path_create_directory", "path_filestat_get",
    "path_filestat_set_times", "path_link", "path_open", "path_readlink",
    "path_remove_directory", "path_rename", "path_symlink", "path_unlink_file",
    "poll_oneoff", "proc_exit", "proc_raise", "sched_yield", "random_get", "sock_accept",
    "sock_recv", "sock_send", "sock_shutdown",
]


def test_preview1_names_in_spec_order() -> None:
    assert len(PREVIEW1_NAMES) == 46
    assert list(PREVIEW1) == PREVIEW1_NAMES
    assert all(sig.name == name for name, sig in PREVIEW1.items())


def test_unstable_is_preview1_without_sock_accept() -> None:
    assert list(UNSTABLE) == [n for n in PREVIEW1_NAMES if n != "sock_accept"]
    assert all(UNSTABLE[n] == PREVIEW1[n] for n in UNSTABLE)


@pytest.mark.parametrize("name,params,results", [
    ("path_open", [("fd", "i32"), ("dirflags", "i32"), ("path", "i32"), ("path_len", "i32"),
                   ("oflags", "i32"), ("fs_rights_base", "i64"),
                   ("fs_rights_inheriting", "i64"), ("fdflags", "i32"),
                   ("opened_fd_ptr", "i32")], ["i32"]),
    ("fd_readdir", [("fd", "i32"), ("buf", "i32"), ("buf_len", "i32"), ("cookie", "i64"),
                    ("bufused_ptr", "i32")], ["i32"]),
    ("poll_oneoff", [("in", "i32"), ("out", "i32"), ("nsubscriptions", "i32"),
                     ("nevents_ptr", "i32")], ["i32"]),
    ("clock_time_get", [("id", "i32"), ("precision", "i64"), ("time_ptr", "i32")], ["i32"]),
    ("fd_seek", [("fd", "i32"), ("offset", "i64"), ("whence", "i32"),
                 ("newoffset_ptr", "i32")], ["i32"]),
    ("proc_exit", [("rval", "i32")], []),
    ("fd_write", [("fd", "i32"), ("iovs", "i32"), ("iovs_len", "i32"),
                  ("nwritten_ptr", "i32")], ["i32"]),
    ("args_sizes_get", [("argc_ptr", "i32"), ("argv_buf_size_ptr", "i32")], ["i32"]),
    ("sock_recv", [("fd", "i32"), ("ri_data", "i32"), ("ri_data_len", "i32"),
                   ("ri_flags", "i32"), ("ro_datalen_ptr", "i32"), ("ro_flags_ptr", "i32")],
     ["i32"]),
    ("path_symlink", [("old_path", "i32"), ("old_path_len", "i32"), ("fd", "i32"),
                      ("new_path", "i32"), ("new_path_len", "i32")], ["i32"]),
    ("fd_filestat_set_times", [("fd", "i32"), ("atim", "i64"), ("mtim", "i64"),
                               ("fst_flags", "i32")], ["i32"]),
    ("sched_yield", [], ["i32"]),
])
def test_signature(name: str, params: list[tuple[str, str]], results: list[str]) -> None:
    sig = PREVIEW1[name]
    assert list(sig.params) == params
    assert list(sig.results) == results
    assert sig.param_names == tuple(p for p, _ in params)
    assert sig.param_types == tuple(t for _, t in params)


def test_signature_invariants() -> None:
    for sig in PREVIEW1.values():
        names = sig.param_names
        assert len(set(names)) == len(names), sig.name
        assert set(sig.param_types) <= {"i32", "i64"}
        assert sig.results == (() if sig.name == "proc_exit" else ("i32",))
        for i, pname in enumerate(names):
            if pname.endswith("_ptr"):  # out-pointers come last
                assert all(n.endswith("_ptr") for n in names[i:]), sig.name


# --- enums and flags -------------------------------------------------------------

def test_rights_bits() -> None:
    assert len(Rights) == 30
    assert [r.value for r in Rights] == [1 << i for i in range(30)]
    assert Rights.FD_DATASYNC == 1 << 0
    assert Rights.FD_SEEK == 1 << 2
    assert Rights.FD_WRITE == 1 << 6
    assert Rights.PATH_OPEN == 1 << 13
    assert Rights.FD_READDIR == 1 << 14
    assert Rights.PATH_FILESTAT_SET_SIZE == 1 << 19
    assert Rights.POLL_FD_READWRITE == 1 << 27
    assert Rights.SOCK_SHUTDOWN == 1 << 28
    assert Rights.SOCK_ACCEPT == 1 << 29


def test_whence_orders_differ() -> None:
    assert (Whence.SET, Whence.CUR, Whence.END) == (0, 1, 2)
    assert (WhenceUnstable.CUR, WhenceUnstable.END, WhenceUnstable.SET) == (0, 1, 2)
    assert {w.name for w in Whence} == {w.name for w in WhenceUnstable}


def test_enum_values() -> None:
    assert Clockid.THREAD_CPUTIME_ID == 3
    assert Filetype.SYMBOLIC_LINK == 7 and Filetype.SOCKET_STREAM == 6
    assert abi.Advice.NOREUSE == 5
    assert Eventtype.FD_WRITE == 2
    assert abi.Preopentype.DIR == 0
    assert len(Signal) == 31 and Signal.NONE == 0 and Signal.KILL == 9
    assert Signal.SYS == 30


def test_flag_values() -> None:
    assert Fdflags.SYNC == 16 and Fdflags.NONBLOCK == 4
    assert Oflags.TRUNC == 8 and Oflags.DIRECTORY == 2
    assert abi.Fstflags.MTIM_NOW == 8
    assert abi.Lookupflags.SYMLINK_FOLLOW == 1
    assert abi.Eventrwflags.FD_READWRITE_HANGUP == 1
    assert abi.Subclockflags.SUBSCRIPTION_CLOCK_ABSTIME == 1
    assert abi.Riflags.RECV_WAITALL == 2
    assert abi.Roflags.RECV_DATA_TRUNCATED == 1
    assert abi.Sdflags.WR == 2
    assert len(abi.Siflags) == 0


def test_errno_from_host() -> None:
    assert errno_from_host(host_errno.ENOENT) is Errno.NOENT
    assert errno_from_host(host_errno.EBADF) is Errno.BADF
    assert errno_from_host(host_errno.E2BIG) is Errno.TOOBIG
    assert errno_from_host(host_errno.EWOULDBLOCK) is Errno.AGAIN
    assert errno_from_host(host_errno.EOPNOTSUPP) is Errno.NOTSUP
    assert errno_from_host(None) is Errno.IO
    assert errno_from_host(99999) is Errno.IO
    assert Errno.NOTCAPABLE == 76


def test_all_is_explicit_and_complete() -> None:
    assert len(abi.__all__) == len(set(abi.__all__))
    for name in abi.__all__:
        assert hasattr(abi, name), name
