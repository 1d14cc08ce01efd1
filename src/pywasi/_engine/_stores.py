"""Stores, and the switch that stops a program's stores wherever they run.

A store of the threads engine checks the engine's epoch; ``new_store`` gives
it a deadline and a ``StopSwitch`` that the epoch callback consults, so one
program's threads can be trapped without stopping any other store.
"""

from __future__ import annotations

import ctypes
import weakref
from typing import Any

import wasmtime

from .._errors import STOPPED_MESSAGE
from . import _engines, _ffi

__all__ = ["StopSwitch", "STOPPED_MESSAGE", "UNLIMITED_FUEL", "new_store", "set_limits", "store_switch"]


class StopSwitch:
    """Stops every store it is installed in (``new_store``): once ``stopped``
    is set, the engine's next epoch tick traps their running wasm.

    Each store of the threads engine checks the engine's epoch in every loop
    and call; at each tick (``Engine.increment_epoch``, engine-wide) wasmtime
    asks our callback, which traps a stopped program's stores and lets every
    other store on the engine run on. So ending one program never stops
    another one running in the same process."""

    __slots__ = ("stopped",)

    def __init__(self) -> None:
        self.stopped = False

    def stop(self, engine: wasmtime.Engine) -> None:
        self.stopped = True
        engine.increment_epoch()


_UPDATE_DEADLINE_CONTINUE = 0


def _on_epoch(context: Any, key: int | None, delta: Any, kind: Any,
              live: dict[int, Any] = _ffi.LIVE) -> int | None:
    switch = live.get(key or 0)
    if switch is not None and switch.stopped:
        return int(_ffi.error_new(STOPPED_MESSAGE.encode()))
    delta[0] = 1
    kind[0] = _UPDATE_DEADLINE_CONTINUE
    return None


_on_epoch_c = _ffi.EPOCH_CALLBACK(_on_epoch)
ctypes.pythonapi.Py_IncRef(ctypes.py_object(_on_epoch_c))  # as _ffi.RELEASE: outlives the module
_STORE_SWITCHES: weakref.WeakKeyDictionary[wasmtime.Store, StopSwitch] = weakref.WeakKeyDictionary()


# What a store of a fuel engine starts with when no fuel limit is asked
# (wasmtime's stores start with none): as good as unlimited.
UNLIMITED_FUEL = (1 << 63) - 1


def new_store(engine: wasmtime.Engine, switch: StopSwitch | None = None, *,
              fuel: int | None = None, max_memory: int | None = None) -> wasmtime.Store:
    """A store on ``engine``. On an engine with epochs it gets an epoch
    deadline (without one, its wasm would trap at once) and ``switch`` (a
    new one if not given; ``store_switch`` finds it). ``fuel`` (engines that
    consume fuel; unlimited if None) and ``max_memory`` (bytes each linear
    memory may reach, wasmtime's store limiter) are its limits."""
    store = wasmtime.Store(engine)
    set_limits(store, fuel=fuel, max_memory=max_memory)
    if _engines.has_epochs(engine):
        switch = switch or StopSwitch()
        key = _ffi.register(switch)
        store.set_epoch_deadline(1)
        if _ffi.set_epoch_callback is None or _ffi.error_new is None:
            # NOTE: a wasmtime-py without the callback (see _ffi.problems):
            # the deadline traps this store at the next tick, whichever
            # program's stop made it. The switch still says whose it was.
            _STORE_SWITCHES[store] = switch
            return store
        _ffi.set_epoch_callback(ctypes.cast(store.ptr(), ctypes.c_void_p), _on_epoch_c, key,
                                _ffi.RELEASE)
        _STORE_SWITCHES[store] = switch
    return store


def set_limits(store: wasmtime.Store, *, fuel: int | None, max_memory: int | None) -> None:
    if _engines.has_fuel(store.engine):
        store.set_fuel(UNLIMITED_FUEL if fuel is None else fuel)
    if max_memory is not None:
        store.set_limits(memory_size=max_memory)


def store_switch(store: wasmtime.Store) -> StopSwitch | None:
    return _STORE_SWITCHES.get(store)

