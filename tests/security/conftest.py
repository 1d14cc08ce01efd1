"""Fixtures for the escape suite: a preopen with a hostile neighbourhood, and
the two resolver routes (openat2 and the manual walk)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Iterator

import pytest

try:
    import pywasi._fs._resolve  # noqa: F401
except ImportError:  # running from a checkout without an install
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))



class Tree:
    """tmp/pre is the preopen; tmp/outside and tmp/pre2 must stay unreachable."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.pre = base / "pre"
        self.outside = base / "outside"
        self.pre2 = base / "pre2"
        for d in (self.pre / "a" / "b", self.outside / "sub", self.pre2):
            d.mkdir(parents=True)
        (self.pre / "file").write_text("inside")
        (self.pre / "a" / "b" / "file2").write_text("inside2")
        (self.outside / "secret").write_text("SECRET")
        (self.outside / "sub" / "secret").write_text("SECRET")
        (self.pre2 / "secret").write_text("SECRET")
        self.fd = os.open(self.pre, os.O_RDONLY | os.O_DIRECTORY)

    def link(self, name: str, target: str | Path) -> None:
        os.symlink(str(target), self.pre / name)

    def outside_inodes(self) -> set[tuple[int, int]]:
        st = os.lstat(self.base)
        out = {(st.st_dev, st.st_ino)}
        for top in (self.outside, self.pre2):
            for dirpath, dirnames, filenames in os.walk(top):
                for n in [*dirnames, *filenames, "."]:
                    p = os.path.join(dirpath, n)
                    st = os.lstat(p)
                    out.add((st.st_dev, st.st_ino))
        return out

    def inside_inodes(self) -> set[tuple[int, int]]:
        found = set()
        for dirpath, dirnames, filenames in os.walk(self.pre):
            for n in [*dirnames, *filenames, "."]:
                st = os.lstat(os.path.join(dirpath, n))
                found.add((st.st_dev, st.st_ino))
        return found


@pytest.fixture
def tree(tmp_path: Path) -> Iterator[Tree]:
    t = Tree(tmp_path)
    try:
        yield t
    finally:
        os.close(t.fd)
