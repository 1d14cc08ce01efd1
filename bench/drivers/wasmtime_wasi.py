"""Run a WASI command with wasmtime's own WASI (Rust, inside the wasmtime
wheel) through wasmtime-py: WasiConfig + Linker.define_wasi. Same engine
library as pywasi, so the difference is the host-call route and the WASI
implementation. Exit status: the guest's."""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _args import parse  # noqa: E402

import wasmtime  # noqa: E402


def load(engine: wasmtime.Engine, path: str, cache: str | None, exceptions: bool) -> wasmtime.Module:
    """Compile, or load the serialized module a previous run left in ``cache``."""
    if cache is None:
        return wasmtime.Module.from_file(engine, path)
    with open(path, "rb") as f:
        data = f.read()
    key = hashlib.sha256(data + importlib.metadata.version("wasmtime").encode()
                         + (b"exc" if exceptions else b"")).hexdigest()[:32]
    entry = os.path.join(cache, key + ".cwasm")
    if os.path.isfile(entry):
        try:
            return wasmtime.Module.deserialize_file(engine, entry)
        except wasmtime.WasmtimeError:
            pass
    module = wasmtime.Module(engine, data)
    os.makedirs(cache, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=cache, prefix=".tmp-")
    with os.fdopen(fd, "wb") as f:
        f.write(module.serialize())
    os.replace(tmp, entry)
    return module


def main() -> int:
    opts = parse(sys.argv[1:])
    config = wasmtime.Config()
    if opts.exceptions:
        config.wasm_exceptions = True
    engine = wasmtime.Engine(config)
    wasi = wasmtime.WasiConfig()
    wasi.argv = [opts.argv0 or opts.module, *opts.args]
    wasi.inherit_stdin()
    wasi.inherit_stdout()
    wasi.inherit_stderr()
    for host, guest in opts.dirs:
        wasi.preopen_dir(host, guest)
    store = wasmtime.Store(engine)
    store.set_wasi(wasi)
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    module = load(engine, opts.module, opts.cache, opts.exceptions)
    instance = linker.instantiate(store, module)
    start = instance.exports(store)["_start"]
    try:
        start(store)
    except wasmtime.ExitTrap as e:
        return e.code
    return 0


if __name__ == "__main__":
    sys.exit(main())
