"""pywasi: run WebAssembly programs built for WASI preview1 from Python.

The API is node:wasi's, in Python spelling::

    import pywasi
    wasi = pywasi.WASI(version="preview1", args=["demo"], env={}, preopens={"/sandbox": "."})
    module = pywasi.compile("demo.wasm")
    instance = pywasi.instantiate(module, wasi.get_import_object())
    exit_code = wasi.start(instance)
"""

from ._engine import Function, Global, Instance, LinkError, Memory, Module, compile, instantiate
from ._errors import PywasiError, Trap, WasiExit
from ._wasi import WASI, PreopenError

__version__ = "0.1.0"

__all__ = [
    "WASI", "compile", "instantiate", "Module", "Instance", "Function", "Memory", "Global",
    "PywasiError", "PreopenError", "LinkError", "Trap", "WasiExit", "__version__",
]
