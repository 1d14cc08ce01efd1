"""Deterministic runs: a virtual clock and a seeded random source.

A guest sees the host through a few calls whose answers change from run to
run: the clocks, ``random_get``, ``poll_oneoff``'s sleeps and the order of
``fd_readdir``. ``WASI(deterministic=True)`` replaces each with one that
gives the same answers every time (``_wasi._reproducible``); ``clock=`` and
``random=`` take a user's own.

Invariants:
- virtual time never goes backwards and moves only by the clock's own
  rules: ``VirtualClock`` adds ``step`` ns at every read and the length of
  every sleep; nothing of the host's time reaches the guest;
- the random stream depends on the seed alone, not on how the guest splits
  its reads: 16 bytes read at once are the same as 8 and 8 (so a program
  that changes its buffer sizes still sees the same bytes);
- both are thread-safe: wasi-threads read them from several threads (the
  values then depend on the threads' interleaving, which nothing here fixes).
"""

from __future__ import annotations

import hashlib
import threading
from typing import Protocol, runtime_checkable

from ._abi import Clockid

__all__ = ["Clock", "VirtualClock", "SeededRandom", "random_source"]

_REALTIME = int(Clockid.REALTIME)

# 2023-11-14 22:13:20 UTC: a realistic wall-clock start (a program that
# checks a date against "now" gets a sane one), round in nanoseconds.
DEFAULT_REALTIME = 1_700_000_000 * 1_000_000_000


@runtime_checkable
class Clock(Protocol):
    """What a WASI clock source provides (``WASI(clock=...)``). Clock ids
    are the spec's numbers (``Clockid``: 0 realtime, 1 monotonic, 2 process
    CPU time, 3 thread CPU time); times are nanoseconds."""

    def time(self, clock_id: int) -> int:
        """The clock's current value: ``clock_time_get``."""
        ...

    def resolution(self, clock_id: int) -> int:
        """``clock_res_get``: at least 1."""
        ...

    def sleep(self, ns: int) -> None:
        """The guest waits ``ns`` nanoseconds in ``poll_oneoff`` with nothing
        else to wake it: advance time by that much (a virtual clock returns
        at once), or really wait."""
        ...


class VirtualClock:
    """Time that starts at fixed values and moves only when the guest reads
    it (by ``step`` ns per read, so a loop that waits for time to pass ends)
    or sleeps (by the length of the sleep, at once).

    All four clocks share one timeline: realtime is ``realtime`` plus the
    elapsed virtual time, monotonic is ``monotonic`` plus it, and the CPU-time
    clocks are the elapsed time itself (a virtual guest is always running)."""

    def __init__(self, *, realtime: int = DEFAULT_REALTIME, monotonic: int = 0,
                 step: int = 1000, resolution: int = 1000) -> None:
        for name, value in (("realtime", realtime), ("monotonic", monotonic), ("step", step),
                            ("resolution", resolution)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"VirtualClock: {name} must be an int of nanoseconds, "
                                f"not {type(value).__name__}")
            if value < 0:
                raise ValueError(f"VirtualClock: {name} must not be negative, got {value}")
        if resolution < 1:
            raise ValueError("VirtualClock: resolution must be at least 1 ns")
        self.realtime = realtime
        self.monotonic = monotonic
        self.step = step
        self._resolution = resolution
        self._elapsed = 0
        self._lock = threading.Lock()

    @property
    def elapsed(self) -> int:
        """Virtual nanoseconds since the start."""
        return self._elapsed

    def time(self, clock_id: int) -> int:
        with self._lock:
            self._elapsed += self.step
            elapsed = self._elapsed
        if clock_id == _REALTIME:
            return self.realtime + elapsed
        if clock_id == 1:  # MONOTONIC
            return self.monotonic + elapsed
        return elapsed

    def resolution(self, clock_id: int) -> int:
        return self._resolution

    def sleep(self, ns: int) -> None:
        with self._lock:
            self._elapsed += max(0, ns)

    def __repr__(self) -> str:
        return (f"VirtualClock(realtime={self.realtime}, monotonic={self.monotonic}, "
                f"step={self.step}, elapsed={self._elapsed})")


class SeededRandom:
    """A reproducible byte stream for ``random_get``: SHA-256 of the seed
    and a block counter (counter mode), so the bytes are the same on every
    machine and Python version. Not for secrets: anyone with the seed has
    every byte."""

    def __init__(self, seed: int | bytes | str = 0) -> None:
        if isinstance(seed, bool) or not isinstance(seed, (int, bytes, str)):
            raise TypeError(f"the random seed must be an int, bytes or str, "
                            f"not {type(seed).__name__}")
        if isinstance(seed, int):
            if seed < 0:
                raise ValueError(f"the random seed must not be negative, got {seed}")
            key = b"i" + seed.to_bytes((seed.bit_length() + 7) // 8 or 1, "little")
        else:
            key = b"b" + (seed.encode() if isinstance(seed, str) else seed)
        self.seed = seed
        self._key = hashlib.sha256(key).digest()
        self._counter = 0
        self._pending = b""  # the rest of the last block
        self._lock = threading.Lock()

    def __call__(self, n: int) -> bytes:
        with self._lock:
            out = [self._pending]
            have = len(self._pending)
            while have < n:
                block = hashlib.sha256(self._key + self._counter.to_bytes(8, "little")).digest()
                self._counter += 1
                out.append(block)
                have += len(block)
            data = b"".join(out)
            self._pending = data[n:]
            return data[:n]

    def __repr__(self) -> str:
        return f"SeededRandom({self.seed!r})"


def random_source(random: object) -> object:
    """``WASI(random=...)``: an int, bytes or str seed becomes a
    ``SeededRandom``; a callable ``(n) -> n bytes`` is used as it is."""
    if isinstance(random, (int, bytes, str)) and not isinstance(random, bool):
        return SeededRandom(random)
    if not callable(random):
        raise TypeError(f"random must be a seed (int, bytes, str) or a callable taking a byte "
                        f"count and returning that many bytes, not {type(random).__name__}")
    return random
