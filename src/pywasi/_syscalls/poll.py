"""poll_oneoff (and sched_yield's neighbour in the spec): wait for clocks and
descriptors, blocking in the operating system.

Invariants:
- the whole subscription array and event array are bounds-checked before
  anything blocks, so a bad pointer traps at once rather than after a wait;
- a subscription that cannot be waited on (an unused fd: BADF; an fd
  without FD_READ/FD_WRITE *and* POLL_FD_READWRITE: NOTCAPABLE, spec
  ``rights.poll_fd_readwrite``) is an event carrying that errno, delivered
  at once. The call itself fails, with INVAL and nothing written, only for
  zero subscriptions (spec) and for a subscription that does not decode: an
  unknown eventtype tag, clock id or subclockflags bit (as wasmtime, whose
  generated decoding rejects them);
- waiting is one ``select.poll`` on the host fds, with the earliest clock
  deadline as timeout: never a busy loop. Descriptors that never block
  (regular files, Python readers and writers: ``Descriptor.poll_fileno`` is
  None) are ready at once. Events are written in subscription order; the
  call returns as soon as one subscription is ready, with every subscription
  ready at that moment.

Clocks. Deadlines are kept on the host's monotonic clock (the same one
``clock_time_get(MONOTONIC)`` reads, so an ABSTIME monotonic timeout is used
as is). An ABSTIME realtime timeout is converted to a monotonic deadline when
the call starts; a later jump of the wall clock does not move it (NOTE: as
wasmtime does). ``precision`` is honoured as the bound on lateness: the
host's ``poll`` counts whole milliseconds (rounded up), so for a precision
below 1 ms the last fraction of a millisecond is slept with
``clock_nanosleep`` (``time.sleep``) instead.

CPU-time clocks (PROCESS_CPUTIME_ID, THREAD_CPUTIME_ID): while the guest
waits it uses no CPU, so a deadline on those clocks could never be reached
by waiting. NOTE: a deadline already reached (a relative timeout of 0, an
absolute one not after the clock's current value) fires at once; any other
is an event with errno NOTSUP, delivered at once, so the guest gets an
answer rather than a hang. (wasmtime fails the whole call with INVAL.)

A clock source (``WASI(clock=...)``, deterministic runs): the
``poll_oneoff*_virtual`` twins measure every clock subscription on the
source, as "how long from now" on its own clock id (any id, CPU time
included: a virtual guest is always running). A call first looks at its
descriptors without waiting; if nothing is ready, the earliest clock fires
at once and the source sleeps that long (a virtual clock jumps ahead). Only
a call with descriptors and no clock blocks, on the descriptors, as usual:
waiting for input is not time. So what a sleep returns never depends on the
host's speed; input that arrives during a virtual sleep is seen by the next
call, not this one.
"""

from __future__ import annotations

import time

from .._abi import (
    EVENT,
    SUBSCRIPTION_CLOCK,
    SUBSCRIPTION_CLOCK_UNSTABLE,
    SUBSCRIPTION_FD_READWRITE,
    SUBSCRIPTION_FD_READWRITE_UNSTABLE,
    Clockid,
    Errno,
    Eventrwflags,
    Eventtype,
    Layout,
    Rights,
    Subclockflags,
)
from .._errors import STOPPED_MESSAGE, GuestFault, WasiError
from ._context import Context

# select and math are imported where poll_oneoff waits: a run that never
# waits does not load them (start-up, pywasi._lean).
TYPE_CHECKING = False
if TYPE_CHECKING:
    import select

__all__ = ["PollCalls"]

_ABSTIME = int(Subclockflags.SUBSCRIPTION_CLOCK_ABSTIME)
_READ_NEEDS = int(Rights.FD_READ | Rights.POLL_FD_READWRITE)
_WRITE_NEEDS = int(Rights.FD_WRITE | Rights.POLL_FD_READWRITE)
_HANGUP = int(Eventrwflags.FD_READWRITE_HANGUP)
_CLOCK = int(Eventtype.CLOCK)
_FD_READ = int(Eventtype.FD_READ)
_FD_WRITE = int(Eventtype.FD_WRITE)
_CPU_CLOCKS = {int(Clockid.PROCESS_CPUTIME_ID): time.process_time_ns,
               int(Clockid.THREAD_CPUTIME_ID): time.thread_time_ns}
_CLOCK_IDS = frozenset(int(c) for c in Clockid)
# One wait never exceeds this (select.poll takes an int of milliseconds);
# a longer timeout is waited in several slices.
_MAX_WAIT_MS = 3_600_000
_ONE_MS = 1_000_000


class _Sub:
    """One decoded subscription and what happened to it. (A plain class: a
    dataclass would import ``inspect``, milliseconds of every start-up.)"""

    __slots__ = ("userdata", "type", "deadline", "precision", "fileno", "desc", "error",
                 "ready", "flags", "nbytes")

    def __init__(self, userdata: int, type: int) -> None:
        self.userdata = userdata
        self.type = type
        self.deadline: int | None = None   # monotonic ns, for a clock
        self.precision = 0
        self.fileno: int | None = None     # host fd to wait on, for fd_read/fd_write
        self.desc: object = None
        self.error = 0                     # errno of an event delivered at once
        self.ready = False
        self.flags = 0
        self.nbytes = 0


class PollCalls(Context):
    def poll_oneoff(self, in_: int, out: int, nsubscriptions: int, nevents_ptr: int) -> None:
        self._poll_oneoff(in_, out, nsubscriptions, nevents_ptr,
                          SUBSCRIPTION_CLOCK, SUBSCRIPTION_FD_READWRITE)

    def poll_oneoff_unstable(self, in_: int, out: int, nsubscriptions: int,
                             nevents_ptr: int) -> None:
        # Snapshot 0: the clock case starts with an `identifier` (ignored
        # here, as the spec's "user-defined" field), so subscriptions are 56
        # bytes; the event layout is the same as preview1's.
        self._poll_oneoff(in_, out, nsubscriptions, nevents_ptr,
                          SUBSCRIPTION_CLOCK_UNSTABLE, SUBSCRIPTION_FD_READWRITE_UNSTABLE)

    def poll_oneoff_virtual(self, in_: int, out: int, nsubscriptions: int,
                            nevents_ptr: int) -> None:
        self._poll_oneoff(in_, out, nsubscriptions, nevents_ptr,
                          SUBSCRIPTION_CLOCK, SUBSCRIPTION_FD_READWRITE, virtual=True)

    def poll_oneoff_unstable_virtual(self, in_: int, out: int, nsubscriptions: int,
                                     nevents_ptr: int) -> None:
        self._poll_oneoff(in_, out, nsubscriptions, nevents_ptr,
                          SUBSCRIPTION_CLOCK_UNSTABLE, SUBSCRIPTION_FD_READWRITE_UNSTABLE,
                          virtual=True)

    # -- the shared implementation ----------------------------------------
    def _poll_oneoff(self, in_: int, out: int, nsubscriptions: int, nevents_ptr: int,
                     clock_layout: Layout, fd_layout: Layout, virtual: bool = False) -> None:
        if nsubscriptions == 0:
            # Spec: "If `nsubscriptions` is 0, returns `errno::inval`."
            raise WasiError(Errno.INVAL)
        mem = self.memory
        stride = clock_layout.size
        # Bounds (and alignment) of both arrays first: a bad pointer traps
        # before any wait; nothing is written unless the call succeeds.
        mem.unpack(clock_layout, in_)
        mem.slice(in_, stride * nsubscriptions)
        mem.unpack(EVENT, out)
        mem.slice(out, EVENT.size * nsubscriptions)
        mem.load_u32(nevents_ptr)

        subs = [self._subscription(in_ + i * stride, clock_layout, fd_layout, virtual)
                for i in range(nsubscriptions)]
        if virtual:
            self._wait_virtual(subs)
        else:
            _wait(subs, self.cancel_fd)
        n = 0
        for sub in subs:
            if sub.ready:
                mem.pack(EVENT, out + n * EVENT.size, sub.userdata, sub.error, sub.type,
                         sub.nbytes, sub.flags)
                n += 1
        mem.store_u32(nevents_ptr, n)

    def _subscription(self, ptr: int, clock_layout: Layout,
                      fd_layout: Layout, virtual: bool) -> _Sub:
        tag = self.memory.read_bytes(ptr + clock_layout.offsets["tag"], 1)[0]
        if tag == _CLOCK:
            fields = dict(zip(clock_layout.fields, self.memory.unpack(clock_layout, ptr)))
            sub = _Sub(fields["userdata"], _CLOCK)
            deadline = self._virtual_deadline if virtual else _clock_deadline
            deadline(sub, fields["id"], fields["timeout"], fields["precision"], fields["flags"])
            return sub
        if tag in (_FD_READ, _FD_WRITE):
            userdata, _, fd = self.memory.unpack(fd_layout, ptr)
            sub = _Sub(userdata, tag)
            try:
                desc = self.fds.get(fd, _READ_NEEDS if tag == _FD_READ else _WRITE_NEEDS)
            except WasiError as e:
                sub.error, sub.ready = int(e.errno), True
                return sub
            sub.desc = desc
            sub.fileno = desc.poll_fileno()
            if sub.fileno is None:
                sub.ready = True
                sub.nbytes = desc.ready_nbytes(tag == _FD_WRITE)
            return sub
        # NOTE: an unknown tag fails the call (there is no event type to
        # report it under), as wasmtime's decoding does.
        raise WasiError(Errno.INVAL)

    # -- a clock source ---------------------------------------------------
    def _virtual_deadline(self, sub: _Sub, clock_id: int, timeout: int, precision: int,
                          flags: int) -> None:
        """A clock subscription on the clock source: ``deadline`` is the
        nanoseconds to wait from now (0 or less: reached)."""
        if flags & ~_ABSTIME or clock_id not in _CLOCK_IDS:
            raise WasiError(Errno.INVAL)
        sub.deadline = timeout - self.clock.time(clock_id) if flags & _ABSTIME else timeout

    def _wait_virtual(self, subs: list[_Sub]) -> None:
        """Mark what is ready now (descriptors looked at without waiting,
        clocks already reached); if nothing is, the earliest clock fires and
        the source sleeps until it; with no clock, block on the descriptors."""
        clocks = [s for s in subs if s.deadline is not None and not s.ready]
        poller, watched = _poller(subs, self.cancel_fd)
        if watched or self.cancel_fd is not None:
            revents = dict(poller.poll(0))
            if self.cancel_fd is not None and self.cancel_fd in revents:
                raise GuestFault(STOPPED_MESSAGE)
            _mark(subs, revents)
        for sub in clocks:
            if sub.deadline <= 0:  # type: ignore[operator]
                sub.ready = True
        if any(s.ready for s in subs):
            return
        if not clocks:
            _wait(subs, self.cancel_fd)
            return
        earliest: int = min(s.deadline for s in clocks)  # type: ignore[type-var,assignment]
        self.clock.sleep(earliest)
        for sub in clocks:
            if sub.deadline <= earliest:  # type: ignore[operator]
                sub.ready = True


def _clock_deadline(sub: _Sub, clock_id: int, timeout: int, precision: int, flags: int) -> None:
    sub.precision = precision
    if flags & ~_ABSTIME:
        raise WasiError(Errno.INVAL)
    absolute = bool(flags & _ABSTIME)
    # NOTE: the realtime clock is read before the monotonic one, so that a
    # pause between the two reads (a busy machine) lengthens the wait rather
    # than ending it before the asked-for realtime instant.
    realtime = time.time_ns() if absolute and clock_id == Clockid.REALTIME else 0
    now = time.monotonic_ns()
    if clock_id == Clockid.MONOTONIC:
        sub.deadline = timeout if absolute else now + timeout
    elif clock_id == Clockid.REALTIME:
        sub.deadline = now + (timeout - realtime) if absolute else now + timeout
    elif clock_id in _CPU_CLOCKS:
        reached = timeout <= _CPU_CLOCKS[clock_id]() if absolute else timeout == 0
        if reached:
            sub.deadline = now
        else:
            sub.error, sub.ready = int(Errno.NOTSUP), True
    else:
        raise WasiError(Errno.INVAL)


def _wait(subs: list[_Sub], cancel_fd: int | None) -> None:
    import math   # here, with _poller's and _mark's select: start-up (pywasi._lean)
    """Block until at least one subscription is ready; mark every ready one.
    ``cancel_fd`` (threads): waited on too; readable, it ends the wait with a trap."""
    poller, watched = _poller(subs, cancel_fd)
    clocks = [s for s in subs if s.deadline is not None and not s.ready]
    earliest = min((s.deadline for s in clocks), default=None)  # type: ignore[type-var]
    # The tightest precision among the clocks that fire first bounds lateness.
    precision = min((s.precision for s in clocks if s.deadline == earliest), default=0)
    anything_ready = any(s.ready for s in subs)

    while True:
        remaining = None if earliest is None else earliest - time.monotonic_ns()
        if anything_ready or (remaining is not None and remaining <= 0):
            timeout_ms: float | None = 0
        elif remaining is None:
            timeout_ms = None
        elif precision < _ONE_MS:
            timeout_ms = remaining // _ONE_MS   # whole ms; the rest is slept below
        else:
            timeout_ms = math.ceil(remaining / _ONE_MS)
        if timeout_ms is not None:
            timeout_ms = min(timeout_ms, _MAX_WAIT_MS)
        if watched or timeout_ms != 0 or remaining is None:
            polled = (poller.poll(timeout_ms) if watched or cancel_fd is not None
                      else _sleep_ms(timeout_ms))
        else:
            polled = []
        if not polled and remaining is not None and not anything_ready:
            left = earliest - time.monotonic_ns()  # type: ignore[operator]
            if 0 < left < _ONE_MS:
                # The sub-millisecond tail: nanosleep, then one look at the fds.
                time.sleep(left / 1e9)
                polled = poller.poll(0) if watched else []
        revents = dict(polled)
        if cancel_fd is not None and cancel_fd in revents:
            raise GuestFault(STOPPED_MESSAGE)
        _mark(subs, revents)
        now = time.monotonic_ns()
        for sub in clocks:
            if sub.deadline is not None and sub.deadline <= now:
                sub.ready = True
        if any(s.ready for s in subs):
            return


def _poller(subs: list[_Sub], cancel_fd: int | None) -> tuple[select.poll, dict[int, int]]:
    import select
    """A poll object over the host fds the subscriptions not yet ready wait
    on (and ``cancel_fd``); the fds with their event masks."""
    poller = select.poll()
    watched: dict[int, int] = {}
    for sub in subs:
        if sub.fileno is not None and not sub.ready:
            mask = select.POLLIN if sub.type == _FD_READ else select.POLLOUT
            watched[sub.fileno] = watched.get(sub.fileno, 0) | mask
    for fileno, mask in watched.items():
        poller.register(fileno, mask)
    if cancel_fd is not None:
        poller.register(cancel_fd, select.POLLIN)
    return poller, watched


def _sleep_ms(timeout_ms: float | None) -> list[tuple[int, int]]:
    # No host fds: wait on the clock alone (a wait without fds or a
    # deadline cannot happen: such a call has a ready subscription).
    if timeout_ms:
        time.sleep(timeout_ms / 1000)
    return []


def _mark(subs: list[_Sub], revents: dict[int, int]) -> None:
    import select
    for sub in subs:
        if sub.ready or sub.fileno is None:
            continue
        got = revents.get(sub.fileno, 0)
        if not got:
            continue
        writing = sub.type == _FD_WRITE
        if got & select.POLLNVAL:
            sub.error, sub.ready = int(Errno.BADF), True
        elif got & select.POLLERR and not got & (select.POLLIN | select.POLLOUT):
            # A write end whose reader is gone, a socket in error.
            sub.error, sub.ready = int(Errno.PIPE if writing else Errno.IO), True
        elif got & select.POLLHUP:
            # The other end closed: readable (at EOF) and the guest is told so.
            sub.ready, sub.flags = True, _HANGUP
            sub.nbytes = 0 if writing else sub.desc.ready_nbytes(False)  # type: ignore[attr-defined]
        elif got & (select.POLLOUT if writing else select.POLLIN):
            sub.ready = True
            sub.nbytes = sub.desc.ready_nbytes(writing)  # type: ignore[attr-defined]
