"""What stops a run from outside: its deadline and its cancel.

One mechanism, as trio's cancel scopes and anyio's cancellable threads: a
deadline that passes, a cancel someone sets and an awaiting asyncio task
that is cancelled all reach the same place, the program's ending
(``_threads.ThreadSpawn``, which decides the outcome once and stops every
thread of the program wherever it is). An ``Alarm`` is armed for one run
(or one bounded call into an instance) and calls ``stop(outcome)`` once,
with ``LimitExceeded("timeout")`` or ``LimitExceeded("cancelled")``;
nothing of it exists for a run that has neither.

How a cancel reaches a guest blocked in a host call without polling: a
``CancelToken`` (pywasi's) calls the run's ``stop`` from its ``set()``,
in the setting thread; ``stop`` ticks the engine's epoch and writes the
run's cancel pipe, which every blocking call waits on. Any other object
with ``is_set()`` (a ``threading.Event``, a ``multiprocessing.Event``) has
no callback to hook, so a watcher thread, made only for a run given one,
waits on it (``wait(period)`` returns as soon as it is set: no latency) and
ends within ``_WATCH_PERIOD`` after the run.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from ._errors import LimitExceeded

__all__ = ["CancelToken", "Alarm", "check_cancel", "cancelled"]

# How soon a watcher thread notices that its run has ended (an Event set
# wakes it at once). It costs nothing meanwhile: it sleeps in wait().
_WATCH_PERIOD = 0.1

Stop = Callable[[BaseException], None]


class CancelToken(threading.Event):
    """A ``threading.Event`` that stops the runs it is given to the moment it
    is ``set()``, from the thread that sets it (no helper thread). One token
    may be given to many runs (a service shutting down stops them all); a
    run given a token that is already set stops at once. ``clear()``
    re-arms it for later runs; a run it stopped stays stopped."""

    def __init__(self) -> None:
        super().__init__()
        self._listeners: dict[int, Callable[[], None]] = {}
        self._listeners_lock = threading.Lock()
        self._next_key = 0

    def set(self) -> None:
        super().set()
        with self._listeners_lock:
            listeners = list(self._listeners.values())
        for listener in listeners:
            listener()

    def _listen(self, listener: Callable[[], None]) -> int:
        """Call ``listener`` when set (now, if it is); the key removes it."""
        with self._listeners_lock:
            key = self._next_key
            self._next_key += 1
            self._listeners[key] = listener
        if self.is_set():
            listener()
        return key

    def _forget(self, key: int) -> None:
        with self._listeners_lock:
            self._listeners.pop(key, None)


def check_cancel(cancel: Any) -> Any:
    """``cancel=``: None, a ``CancelToken``, or anything with ``is_set()``."""
    if cancel is not None and not callable(getattr(cancel, "is_set", None)):
        raise TypeError(f"cancel must be a threading.Event, a pywasi.CancelToken or an object "
                        f"with is_set(), not {type(cancel).__name__}")
    return cancel


def cancelled() -> LimitExceeded:
    return LimitExceeded("cancelled", "the run was cancelled")


class Alarm:
    """The deadline and cancels of one run: calls ``stop`` at most once, with
    the limit that fired, until ``disarm``. ``timeout``: (seconds, how the
    limit is named); ``cancels``: tokens or events (run_async adds its own
    token to the caller's)."""

    def __init__(self, stop: Stop, timeout: tuple[float, str] | None,
                 cancels: tuple[Any, ...]) -> None:
        self._stop = stop
        self._lock = threading.Lock()
        self._armed = True
        self._timer: threading.Timer | None = None
        self._tokens: list[tuple[CancelToken, int]] = []
        self._done: threading.Event | None = None
        if timeout is not None:
            seconds, shown = timeout
            limit = LimitExceeded("timeout", f"time limit of {shown} reached")
            self._timer = threading.Timer(seconds, self._fire, (limit,))
            self._timer.daemon = True
            self._timer.start()
        for cancel in cancels:
            if isinstance(cancel, CancelToken):
                self._tokens.append((cancel, cancel._listen(self._cancel)))
            else:
                if self._done is None:
                    self._done = threading.Event()
                threading.Thread(target=_watch, args=(cancel, self._cancel, self._done),
                                 name="pywasi-cancel-watch", daemon=True).start()

    def _cancel(self) -> None:
        self._fire(cancelled())

    def _fire(self, outcome: BaseException) -> None:
        with self._lock:
            if not self._armed:
                return  # a late timer or watcher: its run has ended
            self._armed = False
        self._stop(outcome)

    def disarm(self) -> None:
        """The run has ended: nothing fires after this returns (a stop in
        progress in another thread is decided against the ended run)."""
        with self._lock:
            self._armed = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer.join()
        for token, key in self._tokens:
            token._forget(key)
        if self._done is not None:
            self._done.set()


def _watch(event: Any, cancel: Callable[[], None], done: threading.Event) -> None:
    """A cancel that is not a ``CancelToken``: wait for it in this thread,
    until it is set (then cancel) or the run is done."""
    wait = getattr(event, "wait", None)
    while not done.is_set():
        if event.is_set():
            cancel()
            return
        if callable(wait):
            wait(_WATCH_PERIOD)  # returns at once when the event is set
        else:
            done.wait(_WATCH_PERIOD)
