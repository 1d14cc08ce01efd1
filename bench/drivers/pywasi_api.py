"""Run a WASI command through pywasi's Python API (the node:wasi-shaped one).

This is what an embedding application does: WASI(...), compile, instantiate,
start. Exit status: the guest's."""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _args import parse  # noqa: E402

import pywasi  # noqa: E402


def main() -> int:
    opts = parse(sys.argv[1:])
    wasi = pywasi.WASI(version="preview1", args=[opts.argv0 or opts.module, *opts.args], env={},
                       preopens={guest: host for host, guest in opts.dirs})
    module = pywasi.compile(opts.module)
    instance = pywasi.instantiate(module, wasi.get_import_object())
    try:
        return wasi.start(instance)
    finally:
        wasi.close()


if __name__ == "__main__":
    sys.exit(main())
