"""The descriptor table: the one gate every fd-taking syscall passes.

Rights policy (stated once, here; docs/sandbox.md for users): pywasi
enforces the rights the *host* grants and the rights a guest *removes* with
``fd_fdstat_set_rights``; the rights a guest leaves out when it *asks* in
path_open are advisory beyond the access they choose, as in wasmtime.

- The host's grant: what a descriptor is (a directory cannot seek, stdin
  cannot be written), read or write access (chosen by path_open's base
  rights: FD_READ reads, FD_WRITE / FD_ALLOCATE / FD_FILESTAT_SET_SIZE
  write, as in wasmtime), and the host's restrictions
  (``pywasi.fs.ReadOnly``, ``--dir ...::ro``, a descriptor the host handed
  in read-only).
- Asked for in path_open (``fs_rights_base`` / ``fs_rights_inheriting``):
  beyond the access, shown by ``fd_fdstat_get``, never refusing a call.
  Go's ``os.Root`` opens a directory without its write rights and then
  creates and truncates files under it (CREAT|TRUNC), which wasmtime runs.
- Removed with ``fd_fdstat_set_rights`` (both ABIs; it may drop bits,
  never add them: NOTCAPABLE): enforced. The grant narrows with what the
  guest sees, so a later call needing a dropped right is NOTCAPABLE, and a
  directory whose inheriting rights were dropped hands only the rest down
  to what path_open opens under it. No real program calls it to drop a
  right it then uses (the file calls of wasi-libc, Rust's std, Go's
  syscall package and CPython never drop anything with it: Go's declares
  it, none calls it); a program that does is sandboxing itself on purpose,
  and the spec, node:wasi (uvwasi) and the wasi-testsuite
  (truncation_rights, path_open_read_without_rights, fd_fdstat_set_rights)
  all enforce it. wasmtime ignores it (its CI skips those tests as "working
  with rights which are removed from wasmtime"), so enforcing it can only
  fail a program that drops a right and then uses it.

``get(fd, needed)`` answers ``BADF`` for an fd that is not open and
``NOTCAPABLE`` when the grant lacks any of the ``needed`` rights; no
syscall checks rights anywhere else. NOTE: NOTCAPABLE is the spec's errno
for a missing right, and uvwasi's; the wasi-testsuite's truncation_rights
expects PERM (wasi-common's mapping) and path_open_read_without_rights
expects BADF for fd_read on a file not opened for reading (wasmtime's
answer): we follow the spec and node, and wasi-libc's read() and write()
turn NOTCAPABLE into EBADF, so a C program sees what it sees on wasmtime.
What the guest sees is ``rights_base`` / ``rights_inheriting``; only
while path_open left a right out is the wider grant kept in
``rights_granted``, checked when the shown rights lack a bit, so the
common case costs one test.

Numbering: the lowest free number is reused, as POSIX does, which is what
wasi-libc's fd bookkeeping and many test suites expect.

Limit: with ``max_open`` set, an open past that many descriptors (stdio and
preopens count, as every fd counts against RLIMIT_NOFILE) answers ``MFILE``:
the table is the guest's own, per-process one, and POSIX's EMFILE is "the
process has too many files open" (ENFILE is the whole system's table).
"""

from __future__ import annotations

# heapq's C functions, without heapq.py (an import of every start-up)
from _heapq import heappop, heappush
import _thread

from ._abi import Errno
from ._errors import WasiError
from ._fs._base import Descriptor

__all__ = ["FdTable"]

# wasi-libc keeps fds in an int; past this we refuse with NFILE rather than
# hand out numbers the guest cannot represent as a positive int.
_MAX_FDS = 1 << 20


class FdTable:
    __slots__ = ("_entries", "_free", "lock", "max_open")

    def __init__(self) -> None:
        self._entries: list[Descriptor | None] = []
        self._free: list[int] = []  # a min-heap of closed numbers below len(_entries)
        # Guards allocation and removal when several guest threads share the
        # table (wasi-threads); lookups are plain list reads under the GIL.
        self.lock = _thread.allocate_lock()  # threading.Lock, without importing threading
        self.max_open: int | None = None

    def __len__(self) -> int:
        """How many descriptors are open."""
        return len(self._entries) - len(self._free)

    def get(self, fd: int, needed: int = 0) -> Descriptor:
        try:
            desc = self._entries[fd]
        except IndexError:
            raise WasiError(Errno.BADF) from None
        if desc is None:
            raise WasiError(Errno.BADF)
        if needed & ~desc.rights_base:
            granted = desc.rights_granted  # path_open left it out: advisory
            if granted is None or needed & ~granted[0]:
                raise WasiError(Errno.NOTCAPABLE)
        return desc

    def allocate(self, desc: Descriptor) -> int:
        with self.lock:
            if self.max_open is not None and len(self._entries) - len(self._free) >= self.max_open:
                raise WasiError(Errno.MFILE)
            if self._free:
                fd = heappop(self._free)
                self._entries[fd] = desc
                return fd
            if len(self._entries) >= _MAX_FDS:
                raise WasiError(Errno.NFILE)
            self._entries.append(desc)
            return len(self._entries) - 1

    def remove(self, fd: int) -> Descriptor:
        """Take ``fd`` out of the table (the caller releases the descriptor)."""
        with self.lock:
            # get()'s BADF, inlined: fd_close runs this once per file closed.
            desc = self._entries[fd] if fd < len(self._entries) else None
            if desc is None:
                raise WasiError(Errno.BADF)
            self._entries[fd] = None
            heappush(self._free, fd)
            return desc

    def renumber(self, fd: int, to: int) -> Descriptor | None:
        """Move ``fd`` to ``to``; returns the descriptor that was at ``to``
        (the caller releases it). Both must be open (spec: BADF otherwise)."""
        with self.lock:
            source = self.get(fd)
            target = self.get(to)
            if fd == to:
                return None
            self._entries[to] = source
            self._entries[fd] = None
            heappush(self._free, fd)
            return target

    def __iter__(self):  # type: ignore[no-untyped-def]
        return ((fd, d) for fd, d in enumerate(self._entries) if d is not None)

    def close_all(self) -> None:
        with self.lock:
            entries, self._entries, self._free = self._entries, [], []
        for desc in entries:
            if desc is not None:
                desc.close()
