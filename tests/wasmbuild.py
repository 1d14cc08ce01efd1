"""Build real wasm32-wasi (preview1) programs for the tests.

C goes through ``python -m ziglang cc`` (the ``ziglang`` wheel, so CI needs no
system toolchain); WAT goes through ``wasmtime.wat2wasm``.

Invariants:
- A compiled module lives in ``tests/.wasm-cache/`` under a name derived from
  the SHA-256 of everything that decides its bytes: the source, the base and
  extra compiler flags, and the ziglang version.  Same inputs -> same path, and
  no compiler run if the file is already there.
- A cache file is only ever created by ``os.replace`` of a finished temporary
  file in the same directory, so a reader never sees a half-written module and
  two pytest processes building the same program at once are harmless (both
  produce the same bytes; the last rename wins).

Why these zig flags (see ``BASE_FLAGS``):
- ``--target=wasm32-wasi``: wasi-libc, ``_start`` command model, every import
  from ``wasi_snapshot_preview1``.
- ``-O2``: optimised but not size-tuned, so the code still looks like what C
  compilers usually emit.
- ``-s``: strip.  Without it zig keeps DWARF and the name section (a
  hello-world is ~900 KB instead of ~2.6 KB) and the bytes drift with paths.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import pathlib
import subprocess
import sys
import tempfile
from collections.abc import Sequence

import wasmtime

__all__ = [
    "BASE_FLAGS",
    "C_DIR",
    "CACHE_DIR",
    "WasmBuildError",
    "build_c",
    "build_c_source",
    "build_wat",
]

TESTS_DIR = pathlib.Path(__file__).resolve().parent
C_DIR = TESTS_DIR / "c"
CACHE_DIR = TESTS_DIR / ".wasm-cache"

BASE_FLAGS: tuple[str, ...] = ("--target=wasm32-wasi", "-O2", "-s")

# The first compile on a machine builds wasi-libc (~15-20 s); leave plenty of room.
COMPILE_TIMEOUT = 600.0


class WasmBuildError(RuntimeError):
    """A compile failed; the message carries the compiler's stderr."""


def _zig_version() -> str:
    return importlib.metadata.version("ziglang")


def _cache_key(source: bytes, flags: Sequence[str]) -> str:
    h = hashlib.sha256()
    # Length-prefix every part so that no two different inputs hash alike.
    for part in (source, *(f.encode() for f in (*BASE_FLAGS, *flags)), _zig_version().encode()):
        h.update(len(part).to_bytes(8, "little"))
        h.update(part)
    return h.hexdigest()


def _compile(c_file: pathlib.Path, out: pathlib.Path, flags: Sequence[str]) -> None:
    """Run the compiler once.  The tests replace this to count invocations."""
    cmd = [sys.executable, "-m", "ziglang", "cc", *BASE_FLAGS, *flags, "-o", str(out), str(c_file)]
    try:
        proc = subprocess.run(
            cmd,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=COMPILE_TIMEOUT,
        )
    except subprocess.TimeoutExpired as e:
        raise WasmBuildError(f"compiling {c_file.name} timed out after {COMPILE_TIMEOUT} s") from e
    if proc.returncode != 0 or not out.is_file():
        raise WasmBuildError(
            f"compiling {c_file.name} failed (exit {proc.returncode}):\n"
            f"$ {' '.join(cmd)}\n{proc.stderr.decode(errors='replace')}"
        )


def _build(stem: str, source: bytes, flags: Sequence[str]) -> pathlib.Path:
    flags = tuple(flags)
    target = CACHE_DIR / f"{stem}-{_cache_key(source, flags)[:32]}.wasm"
    if target.is_file():
        return target
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    # A private directory in the cache dir: the compiler's output (and any
    # scratch it writes beside it) stays out of other builders' way, and the
    # final os.replace is a same-filesystem atomic rename.
    with tempfile.TemporaryDirectory(dir=CACHE_DIR, prefix=f".tmp-{stem}-") as tmp:
        tmpdir = pathlib.Path(tmp)
        c_file = tmpdir / f"{stem}.c"
        c_file.write_bytes(source)
        out = tmpdir / f"{stem}.wasm"
        _compile(c_file, out, flags)
        os.replace(out, target)
    return target


def build_c(name: str, *, flags: Sequence[str] = ()) -> pathlib.Path:
    """Compile ``tests/c/<name>.c`` to wasm32-wasi; return the cached module's path."""
    src = C_DIR / f"{name}.c"
    return _build(name, src.read_bytes(), flags)


def build_c_source(source: str, *, flags: Sequence[str] = ()) -> pathlib.Path:
    """Compile C given as text; same cache as ``build_c`` (keyed on the text)."""
    return _build("inline", source.encode(), flags)


def build_wat(text: str) -> bytes:
    """Assemble WebAssembly text to binary."""
    return bytes(wasmtime.wat2wasm(text))
