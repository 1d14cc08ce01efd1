"""The escape suite for ``pywasi._fs._resolve`` (both routes)."""

from __future__ import annotations

import gc
import os
import stat
import threading
import time
from typing import Callable

import pytest

from pywasi._abi import Filetype
from pywasi._abi._errno import Errno, errno_from_host
from pywasi._errors import WasiError
from pywasi._fs import _resolve
from pywasi._fs._resolve import ESCAPE_ERRNO, at_parent, open_beneath, stat_beneath

from .conftest import Tree

FILETYPE = 2  # stat_beneath's answer is FILESTAT's values: dev, ino, filetype, ...

O_PATH = getattr(os, "O_PATH", 0)


def errno_of(fn: Callable[[], object]) -> Errno:
    try:
        result = fn()
    except WasiError as e:
        return e.errno
    except OSError as e:
        return errno_from_host(e.errno)
    if isinstance(result, int):
        os.close(result)
    raise AssertionError(f"expected an error, got {result!r}")


def read(tree: Tree, path: str, follow: bool = True) -> str:
    fd = open_beneath(tree.fd, path, os.O_RDONLY, follow=follow)
    try:
        return os.read(fd, 100).decode()
    finally:
        os.close(fd)


def open_err(tree: Tree, path: str, flags: int = os.O_RDONLY, follow: bool = True) -> Errno:
    return errno_of(lambda: open_beneath(tree.fd, path, flags, follow=follow))


def stat_err(tree: Tree, path: str, follow: bool = True) -> Errno:
    return errno_of(lambda: stat_beneath(tree.fd, path, follow=follow))


def parent_err(tree: Tree, path: str) -> Errno:
    def go() -> None:
        with at_parent(tree.fd, path):
            pass
    return errno_of(go)


def test_escape_errno_is_perm() -> None:
    assert ESCAPE_ERRNO is Errno.PERM


# --------------------------------------------------------------- plain paths

ESCAPES = [
    "/", "/etc/passwd", "//etc/passwd", "..", "../", "../outside/secret", "a/../..",
    "a/../../outside/secret", "a/b/../../../outside/secret", "./../outside/secret",
    "../pre/file",  # out and back in: refused
    "../pre2/secret",  # the sibling whose name starts with the preopen's
    "a/b/../../../pre2/secret",
]


@pytest.mark.parametrize("path", ESCAPES)
def test_escapes_refused(tree: Tree, route: str, path: str) -> None:
    assert open_err(tree, path) is Errno.PERM
    assert open_err(tree, path, os.O_WRONLY | os.O_CREAT) is Errno.PERM
    assert stat_err(tree, path) is Errno.PERM
    assert stat_err(tree, path, follow=False) is Errno.PERM


def test_absolute_path_to_inside_refused(tree: Tree, route: str) -> None:
    assert open_err(tree, str(tree.pre / "file")) is Errno.PERM
    assert parent_err(tree, str(tree.pre / "file")) is Errno.PERM


@pytest.mark.parametrize("path", ["..", "../x", "a/../../x", "/x", "/", "../pre/new"])
def test_at_parent_escapes_refused(tree: Tree, route: str, path: str) -> None:
    assert parent_err(tree, path) is Errno.PERM


@pytest.mark.parametrize("path", ["file", "./file", "a/../file", "a/b/../../file", "a//b/../..//file",
                                  "a/./b/.././../file"])
def test_dotdot_staying_inside_works(tree: Tree, route: str, path: str) -> None:
    assert read(tree, path) == "inside"


def test_nested_file(tree: Tree, route: str) -> None:
    assert read(tree, "a/b/file2") == "inside2"
    assert read(tree, "a//b/./file2") == "inside2"


def test_nul_is_inval(tree: Tree, route: str) -> None:
    assert open_err(tree, "fi\0le") is Errno.INVAL
    assert stat_err(tree, "a/\0") is Errno.INVAL
    assert parent_err(tree, "a\0/b") is Errno.INVAL


def test_empty_path_is_noent(tree: Tree, route: str) -> None:
    assert open_err(tree, "") is Errno.NOENT
    assert stat_err(tree, "") is Errno.NOENT
    assert parent_err(tree, "") is Errno.NOENT


def test_too_long_is_nametoolong(tree: Tree, route: str) -> None:
    assert open_err(tree, "a/" * 2100) is Errno.NAMETOOLONG


def test_notdir_in_the_middle(tree: Tree, route: str) -> None:
    assert open_err(tree, "file/x") is Errno.NOTDIR
    assert open_err(tree, "file/..") is Errno.NOTDIR
    assert parent_err(tree, "file/x") is Errno.NOTDIR


def test_missing_in_the_middle(tree: Tree, route: str) -> None:
    assert open_err(tree, "nope/x") is Errno.NOENT
    assert parent_err(tree, "nope/x") is Errno.NOENT


def test_trailing_slash_on_file_is_notdir(tree: Tree, route: str) -> None:
    assert open_err(tree, "file/") is Errno.NOTDIR
    assert stat_err(tree, "file/") is Errno.NOTDIR
    assert stat_err(tree, "file/", follow=False) is Errno.NOTDIR
    assert open_err(tree, "file/.") is Errno.NOTDIR


def test_trailing_slash_on_dir(tree: Tree, route: str) -> None:
    assert stat_beneath(tree.fd, "a/", follow=False)[FILETYPE] == Filetype.DIRECTORY
    fd = open_beneath(tree.fd, "a/b/", os.O_RDONLY | os.O_DIRECTORY, follow=True)
    try:
        assert "file2" in os.listdir(fd)
    finally:
        os.close(fd)


def test_creat_with_trailing_slash_is_isdir(tree: Tree, route: str) -> None:
    assert open_err(tree, "new/", os.O_WRONLY | os.O_CREAT) is Errno.ISDIR
    assert not (tree.pre / "new").exists()


def test_creat_excl_existing_is_exist(tree: Tree, route: str) -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    assert open_err(tree, "file", flags) is Errno.EXIST
    assert open_err(tree, "a/../file", flags) is Errno.EXIST
    tree.link("dangling", "nothere")
    assert open_err(tree, "dangling", flags) is Errno.EXIST  # O_EXCL never follows
    assert not (tree.pre / "nothere").exists()


def test_creat_lands_inside(tree: Tree, route: str) -> None:
    fd = open_beneath(tree.fd, "a/b/../new", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600, follow=True)
    os.write(fd, b"x")
    os.close(fd)
    assert (tree.pre / "a" / "new").read_text() == "x"
    assert stat.S_IMODE((tree.pre / "a" / "new").stat().st_mode) & 0o077 == 0


def test_dot_opens_the_root(tree: Tree, route: str) -> None:
    for path in (".", "./", "a/..", "a/b/../.."):
        dev, ino = stat_beneath(tree.fd, path, follow=True)[:2]
        assert (dev, ino) == (os.fstat(tree.fd).st_dev, os.fstat(tree.fd).st_ino)


# ------------------------------------------------------------------ symlinks

def test_absolute_symlink_out(tree: Tree, route: str) -> None:
    tree.link("abs", tree.outside / "secret")
    tree.link("absdir", tree.outside)
    tree.link("absin", tree.pre / "file")  # absolute, but naming a file inside: refused too
    for p in ("abs", "absdir/secret", "absdir/sub/secret", "absdir/", "absin"):
        assert open_err(tree, p) is Errno.PERM, p
        assert stat_err(tree, p) is Errno.PERM, p
    assert parent_err(tree, "absdir/secret") is Errno.PERM
    with at_parent(tree.fd, "absdir/") as p:  # the final name is not looked up
        assert (p.dir_fd, p.name, p.trailing_slash) == (tree.fd, "absdir", True)


def test_relative_symlink_out(tree: Tree, route: str) -> None:
    tree.link("rel", "../outside/secret")
    tree.link("reldir", "../outside")
    os.symlink("../../../outside", tree.pre / "a" / "b" / "up")
    tree.link("sib", "../pre2/secret")
    tree.link("back", "../pre/file")  # out and back in: refused
    tree.link("backdir", "../pre")
    for p in ("rel", "reldir/secret", "reldir/sub/secret", "a/b/up/secret", "sib", "back",
              "backdir/file", "a/b/up/"):
        assert open_err(tree, p) is Errno.PERM, p
        assert stat_err(tree, p) is Errno.PERM, p
        # O_CREAT with a trailing slash is ISDIR before the last name is looked up (Linux).
        want = Errno.ISDIR if p.endswith("/") else Errno.PERM
        assert open_err(tree, p, os.O_WRONLY | os.O_CREAT) is want, p
    for p in ("reldir/secret", "a/b/up/x", "backdir/file"):
        assert parent_err(tree, p) is Errno.PERM, p


def test_dangling_symlink_out_does_not_create(tree: Tree, route: str) -> None:
    tree.link("mk", "../outside/created")
    tree.link("mkabs", tree.outside / "created2")
    assert open_err(tree, "mk", os.O_WRONLY | os.O_CREAT) is Errno.PERM
    assert open_err(tree, "mkabs", os.O_WRONLY | os.O_CREAT) is Errno.PERM
    assert not (tree.outside / "created").exists()
    assert not (tree.outside / "created2").exists()


def test_dangling_symlink_inside_creates_target(tree: Tree, route: str) -> None:
    tree.link("mk", "a/created")
    fd = open_beneath(tree.fd, "mk", os.O_WRONLY | os.O_CREAT, follow=True)
    os.close(fd)
    assert (tree.pre / "a" / "created").is_file()


def test_symlinks_inside_work(tree: Tree, route: str) -> None:
    tree.link("lfile", "file")
    tree.link("la", "a")
    tree.link("l1", "l2")
    tree.link("l2", "la/b/file2")
    os.symlink("../../file", tree.pre / "a" / "b" / "upfile")
    os.symlink("..", tree.pre / "a" / "b" / "parent")
    tree.link("ladir", "a/")
    assert read(tree, "lfile") == "inside"
    assert read(tree, "la/b/file2") == "inside2"
    assert read(tree, "l1") == "inside2"
    assert read(tree, "a/b/upfile") == "inside"
    assert read(tree, "la/b/upfile") == "inside"
    assert read(tree, "la/b/parent/b/file2") == "inside2"
    assert read(tree, "la/b/parent/../file") == "inside"  # physical "..": parent of a is the root
    assert read(tree, "ladir/b/file2") == "inside2"
    with at_parent(tree.fd, "la/b/file2") as p:
        assert p.name == "file2"
        assert os.stat(p.name, dir_fd=p.dir_fd).st_size == len("inside2")


def test_nofollow_final(tree: Tree, route: str) -> None:
    tree.link("lfile", "file")
    tree.link("la", "a")
    assert open_err(tree, "lfile", follow=False) is Errno.LOOP
    assert open_err(tree, "lfile", os.O_RDONLY | os.O_NOFOLLOW) is Errno.LOOP
    assert read(tree, "la/b/file2", follow=False) == "inside2"  # intermediate links are followed
    assert stat_beneath(tree.fd, "lfile", follow=False)[FILETYPE] == Filetype.SYMBOLIC_LINK
    assert stat_beneath(tree.fd, "lfile", follow=True)[FILETYPE] == Filetype.REGULAR_FILE
    # A trailing slash follows the final link (POSIX), even without follow.
    assert stat_beneath(tree.fd, "la/", follow=False)[FILETYPE] == Filetype.DIRECTORY


@pytest.mark.skipif(not O_PATH, reason="needs O_PATH")
def test_opath_nofollow_opens_the_link(tree: Tree, route: str) -> None:
    tree.link("abs", tree.outside / "secret")
    fd = open_beneath(tree.fd, "abs", O_PATH, follow=False)
    try:
        assert stat.S_ISLNK(os.fstat(fd).st_mode)
        assert os.readlink("", dir_fd=fd) == str(tree.outside / "secret")
    finally:
        os.close(fd)
    assert open_err(tree, "abs", O_PATH) is Errno.PERM  # followed: refused
    tree.link("lfile", "file")
    fd = open_beneath(tree.fd, "lfile", O_PATH, follow=True)
    try:
        assert stat.S_ISREG(os.fstat(fd).st_mode)
    finally:
        os.close(fd)


def test_symlink_loops(tree: Tree, route: str) -> None:
    tree.link("self", "self")
    tree.link("loop1", "loop2")
    tree.link("loop2", "loop1")
    tree.link("dirloop", "dirloop/x")
    for p in ("self", "loop1", "loop1/x", "dirloop", "a/../loop2"):
        assert open_err(tree, p) is Errno.LOOP, p
        assert stat_err(tree, p) is Errno.LOOP, p
    assert parent_err(tree, "loop1/x") is Errno.LOOP


def test_symlink_limit_is_40(tree: Tree, route: str) -> None:
    # c0 -> c1 -> ... -> c40 -> file: 41 links; starting at c1 it is 40.
    for i in range(41):
        tree.link(f"c{i}", f"c{i + 1}" if i < 40 else "file")
    assert read(tree, "c1") == "inside"
    assert open_err(tree, "c0") is Errno.LOOP


def test_empty_symlink_is_noent(tree: Tree, route: str) -> None:
    # Linux refuses to create an empty symlink (ENOENT); where a filesystem
    # allows one, following it must still be NOENT, never the directory itself.
    try:
        tree.link("empty", "")
    except FileNotFoundError:
        assert not os.path.lexists(tree.pre / "empty")
        return
    assert open_err(tree, "empty") is Errno.NOENT


# --------------------------------------------------------------- magic links

def test_magic_links_via_symlinks_inside(tree: Tree, route: str) -> None:
    outside_fd = os.open(tree.outside, os.O_RDONLY | os.O_DIRECTORY)
    try:
        tree.link("fdlink", f"/proc/self/fd/{outside_fd}")
        tree.link("procroot", "/proc/self/root")
        tree.link("proccwd", "/proc/self/cwd")
        tree.link("fdrel", "../../../../../../../../../../proc/self/fd/" + str(outside_fd))
        for p in ("fdlink", "fdlink/secret", "procroot/etc/passwd", "procroot", "proccwd",
                  "fdrel/secret"):
            assert open_err(tree, p) is Errno.PERM, p
            assert stat_err(tree, p) is Errno.PERM, p
        assert parent_err(tree, "fdlink/secret") is Errno.PERM
    finally:
        os.close(outside_fd)


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
def test_preopen_of_proc_refuses_magic_links(tree: Tree, route: str) -> None:
    """If the preopen *is* /proc/self, its fd/N and root entries are magic
    links: they must not be followed."""
    proc = os.open("/proc/self", os.O_RDONLY | os.O_DIRECTORY)
    secret = os.open(tree.outside / "secret", os.O_RDONLY)
    try:
        for p in (f"fd/{secret}", "root/etc/passwd", "cwd", f"fd/{tree.fd}/file"):
            e = errno_of(lambda: open_beneath(proc, p, os.O_RDONLY, follow=True))
            assert e is Errno.PERM, (p, e)
    finally:
        os.close(secret)
        os.close(proc)


# -------------------------------------------------------- single plain names
# A path that is one plain name skips the routes (one *at call in the
# directory itself, see _resolve's docstring). Each case is pinned, and must
# answer exactly what the routes answer for the same name behind "./" (which
# is not a single name, so it always takes a route).

def _single_tree(tree: Tree) -> Tree:
    tree.link("out", tree.outside / "secret")
    tree.link("outrel", "../outside/secret")
    tree.link("outdir", "../outside")
    tree.link("outdangling", "../outside/nothere")
    tree.link("todir", "a")
    tree.link("lfile", "file")
    tree.link("dangling", "nothere")
    tree.link("self", "self")
    return tree


# name -> (stat followed, stat not followed, read followed, read not followed):
# "reg"/"dir"/"lnk" is what stat found, "inside" what was read, else the errno.
SINGLE = {
    "file": ("reg", "reg", "inside", "inside"),
    "a": ("dir", "dir", Errno.ISDIR, Errno.ISDIR),
    "nope": (Errno.NOENT, Errno.NOENT, Errno.NOENT, Errno.NOENT),
    "out": (Errno.PERM, "lnk", Errno.PERM, Errno.LOOP),
    "outrel": (Errno.PERM, "lnk", Errno.PERM, Errno.LOOP),
    "outdir": (Errno.PERM, "lnk", Errno.PERM, Errno.LOOP),
    "outdangling": (Errno.PERM, "lnk", Errno.PERM, Errno.LOOP),
    "todir": ("dir", "lnk", Errno.ISDIR, Errno.LOOP),
    "lfile": ("reg", "lnk", "inside", Errno.LOOP),
    "dangling": (Errno.NOENT, "lnk", Errno.NOENT, Errno.LOOP),
    "self": (Errno.LOOP, "lnk", Errno.LOOP, Errno.LOOP),
    ".": ("dir", "dir", Errno.ISDIR, Errno.ISDIR),
    "..": (Errno.PERM, Errno.PERM, Errno.PERM, Errno.PERM),
    "": (Errno.NOENT, Errno.NOENT, Errno.NOENT, Errno.NOENT),
    "fi\0le": (Errno.INVAL, Errno.INVAL, Errno.INVAL, Errno.INVAL),
}


def _stat_outcome(tree: Tree, path: str, follow: bool) -> object:
    try:
        filetype = stat_beneath(tree.fd, path, follow=follow)[FILETYPE]
    except WasiError as e:
        return e.errno
    except OSError as e:
        return errno_from_host(e.errno)
    return {Filetype.DIRECTORY: "dir", Filetype.SYMBOLIC_LINK: "lnk"}.get(filetype, "reg")


def _read_outcome(tree: Tree, path: str, follow: bool) -> object:
    try:
        fd = open_beneath(tree.fd, path, os.O_RDONLY, follow=follow)
    except WasiError as e:
        return e.errno
    except OSError as e:
        return errno_from_host(e.errno)
    try:
        return os.read(fd, 100).decode()
    except OSError as e:
        return errno_from_host(e.errno)
    finally:
        os.close(fd)


@pytest.mark.parametrize("name", list(SINGLE))
def test_single_name(tree: Tree, route: str, name: str) -> None:
    _single_tree(tree)
    got = (_stat_outcome(tree, name, True), _stat_outcome(tree, name, False),
           _read_outcome(tree, name, True), _read_outcome(tree, name, False))
    assert got == SINGLE[name]
    if name not in ("", "."):  # "./" and "./." mean the root itself
        routed = (_stat_outcome(tree, "./" + name, True), _stat_outcome(tree, "./" + name, False),
                  _read_outcome(tree, "./" + name, True), _read_outcome(tree, "./" + name, False))
        assert got == routed


def test_single_name_creates_never_follow_out(tree: Tree, route: str) -> None:
    _single_tree(tree)
    creat = os.O_WRONLY | os.O_CREAT
    for name in ("out", "outrel", "outdangling"):
        assert open_err(tree, name, creat) is Errno.PERM, name
        assert open_err(tree, name, creat | os.O_TRUNC) is Errno.PERM, name
        assert open_err(tree, name, creat, follow=False) is Errno.LOOP, name
        assert open_err(tree, name, creat | os.O_EXCL) is Errno.EXIST, name
    assert not (tree.outside / "nothere").exists()
    assert (tree.outside / "secret").read_text() == "SECRET"  # not truncated
    # A dangling link inside, followed, creates its target inside (as the routes do).
    os.close(open_beneath(tree.fd, "dangling", creat, follow=True))
    assert (tree.pre / "nothere").is_file()


@pytest.mark.skipif(not O_PATH, reason="needs O_PATH")
def test_single_name_opath(tree: Tree, route: str) -> None:
    _single_tree(tree)
    fd = open_beneath(tree.fd, "out", O_PATH, follow=False)  # the link itself
    try:
        assert stat.S_ISLNK(os.fstat(fd).st_mode)
    finally:
        os.close(fd)
    assert open_err(tree, "out", O_PATH) is Errno.PERM
    fd = open_beneath(tree.fd, "todir", O_PATH | os.O_DIRECTORY, follow=True)
    try:
        assert os.fstat(fd).st_ino == (tree.pre / "a").stat().st_ino
    finally:
        os.close(fd)


def test_single_name_at_parent(tree: Tree, route: str) -> None:
    _single_tree(tree)
    for name in ("out", "nope", "file", "a"):
        with at_parent(tree.fd, name) as p:  # the root itself, nothing opened or followed
            assert (p.dir_fd, p.name, p.trailing_slash) == (tree.fd, name, False)
    with at_parent(tree.fd, "out") as p:
        assert stat.S_ISLNK(os.stat(p.name, dir_fd=p.dir_fd, follow_symlinks=False).st_mode)
    assert parent_err(tree, "..") is Errno.PERM
    assert parent_err(tree, "") is Errno.NOENT
    assert parent_err(tree, "fi\0le") is Errno.INVAL


@pytest.mark.parametrize("path,want", [
    ("a/b", "dir"), ("todir/b", "dir"), ("a/nope", Errno.NOENT), ("outdir/secret", Errno.PERM),
    ("file/x", Errno.NOTDIR), ("nope/x", Errno.NOENT), ("self/x", Errno.LOOP),
    ("a/../file", "reg"), ("lfile/x", Errno.NOTDIR),
])
def test_dir_slash_name(tree: Tree, route: str, path: str, want: object) -> None:
    """"dir/name" opens "dir" with one openat in at_parent and stat_beneath:
    the same answers as behind "./", which always takes a route."""
    _single_tree(tree)

    def outcomes(p: str) -> tuple[object, ...]:
        parent: object
        try:
            with at_parent(tree.fd, p) as par:
                st = os.fstat(par.dir_fd)
                parent = (st.st_dev, st.st_ino, par.name, par.trailing_slash)
        except WasiError as e:
            parent = e.errno
        except OSError as e:
            parent = errno_from_host(e.errno)
        return _stat_outcome(tree, p, True), _stat_outcome(tree, p, False), parent

    got = outcomes(path)
    assert got[0] == want
    assert got == outcomes("./" + path)


# ---------------------------------------------------------------- hard links

def test_host_made_hard_link_is_inside(tree: Tree, route: str) -> None:
    """A hard link the host made is the same inode under a name inside the
    tree: it is inside by definition, and readable."""
    os.link(tree.outside / "secret", tree.pre / "hard")
    assert read(tree, "hard") == "SECRET"


def test_guest_cannot_link_to_outside(tree: Tree, route: str) -> None:
    """path_link is at_parent on both sides plus linkat(follow=False): the
    source can only be a name inside the tree."""
    assert parent_err(tree, "../outside/secret") is Errno.PERM
    tree.link("abs", tree.outside / "secret")
    with at_parent(tree.fd, "abs") as src, at_parent(tree.fd, "a/newlink") as dst:
        os.link(src.name, dst.name, src_dir_fd=src.dir_fd, dst_dir_fd=dst.dir_fd,
                follow_symlinks=False)
    # The new name is a second link to the symlink, not to the outside file.
    assert os.path.islink(tree.pre / "a" / "newlink")
    assert (tree.outside / "secret").stat().st_nlink == 1
    assert open_err(tree, "a/newlink") is Errno.PERM


# ----------------------------------------------------------------- at_parent

@pytest.mark.parametrize("path,where,name,trailing", [
    ("x", ".", "x", False),
    ("a/x", "a", "x", False),
    ("a/b/", "a", "b", True),
    ("a/", ".", "a", True),
    ("a//", ".", "a", True),
    ("x/", ".", "x", True),
    ("a//b//", "a", "b", True),
    ("a/./b", "a", "b", False),
    ("a/b/..", "a", ".", True),
    ("a/..", ".", ".", True),
    ("a/.", "a", ".", True),
    (".", ".", ".", True),
    ("./", ".", ".", True),
    ("a/b/../x", "a", "x", False),
])
def test_at_parent_table(tree: Tree, route: str, path: str, where: str, name: str,
                         trailing: bool) -> None:
    want = os.stat(tree.pre / where)
    with at_parent(tree.fd, path) as p:
        got = os.fstat(p.dir_fd)
        assert (got.st_dev, got.st_ino) == (want.st_dev, want.st_ino)
        assert (p.name, p.trailing_slash) == (name, trailing)


def test_at_parent_final_dotdot_never_reaches_host_dotdot(tree: Tree, route: str) -> None:
    """fstatat/utimensat on a final ".." act on the directory inside."""
    with at_parent(tree.fd, "a/..") as p:
        st = os.stat(p.name, dir_fd=p.dir_fd, follow_symlinks=False)
    assert st.st_ino == os.stat(tree.pre).st_ino
    with at_parent(tree.fd, "a/..") as p:
        assert errno_of(lambda: os.mkdir(p.name, dir_fd=p.dir_fd)) is Errno.EXIST
        assert errno_of(lambda: os.rmdir(p.name, dir_fd=p.dir_fd)) is Errno.INVAL


def test_at_parent_mutations(tree: Tree, route: str) -> None:
    tree.link("la", "a")
    with at_parent(tree.fd, "la/newdir/") as p:
        os.mkdir(p.name, dir_fd=p.dir_fd)
    assert (tree.pre / "a" / "newdir").is_dir()
    with at_parent(tree.fd, "la/b/file2") as src, at_parent(tree.fd, "a/newdir/moved") as dst:
        os.rename(src.name, dst.name, src_dir_fd=src.dir_fd, dst_dir_fd=dst.dir_fd)
    assert (tree.pre / "a" / "newdir" / "moved").read_text() == "inside2"
    with at_parent(tree.fd, "la/newdir/moved") as p:
        os.unlink(p.name, dir_fd=p.dir_fd)
    with at_parent(tree.fd, "a/sl") as p:
        os.symlink("../../outside/secret", p.name, dir_fd=p.dir_fd)  # creating it is fine...
    assert open_err(tree, "a/sl") is Errno.PERM  # ...following it is not
    with at_parent(tree.fd, "a/sl") as p:
        assert os.readlink(p.name, dir_fd=p.dir_fd) == "../../outside/secret"


def test_at_parent_closes_its_fd(tree: Tree, route: str) -> None:
    with at_parent(tree.fd, "a/b/x") as p:
        held = p.dir_fd
        os.fstat(held)
    with pytest.raises(OSError):
        os.fstat(held)
    with at_parent(tree.fd, "x") as p:
        assert p.dir_fd == tree.fd  # the root itself is lent, not reopened
    os.fstat(tree.fd)


# ------------------------------------------------------------------ fd leaks

def _fd_count() -> int:
    # Garbage from earlier tests (a WASI in a reference cycle) may still hold
    # fds and drop them when a collection runs mid-test: collect first, so
    # the count is this test's alone.
    gc.collect()
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
def test_no_fd_leaks(tree: Tree, route: str) -> None:
    tree.link("lfile", "file")
    tree.link("la", "a")
    tree.link("rel", "../outside/secret")
    tree.link("loop1", "loop2")
    tree.link("loop2", "loop1")
    paths = ["file", "lfile", "la/b/file2", "la/b/../../rel", "rel", "loop1", "../x", "/x",
             "a/b/../../../x", "file/x", "nope/x", "la/b/nope", "a\0", "", "la/", "file/",
             "la/b/../b/../../la/b/file2"]

    def churn() -> None:
        for p in paths:
            for follow in (True, False):
                try:
                    os.close(open_beneath(tree.fd, p, os.O_RDONLY, follow=follow))
                except (WasiError, OSError):
                    pass
                try:
                    stat_beneath(tree.fd, p, follow=follow)
                except (WasiError, OSError):
                    pass
            try:
                with at_parent(tree.fd, p) as par:
                    os.stat(par.name, dir_fd=par.dir_fd, follow_symlinks=False)
            except (WasiError, OSError):
                pass
            try:
                with at_parent(tree.fd, p):
                    raise KeyError("the caller fails inside the block")
            except (WasiError, OSError, KeyError):
                pass

    churn()  # warm up: the openat2 probe, lazily loaded libraries
    before = _fd_count()
    for _ in range(50):
        churn()
    assert _fd_count() == before


# ---------------------------------------------------------------- rename race

def test_rename_race(tree: Tree, route: str) -> None:
    """A thread moves a directory out of the tree and back while we resolve
    paths that go through it and climb with "..".  Nothing outside may ever
    be opened."""
    moving = tree.pre / "moving"
    (moving / "sub" / "deep").mkdir(parents=True)
    (tree.pre / "secret").write_text("inside-secret")
    away = tree.outside / "moving"
    forbidden = tree.outside_inodes()
    stop = threading.Event()
    moves = 0

    def mover() -> None:
        nonlocal moves
        while not stop.is_set():
            os.rename(moving, away)
            os.rename(away, moving)
            moves += 1

    paths = ["moving/../secret", "moving/sub/../../secret", "moving/../../secret",
             "moving/sub/deep/../../../secret", "moving/sub/deep/../../../../secret",
             "moving/sub/deep/../../../../outside/secret", "moving/../../outside/secret"]
    t = threading.Thread(target=mover)
    t.start()
    opened = refused = 0
    deadline = time.monotonic() + 1.5
    try:
        while time.monotonic() < deadline:
            for p in paths:
                try:
                    fd = open_beneath(tree.fd, p, os.O_RDONLY, follow=True)
                except WasiError as e:
                    assert e.errno in (Errno.PERM, Errno.NOENT), (p, e.errno)
                    refused += 1
                    continue
                except OSError as e:
                    assert e.errno in (2, 20), (p, e)  # ENOENT, ENOTDIR: the dir was away
                    refused += 1
                    continue
                try:
                    st = os.fstat(fd)
                    assert (st.st_dev, st.st_ino) not in forbidden, p
                    assert os.read(fd, 100) == b"inside-secret", p
                finally:
                    os.close(fd)
                opened += 1
                try:
                    with at_parent(tree.fd, p) as par:
                        st = os.fstat(par.dir_fd)
                        assert (st.st_dev, st.st_ino) not in forbidden, p
                except (WasiError, OSError):
                    pass
    finally:
        stop.set()
        t.join()
    assert moves > 10 and opened > 10 and refused > 10


# ----------------------------------------------------- the routes agree

def test_routes_agree_on_a_sweep(tree: Tree, monkeypatch: pytest.MonkeyPatch) -> None:
    """Differential: every path built from hostile pieces gets the same
    answer (same errno, or the same inode) from openat2 and from the walk."""
    if not _resolve.openat2_available():
        pytest.skip("openat2 is not available on this host")
    tree.link("lfile", "file")
    tree.link("la", "a")
    tree.link("rel", "../outside")
    tree.link("loop", "loop")
    os.symlink("../..", tree.pre / "a" / "b" / "up2")
    pieces = ["a", "b", "..", ".", "la", "lfile", "rel", "file", "loop", "up2", "file2", ""]
    inside = tree.inside_inodes()

    def outcome(path: str, follow: bool) -> object:
        try:
            fd = open_beneath(tree.fd, path, O_PATH or os.O_RDONLY, follow=follow)
        except WasiError as e:
            return e.errno
        except OSError as e:
            return errno_from_host(e.errno)
        st = os.fstat(fd)
        os.close(fd)
        assert (st.st_dev, st.st_ino) in inside, path
        return (st.st_dev, st.st_ino)

    import itertools
    checked = 0
    for n in (1, 2, 3):
        for combo in itertools.product(pieces, repeat=n):
            path = "/".join(combo)
            for follow in (True, False):
                monkeypatch.setattr(_resolve, "_USE_OPENAT2", True)
                k = outcome(path, follow)
                monkeypatch.setattr(_resolve, "_USE_OPENAT2", False)
                m = outcome(path, follow)
                assert k == m, (path, follow, k, m)
                checked += 1
    assert checked > 1000


# ------------------------------------------------------------ property test

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

PIECES = ["a", "b", "..", ".", "", "la", "lfile", "rel", "abs", "file", "file2", "loop", "up2",
          "new", "\0", "é"]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(parts=st.lists(st.sampled_from(PIECES), min_size=1, max_size=8), follow=st.booleans(),
       lead=st.sampled_from(["", "/"]))
def test_invariant_inside_or_error(tree: Tree, monkeypatch: pytest.MonkeyPatch, parts: list[str],
                                   follow: bool, lead: str) -> None:
    """Whatever the path: an fd to something inside the tree, or our error /
    an OSError -- never anything else -- and both routes give the same answer."""
    if not os.path.lexists(tree.pre / "la"):
        tree.link("la", "a")
        tree.link("lfile", "file")
        tree.link("rel", "../outside")
        tree.link("abs", tree.outside)
        tree.link("loop", "loop")
        os.symlink("../..", tree.pre / "a" / "b" / "up2")
    inside = tree.inside_inodes()
    path = lead + "/".join(parts)
    routes = [True, False] if _resolve.openat2_available() else [False]
    answers = []
    for use in routes:
        monkeypatch.setattr(_resolve, "_USE_OPENAT2", use)
        try:
            fd = open_beneath(tree.fd, path, O_PATH or os.O_RDONLY, follow=follow)
        except WasiError as e:
            answers.append(e.errno)
        except OSError as e:
            answers.append(errno_from_host(e.errno))
        else:
            s = os.fstat(fd)
            os.close(fd)
            assert (s.st_dev, s.st_ino) in inside, path
            answers.append((s.st_dev, s.st_ino))
        try:
            with at_parent(tree.fd, path) as p:
                s = os.fstat(p.dir_fd)
                assert (s.st_dev, s.st_ino) in inside, path
                assert "/" not in p.name and p.name != ".." and "\0" not in p.name
        except (WasiError, OSError):
            pass
    assert len(set(answers)) == 1, (path, follow, answers)
