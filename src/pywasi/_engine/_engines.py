"""pywasi's engines: their settings, and which one a module needs.

Process-wide engines, each made on first use, one per set of code-changing
features: the default one, whose compiled code has no epoch checks and
counts no fuel; with epoch interruption (``EPOCH_SETTINGS``: modules that
can spawn threads, and modules compiled ``interruptible`` for a timeout);
with fuel (``FUEL_SETTINGS``, modules compiled ``consume_fuel``); and with
both; each also per wasm stack size (``max_wasm_stack``). A feature costs
only the modules compiled for it. The settings tuples are part of the
compiled-module cache key, except the stack size, which does not change the
code (see ``_lean.RUNTIME_SETTINGS``).
"""

from __future__ import annotations

import ctypes
import io
import os
import threading
from typing import Any, BinaryIO

import wasmtime

from .. import _lean
from . import _ffi

__all__ = ["ENGINE_SETTINGS", "THREADS_SETTINGS", "EPOCH_SETTINGS", "FUEL_SETTINGS",
           "default_engine", "threads_engine", "engine_for", "settings_of", "has_epochs",
           "has_fuel", "needs_threads", "cache_context", "wasmtime_version", "wasm_stack",
           "check_wasm_stack", "DEFAULT_WASM_STACK", "MAX_WASM_STACK",
           "engine_with"]

# (epochs, fuel, max_wasm_stack) -> the engine; and each engine's id -> that key.
_ENGINES: dict[tuple[bool, bool, int], wasmtime.Engine] = {}
_FEATURES: dict[int, tuple[bool, bool, int]] = {}
_ENGINE_LOCK = threading.Lock()

# Every setting of pywasi's default engine: declared in ``_lean`` (the lean
# run path builds the same engine without wasmtime-py), part of the cache key.
ENGINE_SETTINGS = _lean.ENGINE_SETTINGS
# Epoch interruption, so that a program (every thread of it) can be stopped
# wherever it loops (see ``StopSwitch``): for threads and timeouts. It makes
# compiled code check a counter in every loop and call, so only modules that
# can have threads (``needs_threads``) or ask for it are compiled with it.
EPOCH_SETTINGS: tuple[tuple[str, Any], ...] = (("epoch_interruption", True),)
THREADS_SETTINGS = EPOCH_SETTINGS
# Fuel: compiled code counts what it executes and traps when the store's
# fuel is used up (wasmtime: deterministic, costlier than epochs).
FUEL_SETTINGS: tuple[tuple[str, Any], ...] = (("consume_fuel", True),)

# The wasm stack: how deep wasm may call before it traps ("call stack
# exhausted"). The default is wasmtime's own (its CLI's and wasmtime-py's):
# a program that runs under ``wasmtime run`` runs the same here, and the
# stack fits the native stack of any thread a caller may run a guest on (a
# 1 MiB thread pool's too), so the guest runs on the caller's thread. A
# larger one (``compile(..., max_wasm_stack=)``) runs the guest on a thread
# of pywasi's with the native stack it needs (``_stack``).
DEFAULT_WASM_STACK = _lean.DEFAULT_WASM_STACK
# Above this, a worker thread's native stack is more address space than a
# guest can reasonably want; refused rather than tried.
MAX_WASM_STACK = 1 << 30

def _settings(epochs: bool, fuel: bool, stack: int) -> tuple[tuple[str, Any], ...]:
    return ENGINE_SETTINGS + (EPOCH_SETTINGS if epochs else ()) + (FUEL_SETTINGS if fuel else ()) \
        + ((("max_wasm_stack", stack),) if stack != DEFAULT_WASM_STACK else ())


def settings_of(engine: wasmtime.Engine) -> tuple[tuple[str, Any], ...] | None:
    """The settings ``engine`` was made with, None if it is not pywasi's."""
    features = _FEATURES.get(id(engine))
    if features is None or _ENGINES.get(features) is not engine:
        return None
    return _settings(*features)


def wasm_stack(engine: wasmtime.Engine) -> int:
    """The bytes of wasm stack ``engine`` allows (wasmtime's default for an
    engine that is not pywasi's: its own setting is unknown)."""
    features = _FEATURES.get(id(engine))
    if features is None or _ENGINES.get(features) is not engine:
        return DEFAULT_WASM_STACK
    return features[2]


def check_wasm_stack(value: Any, option: str = "max_wasm_stack") -> int:
    """``value`` as a wasm stack size, or a ``TypeError``/``ValueError``
    that says what is accepted."""
    if value is None:
        return DEFAULT_WASM_STACK
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{option} must be an int (bytes), not {type(value).__name__}")
    if not 1 <= value <= MAX_WASM_STACK:
        raise ValueError(f"{option} must be between 1 byte and {MAX_WASM_STACK >> 20} MiB, "
                         f"got {value}")
    if value > _ASYNC_STACK_DEFAULT and _ffi.async_stack_size_set is None:
        raise ValueError(f"{option} above {_ASYNC_STACK_DEFAULT >> 20} MiB needs "
                         f"wasmtime_config_async_stack_size_set, which this wasmtime-py lacks")
    return value


_WASMTIME_VERSION: str | None = None


def wasmtime_version() -> str:
    """The identity of the wasmtime build that compiles: part of the cache key."""
    global _WASMTIME_VERSION
    if _WASMTIME_VERSION is None:
        # The shared library's identity (``_lean.library_identity``: the
        # lean run path keys on the same). Only without it do we ask the
        # package metadata, whose import costs ~20 ms of every start-up.
        lib = getattr(getattr(wasmtime, "_ffi", None), "dll", None)
        path = getattr(lib, "_name", None)
        version = _lean.library_identity(path) if path else None
        if version is None:
            version = getattr(wasmtime, "__version__", None) or ""
            if not version:
                try:
                    from importlib.metadata import version as dist_version
                    version = dist_version("wasmtime")
                except Exception:  # noqa: BLE001 - no metadata either: key on settings alone
                    version = ""
        _WASMTIME_VERSION = version
    return _WASMTIME_VERSION


def cache_context(settings: tuple[tuple[str, Any], ...]) -> tuple[bytes, ...]:
    """Everything besides a module's bytes that decides the code compiled
    from it with ``settings`` (``_lean.cache_context``)."""
    return _lean.cache_context(settings, wasmtime_version())


def engine_with(settings: tuple[tuple[str, Any], ...]) -> wasmtime.Engine | None:
    """pywasi's engine made with ``settings`` (what ``settings_of`` gave for
    it, in this or another process), None if pywasi makes no such engine."""
    stack = dict(settings).get("max_wasm_stack", DEFAULT_WASM_STACK)
    try:
        stack = check_wasm_stack(stack)
    except (TypeError, ValueError):
        return None
    features = (("epoch_interruption", True) in settings, ("consume_fuel", True) in settings,
                stack)
    if _settings(*features) != settings:
        return None
    return engine_for(epochs=features[0], fuel=features[1], stack=stack)


def has_epochs(engine: wasmtime.Engine) -> bool:
    """Whether ``engine``'s code checks the epoch (its stores need a deadline)."""
    features = _FEATURES.get(id(engine))
    return features is not None and features[0] and _ENGINES[features] is engine


def has_fuel(engine: wasmtime.Engine) -> bool:
    """Whether ``engine``'s code consumes fuel (its stores need some)."""
    features = _FEATURES.get(id(engine))
    return features is not None and features[1] and _ENGINES[features] is engine


def engine_for(*, epochs: bool = False, fuel: bool = False,
               stack: int = DEFAULT_WASM_STACK) -> wasmtime.Engine:
    """pywasi's engine with epoch interruption and/or fuel, and ``stack``
    bytes of wasm stack (checked: ``check_wasm_stack``), made on first use.

    ``memory_may_move = False`` on all of them: linear memory keeps its base
    address when it grows, so a host view of it only needs extending, never
    rebasing (see ``_memory``). Threads and shared memory are on so
    wasi-threads modules compile.
    """
    key = (epochs, fuel, stack)
    with _ENGINE_LOCK:
        engine = _ENGINES.get(key)
        if engine is None:
            engine = _ENGINES[key] = _new_engine(_settings(*key))
            _FEATURES[id(engine)] = key
        return engine


def default_engine() -> wasmtime.Engine:
    """The engine pywasi compiles with: no epochs, no fuel."""
    return engine_for()


def threads_engine() -> wasmtime.Engine:
    """The engine for modules that can spawn threads: the default settings
    plus ``EPOCH_SETTINGS``."""
    return engine_for(epochs=True)


# wasmtime's async stack size (2 MiB): a Config whose max_wasm_stack is above
# it is invalid, and wasmtime-py 50/51 do not check that wasmtime refused to
# make the engine: the process dies with SIGSEGV. Config does not wrap the
# setter, so it is bound here; raised with the wasm stack (pywasi makes no
# async calls: nothing is allocated for it).
_ASYNC_STACK_DEFAULT = 2 << 20


def _new_engine(settings: tuple[tuple[str, Any], ...]) -> wasmtime.Engine:
    config = wasmtime.Config()
    for name, value in settings:
        if name == "max_wasm_stack" and value > _ASYNC_STACK_DEFAULT:
            assert _ffi.async_stack_size_set is not None   # check_wasm_stack refused it
            _ffi.async_stack_size_set(ctypes.cast(config.ptr(), ctypes.c_void_p),
                                  value + _ASYNC_STACK_DEFAULT)
        setattr(config, name, value)
    return wasmtime.Engine(config)


def needs_threads(source: bytes | str) -> bool:
    """Whether a module (wasm or WAT bytes, or a path) imports
    ``wasi``.``thread-spawn`` or a shared memory: read from its import
    section, without compiling. Anything unreadable answers False (compiling
    it then reports the problem)."""
    try:
        if isinstance(source, str):
            with open(source, "rb") as f:
                if f.read(4) == b"\0asm":
                    return _scan_imports(f)
                f.seek(0)
                source = f.read()
        wasm = source if source.startswith(b"\0asm") else bytes(wasmtime.wat2wasm(source.decode()))
        stream = io.BytesIO(wasm)
        stream.seek(4)
        return _scan_imports(stream)
    except (OSError, ValueError, IndexError, UnicodeDecodeError, wasmtime.WasmtimeError):
        return False


def _scan_imports(f: BinaryIO) -> bool:
    """The binary format's import section (id 2), read from ``f`` after the
    magic; other sections before it are skipped by their size."""
    def leb() -> int:
        result = shift = 0
        while True:
            byte = f.read(1)[0]
            result |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return result

    def name() -> bytes:
        return f.read(leb())

    f.read(4)  # version
    while True:
        head = f.read(1)
        if not head or head[0] not in (0, 1, 2):
            return False  # past the import section (or no sections left)
        size = leb()
        if head[0] != 2:
            f.seek(size, 1)
            continue
        for _ in range(leb()):
            module, field, kind = name(), name(), f.read(1)[0]
            if (module, field) == (b"wasi", b"thread-spawn"):
                return True
            if kind == 0:       # function: type index
                leb()
            elif kind == 1:     # table: reftype, limits
                f.read(1)
                flags = leb()
                leb()
                if flags & 1:
                    leb()
            elif kind == 2:     # memory: limits; flag bit 1 is "shared"
                flags = leb()
                if flags & 2:
                    return True
                leb()
                if flags & 1:
                    leb()
                if flags & 8:   # custom page size
                    leb()
            elif kind == 3:     # global: valtype, mutability
                f.read(2)
            else:               # tag: attribute, type index
                f.read(1)
                leb()
        return False
