"""pywasi: run WebAssembly programs built for WASI preview1 from Python.

The API is node:wasi's, in Python spelling::

    import pywasi
    wasi = pywasi.WASI(version="preview1", args=["demo"], env={}, preopens={"/sandbox": "."})
    module = pywasi.compile("demo.wasm")
    instance = pywasi.instantiate(module, wasi.get_import_object())
    exit_code = wasi.start(instance)

or, for one run under limits, ``pywasi.run(module, args=[...], timeout=2)``.
"""

from ._errors import CompatibilityWarning, LimitExceeded, PywasiError, Trap, WasiExit

# Every name below is imported on first use (``__getattr__``): ``pywasi run``
# imports this package, and its lean route needs neither the engine (nor
# wasmtime-py) nor most of the rest.
_TYPE_CHECKING = False
if _TYPE_CHECKING:
    from ._engine import Function, Global, Instance, LinkError, Memory, Module, compile, instantiate
    from ._wasi import WASI, PreopenError
    from ._run import RunError, RunResult, run, run_async
    from ._cancel import CancelToken
    from ._determinism import Clock, SeededRandom, VirtualClock
    from ._trace import Trace, TraceEvent
    from ._engine._withmemory import CallerMemory, with_memory
    from ._preinit import PreinitError, preinitialize

__version__ = "0.1.0"

__all__ = [
    "WASI", "run", "run_async", "RunResult", "RunError", "compile", "instantiate", "Module", "Instance",
    "Function", "Memory", "Global", "PywasiError", "PreopenError", "LinkError", "Trap",
    "LimitExceeded", "WasiExit", "CompatibilityWarning", "Trace", "TraceEvent", "Clock",
    "VirtualClock", "SeededRandom", "with_memory", "CallerMemory", "CancelToken", "preinitialize",
    "PreinitError", "__version__",
]

# Imported on first use: a module import is ~0.5M instructions of every
# start-up (callgrind).
_LAZY = {"WASI": "_wasi", "PreopenError": "_wasi", "compile": "_engine", "instantiate": "_engine",
         "Module": "_engine", "Instance": "_engine", "Function": "_engine", "Memory": "_engine",
         "Global": "_engine", "LinkError": "_engine", "run": "_run", "run_async": "_run",
         "RunResult": "_run", "RunError": "_run", "Trace": "_trace", "TraceEvent": "_trace", "Clock": "_determinism", "VirtualClock": "_determinism",
         "SeededRandom": "_determinism", "with_memory": "_engine._withmemory",
         "CallerMemory": "_engine._withmemory", "CancelToken": "_cancel", "preinitialize": "_preinit",
         "PreinitError": "_preinit"}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        # __import__, not importlib.import_module: importing importlib
        # brings warnings, on the command's start-up path.
        value = getattr(__import__(f"{__name__}.{_LAZY[name]}", fromlist=[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'pywasi' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
