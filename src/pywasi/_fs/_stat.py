"""Helpers shared by the fd_* and path_* calls: a host ``stat_result`` as
WASI ``filestat`` values, and setting timestamps the way ``fst_flags`` asks.

Invariants:
- times are nanoseconds end to end (``st_atime_ns``, ``utimensat`` with
  ``timespec``): a float never sits in between, so a value the guest sets is
  the value it reads back (to the file system's own granularity);
- ``resolve_times`` is the one place ``fst_flags`` is validated: ``ATIM``
  together with ``ATIM_NOW`` (or ``MTIM`` with ``MTIM_NOW``) or an unknown
  bit is ``INVAL`` (spec: "fstflags ... atim_now: Adjust the last data access
  timestamp to the time of clock clock::realtime" -- the two are exclusive;
  wasmtime and uvwasi answer INVAL);
- "leave this one alone" and "set this one to now" are expressed with
  ``UTIME_OMIT``/``UTIME_NOW`` through ``utimensat``/``futimens`` (via ctypes,
  on Linux), so nothing is read and written back racily. Where those are not
  reachable, the fallback reads the current times first and uses
  ``os.utime(..., ns=...)``.
"""

from __future__ import annotations

import ctypes
import os
import stat
import sys
import time

from .._abi import Errno, Filetype, Fstflags
from .._errors import WasiError
from .._native import ACCEL
from ._stream import filetype_of_mode

__all__ = ["NOW", "OMIT", "TimeSpec", "filestat_values", "lstat_at", "resolve_times",
           "set_times_fd", "set_times_at", "zero_filestat"]

_U64 = (1 << 64) - 1

# A resolved timestamp: nanoseconds since the epoch, or one of these.
NOW = "now"
OMIT = "omit"
TimeSpec = int | str  # (PEP 604: a types.UnionType at run time, no typing import)

_ATIM = int(Fstflags.ATIM)
_ATIM_NOW = int(Fstflags.ATIM_NOW)
_MTIM = int(Fstflags.MTIM)
_MTIM_NOW = int(Fstflags.MTIM_NOW)
_ALL_FST = _ATIM | _ATIM_NOW | _MTIM | _MTIM_NOW


def filestat_values(st: os.stat_result, filetype: int | None = None) -> tuple[int, ...]:
    """The FILESTAT fields in order: dev, ino, filetype, nlink, size, atim,
    mtim, ctim (times in nanoseconds). ``filetype`` overrides the one derived
    from ``st_mode`` (a socket's stream/dgram kind needs the fd to tell)."""
    if filetype is None:
        filetype = filetype_of_mode(st.st_mode)
    # Times before 1970 are negative on the host; the WASI timestamp is u64,
    # so they wrap as two's complement, as wasmtime and uvwasi hand them over.
    return (st.st_dev & _U64, st.st_ino & _U64, filetype, st.st_nlink, st.st_size,
            st.st_atime_ns & _U64, st.st_mtime_ns & _U64, st.st_ctime_ns & _U64)


# filetype_of_mode's answer for each S_IFMT value, for lstat_at's C route.
_FILETYPE_OF_FMT = {fmt: filetype_of_mode(fmt) for fmt in (
    stat.S_IFREG, stat.S_IFDIR, stat.S_IFCHR, stat.S_IFBLK, stat.S_IFLNK, stat.S_IFSOCK,
    stat.S_IFIFO)}
_UNKNOWN = int(Filetype.UNKNOWN)
_fstatat = ACCEL.fstatat if ACCEL is not None else None


def lstat_at(dir_fd: int, name: str) -> tuple[int, ...]:
    """``filestat_values`` of ``name`` in ``dir_fd``, not following it (the
    resolver's lookup of a final name). With the compiled extension, its
    fstatat: the eight values without an ``os.stat_result`` in between."""
    if _fstatat is not None:
        dev, ino, mode, nlink, size, atim, mtim, ctim = _fstatat(dir_fd, name, False)
        return (dev, ino, _FILETYPE_OF_FMT.get(mode & 0o170000, _UNKNOWN), nlink, size,
                atim, mtim, ctim)
    return filestat_values(os.stat(name, dir_fd=dir_fd, follow_symlinks=False))


def zero_filestat(filetype: int) -> tuple[int, ...]:
    """A filestat for a descriptor with no host file behind it (a Python
    reader or writer): everything zero but the type."""
    return (0, 0, filetype, 0, 0, 0, 0, 0)


def resolve_times(atim: int, mtim: int, fst_flags: int) -> tuple[TimeSpec, TimeSpec]:
    """What to do with (atime, mtime): nanoseconds, ``NOW`` or ``OMIT``."""
    if fst_flags & ~_ALL_FST:
        raise WasiError(Errno.INVAL)
    if (fst_flags & _ATIM and fst_flags & _ATIM_NOW) or (fst_flags & _MTIM and fst_flags & _MTIM_NOW):
        raise WasiError(Errno.INVAL)
    a: TimeSpec = atim if fst_flags & _ATIM else NOW if fst_flags & _ATIM_NOW else OMIT
    m: TimeSpec = mtim if fst_flags & _MTIM else NOW if fst_flags & _MTIM_NOW else OMIT
    return a, m


# -- the host side ----------------------------------------------------------

class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_int64), ("tv_nsec", ctypes.c_long)]


# Linux's values (include/uapi/linux/stat.h); other systems take the fallback.
_UTIME_NOW = (1 << 30) - 1
_UTIME_OMIT = (1 << 30) - 2
_AT_SYMLINK_NOFOLLOW = 0x100


def _load_libc() -> tuple[object, object] | None:
    if not sys.platform.startswith("linux") or ctypes.sizeof(ctypes.c_long) != 8:
        return None
    try:
        # The running process's own symbols include libc's; find_library()
        # would run ldconfig in a subprocess, ~10 ms of every start-up.
        libc = ctypes.CDLL(None, use_errno=True)
        futimens = libc.futimens
        utimensat = libc.utimensat
    except (OSError, AttributeError):
        return None
    futimens.argtypes = [ctypes.c_int, ctypes.POINTER(_Timespec)]
    futimens.restype = ctypes.c_int
    utimensat.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.POINTER(_Timespec), ctypes.c_int]
    utimensat.restype = ctypes.c_int
    return futimens, utimensat


_LIBC_LOADED: list[tuple[object, object] | None] = []


def _libc() -> tuple[object, object] | None:
    """futimens and utimensat, bound on first use (setting times is rare;
    binding them is a dlopen and two prototypes: start-up, pywasi._lean)."""
    if not _LIBC_LOADED:
        _LIBC_LOADED.append(_load_libc())
    return _LIBC_LOADED[0]


def _timespecs(a: TimeSpec, m: TimeSpec) -> ctypes.Array[_Timespec]:
    times = (_Timespec * 2)()
    for slot, spec in zip(times, (a, m)):
        if spec == NOW:
            slot.tv_sec, slot.tv_nsec = 0, _UTIME_NOW
        elif spec == OMIT:
            slot.tv_sec, slot.tv_nsec = 0, _UTIME_OMIT
        else:
            assert isinstance(spec, int)
            # A u64 timestamp far in the future still fits tv_sec (s64).
            slot.tv_sec, slot.tv_nsec = divmod(spec, 1_000_000_000)
    return times


def _check(result: int) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def _fallback_ns(current: os.stat_result, a: TimeSpec, m: TimeSpec) -> tuple[int, int]:
    now = time.time_ns()

    def pick(spec: TimeSpec, old: int) -> int:
        return now if spec == NOW else old if spec == OMIT else int(spec)

    return pick(a, current.st_atime_ns), pick(m, current.st_mtime_ns)


def set_times_fd(fd: int, atim: int, mtim: int, fst_flags: int) -> None:
    """``fd_filestat_set_times`` on a host fd."""
    a, m = resolve_times(atim, mtim, fst_flags)
    if a == OMIT and m == OMIT:
        return
    libc = _libc()
    if libc is not None:
        _check(libc[0](fd, _timespecs(a, m)))  # type: ignore[operator]
        return
    os.utime(fd, ns=_fallback_ns(os.fstat(fd), a, m))


def set_times_at(dir_fd: int, name: bytes | str, atim: int, mtim: int, fst_flags: int,
                 follow: bool) -> None:
    """``path_filestat_set_times`` on ``name`` (one component, already
    resolved by the sandbox resolver) relative to ``dir_fd``."""
    a, m = resolve_times(atim, mtim, fst_flags)
    libc = _libc()
    if libc is not None:
        if a == OMIT and m == OMIT:
            # Still report a missing file as the guest asked about it.
            os.stat(name, dir_fd=dir_fd, follow_symlinks=follow)
            return
        flags = 0 if follow else _AT_SYMLINK_NOFOLLOW
        _check(libc[1](dir_fd, os.fsencode(name), _timespecs(a, m), flags))  # type: ignore[operator]
        return
    current = os.stat(name, dir_fd=dir_fd, follow_symlinks=follow)
    if a == OMIT and m == OMIT:
        return
    os.utime(name, ns=_fallback_ns(current, a, m), dir_fd=dir_fd, follow_symlinks=follow)
