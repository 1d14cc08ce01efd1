"""The import signatures of ``wasi_snapshot_preview1`` and ``wasi_unstable``
as core wasm sees them, derived from a table written in the witx's own terms.

Sources: legacy/preview1/witx/wasi_snapshot_preview1.witx and
legacy/preview0/witx/wasi_unstable.witx (WebAssembly/WASI). The canonical
lowering of those witx types to core wasm:

* integers of up to 32 bits, enums, flags with a repr of up to 32 bits,
  handles and pointers are one ``i32``; 64-bit integers (``filesize``,
  ``timestamp``, ``filedelta``, ``dircookie``) and ``rights`` are one ``i64``;
* a ``string`` or ``list`` parameter ``x`` becomes two ``i32``: ``x`` (the
  pointer) and ``x_len``;
* every value the function returns on success becomes an ``i32`` out-pointer
  parameter appended after the others, named ``<result>_ptr``;
* the ``errno`` is the one ``i32`` result; ``proc_exit`` (``noreturn``) has none.

The current witx folds the results into ``(expected ... (error $errno))`` and
no longer names them; the names here are those of the earlier witx that did
(``(result $nwritten $size)`` ...). ``sock_accept`` was added after that
change, so its result is named after its type, ``fd``.

wasi_unstable lowers identically (its ``whence`` is a ``u8`` enum too, only
with other values), and lacks ``sock_accept``.
"""

from __future__ import annotations

# Annotation-only names: mypy takes any TYPE_CHECKING as true, and run time
# never imports typing (nor the re it pulls in: start-up, tests/test_import_cost.py).
TYPE_CHECKING = False
if TYPE_CHECKING:
    # (name, ((param, witx type), ...), ((success result, witx type), ...));
    # None: noreturn.
    _Spec = tuple[str, tuple[tuple[str, str], ...], tuple[tuple[str, str], ...] | None]

__all__ = ["Signature", "PREVIEW1", "UNSTABLE"]


class Signature:
    """One host function: ``name(params...) -> results`` in core wasm types.

    A plain class, neither a dataclass (dataclasses import ``inspect``, ~8 ms
    of every ``pywasi run`` start-up) nor a ``typing.NamedTuple`` (typing and
    re, ~10 ms); immutable by convention, equal and hashed by value."""

    __slots__ = ("name", "params", "results", "inputs", "outputs")

    name: str
    params: tuple[tuple[str, str], ...]
    results: tuple[str, ...]
    # The witx view, for what decodes calls (the trace): each parameter and
    # each success result as (name, witx type), before lowering.
    inputs: tuple[tuple[str, str], ...]
    outputs: tuple[tuple[str, str], ...]

    def __init__(self, name: str, params: tuple[tuple[str, str], ...], results: tuple[str, ...],
                 inputs: tuple[tuple[str, str], ...] = (),
                 outputs: tuple[tuple[str, str], ...] = ()) -> None:
        self.name = name
        self.params = params
        self.results = results
        self.inputs = inputs
        self.outputs = outputs

    def _fields(self) -> tuple[object, ...]:
        return self.name, self.params, self.results, self.inputs, self.outputs

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Signature):
            return NotImplemented
        return self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash(self._fields())

    def __repr__(self) -> str:
        return (f"Signature(name={self.name!r}, params={self.params!r}, results={self.results!r}, "
                f"inputs={self.inputs!r}, outputs={self.outputs!r})")

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.params)

    @property
    def param_types(self) -> tuple[str, ...]:
        return tuple(wasm for _, wasm in self.params)


# witx type -> its lowering. "pair" is (pointer, length).
_LOWERING: dict[str, str] = {
    # i32: u32 typenames, handles, pointers, enums (u8/u32 tags), flags (<= u32)
    "size": "i32", "fd": "i32", "exitcode": "i32", "pointer": "i32",
    "clockid": "i32", "advice": "i32", "whence": "i32", "signal": "i32",
    "fdflags": "i32", "fstflags": "i32", "lookupflags": "i32", "oflags": "i32",
    "riflags": "i32", "siflags": "i32", "sdflags": "i32",
    # i64: u64/s64 typenames and the u64 flags
    "filesize": "i64", "timestamp": "i64", "filedelta": "i64",
    "dircookie": "i64", "rights": "i64",
    # (ptr, len)
    "string": "pair", "iovec_array": "pair", "ciovec_array": "pair",
}

_PREVIEW1_SPEC: tuple[_Spec, ...] = (
    ("args_get", (("argv", "pointer"), ("argv_buf", "pointer")), ()),
    ("args_sizes_get", (), (("argc", "size"), ("argv_buf_size", "size"))),
    ("environ_get", (("environ", "pointer"), ("environ_buf", "pointer")), ()),
    ("environ_sizes_get", (), (("environc", "size"), ("environ_buf_size", "size"))),
    ("clock_res_get", (("id", "clockid"),), (("resolution", "timestamp"),)),
    ("clock_time_get", (("id", "clockid"), ("precision", "timestamp")),
     (("time", "timestamp"),)),
    ("fd_advise", (("fd", "fd"), ("offset", "filesize"), ("len", "filesize"),
                   ("advice", "advice")), ()),
    ("fd_allocate", (("fd", "fd"), ("offset", "filesize"), ("len", "filesize")), ()),
    ("fd_close", (("fd", "fd"),), ()),
    ("fd_datasync", (("fd", "fd"),), ()),
    ("fd_fdstat_get", (("fd", "fd"),), (("stat", "fdstat"),)),
    ("fd_fdstat_set_flags", (("fd", "fd"), ("flags", "fdflags")), ()),
    ("fd_fdstat_set_rights", (("fd", "fd"), ("fs_rights_base", "rights"),
                              ("fs_rights_inheriting", "rights")), ()),
    ("fd_filestat_get", (("fd", "fd"),), (("buf", "filestat"),)),
    ("fd_filestat_set_size", (("fd", "fd"), ("size", "filesize")), ()),
    ("fd_filestat_set_times", (("fd", "fd"), ("atim", "timestamp"), ("mtim", "timestamp"),
                               ("fst_flags", "fstflags")), ()),
    ("fd_pread", (("fd", "fd"), ("iovs", "iovec_array"), ("offset", "filesize")),
     (("nread", "size"),)),
    ("fd_prestat_get", (("fd", "fd"),), (("buf", "prestat"),)),
    ("fd_prestat_dir_name", (("fd", "fd"), ("path", "pointer"), ("path_len", "size")), ()),
    ("fd_pwrite", (("fd", "fd"), ("iovs", "ciovec_array"), ("offset", "filesize")),
     (("nwritten", "size"),)),
    ("fd_read", (("fd", "fd"), ("iovs", "iovec_array")), (("nread", "size"),)),
    ("fd_readdir", (("fd", "fd"), ("buf", "pointer"), ("buf_len", "size"),
                    ("cookie", "dircookie")), (("bufused", "size"),)),
    ("fd_renumber", (("fd", "fd"), ("to", "fd")), ()),
    ("fd_seek", (("fd", "fd"), ("offset", "filedelta"), ("whence", "whence")),
     (("newoffset", "filesize"),)),
    ("fd_sync", (("fd", "fd"),), ()),
    ("fd_tell", (("fd", "fd"),), (("offset", "filesize"),)),
    ("fd_write", (("fd", "fd"), ("iovs", "ciovec_array")), (("nwritten", "size"),)),
    ("path_create_directory", (("fd", "fd"), ("path", "string")), ()),
    ("path_filestat_get", (("fd", "fd"), ("flags", "lookupflags"), ("path", "string")),
     (("buf", "filestat"),)),
    ("path_filestat_set_times", (("fd", "fd"), ("flags", "lookupflags"), ("path", "string"),
                                 ("atim", "timestamp"), ("mtim", "timestamp"),
                                 ("fst_flags", "fstflags")), ()),
    ("path_link", (("old_fd", "fd"), ("old_flags", "lookupflags"), ("old_path", "string"),
                   ("new_fd", "fd"), ("new_path", "string")), ()),
    ("path_open", (("fd", "fd"), ("dirflags", "lookupflags"), ("path", "string"),
                   ("oflags", "oflags"), ("fs_rights_base", "rights"),
                   ("fs_rights_inheriting", "rights"), ("fdflags", "fdflags")),
     (("opened_fd", "fd"),)),
    ("path_readlink", (("fd", "fd"), ("path", "string"), ("buf", "pointer"),
                       ("buf_len", "size")), (("bufused", "size"),)),
    ("path_remove_directory", (("fd", "fd"), ("path", "string")), ()),
    ("path_rename", (("fd", "fd"), ("old_path", "string"), ("new_fd", "fd"),
                     ("new_path", "string")), ()),
    ("path_symlink", (("old_path", "string"), ("fd", "fd"), ("new_path", "string")), ()),
    ("path_unlink_file", (("fd", "fd"), ("path", "string")), ()),
    ("poll_oneoff", (("in", "pointer"), ("out", "pointer"), ("nsubscriptions", "size")),
     (("nevents", "size"),)),
    ("proc_exit", (("rval", "exitcode"),), None),
    ("proc_raise", (("sig", "signal"),), ()),
    ("sched_yield", (), ()),
    ("random_get", (("buf", "pointer"), ("buf_len", "size")), ()),
    ("sock_accept", (("fd", "fd"), ("flags", "fdflags")), (("fd", "fd"),)),
    ("sock_recv", (("fd", "fd"), ("ri_data", "iovec_array"), ("ri_flags", "riflags")),
     (("ro_datalen", "size"), ("ro_flags", "roflags"))),
    ("sock_send", (("fd", "fd"), ("si_data", "ciovec_array"), ("si_flags", "siflags")),
     (("so_datalen", "size"),)),
    ("sock_shutdown", (("fd", "fd"), ("how", "sdflags")), ()),
)

# Functions of wasi_snapshot_preview1 that wasi_unstable does not have.
_NOT_IN_UNSTABLE = frozenset({"sock_accept"})


def _lower(spec: _Spec) -> Signature:
    name, witx_params, outs = spec
    params: list[tuple[str, str]] = []
    for pname, witx in witx_params:
        wasm = _LOWERING[witx]
        if wasm == "pair":
            params += [(pname, "i32"), (pname + "_len", "i32")]
        else:
            params.append((pname, wasm))
    params += [(out + "_ptr", "i32") for out, _ in outs or ()]
    return Signature(name, tuple(params), () if outs is None else ("i32",), witx_params,
                     outs or ())


PREVIEW1: dict[str, Signature] = {spec[0]: _lower(spec) for spec in _PREVIEW1_SPEC}
UNSTABLE: dict[str, Signature] = {
    name: sig for name, sig in PREVIEW1.items() if name not in _NOT_IN_UNSTABLE
}
