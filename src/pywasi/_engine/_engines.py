"""pywasi's engines: their settings, and which one a module needs.

Two process-wide engines, made on first use: the default one, whose compiled
code has no epoch checks, and the threads engine (the same settings plus
epoch interruption) for modules that can spawn threads. The settings tuples
are part of the compiled-module cache key.
"""

from __future__ import annotations

import io
import threading
from typing import Any, BinaryIO

import wasmtime

__all__ = ["ENGINE_SETTINGS", "THREADS_SETTINGS", "default_engine", "threads_engine",
           "settings_of", "has_epochs", "is_default_engine", "needs_threads"]

_ENGINE: wasmtime.Engine | None = None
_THREADS_ENGINE: wasmtime.Engine | None = None
_ENGINE_LOCK = threading.Lock()

# Every setting of pywasi's engine, as (Config attribute, value). They decide
# the machine code, so the compiled-module cache key hashes this tuple: change
# a setting here (never elsewhere) and old cache entries stop matching.
ENGINE_SETTINGS: tuple[tuple[str, Any], ...] = (
    ("memory_may_move", False),
    ("wasm_threads", True),
    ("shared_memory", True),
    # Chosen from measurements (README, "Compiled-module cache"): the cache
    # keeps code that runs natively for every later start, so it is
    # Cranelift's optimised code, not the baseline compiler Winch's (4-7x
    # faster to compile, its code 1.6-2.1x slower). Parallel compilation
    # cuts a cold start when a second core is free and does not change the
    # code.
    ("strategy", "cranelift"),
    ("parallel_compilation", True),
)
# What the threads engine adds: epoch interruption, so that every thread of a
# program can be stopped wherever it loops (see ``StopSwitch``). It makes
# compiled code check a counter in every loop and call, so only modules that
# can have threads (``needs_threads``) are compiled with it.
THREADS_SETTINGS: tuple[tuple[str, Any], ...] = (("epoch_interruption", True),)


def settings_of(engine: wasmtime.Engine) -> tuple[tuple[str, Any], ...] | None:
    """The settings ``engine`` was made with, None if it is not pywasi's."""
    if engine is _THREADS_ENGINE:
        return ENGINE_SETTINGS + THREADS_SETTINGS
    if engine is _ENGINE:
        return ENGINE_SETTINGS
    return None


def has_epochs(engine: wasmtime.Engine) -> bool:
    """Whether ``engine``'s code checks the epoch (its stores need a deadline)."""
    return engine is _THREADS_ENGINE


def is_default_engine(engine: wasmtime.Engine) -> bool:
    return engine is _ENGINE


def default_engine() -> wasmtime.Engine:
    """The process-wide engine pywasi compiles with.

    ``memory_may_move = False``: linear memory keeps its base address when it
    grows, so a host view of it only needs extending, never rebasing (see
    ``_memory``). Threads and shared memory are on so wasi-threads modules
    compile.
    """
    global _ENGINE
    with _ENGINE_LOCK:
        if _ENGINE is None:
            _ENGINE = _new_engine(ENGINE_SETTINGS)
        return _ENGINE


def threads_engine() -> wasmtime.Engine:
    """The engine for modules that can spawn threads: the default settings
    plus ``THREADS_SETTINGS``."""
    global _THREADS_ENGINE
    with _ENGINE_LOCK:
        if _THREADS_ENGINE is None:
            _THREADS_ENGINE = _new_engine(ENGINE_SETTINGS + THREADS_SETTINGS)
        return _THREADS_ENGINE


def _new_engine(settings: tuple[tuple[str, Any], ...]) -> wasmtime.Engine:
    config = wasmtime.Config()
    for name, value in settings:
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
