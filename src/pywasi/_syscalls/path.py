"""The path calls: path_open, path_create_directory, path_filestat_get /
set_times, path_link, path_readlink, path_remove_directory, path_rename,
path_symlink, path_unlink_file.

Invariants:
- a guest path is read from guest memory by ``_guest_path`` alone (bounds
  checked: a bad pointer traps; invalid UTF-8 is ILSEQ, an embedded NUL is
  INVAL) and reaches the host only through ``_fs._resolve`` (``open_beneath``,
  ``at_parent``, ``stat_beneath``), relative to a HostDirectory's fd; the last
  component is then acted on with an ``*at`` call that never follows it. A
  final symlink the guest asks us to follow is expanded by ``_follow_final``
  into another guest path that goes through the resolver again, so escapes
  answer PERM (``ESCAPE_ERRNO``) everywhere, consistently;
- rights are checked by ``FdTable.get`` before any work (``_dir``);
- outputs are written only on success; an fd opened on the host is either in
  the table or closed.

Trailing slashes follow Linux (POSIX leaves some cases open): "file/" is
NOTDIR, "dir/" names the directory, a trailing slash after a symlink follows
it, and creating a new name through "new/" (symlink, link) is NOENT.
"""

from __future__ import annotations

import errno as _host
import os
import stat

from .._abi import FILESTAT, FILESTAT_UNSTABLE, Errno, Fdflags, Lookupflags, Oflags, Rights
from .._errors import WasiError
from .._fs import MAX_SYMLINKS, ParentDir, at_parent, open_beneath, stat_beneath
from .._fs._base import Descriptor
from .._fs._dir import DIR_INHERITING, DIR_RIGHTS, FILE_RIGHTS, HostDirectory
from .._fs._file import HostFile
from .._fs._stat import resolve_times, set_times_at
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

# fdflags -> host open flags. O_RSYNC is O_SYNC on Linux; O_DSYNC/O_RSYNC may
# be missing elsewhere, then the nearest stronger flag stands in.
_O_DSYNC = getattr(os, "O_DSYNC", os.O_SYNC)
_O_RSYNC = getattr(os, "O_RSYNC", os.O_SYNC)
_HOST_FDFLAGS = ((int(Fdflags.APPEND), os.O_APPEND), (int(Fdflags.DSYNC), _O_DSYNC),
                 (int(Fdflags.NONBLOCK), os.O_NONBLOCK), (int(Fdflags.RSYNC), _O_RSYNC),
                 (int(Fdflags.SYNC), os.O_SYNC))
_HOST_OFLAGS = ((_CREAT, os.O_CREAT), (_EXCL, os.O_EXCL), (_TRUNC, os.O_TRUNC),
                (_DIRECTORY, os.O_DIRECTORY))


def _flag_table(pairs: tuple[tuple[int, int], ...]) -> tuple[int, ...]:
    """The host flags of every valid combination of the WASI flags in
    ``pairs``, indexed by the WASI value: path_open translates with one
    lookup (its arguments are checked against the known bits first)."""
    table = []
    for value in range(1 << max(wasi for wasi, _ in pairs).bit_length()):
        flags = 0
        for wasi, host in pairs:
            if value & wasi:
                flags |= host  # |, not +: O_SYNC includes O_DSYNC's bit on Linux
        table.append(flags)
    return tuple(table)


_HOST_FDFLAGS_OF = _flag_table(_HOST_FDFLAGS)
_HOST_OFLAGS_OF = _flag_table(_HOST_OFLAGS)

# Which requested rights make the host open read or write. FD_DATASYNC is not
# a write right here: fdatasync works on a read-only fd and DIR_RIGHTS grants
# it, so asking for it must not turn a directory open into ISDIR.
_READ_RIGHTS = int(Rights.FD_READ | Rights.FD_READDIR)
_WRITE_RIGHTS = int(Rights.FD_WRITE | Rights.FD_ALLOCATE | Rights.FD_FILESTAT_SET_SIZE)

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


def _split_last(path: str) -> tuple[str, bool]:
    """("everything up to and including the last '/'", had a trailing slash)."""
    trailing = path.endswith("/")
    head = path.rstrip("/")
    return head[:head.rfind("/") + 1], trailing


def _follow_final(dir_fd: int, path: str, *, follow: bool) -> str:
    """``path`` with its final symlinks expanded (when ``follow``, or when a
    trailing slash demands it, as POSIX does), as another *guest* path.

    The target is spliced in where the link's name was and the result goes
    through the resolver again, so ``..`` and absolute targets are judged
    exactly as in any other path (an escape is PERM); the expansions share
    the resolver's MAX_SYMLINKS budget (more is LOOP). The name that comes
    back is never acted on with follow_symlinks=True: a link swapped in after
    this returns is acted on itself, inside the tree.
    """
    for _ in range(MAX_SYMLINKS + 1):
        with at_parent(dir_fd, path) as parent:
            if parent.name == "." or not (follow or parent.trailing_slash):
                return path
            try:
                target = os.readlink(parent.name, dir_fd=parent.dir_fd)
            except OSError as e:
                if e.errno in (_host.EINVAL, _host.ENOENT):  # not a link / absent
                    return path
                raise
        head, trailing = _split_last(path)
        if target.startswith("/"):
            path = target + ("/" if trailing else "")
        else:
            path = head + target + ("/" if trailing else "")
    raise WasiError(Errno.LOOP)


class PathCalls(Context):
    # -- the two helpers every call uses -----------------------------------
    def _guest_path(self, ptr: int, length: int) -> str:
        """The guest's path string: bounds-checked, UTF-8, no NUL."""
        try:
            path = str(self.memory.slice(ptr, length), "utf-8")  # decoded in place, no copy
        except UnicodeDecodeError:
            raise WasiError(Errno.ILSEQ) from None
        if "\0" in path:
            raise WasiError(Errno.INVAL, "path contains a NUL byte")
        return path

    def _dir(self, fd: int, needed: int) -> HostDirectory:
        """The directory ``fd`` with the ``needed`` rights.

        NOTE: a descriptor that is not a directory answers NOTDIR before its
        rights are looked at (POSIX openat's ENOTDIR; wasmtime's
        path_open_dirfd_not_dir expects it for a file opened with no rights).
        Rights are still checked only by ``FdTable.get``.
        """
        try:
            desc = self.fds.get(fd, needed)
        except WasiError as e:
            if e.errno == Errno.NOTCAPABLE and not isinstance(self.fds.get(fd), HostDirectory):
                raise WasiError(Errno.NOTDIR) from None
            raise
        if not isinstance(desc, HostDirectory):
            raise WasiError(Errno.NOTDIR)
        return desc

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
        # PATH_FILESTAT_SET_SIZE, on the directory.
        needed = _PATH_OPEN
        if oflags & _CREAT:
            needed |= _PATH_CREATE_FILE
        if oflags & _TRUNC:
            needed |= _PATH_FILESTAT_SET_SIZE
        directory = self._dir(fd, needed)
        # NOTE: rights only narrow. Asking for a right the directory cannot
        # hand down (not in its rights_inheriting) is NOTCAPABLE, as uvwasi
        # (node:wasi) and wasi-common's rights model answer; current wasmtime
        # ignores rights. wasi-libc, Rust std and Go all ask for a subset.
        if (fs_rights_base | fs_rights_inheriting) & ~directory.rights_inheriting:
            raise WasiError(Errno.NOTCAPABLE)
        name = self._guest_path(path, path_len)

        if fs_rights_base & _WRITE_RIGHTS:
            flags = os.O_RDWR if fs_rights_base & _READ_RIGHTS else os.O_WRONLY
        else:
            flags = os.O_RDONLY
        flags |= _HOST_OFLAGS_OF[oflags] | _HOST_FDFLAGS_OF[fdflags]
        # A directory opened with a write right: the host open itself answers
        # EISDIR (ISDIR), as the spec's rights model implies.
        host_fd = open_beneath(directory.fd, name, flags, 0o666, follow=bool(dirflags & _FOLLOW))
        try:
            desc: Descriptor
            # CREAT|EXCL succeeded: this call created it, so it is a new
            # regular file (open(2) fails with EEXIST on anything that was
            # there) -- no fstat needed.
            creat_excl = flags & (os.O_CREAT | os.O_EXCL) == os.O_CREAT | os.O_EXCL
            mode = stat.S_IFREG if creat_excl else os.fstat(host_fd).st_mode
            if stat.S_ISDIR(mode):
                # Spec: the implementation may grant fewer rights than asked
                # "if and only if those rights do not apply to the type".
                desc = HostDirectory(host_fd, preopen=None,
                                     rights_base=fs_rights_base & DIR_RIGHTS,
                                     rights_inheriting=fs_rights_inheriting & DIR_INHERITING)
            else:
                desc = HostFile(host_fd, rights_base=fs_rights_base & FILE_RIGHTS,
                                rights_inheriting=fs_rights_inheriting & DIR_INHERITING,
                                st_mode=mode)
            new_fd = self.fds.allocate(desc)
        except BaseException:
            os.close(host_fd)
            raise
        try:
            self.memory.store_u32(opened_fd_ptr, new_fd)
        except BaseException:
            self.fds.remove(new_fd).close()
            raise

    # -- directories ------------------------------------------------------
    def path_create_directory(self, fd: int, path: int, path_len: int) -> None:
        directory = self._dir(fd, int(Rights.PATH_CREATE_DIRECTORY))
        name = self._guest_path(path, path_len)
        with at_parent(directory.fd, name) as parent:
            if parent.name == ".":  # "." and "a/..": they exist
                raise WasiError(Errno.EXIST)
            os.mkdir(parent.name, 0o777, dir_fd=parent.dir_fd)

    def path_remove_directory(self, fd: int, path: int, path_len: int) -> None:
        directory = self._dir(fd, int(Rights.PATH_REMOVE_DIRECTORY))
        name = self._guest_path(path, path_len)
        with at_parent(directory.fd, name) as parent:
            if parent.name == ".":  # POSIX rmdir("."): EINVAL
                raise WasiError(Errno.INVAL)
            # "link/" where link -> dir: rmdir of the name, a symlink: NOTDIR
            # (as Linux answers).
            os.rmdir(parent.name, dir_fd=parent.dir_fd)

    # -- stat and times ---------------------------------------------------
    def _filestat_at(self, fd: int, flags: int, path: int, path_len: int) -> tuple[int, ...]:
        if flags & ~_ALL_LOOKUPFLAGS:  # _flags_ok, inlined: once per stat
            raise WasiError(Errno.INVAL)
        directory = self._dir(fd, _PATH_FILESTAT_GET)
        name = self._guest_path(path, path_len)
        return stat_beneath(directory.fd, name, follow=bool(flags & _FOLLOW))

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
        directory = self._dir(fd, int(Rights.PATH_FILESTAT_SET_TIMES))
        name = _follow_final(directory.fd, self._guest_path(path, path_len),
                             follow=bool(flags & _FOLLOW))
        with at_parent(directory.fd, name) as parent:
            if parent.trailing_slash and parent.name != ".":
                # "file/": NOTDIR ("dir/" is fine; a link was expanded above).
                if not stat.S_ISDIR(os.stat(parent.name, dir_fd=parent.dir_fd,
                                            follow_symlinks=False).st_mode):
                    raise WasiError(Errno.NOTDIR)
            set_times_at(parent.dir_fd, parent.name, atim, mtim, fst_flags, False)

    # -- links --------------------------------------------------------------
    def path_link(self, old_fd: int, old_flags: int, old_path: int, old_path_len: int,
                  new_fd: int, new_path: int, new_path_len: int) -> None:
        _flags_ok(old_flags, _ALL_LOOKUPFLAGS)
        source = self._dir(old_fd, int(Rights.PATH_LINK_SOURCE))
        target = self._dir(new_fd, int(Rights.PATH_LINK_TARGET))
        old = _follow_final(source.fd, self._guest_path(old_path, old_path_len),
                            follow=bool(old_flags & _FOLLOW))
        new = self._guest_path(new_path, new_path_len)
        with at_parent(source.fd, old) as src, at_parent(target.fd, new) as dst:
            st = os.stat(src.name, dir_fd=src.dir_fd, follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):  # POSIX link(2): EPERM for a directory
                raise WasiError(Errno.PERM)
            if src.trailing_slash:  # "file/"
                raise WasiError(Errno.NOTDIR)
            _creatable(dst)
            # follow_symlinks=False: linkat without AT_SYMLINK_FOLLOW, so a
            # link (swapped in or not) is linked itself, never its target.
            os.link(src.name, dst.name, src_dir_fd=src.dir_fd, dst_dir_fd=dst.dir_fd,
                    follow_symlinks=False)

    def path_symlink(self, old_path: int, old_path_len: int, fd: int, new_path: int,
                     new_path_len: int) -> None:
        directory = self._dir(fd, int(Rights.PATH_SYMLINK))
        link_target = self._guest_path(old_path, old_path_len)
        name = self._guest_path(new_path, new_path_len)
        # NOTE: an absolute target is PERM, as wasmtime (cap-std) answers: it
        # can never resolve inside a preopen (the resolver refuses it when
        # followed), so creating one would only leave a trap for the host's
        # own tools. Checked here, on the guest's text, before any filesystem
        # is asked, so it holds for every kind of directory tree alike. A
        # relative target is stored verbatim: it is only text until someone
        # follows it, and then the resolver judges it (climbing out: PERM).
        if link_target.startswith("/"):
            raise WasiError(Errno.PERM)
        with at_parent(directory.fd, name) as parent:
            _creatable(parent)
            os.symlink(link_target, parent.name, dir_fd=parent.dir_fd)

    def path_readlink(self, fd: int, path: int, path_len: int, buf: int, buf_len: int,
                      bufused_ptr: int) -> None:
        directory = self._dir(fd, int(Rights.PATH_READLINK))
        name = self._guest_path(path, path_len)
        with at_parent(directory.fd, name) as parent:
            if parent.trailing_slash:
                # "link/" names what the link points to, never a link: report
                # why that fails (NOENT, NOTDIR, LOOP, PERM...) or INVAL.
                stat_beneath(directory.fd, name, follow=True)
                raise WasiError(Errno.INVAL)
            contents = os.readlink(os.fsencode(parent.name), dir_fd=parent.dir_fd)
        # NOTE: a short buffer truncates without an error, as readlink(2),
        # wasmtime and uvwasi do; bufused says how much was written.
        data = contents[:buf_len]
        self.memory.slice(bufused_ptr, 4)  # bounds first: no partial output
        self.memory.write_bytes(buf, data)
        self.memory.store_u32(bufused_ptr, len(data))

    # -- removing and renaming --------------------------------------------
    def path_unlink_file(self, fd: int, path: int, path_len: int) -> None:
        directory = self._dir(fd, _PATH_UNLINK_FILE)
        name = self._guest_path(path, path_len)
        with at_parent(directory.fd, name) as parent:
            if parent.name == ".":
                raise WasiError(Errno.ISDIR)
            if parent.trailing_slash:
                # Linux: "dir/" is ISDIR, "file/" and "link/" are NOTDIR.
                st = os.stat(parent.name, dir_fd=parent.dir_fd, follow_symlinks=False)
                raise WasiError(Errno.ISDIR if stat.S_ISDIR(st.st_mode) else Errno.NOTDIR)
            os.unlink(parent.name, dir_fd=parent.dir_fd)

    def path_rename(self, fd: int, old_path: int, old_path_len: int, new_fd: int,
                    new_path: int, new_path_len: int) -> None:
        source = self._dir(fd, int(Rights.PATH_RENAME_SOURCE))
        target = self._dir(new_fd, int(Rights.PATH_RENAME_TARGET))
        old = self._guest_path(old_path, old_path_len)
        new = self._guest_path(new_path, new_path_len)
        with at_parent(source.fd, old) as src, at_parent(target.fd, new) as dst:
            if src.name == "." or dst.name == ".":  # Linux renameat: EBUSY
                raise WasiError(Errno.BUSY)
            if src.trailing_slash or dst.trailing_slash:
                # A trailing slash on either side demands a directory source.
                st = os.stat(src.name, dir_fd=src.dir_fd, follow_symlinks=False)
                if not stat.S_ISDIR(st.st_mode):
                    raise WasiError(Errno.NOTDIR)
            os.rename(src.name, dst.name, src_dir_fd=src.dir_fd, dst_dir_fd=dst.dir_fd)


def _creatable(parent: ParentDir) -> None:
    """For calls that create ``parent.name`` (link, symlink): "." exists, and
    "new/" cannot be created (Linux: EEXIST if the name exists, else ENOENT)."""
    if parent.name == ".":
        raise WasiError(Errno.EXIST)
    if parent.trailing_slash:
        try:
            os.stat(parent.name, dir_fd=parent.dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            raise WasiError(Errno.NOENT) from None
        raise WasiError(Errno.EXIST)
