"""Reading and writing the WebAssembly binary format, as far as pywasi needs:
a module as a list of raw sections (custom and unknown sections kept byte
for byte), and a small typed reader and writer for each section that
pre-initialisation (``pywasi.preinitialize``) reads or rewrites.

One concern per module: ``_leb`` (LEB128, the only place it is coded),
``_reader`` (a cursor over a section's bytes: values, names, types, limits,
constant expressions), ``_sections`` (the sections and their entries).

Invariant: ``write_module(read_module(b)) == b`` for every valid module, and
each typed section decodes and re-encodes to its own bytes (the binaries
the tests build, and CPython for WASI, are checked by
``tests/test_wasm_format.py``). Not the hot path of anything: imported only
by ``pywasi wizer`` / ``preinitialize``.

No well-kept Python library on PyPI reads and writes the format: ``wasm``
(2019) and ``wasm-tools`` (pure Python) only decode, pywasm is an
interpreter; wasm-tools' ``wasmparser``/``wasm-encoder`` are Rust.
"""

from ._leb import read_sleb, read_uleb, sleb, uleb
from ._reader import Reader, WasmFormatError
from . import _sections
from ._sections import *  # noqa: F403  (the sections, their entries, readers and writers)

__all__ = ["read_uleb", "read_sleb", "uleb", "sleb", "Reader", "WasmFormatError",
           *_sections.__all__]
