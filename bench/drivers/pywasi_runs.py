"""Many ``pywasi.run()`` calls in one process on one compiled module (issue
13's "runs/s"): compiles MODULE once (from the cache; untimed), runs it once
untimed, then ``--runs N`` times, and prints ``runs=N seconds=S per_run_ms=M``
on stderr (the guest's output is captured, not printed). Exit status: 0 when
every run exited 0.

    pywasi_runs.py [--runs N] [--dir HOST::GUEST]... [--argv0 NAME] MODULE [ARGS...]
"""

from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _args import parse  # noqa: E402

import pywasi  # noqa: E402


def main() -> int:
    argv = sys.argv[1:]
    runs = 50
    if argv[:1] == ["--runs"]:
        runs, argv = int(argv[1]), argv[2:]
    opts = parse(argv)
    module = pywasi.compile(opts.module)
    args = [opts.argv0 or opts.module, *opts.args]
    preopens = {guest: host for host, guest in opts.dirs}
    first = pywasi.run(module, args=args, preopens=preopens)
    sys.stdout.buffer.write(first.stdout or b"")
    began = time.perf_counter()
    for _ in range(runs):
        if pywasi.run(module, args=args, preopens=preopens).exit_code != 0:
            return 1
    seconds = time.perf_counter() - began
    print(f"runs={runs} seconds={seconds:.4f} per_run_ms={seconds / runs * 1000:.2f}",
          file=sys.stderr)
    return first.exit_code or 0


if __name__ == "__main__":
    sys.exit(main())
