"""Small helpers shared by the tests: run a module with captured stdio; fill a
pipe so that a write to it would block."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pywasi


@dataclass
class Run:
    code: int
    stdout: bytes
    stderr: bytes
    wasi: pywasi.WASI = field(repr=False)
    instance: pywasi.Instance = field(repr=False)


def run_module(source: bytes | str | os.PathLike[str], *, args: Sequence[str] = ("prog",),
               env: Mapping[str, str] | None = None,
               preopens: Mapping[str, Any] | None = None, stdin: Any = b"",
               version: str = "preview1", extra_imports: Mapping[str, Mapping[str, Any]] | None = None,
               ) -> Run:
    """Compile and start ``source`` with stdout/stderr captured as bytes."""
    out: list[bytes] = []
    err: list[bytes] = []
    wasi = pywasi.WASI(version=version, args=list(args), env=dict(env or {}),
                       preopens=dict(preopens or {}), stdin=stdin,
                       stdout=out.append, stderr=err.append)
    imports = wasi.get_import_object()
    for name, ns in (extra_imports or {}).items():
        imports.setdefault(name, {}).update(ns)
    module = pywasi.compile(source)
    instance = pywasi.instantiate(module, imports)
    code = wasi.start(instance)
    return Run(code, b"".join(out), b"".join(err), wasi, instance)


def wat_calling(imports: str, body: str, *, namespace: str = "wasi_snapshot_preview1",
                data: str = "") -> bytes:
    """A WAT command module: ``imports`` are (import ...) lines (``$ns`` is
    replaced by the namespace), ``body`` is _start's code."""
    return f"""(module
  {imports.replace('$ns', namespace)}
  (memory (export "memory") 1)
  {data}
  (func (export "_start") {body}))""".encode()


def instantiate_in_user_linker(wasi: pywasi.WASI, source: str) -> pywasi.Instance:
    """What a user with their own wasmtime Engine/Store/Linker does: define
    WASI's imports in the linker, instantiate, wrap for start()."""
    import wasmtime

    engine = wasmtime.Engine()
    store = wasmtime.Store(engine)
    linker = wasmtime.Linker(engine)
    wasi.define_imports(linker)
    raw = linker.instantiate(store, wasmtime.Module(engine, source))
    return pywasi.Instance.wrap(store, raw)


def fill_pipe(write_fd: int) -> None:
    """Write to the pipe ``write_fd`` until it takes no more, its blocking mode
    left as it was: a blocking write to it then waits for a reader."""
    blocking = os.get_blocking(write_fd)
    os.set_blocking(write_fd, False)
    try:
        while True:
            os.write(write_fd, b"x" * 65536)
    except BlockingIOError:
        pass
    finally:
        os.set_blocking(write_fd, blocking)
