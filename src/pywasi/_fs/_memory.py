"""A filesystem held in Python (``pywasi.fs.MemoryFS``): its tree of nodes,
the resolver that walks it, and its two descriptor kinds.

The per-name rules are the host directory's (``_dir.HostDirectory``), so a
program sees the same results and errnos on either kind of preopen:

- a path is walked one component at a time from the descriptor's own
  directory, with a stack for ``..``: popping past that directory is PERM,
  as the host resolver's RESOLVE_BENEATH answers, and so is an absolute
  path or an absolute symlink target;
- symlinks in the middle of a path are expanded (their target relative to
  the link's directory), the final one only when the call follows it (or a
  trailing slash demands it); more than ``MAX_SYMLINKS`` expansions is LOOP;
- trailing slashes follow Linux: "file/" is NOTDIR, "dir/" names the
  directory, creating a name through "new/" (symlink, link) is NOENT;
- nothing here ever touches a host path: a tree is reached only through its
  root node, and a node knows nothing of the host.

Nodes: a directory has one parent (no hard links to directories) and a
dict of entries in creation order; a file's data is one ``bytearray``,
shared by every hard link and descriptor; an unlinked file stays readable
through the descriptors that hold it. Inode numbers are the tree's own, from
1 (the root) up; ``nlink`` counts names (a directory: 2 + its
subdirectories, 0 once removed). Times are nanoseconds of the realtime clock
the descriptor was given (the host's, or the run's virtual clock): a write
sets mtim and ctim, a change of names or metadata ctim; reads do not touch
atim (as a ``noatime`` mount).
"""

from __future__ import annotations

import os
import stat
import threading
import time
import weakref

from .._abi import Errno, Fdflags, Filetype, Oflags, Whence
from .._errors import WasiError
from ._base import Descriptor, Directory
from ._dir import DIR_INHERITING, DIR_RIGHTS, FILE_RIGHTS
from ._resolve import MAX_SYMLINKS, open_beneath
from ._stat import NOW, OMIT, resolve_times

# Annotation-only names: mypy takes any TYPE_CHECKING as true, and run time
# never imports typing (nor the re it pulls in: start-up, tests/test_import_cost.py).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

__all__ = ["MemoryTree", "MemoryDirectory", "MemoryFile", "Node", "DirNode", "FileNode",
           "LinkNode", "LowerTree", "LazyDirNode", "LazyFileNode", "read_whole"]

OFF_MAX = (1 << 63) - 1
_CREAT = int(Oflags.CREAT)
_DIRECTORY = int(Oflags.DIRECTORY)
_EXCL = int(Oflags.EXCL)
_TRUNC = int(Oflags.TRUNC)
_APPEND = int(Fdflags.APPEND)
_NONBLOCK = int(Fdflags.NONBLOCK)
_SYNC_FDFLAGS = int(Fdflags.DSYNC | Fdflags.RSYNC | Fdflags.SYNC)
# A MemoryFS's st_dev: one value for every tree, not a host device's.
DEVICE = 0x6D656D


class Node:
    __slots__ = ("ino", "nlink", "atim", "mtim", "ctim")
    filetype = Filetype.UNKNOWN

    def __init__(self, ino: int, now: int) -> None:
        self.ino = ino
        self.nlink = 1
        self.atim = self.mtim = self.ctim = now

    def size(self) -> int:
        return 0


class FileNode(Node):
    __slots__ = ("data",)
    filetype = Filetype.REGULAR_FILE

    def __init__(self, ino: int, now: int, data: bytes = b"") -> None:
        super().__init__(ino, now)
        self.data = bytearray(data)

    def size(self) -> int:
        return len(self.data)


class LinkNode(Node):
    __slots__ = ("target",)
    filetype = Filetype.SYMBOLIC_LINK

    def __init__(self, ino: int, now: int, target: str) -> None:
        super().__init__(ino, now)
        self.target = target

    def size(self) -> int:
        return len(self.target.encode())


class DirNode(Node):
    __slots__ = ("entries", "parent")
    filetype = Filetype.DIRECTORY

    def __init__(self, ino: int, now: int, parent: DirNode | None) -> None:
        super().__init__(ino, now)
        self.entries: dict[str, Node] = {}
        self.parent = parent  # None: the root, or removed

    def link_count(self) -> int:
        if self.nlink == 0:
            return 0
        return 2 + sum(isinstance(n, DirNode) for n in self.entries.values())


class MemoryTree:
    """The nodes of one MemoryFS and what every descriptor on it shares: the
    inode counter, the quotas and one lock (wasi-threads may walk it at once).

    Quotas: ``max_bytes`` of file data (a file's bytes count until its last
    name is removed) and ``max_entries`` names in directories (a hard link
    is a name). A guest call that would pass one answers NOSPC -- a full
    disk, which programs handle; DQUOT names a per-user quota, which this is
    not -- and changes nothing. The host side (``MemoryFS.write``) is
    counted but never refused."""

    def __init__(self, *, max_bytes: int | None = None, max_entries: int | None = None) -> None:
        self.lock = threading.RLock()
        self._next_ino = 2
        self.root = DirNode(1, time.time_ns(), None)
        self.max_bytes = max_bytes
        self.max_entries = max_entries
        self.used_bytes = 0
        self.used_entries = 0

    # Pickling (a tree sent to a worker process and back): the nodes as one
    # flat list, the root first, each directory's entries as (name, index),
    # so a deep tree does not recurse through pickle and a hard link stays
    # one node; the lock is made anew. An overlay's lower host tree is read
    # whole here (a lazy node's entries and bytes): the copy holds the
    # contents, not the host's fd.
    def __getstate__(self) -> dict[str, object]:
        with self.lock:
            index = {id(self.root): 0}
            pending: list[Node] = [self.root]
            nodes: list[tuple[str, int, int, int, int, int, object]] = []
            while len(nodes) < len(pending):
                node = pending[len(nodes)]
                payload: object
                if isinstance(node, DirNode):
                    children: list[tuple[str, int]] = []
                    for name, child in node.entries.items():
                        if id(child) not in index:
                            index[id(child)] = len(pending)
                            pending.append(child)
                        children.append((name, index[id(child)]))
                    kind, payload = "dir", children
                elif isinstance(node, FileNode):
                    kind, payload = "file", node.data
                elif isinstance(node, LinkNode):
                    kind, payload = "link", node.target
                else:
                    raise TypeError(f"MemoryFS: cannot pickle a {type(node).__name__}")
                nodes.append((kind, node.ino, node.nlink, node.atim, node.mtim, node.ctim,
                              payload))
            return {"nodes": nodes, "next_ino": self._next_ino, "max_bytes": self.max_bytes,
                    "max_entries": self.max_entries, "used_bytes": self.used_bytes,
                    "used_entries": self.used_entries}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.lock = threading.RLock()
        self._next_ino = state["next_ino"]
        self.max_bytes = state["max_bytes"]
        self.max_entries = state["max_entries"]
        self.used_bytes = state["used_bytes"]
        self.used_entries = state["used_entries"]
        nodes: list[Node] = []
        for kind, ino, nlink, atim, mtim, ctim, payload in state["nodes"]:
            node: Node
            if kind == "dir":
                node = DirNode(ino, 0, None)
            elif kind == "file":
                node = FileNode(ino, 0)
                # Unpickled, the buffer is the tree's own (no second copy of
                # the data); copy.copy of a tree shares it, as shallow copies do.
                node.data = payload if type(payload) is bytearray else bytearray(payload)
            else:
                node = LinkNode(ino, 0, payload)
            node.nlink, node.atim, node.mtim, node.ctim = nlink, atim, mtim, ctim
            nodes.append(node)
        for node, (kind, *_, payload) in zip(nodes, state["nodes"]):
            if isinstance(node, DirNode):
                for name, i in payload:
                    child = nodes[i]
                    node.entries[name] = child
                    if isinstance(child, DirNode):
                        child.parent = node
        root = nodes[0]
        assert isinstance(root, DirNode)
        self.root = root

    def new_ino(self) -> int:
        ino = self._next_ino
        self._next_ino += 1
        return ino

    def charge(self, nbytes: int, entries: int = 0, *, refuse: bool = True) -> None:
        """Count ``nbytes`` more data and ``entries`` more names (either may
        be negative); NOSPC first if that passes a quota."""
        if refuse and (nbytes > 0 and self.max_bytes is not None
                       and self.used_bytes + nbytes > self.max_bytes
                       or entries > 0 and self.max_entries is not None
                       and self.used_entries + entries > self.max_entries):
            raise WasiError(Errno.NOSPC)
        self.used_bytes += nbytes
        self.used_entries += entries

    def unname(self, node: Node) -> None:
        """One name of ``node`` is gone: its data with the last."""
        node.nlink -= 1
        self.charge(-node.size() if isinstance(node, FileNode) and node.nlink <= 0 else 0, -1)


class _Found:
    """Where a path led: its parent directory, its last name ("." when the
    path names the start or a directory through "." or ".."), the node
    there (None: no such entry) and whether the path ended in "/"."""

    __slots__ = ("parent", "name", "node", "trailing")

    def __init__(self, parent: DirNode, name: str, node: Node | None, trailing: bool) -> None:
        self.parent = parent
        self.name = name
        self.node = node
        self.trailing = trailing


def _walk(start: DirNode, path: str, *, follow: bool) -> _Found:
    """Resolve ``path`` beneath ``start`` (module docstring); the final
    component's symlink is expanded when ``follow``."""
    # The common case first, in one pass: plain names ("f", "dir/f"), no
    # "." or ".." or empty component (no entry has such a name, so the
    # lookup misses and the full walk below takes over), no symlink on the
    # way, no trailing slash.
    if path and path[0] != "/" and path[-1] != "/":
        parts = path.split("/")
        here = start
        for name in parts[:-1]:
            node = here.entries.get(name)
            if node.__class__ not in _DIR_TYPES:
                break
            here = node  # type: ignore[assignment]  # a DirNode: the test above
        else:
            name = parts[-1]
            if name != "." and name != "..":
                node = here.entries.get(name)
                if not follow or type(node) is not LinkNode:
                    return _Found(here, name, node, False)
    if not path:
        raise WasiError(Errno.NOENT)
    if path.startswith("/"):
        raise WasiError(Errno.PERM)
    trailing = path.endswith("/")
    pending = [c for c in path.split("/") if c]
    pending.reverse()
    stack = [start]
    hops = 0
    while True:
        here = stack[-1]
        if not pending:
            return _Found(here, ".", here, trailing)
        name = pending.pop()
        last = not pending
        if name == ".":
            continue
        if name == "..":
            if len(stack) == 1:
                raise WasiError(Errno.PERM)  # out of the directory: an escape
            stack.pop()
            continue
        node = here.entries.get(name)
        if isinstance(node, LinkNode) and (not last or follow):
            hops += 1
            if hops > MAX_SYMLINKS:
                raise WasiError(Errno.LOOP)
            target = node.target
            if not target:
                raise WasiError(Errno.NOENT)
            if target.startswith("/"):
                raise WasiError(Errno.PERM)
            pending.extend(reversed([c for c in target.split("/") if c] or ["."]))
            continue
        if last:
            return _Found(here, name, node, trailing)
        if node is None:
            raise WasiError(Errno.NOENT)
        if not isinstance(node, DirNode):
            raise WasiError(Errno.NOTDIR)
        stack.append(node)


def _filestat(node: Node) -> tuple[int, ...]:
    nlink = node.link_count() if isinstance(node, DirNode) else node.nlink
    return (DEVICE, node.ino, node.filetype, nlink, node.size(), node.atim, node.mtim,
            node.ctim)


def _set_times(node: Node, atim: int, mtim: int, fst_flags: int, now: int) -> None:
    a, m = resolve_times(atim, mtim, fst_flags)
    if a != OMIT:
        node.atim = now if a == NOW else int(a)
    if m != OMIT:
        node.mtim = now if m == NOW else int(m)
    node.ctim = now


def _creatable(found: _Found) -> None:
    """A new name may be made at ``found`` (link, symlink, mkdir)."""
    if found.name == ".":
        raise WasiError(Errno.EXIST)
    if found.trailing and found.node is None:
        raise WasiError(Errno.NOENT)
    if found.node is not None:
        raise WasiError(Errno.EXIST)
    if found.parent.nlink == 0:  # a removed directory takes no new entries
        raise WasiError(Errno.NOENT)


class MemoryDirectory(Directory):
    """A directory of a MemoryFS; the ``Directory`` calls on its tree."""

    def __init__(self, tree: MemoryTree, node: DirNode, *, preopen: bytes | None,
                 rights_base: int, rights_inheriting: int,
                 now: Callable[[], int] = time.time_ns) -> None:
        self.tree = tree
        self.node = node
        self.preopen = preopen
        self.rights_base = rights_base
        self.rights_inheriting = rights_inheriting
        self.now = now
        self._listing: list[tuple[bytes, int, int]] | None = None

    def __repr__(self) -> str:
        return f"<MemoryDirectory ino={self.node.ino}>"

    def _walk(self, path: str, *, follow: bool) -> _Found:
        return _walk(self.node, path, follow=follow)

    # -- metadata --------------------------------------------------------
    def filestat(self) -> tuple[int, ...]:
        return _filestat(self.node)

    def set_times(self, atim: int, mtim: int, fst_flags: int) -> None:
        with self.tree.lock:
            _set_times(self.node, atim, mtim, fst_flags, self.now())

    def sync(self) -> None:
        pass

    def datasync(self) -> None:
        pass

    # -- listing ---------------------------------------------------------
    def readdir(self, cookie: int, limit: int, ordered: bool = False) -> bytes:
        # Cookies as the host directory's: an index into a listing read at
        # cookie 0 (or the first call), so they stay valid while entries
        # come and go; the changes show at the next rewind.
        if cookie == 0 or self._listing is None:
            with self.tree.lock:
                node = self.node
                parent = node if self.preopen is not None or node.parent is None else node.parent
                entries = [(name.encode(), n.ino, int(n.filetype))
                           for name, n in node.entries.items()]
            if ordered:
                entries.sort()
            self._listing = [(b".", node.ino, int(Filetype.DIRECTORY)),
                             (b"..", parent.ino, int(Filetype.DIRECTORY)), *entries]
        return self.dirents(self._listing, cookie, limit)

    def close(self) -> None:
        self._listing = None

    # -- the path calls ---------------------------------------------------
    def same_tree(self, other: Directory) -> bool:
        return isinstance(other, MemoryDirectory) and other.tree is self.tree

    def open_at(self, path: str, follow: bool, oflags: int, fdflags: int, read: bool,
                write: bool, rights_base: int, rights_inheriting: int) -> Descriptor:
        if oflags & _CREAT and path.endswith("/"):  # open("x/", O_CREAT): Linux EISDIR,
            raise WasiError(Errno.ISDIR)            # before the path is looked at
        # O_CREAT|O_EXCL never follows the final symlink: a link there exists.
        exclusive = oflags & _CREAT and oflags & _EXCL
        with self.tree.lock:
            found = self._walk(path, follow=follow and not exclusive or path.endswith("/"))
            node = found.node
            if node is None:
                if not oflags & _CREAT:
                    raise WasiError(Errno.NOENT)
                if found.parent.nlink == 0:
                    raise WasiError(Errno.NOENT)
                self.tree.charge(0, 1)
                now = self.now()
                node = FileNode(self.tree.new_ino(), now)
                found.parent.entries[found.name] = node
                found.parent.mtim = found.parent.ctim = now
            elif oflags & _CREAT and oflags & _EXCL:
                raise WasiError(Errno.EXIST)
            if isinstance(node, LinkNode):  # O_NOFOLLOW on a symlink (Linux: ENOTDIR
                raise WasiError(Errno.NOTDIR if oflags & _DIRECTORY else Errno.LOOP)  # first)
            if isinstance(node, DirNode):
                if write or oflags & (_CREAT | _TRUNC):  # Linux: EISDIR for either
                    raise WasiError(Errno.ISDIR)
                return MemoryDirectory(self.tree, node, preopen=None,
                                       rights_base=rights_base & DIR_RIGHTS,
                                       rights_inheriting=rights_inheriting & DIR_INHERITING,
                                       now=self.now)
            if oflags & _DIRECTORY or found.trailing:
                raise WasiError(Errno.NOTDIR)
            assert isinstance(node, FileNode)
            if oflags & _TRUNC and node.data:
                self.tree.charge(-len(node.data))
                del node.data[:]
                node.mtim = node.ctim = self.now()
            return MemoryFile(self.tree, node, readable=read or not write, writable=write,
                              fdflags=fdflags, rights_base=rights_base & FILE_RIGHTS,
                              rights_inheriting=rights_inheriting & DIR_INHERITING,
                              now=self.now)

    def mkdir_at(self, path: str) -> None:
        with self.tree.lock:
            found = self._walk(path, follow=False)
            if found.name == "." or found.node is not None:
                raise WasiError(Errno.EXIST)
            if found.parent.nlink == 0:
                raise WasiError(Errno.NOENT)
            self.tree.charge(0, 1)
            now = self.now()
            found.parent.entries[found.name] = DirNode(self.tree.new_ino(), now, found.parent)
            found.parent.mtim = found.parent.ctim = now

    def rmdir_at(self, path: str) -> None:
        with self.tree.lock:
            found = self._walk(path, follow=False)
            if found.name == ".":
                raise WasiError(Errno.INVAL)
            node = found.node
            if node is None:
                raise WasiError(Errno.NOENT)
            if not isinstance(node, DirNode):
                raise WasiError(Errno.NOTDIR)
            if node.entries:
                raise WasiError(Errno.NOTEMPTY)
            del found.parent.entries[found.name]
            self.tree.charge(0, -1)
            node.nlink = 0
            node.parent = None
            found.parent.mtim = found.parent.ctim = self.now()

    def _existing(self, path: str, follow: bool) -> Node:
        """The node ``path`` names (a trailing slash follows a final link
        and demands a directory)."""
        found = self._walk(path, follow=follow or path.endswith("/"))
        node = found.node
        if node is None:
            raise WasiError(Errno.NOENT)
        if found.trailing and not isinstance(node, DirNode):
            raise WasiError(Errno.NOTDIR)
        return node

    def stat_at(self, path: str, follow: bool) -> tuple[int, ...]:
        with self.tree.lock:
            return _filestat(self._existing(path, follow))

    def set_times_at(self, path: str, follow: bool, atim: int, mtim: int,
                     fst_flags: int) -> None:
        with self.tree.lock:
            _set_times(self._existing(path, follow), atim, mtim, fst_flags, self.now())

    def link_at(self, old: str, follow: bool, target: Directory, new: str) -> None:
        assert isinstance(target, MemoryDirectory)  # same_tree
        with self.tree.lock:
            src = self._walk(old, follow=follow or old.endswith("/"))
            dst = target._walk(new, follow=False)
            node = src.node
            if node is None:
                raise WasiError(Errno.NOENT)
            if isinstance(node, DirNode):  # POSIX link(2): EPERM for a directory
                raise WasiError(Errno.PERM)
            if src.trailing:
                raise WasiError(Errno.NOTDIR)
            _creatable(dst)
            self.tree.charge(0, 1)
            now = self.now()
            dst.parent.entries[dst.name] = node
            node.nlink += 1
            node.ctim = now
            dst.parent.mtim = dst.parent.ctim = now

    def symlink_at(self, contents: str, path: str) -> None:
        with self.tree.lock:
            found = self._walk(path, follow=False)
            _creatable(found)
            self.tree.charge(0, 1)
            now = self.now()
            found.parent.entries[found.name] = LinkNode(self.tree.new_ino(), now, contents)
            found.parent.mtim = found.parent.ctim = now

    def readlink_at(self, path: str) -> bytes:
        with self.tree.lock:
            found = self._walk(path, follow=False)
            if found.trailing:
                self.stat_at(path, follow=True)  # why "link/" fails, else INVAL
                raise WasiError(Errno.INVAL)
            if found.node is None:
                raise WasiError(Errno.NOENT)
            if not isinstance(found.node, LinkNode):
                raise WasiError(Errno.INVAL)
            return found.node.target.encode()

    def unlink_at(self, path: str) -> None:
        with self.tree.lock:
            found = self._walk(path, follow=False)
            node = found.node
            if found.name == ".":
                raise WasiError(Errno.ISDIR)
            if node is None:
                raise WasiError(Errno.NOENT)
            if found.trailing or isinstance(node, DirNode):
                raise WasiError(Errno.ISDIR if isinstance(node, DirNode) else Errno.NOTDIR)
            del found.parent.entries[found.name]
            self.tree.unname(node)
            now = self.now()
            node.ctim = now
            found.parent.mtim = found.parent.ctim = now

    def rename_at(self, old: str, target: Directory, new: str) -> None:
        assert isinstance(target, MemoryDirectory)  # same_tree
        with self.tree.lock:
            src = self._walk(old, follow=False)
            dst = target._walk(new, follow=False)
            if src.name == "." or dst.name == ".":
                raise WasiError(Errno.BUSY)
            node = src.node
            if node is None:
                raise WasiError(Errno.NOENT)
            moving_dir = isinstance(node, DirNode)
            if (src.trailing or dst.trailing) and not moving_dir:
                raise WasiError(Errno.NOTDIR)
            there = dst.node
            if there is node:
                return  # two names of one file: POSIX rename does nothing
            # Linux (renameat2's "trap", the parents' common ancestor): a
            # directory moved under itself is EINVAL, onto a directory it is
            # inside of ENOTEMPTY, before the kinds are compared.
            if isinstance(node, DirNode) and _within(dst.parent, node):
                raise WasiError(Errno.INVAL)
            if isinstance(there, DirNode) and _within(src.parent, there):
                raise WasiError(Errno.NOTEMPTY)
            if moving_dir:
                if there is not None and not isinstance(there, DirNode):
                    raise WasiError(Errno.NOTDIR)
                if isinstance(there, DirNode) and there.entries:
                    raise WasiError(Errno.NOTEMPTY)
            elif isinstance(there, DirNode):
                raise WasiError(Errno.ISDIR)
            if dst.parent.nlink == 0:
                raise WasiError(Errno.NOENT)
            del src.parent.entries[src.name]
            if isinstance(there, DirNode):
                there.nlink = 0
                self.tree.charge(0, -1)
            elif there is not None:
                self.tree.unname(there)
            dst.parent.entries[dst.name] = node
            if isinstance(node, DirNode):
                node.parent = dst.parent
            now = self.now()
            node.ctim = now
            for parent in (src.parent, dst.parent):
                parent.mtim = parent.ctim = now


def _within(directory: DirNode | None, ancestor: DirNode) -> bool:
    """``directory`` is ``ancestor`` or below it."""
    while directory is not None:
        if directory is ancestor:
            return True
        directory = directory.parent
    return False


class MemoryFile(Descriptor):
    """An open regular file of a MemoryFS: a position over its node's data."""

    def __init__(self, tree: MemoryTree, node: FileNode, *, readable: bool, writable: bool,
                 fdflags: int, rights_base: int, rights_inheriting: int,
                 now: Callable[[], int] = time.time_ns) -> None:
        self.tree = tree
        self.node = node
        self.readable = readable
        self.writable = writable
        self.flags = _host_like(fdflags)
        self.position = 0
        self.filetype = Filetype.REGULAR_FILE
        self.rights_base = rights_base
        self.rights_inheriting = rights_inheriting
        self.now = now

    def __repr__(self) -> str:
        return f"<MemoryFile ino={self.node.ino} size={len(self.node.data)}>"

    # -- fdstat ----------------------------------------------------------
    def fdflags(self) -> int:
        return self.flags

    def set_fdflags(self, flags: int) -> None:
        # As a host file: APPEND and NONBLOCK change; the sync flags do not.
        if _host_like(flags) & _SYNC_FDFLAGS != self.flags & _SYNC_FDFLAGS:
            raise WasiError(Errno.NOTSUP)
        self.flags = self.flags & _SYNC_FDFLAGS | flags & (_APPEND | _NONBLOCK)

    # -- data ------------------------------------------------------------
    def read(self, bufs: list[memoryview]) -> int:
        n = self.pread(bufs, self.position)
        self.position += n
        return n

    def pread(self, bufs: list[memoryview], offset: int) -> int:
        if not self.readable:
            raise WasiError(Errno.BADF)
        if offset > OFF_MAX:
            raise WasiError(Errno.INVAL)
        with self.tree.lock:
            data = self.node.data
            done = 0
            with memoryview(data) as view:
                for buf in bufs:
                    start = offset + done
                    chunk = view[start:start + len(buf)]
                    buf[:len(chunk)] = chunk
                    done += len(chunk)
                    if len(chunk) < len(buf):
                        break
            return done

    def write(self, bufs: list[memoryview]) -> int:
        with self.tree.lock:
            at = len(self.node.data) if self.flags & _APPEND else self.position
            n = self._write_at(bufs, at)
            self.position = at + n
            return n

    def pwrite(self, bufs: list[memoryview], offset: int) -> int:
        if offset > OFF_MAX:
            raise WasiError(Errno.INVAL)
        with self.tree.lock:
            # NOTE: APPEND ignores the offset, as the host file does (Linux pwrite(2)).
            return self._write_at(bufs, len(self.node.data) if self.flags & _APPEND else offset)

    def _write_at(self, bufs: list[memoryview], offset: int) -> int:
        if not self.writable:
            raise WasiError(Errno.BADF)
        total = sum(map(len, bufs))
        if offset + total > OFF_MAX:
            raise WasiError(Errno.FBIG)
        if not total:
            return 0
        data = self.node.data
        if self.node.nlink > 0:  # an unlinked file's bytes are no longer counted
            self.tree.charge(max(0, offset + total - len(data)))
        if offset > len(data):
            data.extend(bytes(offset - len(data)))
        for buf in bufs:
            data[offset:offset + len(buf)] = buf
            offset += len(buf)
        self.node.mtim = self.node.ctim = self.now()
        return total

    def seek(self, offset: int, whence: int) -> int:
        with self.tree.lock:
            base = {Whence.SET: 0, Whence.CUR: self.position,
                    Whence.END: len(self.node.data)}[Whence(whence)]
        new = base + offset
        if new < 0 or new > OFF_MAX:
            raise WasiError(Errno.INVAL)
        self.position = new
        return new

    def tell(self) -> int:
        return self.position

    def advise(self, offset: int, length: int, advice: int) -> None:
        if offset > OFF_MAX or length > OFF_MAX:
            raise WasiError(Errno.INVAL)

    def allocate(self, offset: int, length: int) -> None:
        if length == 0 or offset > OFF_MAX:
            raise WasiError(Errno.INVAL)
        if offset + length > OFF_MAX:
            raise WasiError(Errno.FBIG)
        if not self.writable:
            raise WasiError(Errno.BADF)
        with self.tree.lock:
            data = self.node.data
            if offset + length > len(data):
                if self.node.nlink > 0:
                    self.tree.charge(offset + length - len(data))
                data.extend(bytes(offset + length - len(data)))
                self.node.mtim = self.node.ctim = self.now()

    def sync(self) -> None:
        pass

    def datasync(self) -> None:
        pass

    # -- metadata --------------------------------------------------------
    def filestat(self) -> tuple[int, ...]:
        return _filestat(self.node)

    def set_size(self, size: int) -> None:
        if size > OFF_MAX:
            raise WasiError(Errno.FBIG)
        if not self.writable:
            raise WasiError(Errno.INVAL)  # ftruncate(2) on a read-only fd
        with self.tree.lock:
            data = self.node.data
            if self.node.nlink > 0:
                self.tree.charge(size - len(data))
            if size < len(data):
                del data[size:]
            else:
                data.extend(bytes(size - len(data)))
            self.node.mtim = self.node.ctim = self.now()

    def set_times(self, atim: int, mtim: int, fst_flags: int) -> None:
        with self.tree.lock:
            _set_times(self.node, atim, mtim, fst_flags, self.now())

    def ready_nbytes(self, writing: bool) -> int:
        return 0 if writing else max(0, len(self.node.data) - self.position)


_SYNC_RSYNC = int(Fdflags.SYNC | Fdflags.RSYNC)
_DSYNC = int(Fdflags.DSYNC)


def _host_like(fdflags: int) -> int:
    """fdflags as a Linux host file reports them back: SYNC and RSYNC are one
    flag (O_RSYNC == O_SYNC), and SYNC includes DSYNC's bit."""
    flags = fdflags & (_APPEND | _NONBLOCK)
    if fdflags & _SYNC_RSYNC:
        flags |= _SYNC_RSYNC
    elif fdflags & _DSYNC:
        flags |= _DSYNC
    return flags


# -- an overlay's lower tree, read on demand ------------------------------------

class LowerTree:
    """A host directory an Overlay reads from and never writes: its fd, and
    every read of it through the sandbox resolver (``open_beneath``, final
    links never followed), so nothing outside it is ever reached."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        self._finalizer = weakref.finalize(self, os.close, self.fd)

    def open(self, relpath: str, directory: bool) -> int:
        flags = os.O_RDONLY | (os.O_DIRECTORY if directory else 0)
        return open_beneath(self.fd, relpath or ".", flags, follow=False)

    def read(self, relpath: str) -> bytearray:
        fd = self.open(relpath, False)
        try:
            return read_whole(fd)
        finally:
            os.close(fd)

    def scan(self, relpath: str) -> list[tuple[str, os.stat_result, str | None]]:
        """(name, lstat, link target or None) of each directory, regular
        file and symlink in ``relpath`` (other kinds are left out)."""
        fd = self.open(relpath, True)
        out = []
        try:
            for name in sorted(os.listdir(fd)):
                try:
                    st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                    target = os.readlink(name, dir_fd=fd) if stat.S_ISLNK(st.st_mode) else None
                except FileNotFoundError:
                    continue  # removed since the listing
                if stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode) or target is not None:
                    out.append((name, st, target))
        finally:
            os.close(fd)
        return out


class LazyDirNode(DirNode):
    """A directory of an overlay's lower tree: its entries are read from the
    lower tree the first time anyone looks at them (``origin``: its path
    there)."""

    __slots__ = ("_entries", "lower", "origin", "tree")

    def __init__(self, tree: MemoryTree, ino: int, now: int, parent: DirNode | None,
                 lower: LowerTree, origin: str) -> None:
        self._entries: dict[str, Node] | None = None
        self.lower = lower
        self.origin = origin
        self.tree = tree
        super().__init__(ino, now, parent)
        self._entries = None  # DirNode's {} above: not read yet

    @property
    def entries(self) -> dict[str, Node]:
        if self._entries is None:
            self._entries = {}
            for name, st, target in self.lower.scan(self.origin):
                self._entries[name] = lower_node(self.tree, self, self.lower,
                                                 f"{self.origin}/{name}".lstrip("/"), st, target)
            self.tree.charge(0, len(self._entries), refuse=False)
        return self._entries

    @entries.setter
    def entries(self, value: dict[str, Node]) -> None:
        self._entries = value


class LazyFileNode(FileNode):
    """A regular file of an overlay's lower tree: its bytes are read the
    first time they are needed; until then its size is the lower file's."""

    __slots__ = ("_data", "lower", "origin", "_size")

    def __init__(self, ino: int, st: os.stat_result, lower: LowerTree, origin: str) -> None:
        self._data: bytearray | None = None
        self.lower = lower
        self.origin = origin
        self._size = st.st_size
        Node.__init__(self, ino, st.st_mtime_ns)
        self.atim, self.ctim = st.st_atime_ns, st.st_ctime_ns

    @property
    def data(self) -> bytearray:
        if self._data is None:
            self._data = self.lower.read(self.origin)
        return self._data

    @data.setter
    def data(self, value: bytearray) -> None:
        self._data = value

    @property
    def loaded(self) -> bool:
        return self._data is not None

    def size(self) -> int:
        return self._size if self._data is None else len(self._data)


def lower_node(tree: MemoryTree, parent: DirNode, lower: LowerTree, origin: str,
               st: os.stat_result, target: str | None) -> Node:
    ino = tree.new_ino()
    node: Node
    if target is not None:
        node = LinkNode(ino, st.st_mtime_ns, target)
    elif stat.S_ISDIR(st.st_mode):
        node = LazyDirNode(tree, ino, st.st_mtime_ns, parent, lower, origin)
    else:
        node = LazyFileNode(ino, st, lower, origin)
        tree.charge(st.st_size, refuse=False)
    return node


def read_whole(fd: int) -> bytearray:
    """A host file's bytes, read into one buffer of its size (no second copy)."""
    data = bytearray(os.fstat(fd).st_size)
    done = 0
    with memoryview(data) as view:
        while done < len(data):
            n = os.readv(fd, [view[done:]])
            if not n:
                break
            done += n
    del data[done:]
    rest = os.read(fd, 1 << 16)  # grown while being read
    while rest:
        data += rest
        rest = os.read(fd, 1 << 16)
    return data


# What the path walk's fast path descends into (a type test, not isinstance:
# it runs for every component of every path).
_DIR_TYPES = frozenset({DirNode, LazyDirNode})
