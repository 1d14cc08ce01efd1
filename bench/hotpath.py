"""Where a pywasi host call's time goes: W1 (fd_write), W4 (clock_time_get)
and W3 (the path calls: 5 a file) through the Python API, in this process,
first timed plain, then under cProfile.

    python bench/hotpath.py [--only W1,W4,W3] [--calls-w1 N] [--calls-w4 N] [--files-w3 N] [--top K]

The plain run gives the cost per guest call (wall time / calls, minus nothing:
it includes the wasm loop, which native runs in ~0.02-0.1 µs). cProfile then
lists the Python functions on the hot path with their own time per call; the
time cProfile cannot see (ctypes' callback machinery, wasmtime's trampolines)
shows up as the caller's own time in the export call (``Function.__call__`` →
wasmtime's ``Func.__call__``). cProfile roughly doubles the cost of each Python
call, so its numbers are for *shares*, the plain run for *absolute* costs.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import build_wasm  # noqa: E402

import pywasi  # noqa: E402


def run_once(wasm: str, args: list[str], preopens: dict[str, str] | None = None) -> int:
    wasi = pywasi.WASI(version="preview1", args=["bench", *args], env={}, preopens=preopens or {})
    module = pywasi.compile(wasm)
    instance = pywasi.instantiate(module, wasi.get_import_object())
    try:
        return wasi.start(instance)
    finally:
        wasi.close()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls-w1", type=int, default=300_000)
    ap.add_argument("--calls-w4", type=int, default=1_000_000)
    ap.add_argument("--files-w3", type=int, default=5000)
    ap.add_argument("--top", type=int, default=14)
    ap.add_argument("--only", default="W1,W4,W3")
    opts = ap.parse_args()
    only = {k.strip().upper() for k in opts.only.split(",")}
    base = "/dev/shm" if os.path.isdir("/dev/shm") else None
    scratch = tempfile.mkdtemp(prefix="pywasi-hotpath-", dir=base)
    pre = {"/work": scratch}
    cases = [
        ("W1", "w1_write", opts.calls_w1, lambda n: [str(n)], "guest calls"),
        ("W4", "w4_clock", opts.calls_w4, lambda n: [str(n)], "guest calls"),
        ("W3", "w3_files", opts.files_w3, lambda n: ["/work/w3", str(n)], "files"),
    ]

    devnull = os.open(os.devnull, os.O_WRONLY)
    saved_stdout = os.dup(1)
    saved_stderr = os.dup(2)
    report = []
    for key, stem, calls, make_args, unit in cases:
        if key not in only:
            continue
        wasm = str(build_wasm(stem))
        small = make_args(min(calls, 1000))
        args = make_args(calls)
        # The guest writes straight to fd 1 (and its result line to fd 2):
        # send both to /dev/null while it runs, as the suite does for W1.
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        try:
            run_once(wasm, small, pre)  # warm: imports, the engine, page cache
            t0 = time.perf_counter()
            code = run_once(wasm, args, pre)
            plain = time.perf_counter() - t0
            profiler = cProfile.Profile()
            t0 = time.perf_counter()
            profiler.runcall(run_once, wasm, args, pre)
            profiled = time.perf_counter() - t0
        finally:
            os.dup2(saved_stdout, 1)
            os.dup2(saved_stderr, 2)
            shutil.rmtree(os.path.join(scratch, "w3"), ignore_errors=True)
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        stats.sort_stats("tottime").print_stats(opts.top)
        one = unit[:-1]
        report.append(f"## {key}: {calls:,} {unit} (exit {code})\n"
                      f"plain: {plain:.3f} s = {plain / calls * 1e6:.2f} µs per {one} "
                      f"(instantiation included, a few ms)\n"
                      f"under cProfile: {profiled:.3f} s = {profiled / calls * 1e6:.2f} µs per {one}\n"
                      f"own time per function (tottime), µs per {one}:\n")
        rows = sorted(stats.stats.items(), key=lambda kv: kv[1][2], reverse=True)[:opts.top]  # type: ignore[attr-defined]
        for (path, line, name), (cc, nc, tt, ct, _) in rows:
            where = f"{os.path.relpath(path) if path.startswith('/') else path}:{line}({name})"
            report.append(f"  {tt / calls * 1e6:6.2f} µs  {tt / profiled * 100:5.1f}%  "
                          f"{nc:>9} calls  {where}\n")
        report.append("\n")
    shutil.rmtree(scratch, ignore_errors=True)
    sys.stdout.write("".join(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
