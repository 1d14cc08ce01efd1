"""Shared fixtures: the wasm builder on sys.path, and node:wasi as a reference host.

The ``node`` fixture is the one place a test may skip: differential tests need
node (v20+, for node:wasi's ``version`` option) and CI machines may lack it.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

import pytest

TESTS_DIR = pathlib.Path(__file__).resolve().parent
if str(TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(TESTS_DIR))

# The suite must not fill the user's real compiled-module cache: every test
# (and every `python -m pywasi` it starts) uses a private one.
os.environ.setdefault("PYWASI_CACHE_DIR", tempfile.mkdtemp(prefix="pywasi-test-cache-"))

NODE_RUNNER = TESTS_DIR / "node_runner.mjs"
NODE_MIN_MAJOR = 20
NODE_TIMEOUT = 60.0

# (exit_code, stdout, stderr)
NodeResult = tuple[int, bytes, bytes]
RunNodeWasi = Callable[..., NodeResult]


@pytest.fixture(scope="session")
def node() -> str:
    """Path to a node binary with node:wasi preview1, or skip."""
    path = os.environ.get("PYWASI_NODE") or shutil.which("node")
    if path is None:
        pytest.skip("node not found (needed for differential tests against node:wasi)")
    try:
        out = subprocess.run(
            [path, "--version"], stdin=subprocess.DEVNULL, capture_output=True, timeout=30, check=True
        ).stdout.decode()
        major = int(out.strip().lstrip("v").split(".")[0])
    except (OSError, subprocess.SubprocessError, ValueError) as e:
        pytest.skip(f"node at {path} is not usable: {e}")
    if major < NODE_MIN_MAJOR:
        pytest.skip(f"node at {path} is v{major}; node:wasi preview1 needs v{NODE_MIN_MAJOR}+")
    return path


@pytest.fixture(scope="session")
def run_node_wasi(node: str) -> RunNodeWasi:
    """Run a wasm module under node:wasi; returns (exit_code, stdout, stderr).

    ``args`` is the guest's whole argv, passed as node:wasi takes it (argv[0]
    included; default: the module's file name).  ``env`` is the guest's whole
    environment (default empty, as node:wasi's).  ``preopens`` maps guest
    paths to host paths.  Exit 134 means the guest trapped (see node_runner.mjs).
    """

    def run(
        wasm_path: os.PathLike[str] | str,
        args: Sequence[str] | None = None,
        env: Mapping[str, str] | None = None,
        preopens: Mapping[str, os.PathLike[str] | str] | None = None,
        stdin: bytes = b"",
        *,
        version: str = "preview1",
        timeout: float = NODE_TIMEOUT,
    ) -> NodeResult:
        wasm = pathlib.Path(wasm_path).resolve()
        config = {
            "wasm": str(wasm),
            "args": list(args) if args is not None else [wasm.name],
            "env": dict(env or {}),
            "preopens": {guest: str(host) for guest, host in (preopens or {}).items()},
            "version": version,
        }
        with tempfile.TemporaryDirectory(prefix="pywasi-node-") as tmp:
            cfg = pathlib.Path(tmp) / "config.json"
            cfg.write_text(json.dumps(config))
            proc = subprocess.run(
                [node, "--no-warnings", str(NODE_RUNNER), str(cfg)],
                input=stdin,
                capture_output=True,
                timeout=timeout,
            )
        return proc.returncode, proc.stdout, proc.stderr

    return run


@pytest.fixture(params=["openat2", "manual"])
def route(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test on both sandbox routes: the kernel's openat2(RESOLVE_BENEATH)
    and the component-by-component walk used where openat2 is missing."""
    from pywasi._fs import _resolve
    if request.param == "openat2":
        if not _resolve.openat2_available():
            pytest.skip("openat2 is not available on this host")
        monkeypatch.setattr(_resolve, "_USE_OPENAT2", True)
    else:
        monkeypatch.setattr(_resolve, "_USE_OPENAT2", False)
    return str(request.param)


class Tree:
    """A preopen of one kind, and the host side's view of it: a host
    directory (``tmp_path``) or a ``pywasi.fs.MemoryFS``. Tests of the path
    and fd calls take ``tree`` to run the same program and the same checks
    on every kind (issue 15: identical semantics)."""

    def __init__(self, kind: str, root: pathlib.Path, fs: object = None) -> None:
        """``fs``: the MemoryFS of a memory tree (a new empty one if None)."""
        import pywasi.fs
        self.kind = kind
        self.root = root
        self.fs: pywasi.fs.MemoryFS | None = None
        if kind == "memory":
            self.fs = fs if isinstance(fs, pywasi.fs.MemoryFS) else pywasi.fs.MemoryFS()

    @property
    def preopen(self) -> object:
        return self.fs if self.fs is not None else str(self.root)

    def read(self, path: str) -> bytes:
        return self.fs.read(path) if self.fs is not None else (self.root / path).read_bytes()

    def readlink(self, path: str) -> str:
        return self.fs.readlink(path) if self.fs is not None else os.readlink(self.root / path)

    def listdir(self, path: str = "") -> list[str]:
        if self.fs is not None:
            return self.fs.listdir(path)
        return [p.name for p in (self.root / path).iterdir()]

    def exists(self, path: str) -> bool:
        return self.fs.exists(path) if self.fs is not None else os.path.lexists(self.root / path)

    def write(self, path: str, data: bytes) -> None:
        if self.fs is not None:
            self.fs.write(path, data)
        else:
            (self.root / path).write_bytes(data)

    def symlink(self, target: str, path: str) -> None:
        if self.fs is not None:
            self.fs.symlink(target, path)
        else:
            os.symlink(target, self.root / path)

    def mkdir(self, path: str) -> None:
        if self.fs is not None:
            self.fs.makedirs(path)
        else:
            (self.root / path).mkdir()

    def link(self, path: str, new_path: str) -> None:
        if self.fs is not None:
            self.fs.link(path, new_path)
        else:
            os.link(self.root / path, self.root / new_path)

    def utime(self, path: str, ns: tuple[int, int]) -> None:
        if self.fs is not None:
            self.fs.utime(path, ns)
        else:
            os.utime(self.root / path, ns=ns)

    def filestat(self, path: str, *, follow_symlinks: bool = True) -> FileStat:
        """What the guest's filestat of ``path`` must hold, as the tree
        itself knows it ("" is the root)."""
        if self.fs is not None:
            i = self.fs.stat(path, follow_symlinks=follow_symlinks)
            return FileStat(i.dev, i.ino, i.nlink, i.size, i.atime_ns, i.mtime_ns, i.ctime_ns)
        st = os.stat(self.root / path, follow_symlinks=follow_symlinks)
        return FileStat(st.st_dev, st.st_ino, st.st_nlink, st.st_size, st.st_atime_ns,
                        st.st_mtime_ns, st.st_ctime_ns)

    def times(self, path: str) -> tuple[int, int]:
        """(atime, mtime) in ns."""
        f = self.filestat(path)
        return f.atim, f.mtim

    def stat(self, path: str, *, follow_symlinks: bool = True) -> tuple[int, int]:
        """(inode, mtime in ns)."""
        f = self.filestat(path, follow_symlinks=follow_symlinks)
        return f.ino, f.mtim


class FileStat(NamedTuple):
    """A filestat's values but the filetype, in the spec's names."""

    dev: int
    ino: int
    nlink: int
    size: int
    atim: int
    mtim: int
    ctim: int


@pytest.fixture(params=["host-openat2", "host-manual", "memory"])
def tree(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch,
         tmp_path: pathlib.Path) -> Tree:
    """Every kind of preopen: a host directory on both sandbox routes (as
    ``route``), and a MemoryFS."""
    from pywasi._fs import _resolve
    if request.param == "host-openat2":
        if not _resolve.openat2_available():
            pytest.skip("openat2 is not available on this host")
        monkeypatch.setattr(_resolve, "_USE_OPENAT2", True)
    elif request.param == "host-manual":
        monkeypatch.setattr(_resolve, "_USE_OPENAT2", False)
    return Tree(request.param.split("-")[0], tmp_path)
