"""clock_res_get, clock_time_get: realtime, monotonic, process and thread CPU time."""

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
