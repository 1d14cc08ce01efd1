"""Issue 25's in-process rows, each timed here (interleaved, medians) and
printed as one line on stderr; the guest's output of the first run is
written to ours, so bench/run.py checks it as any runner's.

    pywasi_async.py async [--runs N] MODULE [ARGS...]
        PY-ASYNC: pywasi.run() and ``await pywasi.run_async()`` of the same
        interruptible module, alternately, on one event loop with a
        one-thread executor (a service's shape); prints
        ``run_ms=A async_ms=B extra_ms=B-A``.
    pywasi_async.py par2 [--runs N] MODULE [ARGS...]
        PAR2: pywasi.run() of one guest alone, then of two guests at once
        on two threads, alternately; prints ``one_s=A two_s=B speedup=2A/B``
        (throughput of two over one: 2.0 is perfect on two free cores).

Exit status: 0 when every run exited 0.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import statistics
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _args import parse  # noqa: E402

import pywasi  # noqa: E402


def main() -> int:
    mode, argv = sys.argv[1], sys.argv[2:]
    runs = 20
    if argv[:1] == ["--runs"]:
        runs, argv = int(argv[1]), argv[2:]
    opts = parse(argv)
    args = [opts.argv0 or opts.module, *opts.args]
    module = pywasi.compile(opts.module, interruptible=mode == "async")
    first = pywasi.run(module, args=args)  # untimed: warms the module and the page cache
    sys.stdout.buffer.write(first.stdout or b"")
    sys.stderr.buffer.write(first.stderr or b"")
    sys.stderr.flush()
    if first.exit_code != 0:
        return 1
    return (_async if mode == "async" else _par2)(module, args, runs)


def _async(module: pywasi.Module, args: list[str], runs: int) -> int:
    executor = concurrent.futures.ThreadPoolExecutor(1)
    loop = asyncio.new_event_loop()
    loop.set_default_executor(executor)
    plain: list[float] = []
    awaited: list[float] = []
    ok = True

    def timed_run() -> None:
        nonlocal ok
        began = time.perf_counter()
        ok &= pywasi.run(module, args=args).exit_code == 0
        plain.append(time.perf_counter() - began)

    def timed_async() -> None:
        nonlocal ok
        began = time.perf_counter()
        ok &= loop.run_until_complete(pywasi.run_async(module, args=args)).exit_code == 0
        awaited.append(time.perf_counter() - began)

    loop.run_until_complete(pywasi.run_async(module, args=args))  # the executor's thread
    for i in range(runs):
        for step in ((timed_run, timed_async) if i % 2 == 0 else (timed_async, timed_run)):
            step()
    loop.close()
    executor.shutdown()
    a, b = statistics.median(plain) * 1000, statistics.median(awaited) * 1000
    print(f"runs={runs} run_ms={a:.2f} async_ms={b:.2f} extra_ms={b - a:.2f}", file=sys.stderr)
    return 0 if ok else 1


def _par2(module: pywasi.Module, args: list[str], runs: int) -> int:
    one: list[float] = []
    two: list[float] = []
    codes: list[int | None] = []

    def guest() -> None:
        codes.append(pywasi.run(module, args=args).exit_code)

    def alone() -> None:
        began = time.perf_counter()
        guest()
        one.append(time.perf_counter() - began)

    def pair() -> None:
        threads = [threading.Thread(target=guest) for _ in range(2)]
        began = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        two.append(time.perf_counter() - began)

    for i in range(runs):
        for step in ((alone, pair) if i % 2 == 0 else (pair, alone)):
            step()
    a, b = statistics.median(one), statistics.median(two)
    print(f"runs={runs} one_s={a:.4f} two_s={b:.4f} speedup={2 * a / b:.2f}", file=sys.stderr)
    return 0 if all(code == 0 for code in codes) else 1


if __name__ == "__main__":
    sys.exit(main())
