"""The sandbox resolver: the one place where a guest path becomes a host call.

Invariants (the escape suite, ``tests/security``, checks each of them):

1. Every host call is relative to a directory fd; a guest path is never joined
   onto a host path string.  The only host call that sees more than one
   component of a guest path is ``openat2`` with ``RESOLVE_BENEATH``, where the
   kernel enforces the tree.
2. Nothing a guest names -- ``..``, an absolute or relative symlink (final or
   in the middle), a magic link (``/proc/self/fd/N``, ``/proc/self/root``) or a
   directory renamed while we walk -- resolves to anything outside the tree
   rooted at the directory fd we were given.
3. Every fd opened here is either handed to the caller or closed before we
   return, on success and on error alike.

Errno policy
------------
Every refused path -- an absolute path, ``..`` above the root, a symlink whose
target is absolute or climbs above the root -- raises ``WasiError(Errno.PERM)``
(``ESCAPE_ERRNO``).  Why PERM and not NOTCAPABLE: wasi-filesystem's
path-resolution.md answers ``not-permitted`` for exactly these cases, wasmtime's
preview1 (cap-std) answers PERM, and wasi-testsuite accepts it; NOTCAPABLE stays
reserved for what its name says, a descriptor lacking a *right*, so a guest can
tell "this fd may not do that" from "this path leaves your directory".

A symlink that leaves and comes back in (``../pre/x`` from the root of
``pre``, or an absolute target that happens to name a file inside) is refused
too: a target is judged by where it goes, step by step, as RESOLVE_BENEATH
does, never by where it ends up; the guest cannot know the host's path anyway.

Other errors: an embedded NUL is INVAL; an empty path is NOENT; more than
``MAX_SYMLINKS`` (40, Linux's limit) symlink expansions in one lookup is LOOP;
a non-directory in the middle is NOTDIR; a path of PATH_MAX (4096) bytes or
more is NAMETOOLONG.  Everything else is the host's OSError, left to the
dispatcher's ``errno_from_host``.

Hard links: a hard link is the same inode under another name; a link placed
in the tree by the host *is* inside by definition.  The guard is that a guest
cannot *create* a link to a file outside, and ``at_parent`` gives ``path_link``
two parent fds inside the tree, so ``os.link(a, b, src_dir_fd=, dst_dir_fd=,
follow_symlinks=False)`` can only name files already inside.

Two routes, same answers
------------------------
* Linux 5.6+: ``openat2(dir_fd, path, {flags, mode, RESOLVE_BENEATH |
  RESOLVE_NO_MAGICLINKS})``.  Probed once; ENOSYS/EPERM (old kernel, seccomp)
  switch it off.  EXDEV means an escape.  EAGAIN (a rename raced with a
  ``..``) is retried, then we walk by hand.  ELOOP is ambiguous (a loop, a
  refused magic link, a final symlink under O_NOFOLLOW), so we walk by hand
  to get the same errno the manual route gives.
* Anywhere (and when ``_USE_OPENAT2`` is False): walk one component at a time
  from ``dir_fd`` with ``O_PATH|O_DIRECTORY|O_NOFOLLOW``, expand symlinks by
  hand, keep a stack of held directory fds for ``..`` (popping past the root is
  an escape).  ``..`` is never opened on the host: a directory renamed out of
  the tree would have its host ``..`` outside.

Before either route, one plain name (no "/", not "." or "..",
``_single_name``) is looked up in the directory itself by one call that does
not follow it: ``openat(O_NOFOLLOW)`` for ``open_beneath``, ``openat(O_PATH|
O_DIRECTORY|O_NOFOLLOW)`` for a parent directory named by one name (the
manual walk's own step), ``fstatat(AT_SYMLINK_NOFOLLOW)`` of a final name in
its parent for ``stat_beneath``, and ``at_parent`` lends ``dir_fd`` itself for
a path of one name.  Nothing in such a lookup can leave the tree (no "..", no
intermediate link, the name itself is not followed), so it is what both
routes would do, minus their set-up; a name that turns out to be a link to
follow is redone by a route.  The escape suite runs every such case on both
routes.  Why: these are the common lookups (a file in a preopen, a file in a
directory of it), and one os.open/fstatat costs less than openat2 and the
routes' set-up (bench/hotpath.py's W3).
"""

from __future__ import annotations

import ctypes
import errno as _host
import os
import stat
import struct
import sys

from .._abi import Filetype
from .._abi._errno import Errno
from .._errors import WasiError
from .._native import ACCEL
from ._stat import filestat_values, lstat_at

# Annotation-only names: mypy takes any TYPE_CHECKING as true, and run time
# never imports typing (nor the re it pulls in: start-up, tests/test_import_cost.py).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["ESCAPE_ERRNO", "MAX_SYMLINKS", "ParentDir", "at_parent", "open_beneath", "stat_beneath"]

ESCAPE_ERRNO = Errno.PERM
MAX_SYMLINKS = 40  # Linux's MAXSYMLINKS
PATH_MAX = 4096

# Route selection.  None: use openat2 if the probe says it works.  Tests set
# True (only after checking ``openat2_available()``) or False.
_USE_OPENAT2: bool | None = None
_EAGAIN_RETRIES = 4

_O_PATH: int = getattr(os, "O_PATH", 0)
_O_CLOEXEC: int = getattr(os, "O_CLOEXEC", 0)
_O_TMPFILE: int = getattr(os, "O_TMPFILE", 0)
# How the manual walk opens an intermediate directory: no read right needed
# where O_PATH exists, never following a symlink.
_O_DIR_STEP = (_O_PATH or os.O_RDONLY) | os.O_DIRECTORY | os.O_NOFOLLOW | _O_CLOEXEC

# Errnos a host open with O_NOFOLLOW gives when the last component is a symlink:
# ELOOP (Linux, POSIX), ENOTDIR (with O_DIRECTORY), EMLINK (FreeBSD).
_MAYBE_SYMLINK = frozenset({_host.ELOOP, _host.ENOTDIR, _host.EMLINK})

# A marker component for a trailing slash: "a/b/" is ["a", "b", ""].  It acts
# as "." (the name before it must be a directory, and is followed) but lets
# open(O_CREAT) answer EISDIR, as Linux does for "new/".
_TRAILING = ""


class ParentDir:
    """What ``at_parent`` yields.

    ``dir_fd``: a directory inside the tree (O_PATH on Linux; usable as the
    ``dir_fd`` of every ``*at`` call).  ``name``: one component, never
    containing "/" or NUL, never ".."; it is "." when the path's last
    component was "." or ".." (then ``dir_fd`` is that directory itself).
    ``trailing_slash``: the path demands a directory (it ended in "/", "." or
    ".."); e.g. ``path_unlink_file`` answers NOTDIR/ISDIR accordingly.

    A plain class, not a ``typing.NamedTuple`` (typing and re: start-up);
    it still unpacks, compares and prints as the 3-tuple it was.
    """

    __slots__ = ("dir_fd", "name", "trailing_slash")

    def __init__(self, dir_fd: int, name: str, trailing_slash: bool) -> None:
        self.dir_fd = dir_fd
        self.name = name
        self.trailing_slash = trailing_slash

    def _fields(self) -> tuple[int, str, bool]:
        return self.dir_fd, self.name, self.trailing_slash

    def __iter__(self) -> Iterator[int | str | bool]:
        return iter(self._fields())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ParentDir):
            return self._fields() == other._fields()
        if isinstance(other, tuple):
            return self._fields() == other
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._fields())

    def __repr__(self) -> str:
        return (f"ParentDir(dir_fd={self.dir_fd!r}, name={self.name!r}, "
                f"trailing_slash={self.trailing_slash!r})")


def _escape(path: str) -> WasiError:
    return WasiError(ESCAPE_ERRNO, f"path leads outside the preopened directory: {path!r}")


def _components(path: str) -> list[str]:
    """Split on "/", dropping empty components; a trailing "/" becomes the
    ``_TRAILING`` marker.  "." and ".." are kept (the walk needs them)."""
    parts = [p for p in path.split("/") if p]
    if path.endswith("/") and parts:
        parts.append(_TRAILING)
    return parts


_FS_ENCODING = sys.getfilesystemencoding()
_FS_ERRORS = sys.getfilesystemencodeerrors()


def _check(path: str) -> bytes:
    """Validate a guest path; return it encoded for the host (os.fsencode's
    encoding, without its per-call frames: this runs on every path call)."""
    if "\0" in path:
        raise WasiError(Errno.INVAL, "path contains a NUL byte")
    if not path:
        raise WasiError(Errno.NOENT, "empty path")
    if path[0] == "/":
        raise _escape(path)
    bpath = path.encode(_FS_ENCODING, _FS_ERRORS)
    if len(bpath) >= PATH_MAX:
        raise WasiError(Errno.NAMETOOLONG)
    return bpath


# --------------------------------------------------------------------------
# openat2 (Linux >= 5.6)

_RESOLVE_NO_MAGICLINKS = 0x02
_RESOLVE_BENEATH = 0x08
_RESOLVE = _RESOLVE_BENEATH | _RESOLVE_NO_MAGICLINKS
_SYS_OPENAT2 = 437  # the same number on every architecture (asm-generic, x86, ...)

# struct open_how {u64 flags; u64 mode; u64 resolve;} (linux/openat2.h), in
# native byte order. A call passes an immutable packed copy; there are only a
# few (flags, mode) pairs in a run, so each is packed once and kept.
_OPEN_HOW = struct.Struct("=QQQ")
_OPEN_HOW_CACHE_MAX = 256
_open_hows: dict[tuple[int, int], bytes] = {}

_syscall: ctypes._NamedFuncPointer | None = None
_OPENAT2_OK: bool | None = None  # probe result, cached
_c_openat2 = ACCEL.openat2 if ACCEL is not None else None
_SYMBOLIC_LINK = int(Filetype.SYMBOLIC_LINK)


def _raw_openat2(dir_fd: int, path: bytes, flags: int, mode: int) -> tuple[int, int]:
    """(fd, 0) or (-1, errno). The compiled extension's openat2 where it is
    built (a C call, retried on EINTR), else syscall(2) through ctypes."""
    if _c_openat2 is not None:
        ret: int = _c_openat2(dir_fd, path, flags, mode, _RESOLVE)
        return (ret, 0) if ret >= 0 else (-1, -ret)
    assert _syscall is not None
    key = (flags, mode)
    how = _open_hows.get(key)
    if how is None:
        how = _OPEN_HOW.pack(flags, mode, _RESOLVE)
        if len(_open_hows) < _OPEN_HOW_CACHE_MAX:
            _open_hows[key] = how
    ret = _syscall(_SYS_OPENAT2, dir_fd, path, how, _OPEN_HOW.size)
    if ret < 0:
        return -1, ctypes.get_errno()
    return ret, 0


def openat2_available() -> bool:
    """Whether this host answers openat2 (probed once)."""
    global _OPENAT2_OK, _syscall
    if _OPENAT2_OK is None:
        _OPENAT2_OK = False
        if sys.platform.startswith("linux") and _O_PATH:
            if _c_openat2 is None:
                try:
                    # No argtypes, on purpose: declared ones build a ctypes
                    # object per argument per call (measured: 1.2 us a call
                    # against 0.8 without). Undeclared, ctypes passes bytes
                    # as a pointer to their (NUL-terminated) buffer, which the
                    # kernel only reads, and small ints as C int, which libffi
                    # sign-extends into the 64-bit argument registers
                    # syscall(2) reads as long on the 64-bit ABIs (x86-64,
                    # aarch64; on 32-bit ones int is long); every int passed
                    # here is small.
                    fn = ctypes.CDLL(None, use_errno=True).syscall
                    fn.restype = ctypes.c_long
                    _syscall = fn
                except (OSError, AttributeError):
                    pass
            if _c_openat2 is not None or _syscall is not None:
                fd = _raw_openat2(-100, b".", _O_PATH | os.O_DIRECTORY | _O_CLOEXEC,
                                  0)[0]  # -100: AT_FDCWD
                if fd >= 0:
                    os.close(fd)
                    _OPENAT2_OK = True
            # ENOSYS (kernel < 5.6), EPERM (seccomp), E2BIG/EINVAL: walk by hand.
    return _OPENAT2_OK


def _kernel_route() -> bool:
    ok = _OPENAT2_OK if _OPENAT2_OK is not None else openat2_available()
    return ok if _USE_OPENAT2 is None else _USE_OPENAT2 and ok


def _openat2_beneath(dir_fd: int, bpath: bytes, flags: int, mode: int) -> int | None:
    """An fd, an exception, or None: "ask the manual walk"."""
    if not (flags & os.O_CREAT or (_O_TMPFILE and flags & _O_TMPFILE == _O_TMPFILE)):
        mode = 0  # openat2 rejects a mode it would not use
    for _ in range(_EAGAIN_RETRIES):
        fd, err = _raw_openat2(dir_fd, bpath, flags | _O_CLOEXEC, mode)
        if fd >= 0:
            return fd
        if err == _host.EAGAIN:  # a rename or mount raced with "..": try again
            continue
        if err == _host.EXDEV:
            raise _escape(os.fsdecode(bpath))
        if err in (_host.ELOOP, _host.ENOSYS):
            return None
        raise OSError(err, os.strerror(err), os.fsdecode(bpath))
    return None


# --------------------------------------------------------------------------
# The manual walk


class _Walk:
    """The held directory fds from the root down, and the symlink budget."""

    __slots__ = ("root", "stack", "links", "path")

    def __init__(self, root: int, path: str) -> None:
        self.root = root
        self.stack: list[int] = []
        self.links = 0
        self.path = path

    @property
    def cur(self) -> int:
        return self.stack[-1] if self.stack else self.root

    def close(self) -> None:
        while self.stack:
            os.close(self.stack.pop())

    def up(self) -> None:
        if not self.stack:
            raise _escape(self.path)
        os.close(self.stack.pop())

    def take(self) -> tuple[int, bool]:
        """Hand the current directory to the caller: (fd, caller must close)."""
        if not self.stack:
            return self.root, False
        return self.stack.pop(), True

    def readlink(self, name: str) -> str | None:
        """The target if ``name`` in the current directory is a symlink, else None."""
        try:
            return os.readlink(name, dir_fd=self.cur)
        except OSError as e:
            if e.errno in (_host.EINVAL, _host.ENOENT):  # not a link (any more)
                return None
            raise

    def expand(self, target: str, rest: list[str]) -> None:
        """Push a symlink's target in front of the components still to walk
        (``rest`` is reversed: the next component is ``rest[-1]``)."""
        self.links += 1
        if self.links > MAX_SYMLINKS:
            raise WasiError(Errno.LOOP, f"too many symbolic links: {self.path!r}")
        if not target:
            raise WasiError(Errno.NOENT)
        if target.startswith("/"):
            raise _escape(self.path)
        rest.extend(reversed(_components(target)))

    def expand_link(self, name: str, rest: list[str], error: OSError) -> None:
        """Opening ``name`` failed as it does on a symlink (``_MAYBE_SYMLINK``):
        walk into its target (``expand``), or raise ``error`` if it is no link."""
        target = self.readlink(name)
        if target is None:
            raise error
        self.expand(target, rest)

    def step(self, name: str, rest: list[str]) -> None:
        """Walk through one component that must be a directory."""
        if name in (".", _TRAILING):
            return
        if name == "..":
            self.up()
            return
        try:
            fd = os.open(name, _O_DIR_STEP, dir_fd=self.cur)
        except OSError as e:
            if e.errno not in _MAYBE_SYMLINK:
                raise
            self.expand_link(name, rest, e)
            return
        self.stack.append(fd)


def _manual_open_dir(dir_fd: int, parts: list[str], path: str) -> tuple[int, bool]:
    w = _Walk(dir_fd, path)
    rest = parts[::-1]
    try:
        while rest:
            w.step(rest.pop(), rest)
        return w.take()
    finally:
        w.close()


def _manual_open(dir_fd: int, parts: list[str], path: str, flags: int, mode: int,
                 follow: bool) -> int:
    w = _Walk(dir_fd, path)
    rest = parts[::-1]
    flags |= _O_CLOEXEC
    try:
        while True:
            name = rest.pop()
            if rest:
                if rest == [_TRAILING] and flags & os.O_CREAT and name not in (".", ".."):
                    # Linux: open("x/", O_CREAT) is EISDIR before any lookup of x.
                    raise OSError(_host.EISDIR, os.strerror(_host.EISDIR), path)
                w.step(name, rest)
                continue
            if name == "..":
                w.up()
                name = "."
            if name in (".", _TRAILING):
                return os.open(".", flags, mode, dir_fd=w.cur)
            try:
                fd = os.open(name, flags | os.O_NOFOLLOW, mode, dir_fd=w.cur)
            except OSError as e:
                if not follow or e.errno not in _MAYBE_SYMLINK:
                    raise
                w.expand_link(name, rest, e)
                continue
            if follow and _O_PATH and flags & _O_PATH:
                # O_PATH|O_NOFOLLOW opens a final symlink itself: follow it by hand.
                try:
                    is_link = stat.S_ISLNK(os.fstat(fd).st_mode)
                    target = os.readlink("", dir_fd=fd) if is_link else None
                except BaseException:
                    os.close(fd)
                    raise
                if target is not None:
                    os.close(fd)
                    w.expand(target, rest)
                    continue
            return fd
    finally:
        w.close()


def _open_one_dir(dir_fd: int, name: str) -> int | None:
    """The directory ``name`` (a ``_single_name``) in ``dir_fd``: the manual
    walk's single step, one openat as openat2 would be, without a ctypes
    call. None: it may be a symlink, for a route to expand."""
    try:
        return os.open(name, _O_DIR_STEP, dir_fd=dir_fd)
    except OSError as e:
        if e.errno not in _MAYBE_SYMLINK:
            raise
    return None


def _open_dir(dir_fd: int, parts: list[str], path: str) -> tuple[int, bool]:
    """The directory named by ``parts`` (all followed): (fd, caller must close)."""
    if all(p in (".", _TRAILING) for p in parts):
        return dir_fd, False
    if _kernel_route():
        bpath = "/".join(parts).encode(_FS_ENCODING, _FS_ERRORS)
        fd = _openat2_beneath(dir_fd, bpath, _O_PATH | os.O_DIRECTORY, 0)
        if fd is not None:
            return fd, True
    return _manual_open_dir(dir_fd, parts, path)


def _single_name(path: str) -> bool:
    """``path`` is one plain name: not empty, no "/", not "." or ".." (see the
    module docstring: looked up without following it, it cannot leave the
    tree)."""
    return path != "" and "/" not in path and path != "." and path != ".."


_NOT_NAMES = frozenset(("", ".", ".."))


def _short_parent(dir_fd: int, path: str) -> tuple[int, str] | None:
    """For the common shapes "name" and "dir/name" (plain names): the parent
    directory's fd and the name. The fd is ``dir_fd`` itself or a new one the
    caller closes. None: another shape, or "dir" may be a symlink (a route
    expands it)."""
    head, slash, name = path.rpartition("/")
    # _single_name of name and head, inlined (name has no "/" by construction)
    if name in _NOT_NAMES:
        return None
    if not slash:
        return dir_fd, name
    if head in _NOT_NAMES or "/" in head:
        return None
    fd = _open_one_dir(dir_fd, head)
    return None if fd is None else (fd, name)


# --------------------------------------------------------------------------
# The API


def open_beneath(dir_fd: int, path: str, flags: int, mode: int = 0o666, *, follow: bool) -> int:
    """Open ``path`` relative to the directory ``dir_fd`` with host ``os.O_*``
    ``flags``, never leaving the tree rooted at ``dir_fd``.  Returns a new fd
    (always O_CLOEXEC); the caller owns it.

    ``follow=False`` (or O_NOFOLLOW in ``flags``): a final symlink is not
    followed -- LOOP, as O_NOFOLLOW does; with O_PATH the link itself is
    opened.  Intermediate symlinks are always followed (inside the tree only).
    A trailing slash demands a directory and follows a final symlink (POSIX).
    """
    bpath = _check(path)
    if flags & os.O_NOFOLLOW:
        follow = False
    if not follow:
        flags |= os.O_NOFOLLOW
    if _single_name(path) and not (follow and flags & _O_PATH):
        # One openat, never following the name. A link that is to be
        # followed fails here (ELOOP, ENOTDIR or EMLINK, before O_CREAT or
        # O_TRUNC act) and goes the long way. (O_PATH|O_NOFOLLOW would open
        # a link itself, so a followed O_PATH open always goes the long way.)
        try:
            return os.open(bpath, flags | os.O_NOFOLLOW | _O_CLOEXEC, mode, dir_fd=dir_fd)
        except OSError as e:
            if not follow or e.errno not in _MAYBE_SYMLINK:
                raise
    return _routed_open(dir_fd, path, bpath, flags, mode, follow)


def _routed_open(dir_fd: int, path: str, bpath: bytes, flags: int, mode: int,
                 follow: bool) -> int:
    """``open_beneath`` by a route: ``path`` checked, ``bpath`` its encoding,
    O_NOFOLLOW in ``flags`` exactly when not ``follow``."""
    if _kernel_route():
        fd = _openat2_beneath(dir_fd, bpath, flags, mode)
        if fd is not None:
            return fd
    return _manual_open(dir_fd, _components(path), path, flags & ~os.O_NOFOLLOW, mode, follow)


def stat_beneath(dir_fd: int, path: str, *, follow: bool) -> tuple[int, ...]:
    """``stat``/``lstat`` of ``path`` relative to ``dir_fd``, inside the tree:
    its FILESTAT values (``_stat.filestat_values``)."""
    # A plain final name: fstatat in its parent, not following it -- the
    # parent's lookup plus one call, as an O_PATH open + fstat would be. A
    # link found here that is to be followed goes to a route.
    bpath = _check(path)
    values: tuple[int, ...] | None = None
    short = _short_parent(dir_fd, path)  # the common shapes without at_parent's object
    if short is not None:
        parent_fd, name = short
        try:
            values = lstat_at(parent_fd, name)
        finally:
            if parent_fd != dir_fd:
                os.close(parent_fd)
    elif _single_name(path[path.rfind("/") + 1:]):
        with at_parent(dir_fd, path) as parent:
            values = lstat_at(parent.dir_fd, parent.name)
    if values is not None and not (follow and values[2] == _SYMBOLIC_LINK):
        return values
    # A final link to follow, a trailing slash, "." or "..": open what the
    # path names and fstat that.
    if _O_PATH:
        fd = _routed_open(dir_fd, path, bpath, _O_PATH if follow else _O_PATH | os.O_NOFOLLOW,
                          0, follow)
    else:
        # No O_PATH (not Linux): opening for reading needs the read right on
        # it. Only a followed name gets here: the name before a trailing
        # slash, "." and ".." are followed whatever ``follow`` says (POSIX).
        fd = open_beneath(dir_fd, path, os.O_RDONLY, follow=True)
    try:
        return filestat_values(os.fstat(fd))
    finally:
        os.close(fd)


class at_parent:  # a function in use: ``with at_parent(dir_fd, path) as parent``
    """For calls that act on a name (mkdir, unlink, rmdir, rename, link,
    symlink, readlink, utimensat, fstatat): resolve every component but the
    last (symlinks followed, inside the tree only) and yield ``ParentDir``.
    The caller acts with ``os.xxx(name, dir_fd=parent.dir_fd,
    follow_symlinks=False)``; the parent fd is closed on exit.

    What the last component yields:
      "a/b"  -> (a, "b", False)      "a/b/" -> (a, "b", True)
      "b"    -> (dir_fd, "b", False) "a//b" and "a/./b" are "a/b"
      "a/."  -> (a, ".", True)       "a/.." -> (dir_fd, ".", True)
      "."    -> (dir_fd, ".", True)  ".."   -> PERM (escape)
    A final "." or ".." is resolved (inside the tree) and acted on as ".", so
    that mkdir answers EXIST, rmdir INVAL, unlink ISDIR, rename BUSY/INVAL,
    and fstatat/utimensat reach the directory inside -- never the host's
    "..".  ``name`` is never ".." and never a symlink that was followed: the
    caller must not pass ``follow_symlinks=True`` with it (use
    ``open_beneath``/``stat_beneath`` to follow a final link).

    A class rather than a @contextmanager generator: it runs on every
    mutating path call, and the generator's machinery cost more than the
    resolution. Nothing is opened before ``__enter__``.
    """

    __slots__ = ("_dir_fd", "_path", "_owned")

    def __init__(self, dir_fd: int, path: str) -> None:
        self._dir_fd = dir_fd
        self._path = path
        self._owned = -1

    def __enter__(self) -> ParentDir:
        path = self._path
        _check(path)
        short = _short_parent(self._dir_fd, path)  # the common shapes first
        if short is not None:
            if short[0] != self._dir_fd:
                self._owned = short[0]
            return ParentDir(short[0], short[1], False)
        parts = _components(path)
        trailing = parts[-1] == _TRAILING
        if trailing:
            parts = parts[:-1]
        if parts[-1] in (".", ".."):
            dir_parts, name, trailing = parts, ".", True
        else:
            dir_parts, name = parts[:-1], parts[-1]
        fd, owned = _open_dir(self._dir_fd, dir_parts, path)
        if owned:
            self._owned = fd
        return ParentDir(fd, name, trailing)

    def __exit__(self, *exc: object) -> None:
        if self._owned >= 0:
            os.close(self._owned)
            self._owned = -1
