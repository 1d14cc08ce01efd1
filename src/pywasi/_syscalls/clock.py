"""clock_res_get, clock_time_get: realtime, monotonic, process and thread CPU time.

With a clock source (``WASI(clock=...)``, deterministic runs) the
``*_virtual`` twins answer instead: ``build_imports`` picks them, so the
host-clock methods (and the accelerator's C clock_time_get) carry no test of
whether a source is set."""

from __future__ import annotations

import struct
import time

from .._abi import Clockid, Errno
from .._errors import WasiError
from ._context import Context

__all__ = ["ClockCalls", "now_ns"]

_MONOTONIC = int(Clockid.MONOTONIC)
_monotonic_ns = time.monotonic_ns
_pack_u64 = struct.Struct("<Q").pack_into

_NOW = {
    Clockid.REALTIME: time.time_ns,
    Clockid.MONOTONIC: time.monotonic_ns,
    Clockid.PROCESS_CPUTIME_ID: time.process_time_ns,
    Clockid.THREAD_CPUTIME_ID: time.thread_time_ns,
}
_HOST_CLOCK = {
    Clockid.REALTIME: time.CLOCK_REALTIME,
    Clockid.MONOTONIC: time.CLOCK_MONOTONIC,
    Clockid.PROCESS_CPUTIME_ID: time.CLOCK_PROCESS_CPUTIME_ID,
    Clockid.THREAD_CPUTIME_ID: time.CLOCK_THREAD_CPUTIME_ID,
}


def now_ns(clock_id: int) -> int:
    """The clock's time in nanoseconds; INVAL for an id the spec doesn't have."""
    try:
        return _NOW[clock_id]()  # type: ignore[index]
    except KeyError:
        raise WasiError(Errno.INVAL) from None


def _check_id(clock_id: int) -> None:
    if clock_id not in _HOST_CLOCK:
        raise WasiError(Errno.INVAL)


class ClockCalls(Context):
    def clock_res_get(self, id: int, resolution_ptr: int) -> None:
        try:
            host = _HOST_CLOCK[id]  # type: ignore[index]
        except KeyError:
            raise WasiError(Errno.INVAL) from None
        # At least 1 ns: a resolution of 0 would tell the guest time stands still.
        self.memory.store_u64(resolution_ptr, max(1, round(time.clock_getres(host) * 1e9)))

    def clock_time_get(self, id: int, precision: int, time_ptr: int) -> None:
        # precision is a hint the host may ignore (spec); we always give the best.
        mem = self.memory
        if id == _MONOTONIC and not time_ptr & 7 and time_ptr + 8 <= mem.size and mem.stable:
            # The hot case (clock_gettime(CLOCK_MONOTONIC) in a loop), checked
            # inline: aligned, in bounds of a memory whose base cannot move.
            _pack_u64(mem.view, time_ptr, _monotonic_ns())
            return
        mem.store_u64(time_ptr, now_ns(id))

    # -- a clock source (deterministic runs) -------------------------------
    def clock_res_get_virtual(self, id: int, resolution_ptr: int) -> None:
        _check_id(id)
        self.memory.store_u64(resolution_ptr, max(1, self.clock.resolution(id)))

    def clock_time_get_virtual(self, id: int, precision: int, time_ptr: int) -> None:
        _check_id(id)
        mem = self.memory
        mem.load_u64(time_ptr)  # a bad pointer traps before the clock moves
        mem.store_u64(time_ptr, self.clock.time(id))
