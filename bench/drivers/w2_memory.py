"""W2 (a 512 MiB copy, 64 KiB at a time) inside a pywasi.fs.MemoryFS, beside the
same run on a tmpfs directory: wall time of the run and the process's peak
RSS (issue 15: one copy of the data, not several).

    python bench/drivers/w2_memory.py tmpfs|memory W2.wasm

Needs /dev/shm/w2t/in.bin (512 MiB); bench/run.py builds W2.wasm
(bench/.cache/wasm/w2_copy-*.wasm). Run the two modes interleaved.
"""
import os, resource, sys, time
import pywasi, pywasi.fs
mode, wasm = sys.argv[1], sys.argv[2]
MIB = 512
module = pywasi.compile(wasm)
if mode == "memory":
    try: os.unlink("/dev/shm/w2t/out.bin")
    except FileNotFoundError: pass
    fs = pywasi.fs.MemoryFS.from_host("/dev/shm/w2t")
    preopen = fs
else:
    preopen = "/dev/shm/w2t"
    try: os.unlink("/dev/shm/w2t/out.bin")
    except FileNotFoundError: pass
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
err = []
w = pywasi.WASI(version="preview1", args=["w2", "/d/in.bin", "/d/out.bin"], preopens={"/d": preopen}, stderr=err.append)
inst = pywasi.instantiate(module, w.get_import_object())
t = time.perf_counter(); code = w.start(inst); t = time.perf_counter() - t
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
ok = b"".join(err).strip() == f"w2 bytes={MIB << 20}".encode()
if mode == "memory":
    ok = ok and fs.stat("out.bin").size == MIB << 20
print(mode, f"{t:.3f}", code, ok, f"rss_before_run={base//1024}MiB peak={peak//1024}MiB")
