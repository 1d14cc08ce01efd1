"""Host directory descriptors (preopens and directories the guest opens).

``fd_readdir`` cookies: a cookie is an index into the listing cached on the
descriptor (entry ``i`` has ``d_next == i + 1``; ``.`` and ``..`` are 0 and
1). The host directory is read once, when the guest asks for cookie 0 (a
rewind, as ``rewinddir`` does) or for the first time; every other cookie is
served from the cache. So cookies are stable -- resuming from any cookie
previously returned gives the same continuation -- and a full listing through
a small buffer costs one host read, not one per call. Entries created or
removed after the read show up at the next rewind.
"""

from __future__ import annotations

import errno as _host
import os
import stat
import sys

from .._abi import Errno, Fdflags, Filetype, Oflags, Rights
from .._errors import WasiError
from ._base import Descriptor, Directory
from ._file import HostFile
from ._resolve import MAX_SYMLINKS, ParentDir, at_parent, open_beneath, stat_beneath
from ._stat import filestat_values, set_times_at, set_times_fd
from ._stream import fdatasync, filetype_of_mode

__all__ = ["HostDirectory", "DIR_RIGHTS", "DIR_INHERITING"]

# What a directory can be asked to do, and what it can hand down to what is
# opened through it (files get the file rights, subdirectories both sets).
DIR_RIGHTS = int(
    Rights.FD_FDSTAT_SET_FLAGS | Rights.FD_SYNC | Rights.FD_ADVISE | Rights.FD_DATASYNC
    | Rights.PATH_CREATE_DIRECTORY | Rights.PATH_CREATE_FILE | Rights.PATH_LINK_SOURCE
    | Rights.PATH_LINK_TARGET | Rights.PATH_OPEN | Rights.FD_READDIR | Rights.PATH_READLINK
    | Rights.PATH_RENAME_SOURCE | Rights.PATH_RENAME_TARGET | Rights.PATH_FILESTAT_GET
    | Rights.PATH_FILESTAT_SET_SIZE | Rights.PATH_FILESTAT_SET_TIMES | Rights.FD_FILESTAT_GET
    | Rights.FD_FILESTAT_SET_TIMES | Rights.PATH_SYMLINK | Rights.PATH_REMOVE_DIRECTORY
    | Rights.PATH_UNLINK_FILE | Rights.POLL_FD_READWRITE)
FILE_RIGHTS = int(
    Rights.FD_DATASYNC | Rights.FD_READ | Rights.FD_SEEK | Rights.FD_FDSTAT_SET_FLAGS
    | Rights.FD_SYNC | Rights.FD_TELL | Rights.FD_WRITE | Rights.FD_ADVISE | Rights.FD_ALLOCATE
    | Rights.FD_FILESTAT_GET | Rights.FD_FILESTAT_SET_SIZE | Rights.FD_FILESTAT_SET_TIMES
    | Rights.POLL_FD_READWRITE)
DIR_INHERITING = DIR_RIGHTS | FILE_RIGHTS

# os.fsencode's encoding, without its frames per entry of a large listing.
_FS_ENCODING = sys.getfilesystemencoding()
_FS_ERRORS = sys.getfilesystemencodeerrors()


class HostDirectory(Directory):
    """A directory on the host, held open by fd; every path operation on it
    goes through ``_fs._resolve`` relative to ``fd``, and the last component
    is then acted on with an ``*at`` call that never follows it. A final
    symlink the guest asks to follow is expanded by ``_follow_final`` into
    another guest path that goes through the resolver again, so escapes
    answer PERM everywhere, consistently.

    Trailing slashes follow Linux (POSIX leaves some cases open): "file/" is
    NOTDIR, "dir/" names the directory, a trailing slash after a symlink
    follows it, and creating a new name through "new/" (symlink, link) is
    NOENT."""

    __slots__ = ("fd", "preopen", "readonly", "_listing")

    def __init__(self, fd: int, *, preopen: bytes | None = None,
                 rights_base: int = DIR_RIGHTS, rights_inheriting: int = DIR_INHERITING) -> None:
        self.fd = fd
        self.preopen = preopen
        self.rights_base = rights_base
        self.rights_inheriting = rights_inheriting
        # (name, d_ino, d_type) per entry, "." and ".." first; None: not read.
        self._listing: list[tuple[bytes, int, int]] | None = None

    # -- metadata --------------------------------------------------------
    def filestat(self) -> tuple[int, ...]:
        return filestat_values(os.fstat(self.fd), Filetype.DIRECTORY)

    def set_times(self, atim: int, mtim: int, fst_flags: int) -> None:
        set_times_fd(self.fd, atim, mtim, fst_flags)

    def sync(self) -> None:
        os.fsync(self.fd)  # makes the entries themselves durable

    def datasync(self) -> None:
        fdatasync(self.fd)

    # -- listing ---------------------------------------------------------
    def _read_listing(self) -> list[tuple[bytes, int, int]]:
        own = os.fstat(self.fd).st_ino
        # ".." of a preopen is outside the sandbox: give it the root's own
        # inode rather than reveal (or touch) the host's parent. Any nonzero
        # d_ino will do: wasi-libc's readdir stats the name when d_ino is 0,
        # and ".." at the root would be refused.
        parent = own
        if self.preopen is None:
            try:
                parent = os.stat("..", dir_fd=self.fd, follow_symlinks=False).st_ino
            except OSError:
                pass
        entries: list[tuple[bytes, int, int]] = [
            (b".", own, Filetype.DIRECTORY), (b"..", parent, Filetype.DIRECTORY)]
        # os.scandir(fd) reads a dup of the fd from its start; the d_type the
        # kernel reports answers is_dir/is_symlink without an lstat.
        with os.scandir(self.fd) as it:
            for entry in it:
                entries.append((entry.name.encode(_FS_ENCODING, _FS_ERRORS), entry.inode(),
                                _dirent_type(entry)))
        return entries

    def readdir(self, cookie: int, limit: int, ordered: bool = False) -> bytes:
        if cookie == 0 or self._listing is None:
            self._listing = self._read_listing()
            if ordered:
                self._listing[2:] = sorted(self._listing[2:])
        return self.dirents(self._listing, cookie, limit)

    def close(self) -> None:
        self._listing = None
        os.close(self.fd)

    # -- the path calls, name by name (``Directory``) ---------------------
    def same_tree(self, other: Directory) -> bool:
        # Host directories on different filesystems: the host answers EXDEV.
        return isinstance(other, HostDirectory)

    def open_at(self, path: str, follow: bool, oflags: int, fdflags: int, read: bool,
                write: bool, rights_base: int, rights_inheriting: int) -> Descriptor:
        flags = (os.O_RDWR if read else os.O_WRONLY) if write else os.O_RDONLY
        flags |= _HOST_OFLAGS_OF[oflags] | _HOST_FDFLAGS_OF[fdflags]
        # A directory opened with a write right: the host open itself answers
        # EISDIR (ISDIR), as the spec's rights model implies.
        host_fd = open_beneath(self.fd, path, flags, 0o666, follow=follow)
        try:
            # CREAT|EXCL succeeded: this call created it, so it is a new
            # regular file (open(2) fails with EEXIST on anything that was
            # there) -- no fstat needed.
            creat_excl = flags & (os.O_CREAT | os.O_EXCL) == os.O_CREAT | os.O_EXCL
            mode = stat.S_IFREG if creat_excl else os.fstat(host_fd).st_mode
            if stat.S_ISDIR(mode):
                # Spec: the implementation may grant fewer rights than asked
                # "if and only if those rights do not apply to the type".
                return HostDirectory(host_fd, preopen=None, rights_base=rights_base & DIR_RIGHTS,
                                     rights_inheriting=rights_inheriting & DIR_INHERITING)
            return HostFile(host_fd, rights_base=rights_base & FILE_RIGHTS,
                            rights_inheriting=rights_inheriting & DIR_INHERITING, st_mode=mode)
        except BaseException:
            os.close(host_fd)
            raise

    def mkdir_at(self, path: str) -> None:
        with at_parent(self.fd, path) as parent:
            if parent.name == ".":  # "." and "a/..": they exist
                raise WasiError(Errno.EXIST)
            os.mkdir(parent.name, 0o777, dir_fd=parent.dir_fd)

    def rmdir_at(self, path: str) -> None:
        with at_parent(self.fd, path) as parent:
            if parent.name == ".":  # POSIX rmdir("."): EINVAL
                raise WasiError(Errno.INVAL)
            # "link/" where link -> dir: rmdir of the name, a symlink: NOTDIR
            # (as Linux answers).
            os.rmdir(parent.name, dir_fd=parent.dir_fd)

    def stat_at(self, path: str, follow: bool) -> tuple[int, ...]:
        return stat_beneath(self.fd, path, follow=follow)

    def set_times_at(self, path: str, follow: bool, atim: int, mtim: int,
                     fst_flags: int) -> None:
        name = _follow_final(self.fd, path, follow=follow)
        with at_parent(self.fd, name) as parent:
            if parent.trailing_slash and parent.name != ".":
                # "file/": NOTDIR ("dir/" is fine; a link was expanded above).
                if not stat.S_ISDIR(os.stat(parent.name, dir_fd=parent.dir_fd,
                                            follow_symlinks=False).st_mode):
                    raise WasiError(Errno.NOTDIR)
            set_times_at(parent.dir_fd, parent.name, atim, mtim, fst_flags, False)

    def link_at(self, old: str, follow: bool, target: Directory, new: str) -> None:
        assert isinstance(target, HostDirectory)  # same_tree
        old = _follow_final(self.fd, old, follow=follow)
        with at_parent(self.fd, old) as src, at_parent(target.fd, new) as dst:
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

    def symlink_at(self, contents: str, path: str) -> None:
        with at_parent(self.fd, path) as parent:
            _creatable(parent)
            os.symlink(contents, parent.name, dir_fd=parent.dir_fd)

    def readlink_at(self, path: str) -> bytes:
        with at_parent(self.fd, path) as parent:
            if parent.trailing_slash:
                # "link/" names what the link points to, never a link: report
                # why that fails (NOENT, NOTDIR, LOOP, PERM...) or INVAL.
                stat_beneath(self.fd, path, follow=True)
                raise WasiError(Errno.INVAL)
            return os.readlink(os.fsencode(parent.name), dir_fd=parent.dir_fd)

    def unlink_at(self, path: str) -> None:
        with at_parent(self.fd, path) as parent:
            if parent.name == ".":
                raise WasiError(Errno.ISDIR)
            if parent.trailing_slash:
                # Linux: "dir/" is ISDIR, "file/" and "link/" are NOTDIR.
                st = os.stat(parent.name, dir_fd=parent.dir_fd, follow_symlinks=False)
                raise WasiError(Errno.ISDIR if stat.S_ISDIR(st.st_mode) else Errno.NOTDIR)
            os.unlink(parent.name, dir_fd=parent.dir_fd)

    def rename_at(self, old: str, target: Directory, new: str) -> None:
        assert isinstance(target, HostDirectory)  # same_tree
        with at_parent(self.fd, old) as src, at_parent(target.fd, new) as dst:
            if src.name == "." or dst.name == ".":  # Linux renameat: EBUSY
                raise WasiError(Errno.BUSY)
            if src.trailing_slash or dst.trailing_slash:
                # A trailing slash on either side demands a directory source.
                st = os.stat(src.name, dir_fd=src.dir_fd, follow_symlinks=False)
                if not stat.S_ISDIR(st.st_mode):
                    raise WasiError(Errno.NOTDIR)
            os.rename(src.name, dst.name, src_dir_fd=src.dir_fd, dst_dir_fd=dst.dir_fd)


# fdflags -> host open flags. O_RSYNC is O_SYNC on Linux; O_DSYNC/O_RSYNC may
# be missing elsewhere, then the nearest stronger flag stands in.
_O_DSYNC = getattr(os, "O_DSYNC", os.O_SYNC)
_O_RSYNC = getattr(os, "O_RSYNC", os.O_SYNC)
_HOST_FDFLAGS = ((int(Fdflags.APPEND), os.O_APPEND), (int(Fdflags.DSYNC), _O_DSYNC),
                 (int(Fdflags.NONBLOCK), os.O_NONBLOCK), (int(Fdflags.RSYNC), _O_RSYNC),
                 (int(Fdflags.SYNC), os.O_SYNC))
_HOST_OFLAGS = ((int(Oflags.CREAT), os.O_CREAT), (int(Oflags.EXCL), os.O_EXCL),
                (int(Oflags.TRUNC), os.O_TRUNC), (int(Oflags.DIRECTORY), os.O_DIRECTORY))


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


def _dirent_type(entry: os.DirEntry[str]) -> int:
    try:
        # The kinds exclude each other; the commonest is asked first.
        if entry.is_file(follow_symlinks=False):
            return Filetype.REGULAR_FILE
        if entry.is_dir(follow_symlinks=False):
            return Filetype.DIRECTORY
        if entry.is_symlink():
            return Filetype.SYMBOLIC_LINK
        # A device, FIFO or socket: only these cost an lstat.
        mode = entry.stat(follow_symlinks=False).st_mode
    except OSError:  # removed since the read
        return Filetype.UNKNOWN
    if stat.S_ISFIFO(mode):
        return Filetype.UNKNOWN
    return filetype_of_mode(mode)
