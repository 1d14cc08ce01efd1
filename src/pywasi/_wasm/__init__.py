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
from ._sections import (
    CUSTOM, DATA, DATACOUNT, ELEMENT, EXPORT, FUNCTION, GLOBAL, IMPORT, KIND_FUNC, KIND_GLOBAL,
    KIND_MEMORY, KIND_TABLE, KIND_TAG, MEMORY, START, TABLE, TYPE, CODE, TAG, DataSegment,
    ElementSegment, Export, Global, GlobalType, Import, MemoryType, Section, TableType,
    const_f32, const_f64, const_i32, const_i64, custom_name, encode_data, encode_datacount,
    encode_exports, encode_globals, encode_memories, read_data, read_datacount, read_elements,
    read_exports, read_function_count, read_globals, read_imports, read_memories, read_module,
    read_tables, section, write_module,
)

__all__ = [
    "read_uleb", "read_sleb", "uleb", "sleb", "Reader", "WasmFormatError", "Section",
    "read_module", "write_module", "section", "custom_name", "CUSTOM", "TYPE", "IMPORT",
    "FUNCTION", "TABLE", "MEMORY", "GLOBAL", "EXPORT", "START", "ELEMENT", "CODE", "DATA",
    "DATACOUNT", "TAG", "KIND_FUNC", "KIND_TABLE", "KIND_MEMORY", "KIND_GLOBAL", "KIND_TAG",
    "Import", "MemoryType", "TableType", "GlobalType", "Global", "Export", "DataSegment",
    "ElementSegment", "read_imports", "read_memories", "read_tables", "read_globals",
    "read_exports", "read_data", "read_datacount", "read_elements", "read_function_count",
    "encode_memories", "encode_globals", "encode_exports", "encode_data", "encode_datacount",
    "const_i32", "const_i64", "const_f32", "const_f64",
]
