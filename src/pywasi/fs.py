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

import os
import stat
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, NamedTuple, Union

from ._errors import WasiError
from ._fs._base import Directory
from ._fs._dir import DIR_INHERITING, DIR_RIGHTS
from ._fs._memory import (DirNode, FileNode, LinkNode, MemoryDirectory, MemoryTree, Node,
                         _filestat, _walk)

__all__ = ["MemoryFS", "Directory", "FileInfo", "Symlink"]

Tree = Mapping[str, Union[bytes, "Tree"]]


class MemoryFS:
    """A tree of directories, regular files and symlinks held in Python.

    ``files``: relative path -> ``bytes`` (a file) or a nested mapping (a
    directory); a path may name several levels (``"a/b.txt"``), missing
    directories are made. Host-side methods take paths relative to the
    root, "/"-separated, and never follow a symlink out of the tree."""

    def __init__(self, files: Tree | None = None) -> None:
        self._tree = MemoryTree()
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
    def from_host(cls, path: str | os.PathLike[str]) -> MemoryFS:
        """A copy of a host directory tree: files, directories and symlinks
        (as links, their targets as text); other kinds are skipped."""
        fs = cls()
        root = os.fspath(path)
        for dirpath, dirnames, filenames in os.walk(root):
            rel = os.path.relpath(dirpath, root)
            prefix = "" if rel == "." else rel.replace(os.sep, "/") + "/"
            for name in dirnames + filenames:
                full = os.path.join(dirpath, name)
                mode = os.lstat(full).st_mode
                if stat.S_ISLNK(mode):
                    fs.symlink(os.readlink(full), prefix + name)
                elif stat.S_ISDIR(mode):
                    fs.makedirs(prefix + name)
                elif stat.S_ISREG(mode):
                    with open(full, "rb") as f:
                        fs.write(prefix + name, f.read())
            # os.walk does not descend into links to directories (followlinks=False)
        return fs

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
        head, _, name = path.strip("/").rpartition("/")
        with self._tree.lock:
            parent = self.makedirs(head) if head else self._tree.root
            node = parent.entries.get(name)
            now = time.time_ns()
            if isinstance(node, FileNode):
                node.data[:] = data
                node.mtim = node.ctim = now
            elif node is None:
                parent.entries[name] = FileNode(self._tree.new_ino(), now, bytes(data))
            else:
                raise IsADirectoryError(f"MemoryFS: {path!r} exists and is not a file")

    def makedirs(self, path: str) -> DirNode:
        with self._tree.lock:
            here = self._tree.root
            for name in [c for c in path.strip("/").split("/") if c and c != "."]:
                node = here.entries.get(name)
                if node is None:
                    node = DirNode(self._tree.new_ino(), time.time_ns(), here)
                    here.entries[name] = node
                if not isinstance(node, DirNode):
                    raise NotADirectoryError(f"MemoryFS: {name!r} in {path!r} is not a directory")
                here = node
            return here

    def symlink(self, target: str, path: str) -> None:
        head, _, name = path.strip("/").rpartition("/")
        with self._tree.lock:
            parent = self.makedirs(head) if head else self._tree.root
            if name in parent.entries:
                raise FileExistsError(f"MemoryFS: {path!r} exists")
            parent.entries[name] = LinkNode(self._tree.new_ino(), time.time_ns(), target)

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
