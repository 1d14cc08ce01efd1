"""The descriptor base class: one object per open WASI descriptor.

The base answers every operation with an error; each kind of descriptor
(host stream, host file, host directory, Python reader/writer, ...) overrides
what it supports. Rights were already checked by ``FdTable.get`` before any
of these methods run, so a method only needs to care about what the *kind*
of descriptor can do.

Defaults, for an operation the kind cannot do at all: BADF, as wasmtime's
preview1 answers when a call needs a file and gets something else (its
``get_file``) -- e.g. ``fd_seek`` on a directory that somehow holds FD_SEEK;
``fd_readdir`` on a non-directory is NOTDIR (POSIX ``fdopendir``). A kind that
*can* do it but not on this host object (a pipe opened by path_open) passes
the host's errno through: ``lseek`` on a FIFO is SPIPE.
"""

from __future__ import annotations

import _thread

from .._abi import DIRENT, Errno, Filetype
from .._errors import WasiError

__all__ = ["Descriptor", "Directory"]


class Descriptor:
    """Fields every descriptor has; subclasses set them in ``__init__``."""

    filetype: int = Filetype.UNKNOWN
    # The rights the guest sees (fd_fdstat_get), as the host granted them or
    # as the guest narrowed them since (path_open's rights, set_rights).
    rights_base: int = 0
    rights_inheriting: int = 0
    # What the descriptor may do, (base, inheriting), kept only while it is
    # wider than the two above: the rights path_open was asked for are
    # shown, not enforced (see _fdtable's rights policy). None: the shown
    # rights are the grant.
    rights_granted: tuple[int, int] | None = None

    # -- fdstat ----------------------------------------------------------
    def fdflags(self) -> int:
        return 0

    def set_fdflags(self, flags: int) -> None:
        raise WasiError(Errno.NOTSUP)

    def set_rights(self, base: int, inheriting: int) -> None:
        """Rights only narrow (spec: fd_fdstat_set_rights "can only remove").
        What is removed here is enforced: it leaves the grant too, and only
        it -- a right path_open left out stays advisory (the policy:
        ``_fdtable``)."""
        shown_base, shown_inheriting = self.rights_base, self.rights_inheriting
        if base & ~shown_base or inheriting & ~shown_inheriting:
            raise WasiError(Errno.NOTCAPABLE)
        granted = self.rights_granted
        if granted is not None:  # else the shown rights are the grant
            self.rights_granted = (granted[0] & ~(shown_base & ~base),
                                   granted[1] & ~(shown_inheriting & ~inheriting))
        self.rights_base = base
        self.rights_inheriting = inheriting

    # -- data ------------------------------------------------------------
    def read(self, bufs: list[memoryview]) -> int:
        raise WasiError(Errno.BADF)

    def write(self, bufs: list[memoryview]) -> int:
        raise WasiError(Errno.BADF)

    def pread(self, bufs: list[memoryview], offset: int) -> int:
        raise WasiError(Errno.BADF)

    def pwrite(self, bufs: list[memoryview], offset: int) -> int:
        raise WasiError(Errno.BADF)

    def write_nowait(self, bufs: list[memoryview]) -> int:
        """Part of ``write``, never blocking: what the host takes at once
        (``BlockingIOError`` when it takes nothing). For a descriptor that
        ``poll_fileno`` has just reported writable (``Context.when_writable``)."""
        raise WasiError(Errno.BADF)

    def seek(self, offset: int, whence: int) -> int:
        """``offset`` is signed; ``whence`` is a preview1 ``Whence``, already
        validated. Returns the new offset."""
        raise WasiError(Errno.BADF)

    def tell(self) -> int:
        raise WasiError(Errno.BADF)

    def advise(self, offset: int, length: int, advice: int) -> None:
        raise WasiError(Errno.BADF)

    def allocate(self, offset: int, length: int) -> None:
        raise WasiError(Errno.BADF)

    def sync(self) -> None:
        raise WasiError(Errno.BADF)

    def datasync(self) -> None:
        raise WasiError(Errno.BADF)

    # -- metadata --------------------------------------------------------
    def filestat(self) -> tuple[int, ...]:
        """The FILESTAT values (``_stat.filestat_values`` order)."""
        raise WasiError(Errno.BADF)

    def set_size(self, size: int) -> None:
        raise WasiError(Errno.BADF)

    def set_times(self, atim: int, mtim: int, fst_flags: int) -> None:
        raise WasiError(Errno.BADF)

    # -- directories -----------------------------------------------------
    def readdir(self, cookie: int, limit: int, ordered: bool = False) -> bytes:
        """Dirent records from ``cookie`` on, serialised and cut at ``limit``
        bytes (the spec's truncation); ``ordered``: sorted by name after
        ``.`` and ``..`` (deterministic runs)."""
        raise WasiError(Errno.NOTDIR)

    # -- readiness (poll_oneoff) ------------------------------------------
    def poll_fileno(self) -> int | None:
        """The host fd whose readiness the OS can wait on for ``poll_oneoff``,
        or None when the descriptor is always ready (regular files: POSIX
        says they never block; Python readers and writers)."""
        return None

    def ready_nbytes(self, writing: bool) -> int:
        """The ``nbytes`` of a ready ``fd_read``/``fd_write`` event: bytes
        available to read, or room to write; 0 when the host cannot tell."""
        return 0

    # -- lifetime --------------------------------------------------------
    def close(self) -> None:
        """Release host resources. Called once: by ``release`` once no call
        uses the descriptor, or when the WASI object is closed."""

    # The guest has closed (or renumbered over) this descriptor: its host
    # resources go when the last call using it returns. Under wasi-threads
    # another thread may have looked the descriptor up and be about to act on
    # its host fd; closing that fd at once would let the next open reuse the
    # number, and the call would read or write a different file. CPython's
    # reference count is the count of calls in flight -- each holds the
    # descriptor in a local until it returns -- so the close happens in
    # ``__del__``: at once when nobody else holds it (the single-threaded
    # case, still inside fd_close), else in the thread whose call ends last.
    # The hot path pays nothing. NOTE: a host close error is not reported,
    # as in wasmtime (dropping a Rust File ignores close's result).
    _released = False

    def release(self) -> None:
        self._released = True

    def __del__(self) -> None:
        if self._released:
            self._released = False
            try:
                self.close()
            except OSError:
                pass

    # -- threads ---------------------------------------------------------
    # One thread at a time waits for and reads from the descriptor
    # (``Context.when_readable``), one at a time waits for and writes to it
    # (``Context.when_writable``); made on first use, while threads run.
    reader_lock: _thread.LockType | None = None
    writer_lock: _thread.LockType | None = None

    # -- preopens --------------------------------------------------------
    def prestat_name(self) -> bytes:
        """The guest path of a preopened directory; BADF for anything else
        (wasi-libc stops its preopen scan at the first BADF)."""
        raise WasiError(Errno.BADF)


class Directory(Descriptor):
    """A directory descriptor: what the path_* calls ask of one, name by name.

    The syscall layer (``_syscalls/path.py``) checks the spec's arguments,
    flags and rights, reads the guest's path and decides what an open may do
    (``read``/``write`` from the rights asked); a directory kind does the
    per-name work in its own tree and answers with the errno the host
    filesystem would (``WasiError`` or ``OSError``). A path is the guest's
    text, relative to this directory, never yet resolved: resolving it --
    ``..``, symlinks, trailing slashes, escapes (PERM) -- is the kind's job,
    the same rules for every kind (``HostDirectory`` through the host
    resolver, ``pywasi.fs`` trees in Python).

    Every method answers NOTSUP here, so a kind implements what its tree can
    do. ``rename_at`` and ``link_at`` get the target directory already
    checked to be of the same tree (``same_tree``; else XDEV)."""

    filetype = Filetype.DIRECTORY
    preopen: bytes | None = None

    def prestat_name(self) -> bytes:
        if self.preopen is None:
            return super().prestat_name()
        return self.preopen

    @staticmethod
    def dirents(listing: list[tuple[bytes, int, int]], cookie: int, limit: int) -> bytes:
        """``fd_readdir``'s records of a listing ((name, d_ino, d_type) per
        entry, "." and ".." first) from ``cookie`` on: entry ``i`` has
        ``d_next == i + 1``. Cut at ``limit`` bytes -- the spec: "If the
        buffer is not large enough to fit all entries, the last entry is
        truncated" -- as many bytes as fit, so that bufused == buf_len tells
        the guest there may be more."""
        out = bytearray()
        pack = DIRENT.struct.pack
        index = cookie
        while index < len(listing) and len(out) < limit:
            name, ino, dtype = listing[index]
            index += 1
            out += pack(index, ino, len(name), dtype)
            out += name
        del out[limit:]
        return bytes(out)

    def same_tree(self, other: Directory) -> bool:
        """Whether a rename or link between ``self`` and ``other`` can work."""
        return False

    def open_at(self, path: str, follow: bool, oflags: int, fdflags: int, read: bool,
                write: bool, rights_base: int, rights_inheriting: int) -> Descriptor:
        """The descriptor for ``path`` (``oflags``, ``fdflags``: WASI's,
        already valid), with those rights, less the ones that do not apply
        to its type."""
        raise WasiError(Errno.NOTSUP)

    def mkdir_at(self, path: str) -> None:
        raise WasiError(Errno.NOTSUP)

    def rmdir_at(self, path: str) -> None:
        raise WasiError(Errno.NOTSUP)

    def stat_at(self, path: str, follow: bool) -> tuple[int, ...]:
        """The FILESTAT values of ``path``."""
        raise WasiError(Errno.NOTSUP)

    def set_times_at(self, path: str, follow: bool, atim: int, mtim: int,
                     fst_flags: int) -> None:
        raise WasiError(Errno.NOTSUP)

    def link_at(self, old: str, follow: bool, target: Directory, new: str) -> None:
        raise WasiError(Errno.NOTSUP)

    def symlink_at(self, contents: str, path: str) -> None:
        """A symlink at ``path`` holding ``contents`` (never absolute here)."""
        raise WasiError(Errno.NOTSUP)

    def readlink_at(self, path: str) -> bytes:
        raise WasiError(Errno.NOTSUP)

    def unlink_at(self, path: str) -> None:
        raise WasiError(Errno.NOTSUP)

    def rename_at(self, old: str, target: Directory, new: str) -> None:
        raise WasiError(Errno.NOTSUP)
