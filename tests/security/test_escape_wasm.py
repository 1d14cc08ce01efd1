"""The escape suite end to end: a real wasm program (tests/c/path_escape.c)
tries every way out of its preopen we know of -- "..", absolute paths, the
sibling whose name starts with the preopen's, absolute and relative symlinks
(final and in the middle; placed by the host and made by the guest),
/proc/self/root and /proc/self/fd/N, hard links and renames out, and a
directory renamed out from under it while it walks -- on both resolver
routes. Every attempt must fail, and nothing outside may be read, created or
modified (the host tree outside the preopen is compared before and after)."""

from __future__ import annotations

import os
import pathlib
import threading
import time
from collections.abc import Iterator

import pytest

from helpers import run_module
from wasmbuild import build_c

PERM, LOOP = 63, 32

# Attempt -> the errno the guest must see (PERM: the resolver's ESCAPE_ERRNO).
EXPECTED = {
    "symlink g_abs": PERM, "symlink g_rel": 0, "symlink g_mid": 0, "symlink g_chain": 0,
    "symlink g_new": 0,
    **{f"read {p}": PERM for p in [
        "../outside/secret", "/etc/passwd", "a/../../outside/secret", "../pre2/secret",
        "./../outside/secret", "a/b/../../../outside/secret", "..", "/",
        "abs_out", "rel_out", "mid_abs/secret", "mid_rel/secret", "mid_rel/sub/secret",
        "proc_root/etc/passwd", "proc_fd/secret", "proc_self_fd", "climb/outside/secret",
        "g_rel", "g_mid/secret", "g_chain"]},
    "read abs_out nofollow": LOOP,
    **{f"write {p}": PERM for p in [
        "../outside/secret", "rel_out", "abs_out", "g_rel", "g_new (dangling, out)",
        "mid_rel/new", "../pre2/new"]},
    "stat ../outside/secret": PERM, "stat abs_out follow": PERM, "stat mid_rel/secret": PERM,
    "utimes rel_out follow": PERM, "utimes mid_rel/secret": PERM,
    "mkdir ../outside/newdir": PERM, "mkdir mid_rel/newdir": PERM,
    "unlink ../outside/secret": PERM, "unlink mid_rel/secret": PERM, "rmdir mid_rel/sub": PERM,
    "rename f -> ../outside/moved": PERM, "rename mid_rel/secret -> stolen": PERM,
    "rename f -> mid_rel/moved": PERM,
    "link ../outside/secret": PERM, "link mid_rel/secret": PERM, "link abs_out follow": PERM,
    "link rel_out follow": PERM, "link f -> ../outside/hl": PERM,
    "symlink into mid_rel": PERM, "readlink mid_rel/link": PERM,
}


class World:
    """base/pre is the preopen; base/outside, base/pre2 and base/away/x must
    stay untouched."""

    def __init__(self, base: pathlib.Path) -> None:
        self.base = base
        self.pre = base / "pre"
        self.outside = base / "outside"
        self.pre2 = base / "pre2"
        (self.pre / "a" / "b" / "c").mkdir(parents=True)
        (self.pre / "r" / "b" / "c").mkdir(parents=True)  # moved out and back by the race
        (self.outside / "sub").mkdir(parents=True)
        self.pre2.mkdir()
        (self.pre / "f").write_text("inside f")
        (self.pre / "r" / "x").write_text("inside")
        (self.outside / "secret").write_text("SECRET")
        (self.outside / "sub" / "secret").write_text("SECRET")
        # The race moves pre/r/b to away/b and back: a resolver that trusted
        # the host's ".." would reach away/x from r/b/c/../..
        self.away = base / "away"
        self.away.mkdir()
        (self.away / "x").write_text("SECRET")
        os.symlink("secret", self.outside / "link")
        (self.pre2 / "secret").write_text("SECRET")
        self.dir_fd = os.open(self.outside, os.O_RDONLY | os.O_DIRECTORY)
        self.file_fd = os.open(self.outside / "secret", os.O_RDONLY)
        for name, target in [
            ("abs_out", self.outside / "secret"), ("rel_out", "../outside/secret"),
            ("mid_abs", self.outside), ("mid_rel", "../outside"),
            ("proc_root", "/proc/self/root"), ("proc_fd", f"/proc/self/fd/{self.dir_fd}"),
            ("proc_self_fd", f"/proc/self/fd/{self.file_fd}"), ("climb", ".."),
        ]:
            os.symlink(str(target), self.pre / name)

    def close(self) -> None:
        os.close(self.dir_fd)
        os.close(self.file_fd)

    def snapshot(self) -> dict[str, tuple[object, ...]]:
        """Everything outside the preopen: kind, content, times, link text."""
        out: dict[str, tuple[object, ...]] = {}
        st = os.lstat(self.base)
        out["."] = ("dir", st.st_mtime_ns, sorted(os.listdir(self.base)))
        out["away/x"] = ("file", (self.away / "x").read_bytes())
        for top in (self.outside, self.pre2):
            for dirpath, dirnames, filenames in os.walk(top):
                for n in dirnames + filenames + ["."]:
                    p = os.path.join(dirpath, n)
                    st = os.lstat(p)
                    rel = os.path.relpath(p, self.base)
                    if os.path.islink(p):
                        out[rel] = ("link", os.readlink(p), st.st_mtime_ns)
                    elif os.path.isdir(p):
                        out[rel] = ("dir", st.st_mtime_ns, sorted(os.listdir(p)))
                    else:
                        # (No atime: relatime makes it no evidence of a read;
                        # the guest's output is checked for the secrets instead.)
                        out[rel] = ("file", pathlib.Path(p).read_bytes(), st.st_mtime_ns,
                                    st.st_ctime_ns, st.st_nlink)
        return out


@pytest.fixture
def world(tmp_path: pathlib.Path) -> Iterator[World]:
    w = World(tmp_path)
    try:
        yield w
    finally:
        w.close()


def _parse(stdout: str) -> dict[str, str]:
    results = {}
    for line in stdout.splitlines():
        if line.startswith("  "):
            continue
        key, _, value = line.rpartition(": ")
        results[key] = value
    return results


def test_guest_cannot_escape(world: World, route: str) -> None:
    before = world.snapshot()
    stop = threading.Event()
    moves = 0

    def renamer() -> None:
        nonlocal moves
        inner, out = world.pre / "r" / "b", world.away / "b"
        deadline = time.monotonic() + 5  # bounded even if the guest hangs
        while not stop.is_set() and time.monotonic() < deadline:
            os.rename(inner, out)
            time.sleep(0.0005)
            os.rename(out, inner)
            time.sleep(0.0005)
            moves += 1

    thread = threading.Thread(target=renamer)
    thread.start()
    try:
        r = run_module(build_c("path_escape"),
                       args=["path_escape", str(world.outside / "secret"), "1.0"],
                       preopens={"/sandbox": world.pre})
    finally:
        stop.set()
        thread.join()
    out = r.stdout.decode()
    assert r.code == 0, r.stderr
    results = _parse(out)
    for what, errno in EXPECTED.items():
        assert results.get(what) == str(errno), (what, results.get(what))
    for what in ("libc fopen ../outside/secret", "libc fopen /etc/passwd", "libc fopen rel_out",
                 "libc link out"):
        assert results[what] == "failed", what
    race = [line for line in out.splitlines() if line.startswith("race:")]
    assert race == ["race: attempts>0 yes, inside>0 yes, leaked 0"], race
    assert moves > 10
    # Nothing outside was read ...
    assert "SECRET" not in out and "root:" not in out and "PWNED" not in out
    # ... created, modified, moved or removed.
    assert world.snapshot() == before
    # What the guest was allowed to do stayed inside.
    assert not os.path.lexists(world.pre / "g_abs")
    assert (world.pre / "f").read_text() == "inside f"
    assert not (world.pre / "stolen").exists()
    for name in ("hl1", "hl2", "hl3", "hl4", "hl5"):
        assert not (world.pre / name).exists()
