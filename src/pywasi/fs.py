"""Filesystems that live in Python, for preopens:
``WASI(preopens={"/data": pywasi.fs.MemoryFS({"in.txt": b"hi"})})``.

A ``MemoryFS`` obeys the rules a host directory does (``_fs/_memory.py``):
the same errnos for every path and fd call, ``..`` and symlinks that cannot
leave the tree, hard links, unlinked-but-open files. It never touches a host
path: what the guest writes stays in the object, for the host side to read
(``read``, ``listdir``, ``to_dict``, ``to_host``).

``Directory`` is the protocol for a tree of your own: subclass it (every
method answers NOTSUP until overridden) and pass an instance as a preopen.
"""

from __future__ import annotations

import hashlib
import os
import stat
import time
import zipfile
from collections.abc import Callable, Iterator, Mapping
from typing import Any, NamedTuple, Union

from ._abi import Rights
from ._errors import WasiError
from ._fs._base import Directory
from ._fs._dir import DIR_INHERITING, DIR_RIGHTS
from ._fs._memory import (DEVICE, DirNode, FileNode, LazyDirNode, LazyFileNode, LinkNode,
                         LowerTree, MemoryDirectory, MemoryTree, Node, _filestat, _walk,
                         read_whole)

__all__ = ["MemoryFS", "ReadOnly", "Overlay", "ZipFS", "Directory", "FileInfo", "Symlink"]

Tree = Mapping[str, Union[bytes, "Tree"]]


class MemoryFS:
    """A tree of directories, regular files and symlinks held in Python.

    ``files``: relative path -> ``bytes`` (a file) or a nested mapping (a
    directory); a path may name several levels (``"a/b.txt"``), missing
    directories are made. Host-side methods take paths relative to the
    root, "/"-separated, and never follow a symlink out of the tree."""

    def __init__(self, files: Tree | None = None, *, max_bytes: int | None = None,
                 max_entries: int | None = None) -> None:
        for option, value in (("max_bytes", max_bytes), ("max_entries", max_entries)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                      or value < 0):
                raise TypeError(f"MemoryFS: {option} must be a non-negative int or None")
        self._tree = MemoryTree(max_bytes=max_bytes, max_entries=max_entries)
        if files is not None:
            if not isinstance(files, Mapping):
                raise TypeError(f"MemoryFS: files must be a mapping of paths to bytes or "
                                f"mappings, not {type(files).__name__}")
            self._fill("", files)

    def _fill(self, prefix: str, files: Tree) -> None:
        for name, value in files.items():
            if not isinstance(name, str) or not name.strip("/"):
                raise ValueError(f"MemoryFS: {name!r} is not a relative path")
            path = prefix + name.strip("/")
            if isinstance(value, (bytes, bytearray, memoryview)):
                self.write(path, bytes(value))
            elif isinstance(value, Mapping):
                self.makedirs(path)
                self._fill(path + "/", value)
            else:
                raise TypeError(f"MemoryFS: {path!r} must be bytes or a mapping, "
                                f"not {type(value).__name__}")

    @classmethod
    def from_host(cls, path: str | os.PathLike[str], **quotas: Any) -> MemoryFS:
        """A copy of a host directory tree: files, directories and symlinks
        (as links, their targets as text); other kinds are skipped. Read
        relative to directory fds, never following a link (``O_NOFOLLOW``),
        so a tree changed while it is read cannot lead the copy outside it."""
        fs = cls(**quotas)
        fs._copy_in_host(path)
        return fs

    def _copy_in_host(self, path: str | os.PathLike[str]) -> None:
        top = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            self._copy_in(top, "")
        finally:
            os.close(top)

    def _copy_in(self, dir_fd: int, prefix: str) -> None:
        for entry in sorted(os.listdir(dir_fd)):
            path = prefix + entry
            try:
                st = os.stat(entry, dir_fd=dir_fd, follow_symlinks=False)
                if stat.S_ISLNK(st.st_mode):
                    self.symlink(os.readlink(entry, dir_fd=dir_fd), path)
                elif stat.S_ISDIR(st.st_mode):
                    self.makedirs(path)
                    fd = os.open(entry, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
                                 | os.O_CLOEXEC, dir_fd=dir_fd)
                    try:
                        self._copy_in(fd, path + "/")
                    finally:
                        os.close(fd)
                elif stat.S_ISREG(st.st_mode):
                    fd = os.open(entry, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC,
                                 dir_fd=dir_fd)
                    try:
                        self._store(path, read_whole(fd))
                    finally:
                        os.close(fd)
            except FileNotFoundError:
                continue  # removed while being read

    # -- the host side ---------------------------------------------------

    def read(self, path: str) -> bytes:
        """The contents of a file (symlinks followed)."""
        with self._tree.lock:
            node = self._checked(path)
            if not isinstance(node, FileNode):
                raise IsADirectoryError(f"MemoryFS: {path!r} is not a file")
            return bytes(node.data)

    def write(self, path: str, data: bytes) -> None:
        """Create or replace a file (missing parent directories are made)."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"MemoryFS.write: data must be bytes, not {type(data).__name__}")
        self._store(path, bytearray(data))

    def _store(self, path: str, data: bytearray) -> None:
        """``write``, the tree taking ``data`` itself (no copy)."""
        head, _, name = path.strip("/").rpartition("/")
        with self._tree.lock:
            parent = self.makedirs(head) if head else self._tree.root
            node = parent.entries.get(name)
            now = time.time_ns()
            if isinstance(node, FileNode):
                self._tree.charge(len(data) - len(node.data), refuse=False)
                node.data[:] = data
                node.mtim = node.ctim = now
            elif node is None:
                self._tree.charge(len(data), 1, refuse=False)
                node = FileNode(self._tree.new_ino(), now)
                node.data = data
                parent.entries[name] = node
            else:
                raise IsADirectoryError(f"MemoryFS: {path!r} exists and is not a file")

    def makedirs(self, path: str) -> DirNode:
        with self._tree.lock:
            here = self._tree.root
            for name in [c for c in path.strip("/").split("/") if c and c != "."]:
                node = here.entries.get(name)
                if node is None:
                    self._tree.charge(0, 1, refuse=False)
                    node = DirNode(self._tree.new_ino(), time.time_ns(), here)
                    here.entries[name] = node
                if not isinstance(node, DirNode):
                    raise NotADirectoryError(f"MemoryFS: {name!r} in {path!r} is not a directory")
                here = node
            return here

    def symlink(self, target: str, path: str) -> None:
        with self._tree.lock:
            parent, name = self._new_name(path)
            parent.entries[name] = LinkNode(self._tree.new_ino(), time.time_ns(), target)

    def link(self, path: str, new_path: str) -> None:
        """A second name for the file ``path`` names (a final symlink is
        followed, as ``os.link``): one node, one data buffer, ``nlink`` + 1.
        A directory cannot be linked (``PermissionError``, as link(2)'s
        EPERM); ``new_path``'s missing parent directories are made."""
        with self._tree.lock:
            node = self._checked(path)
            if isinstance(node, DirNode):
                raise PermissionError(f"MemoryFS: {path!r} is a directory")
            parent, name = self._new_name(new_path)
            parent.entries[name] = node
            node.nlink += 1
            node.ctim = parent.mtim = parent.ctim = time.time_ns()

    def _new_name(self, path: str) -> tuple[DirNode, str]:
        """The directory and name where ``path`` is about to be made (missing
        parents made, the name counted); FileExistsError if it is taken.
        The caller holds the lock."""
        head, _, name = path.strip("/").rpartition("/")
        parent = self.makedirs(head) if head else self._tree.root
        if name in parent.entries:
            raise FileExistsError(f"MemoryFS: {path!r} exists")
        self._tree.charge(0, 1, refuse=False)
        return parent, name

    def utime(self, path: str, ns: tuple[int, int], *, follow_symlinks: bool = True) -> None:
        """Set ``path``'s access and modification times, ``ns`` = (atime_ns,
        mtime_ns), as ``os.utime(path, ns=...)`` does to a host file (ctime
        becomes now)."""
        atime_ns, mtime_ns = ns
        with self._tree.lock:
            node = self._checked(path, follow=follow_symlinks)
            node.atim, node.mtim = atime_ns, mtime_ns
            node.ctim = time.time_ns()

    def stat(self, path: str, *, follow_symlinks: bool = True) -> FileInfo:
        """What the guest's ``path_filestat_get`` would see of ``path``."""
        with self._tree.lock:
            return FileInfo(*_filestat(self._checked(path, follow=follow_symlinks))[1:])

    def readlink(self, path: str) -> str:
        with self._tree.lock:
            node = self._checked(path, follow=False)
            if not isinstance(node, LinkNode):
                raise OSError(f"MemoryFS: {path!r} is not a symlink")
            return node.target

    def listdir(self, path: str = "") -> list[str]:
        """The names in a directory, in creation order."""
        with self._tree.lock:
            node = self._checked(path)
            if not isinstance(node, DirNode):
                raise NotADirectoryError(f"MemoryFS: {path!r} is not a directory")
            return list(node.entries)

    def exists(self, path: str) -> bool:
        try:
            with self._tree.lock:
                self._checked(path)
            return True
        except (OSError, WasiError):
            return False

    def _checked(self, path: str, *, follow: bool = True) -> Node:
        """The node at ``path`` (host side: a missing or escaping path is
        FileNotFoundError)."""
        try:
            found = _walk(self._tree.root, path.strip("/") or ".", follow=follow)
        except WasiError as e:
            raise FileNotFoundError(f"MemoryFS: {path!r}: {e}") from None
        if found.node is None:
            raise FileNotFoundError(f"MemoryFS: no such file or directory: {path!r}")
        return found.node

    @property
    def used_bytes(self) -> int:
        """Bytes of file data the tree holds (what ``max_bytes`` limits)."""
        return self._tree.used_bytes

    @property
    def used_entries(self) -> int:
        """Names in the tree's directories (what ``max_entries`` limits)."""
        return self._tree.used_entries

    def to_dict(self) -> dict[str, Any]:
        """The whole tree: name -> bytes (a file), dict (a directory), or
        ``Symlink(target)``."""
        with self._tree.lock:
            return _export(self._tree.root)

    def to_host(self, path: str | os.PathLike[str]) -> None:
        """Write the tree into the host directory ``path`` (made if missing)."""
        os.makedirs(path, exist_ok=True)
        for rel, node in self._items():
            full = os.path.join(path, *rel.split("/"))
            if isinstance(node, DirNode):
                os.makedirs(full, exist_ok=True)
            elif isinstance(node, LinkNode):
                os.symlink(node.target, full)
            elif isinstance(node, FileNode):
                with open(full, "wb") as f:
                    f.write(node.data)

    def _items(self) -> Iterator[tuple[str, Node]]:
        with self._tree.lock:
            pending: list[tuple[str, DirNode]] = [("", self._tree.root)]
            out: list[tuple[str, Node]] = []
            while pending:
                prefix, directory = pending.pop()
                for name, node in directory.entries.items():
                    out.append((prefix + name, node))
                    if isinstance(node, DirNode):
                        pending.append((prefix + name + "/", node))
        return iter(out)

    def _digests(self, lower: Any = None) -> dict[str, tuple[str, bytes]]:
        """path -> (kind, SHA-256 of the contents or the link's target); a
        file of ``lower`` (an overlay's) never loaded, still at its own
        path: ("lazy", its path), unchanged by definition."""
        out: dict[str, tuple[str, bytes]] = {}
        for path, node in self._items():
            if isinstance(node, LazyFileNode) and not node.loaded and node.lower is lower \
                    and node.origin == path:
                out[path] = ("lazy", path.encode())
            elif isinstance(node, FileNode):
                out[path] = ("file", hashlib.sha256(node.data).digest())
            elif isinstance(node, LinkNode):
                out[path] = ("link", node.target.encode())
            else:
                out[path] = ("dir", b"")
        return out

    # -- as a preopen ------------------------------------------------------
    def wasi_preopen(self, guest: bytes, now: Callable[[], int] = time.time_ns) -> Directory:
        """The preopened directory of this tree's root (``WASI`` calls it)."""
        return MemoryDirectory(self._tree, self._tree.root, preopen=guest,
                               rights_base=DIR_RIGHTS, rights_inheriting=DIR_INHERITING, now=now)

    def __repr__(self) -> str:
        return f"MemoryFS({len(list(self._items()))} entries)"


class FileInfo(NamedTuple):
    """``MemoryFS.stat``: the guest's filestat of a node (times in ns)."""

    ino: int
    filetype: int
    nlink: int
    size: int
    atime_ns: int
    mtime_ns: int
    ctime_ns: int

    @property
    def dev(self) -> int:
        """The guest's ``st_dev``: one fixed value for every MemoryFS (its
        filestat has no host device to report)."""
        return DEVICE


class Symlink(str):
    """A symlink in ``MemoryFS.to_dict``: its target."""

    def __repr__(self) -> str:
        return f"Symlink({str(self)!r})"


def _export(directory: DirNode) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, node in directory.entries.items():
        if isinstance(node, DirNode):
            out[name] = _export(node)
        elif isinstance(node, LinkNode):
            out[name] = Symlink(node.target)
        elif isinstance(node, FileNode):
            out[name] = bytes(node.data)
    return out


# Every right that changes a tree (or a file's data or metadata). A read-only
# preopen is one without them, in what it may do and in what it hands down.
_MUTATING = int(
    Rights.FD_WRITE | Rights.FD_ALLOCATE | Rights.FD_FILESTAT_SET_SIZE
    | Rights.FD_FILESTAT_SET_TIMES | Rights.PATH_CREATE_DIRECTORY | Rights.PATH_CREATE_FILE
    | Rights.PATH_LINK_SOURCE | Rights.PATH_LINK_TARGET | Rights.PATH_RENAME_SOURCE
    | Rights.PATH_RENAME_TARGET | Rights.PATH_FILESTAT_SET_SIZE
    | Rights.PATH_FILESTAT_SET_TIMES | Rights.PATH_SYMLINK | Rights.PATH_REMOVE_DIRECTORY
    | Rights.PATH_UNLINK_FILE)


class ReadOnly:
    """A read-only view of a tree: a host directory path, a ``MemoryFS`` or
    any other preopen.

    It is the preopen without the rights that change anything (``_MUTATING``),
    in the rights it has and in those it hands down to what is opened through
    it. So every mutating call answers NOTCAPABLE -- what the spec's rights
    model and wasmtime give for a directory without write rights (ROFS would
    say the whole filesystem is read-only, which the host's is not; PERM is
    the sandbox's refusal of a path) -- from the one rights check, before
    the tree is asked; and reads are the underlying tree's own calls,
    nothing in between."""

    def __init__(self, tree: Any) -> None:
        self.tree = tree

    def wasi_preopen(self, guest: bytes, now: Callable[[], int] = time.time_ns) -> Directory:
        from ._wasi import _open_preopen
        directory = _open_preopen(os.fsdecode(guest), self.tree)
        directory.rights_base &= ~_MUTATING
        directory.rights_inheriting &= ~_MUTATING
        return directory

    def __repr__(self) -> str:
        return f"ReadOnly({self.tree!r})"


class ZipFS(MemoryFS):
    """A zip archive as a read-only tree (CPython for WASI ships its stdlib
    as one). Its members are read when the ZipFS is made; directories come
    from names ending in "/" and from the paths of members; members whose
    Unix mode says symlink become links. Names that would climb out
    (``..``, absolute) are refused with ``ValueError``."""

    def __init__(self, archive: str | os.PathLike[str] | zipfile.ZipFile) -> None:
        super().__init__()
        opened = archive if isinstance(archive, zipfile.ZipFile) else zipfile.ZipFile(archive)
        try:
            for info in opened.infolist():
                name = info.filename
                parts = [p for p in name.split("/") if p]
                if name.startswith("/") or ".." in parts or not parts:
                    raise ValueError(f"ZipFS: member {name!r} is not a relative path "
                                     f"inside the archive")
                path = "/".join(parts)
                if info.is_dir():
                    self.makedirs(path)
                elif stat.S_ISLNK(info.external_attr >> 16):
                    self.symlink(opened.read(info).decode(), path)
                else:
                    self.write(path, opened.read(info))
        finally:
            if opened is not archive:
                opened.close()

    def wasi_preopen(self, guest: bytes, now: Callable[[], int] = time.time_ns) -> Directory:
        directory = super().wasi_preopen(guest, now)
        directory.rights_base &= ~_MUTATING
        directory.rights_inheriting &= ~_MUTATING
        return directory


class Overlay:
    """A tree the guest may change without touching ``lower``: its changes
    land in ``upper`` (a ``MemoryFS``), and ``changes()`` says what they are.

    ``lower``: a host directory path or a ``MemoryFS``. A host directory is
    read on demand -- a directory's entries when something first looks in
    it, a file's bytes when they are first read or changed -- always through
    the sandbox resolver relative to the lower directory's fd, never
    following a final link, so the guest reaches nothing outside it; what
    it deletes or renames away is simply gone from the upper tree (no
    whiteout is needed: the upper tree holds the merged view, with every
    rule of a MemoryFS). NOTE: a lower entry is read when it is first
    needed, so a change another process makes to the lower tree meanwhile
    shows up if the guest has not looked there yet; hard links in the lower
    tree are separate files in the overlay. With ``upper`` given, or a
    MemoryFS as ``lower``, the lower tree is copied in at once. ``upper``
    takes the quotas (``max_bytes``, ``max_entries``: the lower tree's
    entries count as they are read)."""

    def __init__(self, lower: Any, upper: MemoryFS | None = None, **quotas: Any) -> None:
        if not isinstance(lower, (MemoryFS, str, os.PathLike)):
            raise TypeError(f"Overlay: lower must be a host directory path or a MemoryFS, "
                            f"not {type(lower).__name__}")
        self.lower = lower
        self.upper = upper if upper is not None else MemoryFS(**quotas)
        self._host: LowerTree | None = None
        if isinstance(lower, MemoryFS):
            _import(self.upper, "", lower.to_dict())
            self._before = self.upper._digests()
        elif upper is not None:
            self.upper._copy_in_host(lower)
            self._before = self.upper._digests()
        else:
            self._host = LowerTree(lower)
            tree = self.upper._tree
            tree.root = LazyDirNode(tree, 1, time.time_ns(), None, self._host, "")

    def changes(self) -> dict[str, list[str]]:
        """What the guest changed, against the lower tree: paths ``added``,
        ``modified`` (contents, or a link's target, or a file become a
        directory) and ``deleted``, each sorted."""
        after = self.upper._digests(self._host)
        before = self._before if self._host is None else _lower_digests(self._host, after)
        return {"added": sorted(after.keys() - before.keys()),
                "modified": sorted(p for p in after.keys() & before.keys()
                                   if after[p] != before[p]),
                "deleted": sorted(before.keys() - after.keys())}

    def wasi_preopen(self, guest: bytes, now: Callable[[], int] = time.time_ns) -> Directory:
        return self.upper.wasi_preopen(guest, now)

    def __getstate__(self) -> dict[str, Any]:
        """Pickled with its contents: over a host directory, the lower tree
        is read whole now (the copy, in another process or on another
        machine, needs no host path) and ``changes()`` of the copy still
        compares against the lower tree as it was."""
        state = self.__dict__.copy()
        if self._host is not None:
            after = self.upper._digests(self._host)
            before = _lower_digests(self._host, after)
            for path, (kind, _) in before.items():
                if kind == "lazy":  # unchanged, never read: its bytes are the lower file's
                    before[path] = ("file", hashlib.sha256(self.upper.read(path)).digest())
            state.update(_host=None, _before=before)
        return state

    def __repr__(self) -> str:
        return f"Overlay({self.lower!r})"


def _lower_digests(lower: LowerTree, after: dict[str, tuple[str, bytes]]
                   ) -> dict[str, tuple[str, bytes]]:
    """The lower tree's entries as ``MemoryFS._digests`` gives them; a file
    the overlay never loaded at its own path is taken as unchanged (its
    digest is copied from ``after``, no read)."""
    out: dict[str, tuple[str, bytes]] = {}
    pending = [""]
    while pending:
        relpath = pending.pop()
        for name, st, target in lower.scan(relpath):
            path = f"{relpath}/{name}".lstrip("/")
            if target is not None:
                out[path] = ("link", target.encode())
            elif stat.S_ISDIR(st.st_mode):
                out[path] = ("dir", b"")
                pending.append(path)
            elif after.get(path, ("", b""))[0] == "lazy":
                out[path] = after[path]
            else:
                out[path] = ("file", hashlib.sha256(lower.read(path)).digest())
    return out


def _import(fs: MemoryFS, prefix: str, tree: dict[str, Any]) -> None:
    for name, value in tree.items():
        path = prefix + name
        if isinstance(value, Symlink):
            fs.symlink(str(value), path)
        elif isinstance(value, dict):
            fs.makedirs(path)
            _import(fs, path + "/", value)
        else:
            fs.write(path, value)
