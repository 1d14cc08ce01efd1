"""The path calls: path_open, path_create_directory, path_filestat_get /
set_times, path_link, path_readlink, path_remove_directory, path_rename,
path_symlink, path_unlink_file.

Invariants:
- what the spec says of a call is checked here, once for every kind of
  directory: unknown flags (INVAL), flag combinations, the rights the call
  needs (``FdTable.get`` in ``_dir_at``, before any work) and may hand down, an
  absolute symlink target (PERM), a rename or link between two trees (XDEV);
- a guest path is read from guest memory by ``_dir_at`` alone (bounds
  checked: a bad pointer traps; invalid UTF-8 is ILSEQ, an embedded NUL is
  INVAL) and handed to the directory (``_fs._base.Directory``), whose kind
  resolves it in its own tree by the same rules -- for a host directory,
  only through the sandbox resolver (``_fs._resolve``, ``HostDirectory``);
- outputs are written only on success; a descriptor opened is either in the
  table or closed.
"""

from __future__ import annotations

from .._abi import FILESTAT, FILESTAT_UNSTABLE, Errno, Lookupflags, Oflags, Rights
from .._errors import WasiError
from .._fs._base import Directory
from .._fs._stat import resolve_times
from ._context import Context
from .fd import ALL_FDFLAGS

__all__ = ["PathCalls"]

_FOLLOW = int(Lookupflags.SYMLINK_FOLLOW)
_ALL_LOOKUPFLAGS = _FOLLOW
_CREAT = int(Oflags.CREAT)
_DIRECTORY = int(Oflags.DIRECTORY)
_EXCL = int(Oflags.EXCL)
_TRUNC = int(Oflags.TRUNC)
_ALL_OFLAGS = _CREAT | _DIRECTORY | _EXCL | _TRUNC

# Which requested rights make the open read or write. FD_DATASYNC is not a
# write right here: fdatasync works on a read-only fd and DIR_RIGHTS grants
# it, so asking for it must not turn a directory open into ISDIR.
_READ_RIGHTS = int(Rights.FD_READ | Rights.FD_READDIR)
_WRITE_RIGHTS = int(Rights.FD_WRITE | Rights.FD_ALLOCATE | Rights.FD_FILESTAT_SET_SIZE)
_ACCESS_RIGHTS = _READ_RIGHTS | _WRITE_RIGHTS
_FD_READ = int(Rights.FD_READ)

_PATH_OPEN = int(Rights.PATH_OPEN)
_PATH_CREATE_FILE = int(Rights.PATH_CREATE_FILE)
_PATH_FILESTAT_SET_SIZE = int(Rights.PATH_FILESTAT_SET_SIZE)
_PATH_FILESTAT_GET = int(Rights.PATH_FILESTAT_GET)
_PATH_UNLINK_FILE = int(Rights.PATH_UNLINK_FILE)

_U32 = 0xFFFFFFFF


def _flags_ok(value: int, known: int) -> None:
    """An unknown bit in a flags argument is INVAL (as wasmtime's generated
    decoders answer), before any other work."""
    if value & ~known:
        raise WasiError(Errno.INVAL)


class PathCalls(Context):
    # -- the helpers every call uses ---------------------------------------
    def _dir_at(self, fd: int, needed: int, ptr: int, length: int) -> tuple[Directory, str]:
        """The directory ``fd`` with the ``needed`` rights, then the guest's
        path at ``ptr``: bounds-checked (a bad pointer traps), UTF-8 (else
        ILSEQ), no NUL (else INVAL).

        NOTE: a descriptor that is not a directory answers NOTDIR before its
        rights are looked at (POSIX openat's ENOTDIR; wasmtime's
        path_open_dirfd_not_dir expects it for a file opened with no rights).
        Rights are still checked only by ``FdTable.get``. One helper for both
        halves because every path call needs both, per name: it saves the
        frame the directory interface costs each call (#15: the host route
        must stay as fast as it was).
        """
        try:
            desc = self.fds.get(fd, needed)
        except WasiError as e:
            if e.errno == Errno.NOTCAPABLE and not isinstance(self.fds.get(fd), Directory):
                raise WasiError(Errno.NOTDIR) from None
            raise
        if not isinstance(desc, Directory):
            raise WasiError(Errno.NOTDIR)
        try:
            path = str(self.memory.slice(ptr, length), "utf-8")  # decoded in place, no copy
        except UnicodeDecodeError:
            raise WasiError(Errno.ILSEQ) from None
        if "\0" in path:
            raise WasiError(Errno.INVAL, "path contains a NUL byte")
        return desc, path

    def _two_dirs_at(self, fd: int, needed: int, ptr: int, length: int, new_fd: int,
                     new_needed: int, new_ptr: int, new_length: int
                     ) -> tuple[Directory, str, Directory, str]:
        """The source and target of a rename or link: one tree (else XDEV)."""
        source, old = self._dir_at(fd, needed, ptr, length)
        target, new = self._dir_at(new_fd, new_needed, new_ptr, new_length)
        if not source.same_tree(target):
            raise WasiError(Errno.XDEV)
        return source, old, target, new

    # -- open ---------------------------------------------------------------
    def path_open(self, fd: int, dirflags: int, path: int, path_len: int, oflags: int,
                  fs_rights_base: int, fs_rights_inheriting: int, fdflags: int,
                  opened_fd_ptr: int) -> None:
        # _flags_ok of the three, in one test (this call runs once per file opened)
        if dirflags & ~_ALL_LOOKUPFLAGS or oflags & ~_ALL_OFLAGS or fdflags & ~ALL_FDFLAGS:
            raise WasiError(Errno.INVAL)
        if oflags & _DIRECTORY and oflags & (_CREAT | _EXCL | _TRUNC):
            # NOTE: the spec is silent; wasmtime answers INVAL, and Linux 6.4+
            # refuses O_CREAT|O_DIRECTORY with EINVAL too.
            raise WasiError(Errno.INVAL)
        # Spec (path_open): CREAT needs PATH_CREATE_FILE, TRUNC needs
        # PATH_FILESTAT_SET_SIZE, on the directory's grant (a ReadOnly tree
        # has neither; left out when the guest opened the directory:
        # advisory; removed with fd_fdstat_set_rights: refused -- _fdtable).
        needed = _PATH_OPEN
        if oflags & _CREAT:
            needed |= _PATH_CREATE_FILE
        if oflags & _TRUNC:
            needed |= _PATH_FILESTAT_SET_SIZE
        directory, name = self._dir_at(fd, needed, path, path_len)
        # The rights policy (_fdtable): the base rights asked choose the
        # access, as in wasmtime; access this directory may not hand down (a
        # ReadOnly tree's writes, FD_READ the guest removed from its
        # inheriting rights with fd_fdstat_set_rights) is NOTCAPABLE. Any other right
        # asked beyond the grant is narrowed away silently: advisory, where
        # uvwasi (node:wasi) refuses it -- wasmtime runs such programs (Go
        # asks for every right but the socket ones).
        # What the directory may hand down: its grant (less what the guest
        # removed with fd_fdstat_set_rights, which narrowed it).
        granted_pair = directory.rights_granted
        granted = directory.rights_inheriting if granted_pair is None else granted_pair[1]
        if fs_rights_base & _ACCESS_RIGHTS & ~granted:
            raise WasiError(Errno.NOTCAPABLE)
        # Positional, and "!= 0" rather than bool(): this runs once per file
        # opened (a keyword argument costs a lookup, bool() a call).
        read = fs_rights_base & _READ_RIGHTS != 0
        write = fs_rights_base & _WRITE_RIGHTS != 0
        # The new descriptor's grant: what the directory hands down, less the
        # access it was not opened with (the host opened it that way).
        base = granted & ~((0 if read else _FD_READ) | (0 if write else _WRITE_RIGHTS))
        desc = directory.open_at(name, dirflags & _FOLLOW != 0, oflags, fdflags, read, write,
                                 base, granted)
        base, inheriting = desc.rights_base, desc.rights_inheriting
        if fs_rights_base & base != base or fs_rights_inheriting & inheriting != inheriting:
            # Fewer rights asked than granted (wasi-libc's every open): shown,
            # not enforced; the grant is kept beside them (_fdtable).
            desc.rights_granted = (base, inheriting)
            desc.rights_base = fs_rights_base & base
            desc.rights_inheriting = fs_rights_inheriting & inheriting
        try:
            new_fd = self.fds.allocate(desc)
        except BaseException:
            desc.close()
            raise
        try:
            self.memory.store_u32(opened_fd_ptr, new_fd)
        except BaseException:
            self.fds.remove(new_fd).close()
            raise

    # -- directories ------------------------------------------------------
    def path_create_directory(self, fd: int, path: int, path_len: int) -> None:
        directory, name = self._dir_at(fd, int(Rights.PATH_CREATE_DIRECTORY), path, path_len)
        directory.mkdir_at(name)

    def path_remove_directory(self, fd: int, path: int, path_len: int) -> None:
        directory, name = self._dir_at(fd, int(Rights.PATH_REMOVE_DIRECTORY), path, path_len)
        directory.rmdir_at(name)

    # -- stat and times ---------------------------------------------------
    def _filestat_at(self, fd: int, flags: int, path: int, path_len: int) -> tuple[int, ...]:
        if flags & ~_ALL_LOOKUPFLAGS:  # _flags_ok, inlined: once per stat
            raise WasiError(Errno.INVAL)
        directory, name = self._dir_at(fd, _PATH_FILESTAT_GET, path, path_len)
        return directory.stat_at(name, flags & _FOLLOW != 0)  # no bool() call: once per stat

    def path_filestat_get(self, fd: int, flags: int, path: int, path_len: int,
                          buf_ptr: int) -> None:
        self.memory.pack(FILESTAT, buf_ptr, *self._filestat_at(fd, flags, path, path_len))

    def path_filestat_get_unstable(self, fd: int, flags: int, path: int, path_len: int,
                                   buf_ptr: int) -> None:
        """wasi_unstable: the 56-byte filestat whose nlink is a u32."""
        values = list(self._filestat_at(fd, flags, path, path_len))
        values[3] = min(values[3], _U32)
        self.memory.pack(FILESTAT_UNSTABLE, buf_ptr, *values)

    def path_filestat_set_times(self, fd: int, flags: int, path: int, path_len: int,
                                atim: int, mtim: int, fst_flags: int) -> None:
        _flags_ok(flags, _ALL_LOOKUPFLAGS)
        resolve_times(atim, mtim, fst_flags)  # bad fst_flags: INVAL before any lookup
        directory, name = self._dir_at(fd, int(Rights.PATH_FILESTAT_SET_TIMES), path, path_len)
        directory.set_times_at(name, bool(flags & _FOLLOW), atim, mtim, fst_flags)

    # -- links --------------------------------------------------------------
    def path_link(self, old_fd: int, old_flags: int, old_path: int, old_path_len: int,
                  new_fd: int, new_path: int, new_path_len: int) -> None:
        _flags_ok(old_flags, _ALL_LOOKUPFLAGS)
        source, old, target, new = self._two_dirs_at(
            old_fd, int(Rights.PATH_LINK_SOURCE), old_path, old_path_len,
            new_fd, int(Rights.PATH_LINK_TARGET), new_path, new_path_len)
        source.link_at(old, bool(old_flags & _FOLLOW), target, new)

    def path_symlink(self, old_path: int, old_path_len: int, fd: int, new_path: int,
                     new_path_len: int) -> None:
        # The target is read as any path is (once followed it is one,
        # relative to the link's directory), then the new name.
        directory, link_target = self._dir_at(fd, int(Rights.PATH_SYMLINK), old_path,
                                              old_path_len)
        _, name = self._dir_at(fd, int(Rights.PATH_SYMLINK), new_path, new_path_len)
        # NOTE: an absolute target is PERM, as wasmtime (cap-std) answers: it
        # can never resolve inside a preopen (the resolver refuses it when
        # followed), so creating one would only leave a trap for the host's
        # own tools. Checked here, on the guest's text, before any filesystem
        # is asked, so it holds for every kind of directory tree alike. A
        # relative target is stored verbatim: it is only text until someone
        # follows it, and then the resolver judges it (climbing out: PERM).
        if link_target.startswith("/"):
            raise WasiError(Errno.PERM)
        directory.symlink_at(link_target, name)

    def path_readlink(self, fd: int, path: int, path_len: int, buf: int, buf_len: int,
                      bufused_ptr: int) -> None:
        directory, name = self._dir_at(fd, int(Rights.PATH_READLINK), path, path_len)
        contents = directory.readlink_at(name)
        # NOTE: a short buffer truncates without an error, as readlink(2),
        # wasmtime and uvwasi do; bufused says how much was written.
        data = contents[:buf_len]
        self.memory.slice(bufused_ptr, 4)  # bounds first: no partial output
        self.memory.write_bytes(buf, data)
        self.memory.store_u32(bufused_ptr, len(data))

    # -- removing and renaming --------------------------------------------
    def path_unlink_file(self, fd: int, path: int, path_len: int) -> None:
        directory, name = self._dir_at(fd, _PATH_UNLINK_FILE, path, path_len)
        directory.unlink_at(name)

    def path_rename(self, fd: int, old_path: int, old_path_len: int, new_fd: int,
                    new_path: int, new_path_len: int) -> None:
        source, old, target, new = self._two_dirs_at(
            fd, int(Rights.PATH_RENAME_SOURCE), old_path, old_path_len,
            new_fd, int(Rights.PATH_RENAME_TARGET), new_path, new_path_len)
        source.rename_at(old, target, new)
