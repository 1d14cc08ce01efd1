"""The wasm stack (#25 item 4): ``compile(..., max_wasm_stack=)``,
``run(..., max_wasm_stack=)``, ``pywasi run -W max-wasm-stack=N``.

The guest is ``tests/c/stack.c``, a C program that recurses as deep as its
argument says (~56 bytes of wasm stack a level here): 300,000 levels take
~16 MiB, more than the 8 MiB native stack of the thread pytest runs on, so a
run that completes proves the guest ran where its native stack holds it
(without that, the process dies with SIGSEGV). wasi-threads, a reactor's
exports and a start function are WAT programs."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest

import pywasi
from pywasi._engine import _engines, _stack
from test_threads import PRELUDE, program
from wasmbuild import build_c

STACK = build_c("stack")


@pytest.fixture(autouse=True, scope="module")
def no_worker_left() -> Iterator[None]:
    """Other tests count threads and descriptors: end the idle workers."""
    yield
    _stack.stop_idle()
    assert not [t for t in threading.enumerate() if t.name == "pywasi-wasm-stack"]
DEEP = "300000"   # ~16 MiB of wasm stack
BIG = 32 << 20


def test_the_default_stack_traps_and_says_how_to_raise_it() -> None:
    result = pywasi.run(STACK, args=["stack", DEEP])
    assert result.exit_code is None and result.trap is not None
    assert "call stack exhausted" in result.trap
    assert "The wasm stack (512 KiB) is exhausted" in result.trap
    for way in ("compile(..., max_wasm_stack=BYTES)", "pywasi.run(..., max_wasm_stack=BYTES)",
                "-W max-wasm-stack="):
        assert way in result.trap
    assert pywasi.run(STACK, args=["stack", "1000"]).stdout == b"reached 1000 (232)\n"


def test_a_larger_stack_completes() -> None:
    result = pywasi.run(STACK, args=["stack", DEEP], max_wasm_stack=BIG)
    assert (result.exit_code, result.stdout, result.trap) == (0, b"reached 300000 (224)\n", None)
    module = pywasi.compile(STACK, max_wasm_stack=BIG)
    assert module.max_wasm_stack == BIG
    assert pywasi.run(module, args=["stack", DEEP]).exit_code == 0
    # Still a limit: deeper than it traps, naming its size.
    result = pywasi.run(module, args=["stack", "3000000"])
    assert result.trap is not None and "The wasm stack (32 MiB) is exhausted" in result.trap


def test_the_low_level_api_and_the_largest_stack() -> None:
    out: list[bytes] = []
    wasi = pywasi.WASI(version="preview1", args=["stack", "3000000"], stdout=out.append)
    module = pywasi.compile(STACK, max_wasm_stack=_engines.MAX_WASM_STACK)
    assert wasi.start(pywasi.instantiate(module, wasi.get_import_object())) == 0
    assert out[0].startswith(b"reached 3000000 (")


def test_with_timeout_and_fuel_too() -> None:
    result = pywasi.run(STACK, args=["stack", DEEP], max_wasm_stack=BIG, timeout=60.0,
                        fuel=10**12)
    assert result.exit_code == 0 and result.fuel_consumed


def test_calls_from_many_threads_at_once() -> None:
    module = pywasi.compile(STACK, max_wasm_stack=BIG)
    results: list[int | None] = []

    def one() -> None:
        results.append(pywasi.run(module, args=["stack", DEEP]).exit_code)

    threads = [threading.Thread(target=one) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [0, 0, 0]


@pytest.mark.parametrize("value, error", [
    (0, ValueError), (-1, ValueError), (_engines.MAX_WASM_STACK + 1, ValueError),
    (True, TypeError), ("8M", TypeError), (1.5, TypeError)])
def test_a_value_that_cannot_work_is_refused(value: object, error: type[Exception]) -> None:
    with pytest.raises(error, match="max_wasm_stack"):
        pywasi.compile(STACK, max_wasm_stack=value)  # type: ignore[arg-type]
    with pytest.raises(error, match="max_wasm_stack"):
        pywasi.run(STACK, max_wasm_stack=value)  # type: ignore[arg-type]


def test_run_refuses_a_module_compiled_with_another_stack() -> None:
    with pytest.raises(ValueError, match="compiled with it"):
        pywasi.run(pywasi.compile(STACK), max_wasm_stack=BIG)


def test_a_tiny_stack_is_a_trap_not_a_crash() -> None:
    result = pywasi.run(STACK, args=["stack", "10"], max_wasm_stack=1)
    assert result.trap is not None and "The wasm stack (1 bytes) is exhausted" in result.trap


def test_one_cache_entry_serves_every_stack_size(tmp_path: pathlib.Path) -> None:
    """The stack is a run-time setting: the compiled code is the same, so
    the cache keys on what decides the code and loads the entry into the
    engine of the stack asked for."""
    cache = tmp_path / "c"
    cache.mkdir(mode=0o700)
    small = pywasi.compile(STACK, cache=str(cache))
    [entry] = list(cache.glob("*.cwasm"))
    os.utime(entry, ns=(0, 0))
    big = pywasi.compile(STACK, cache=str(cache), max_wasm_stack=BIG)
    assert [p.name for p in cache.glob("*.cwasm")] == [entry.name]
    assert entry.stat().st_mtime_ns > 0   # a hit (it refreshes the entry)
    assert pywasi.run(big, args=["stack", DEEP]).exit_code == 0
    assert pywasi.run(small, args=["stack", DEEP]).trap is not None


DEEP_WAT = """
  (func $down (param i32) (result i32)
    (if (result i32) (i32.eqz (local.get 0)) (then (i32.const 0))
      (else (i32.add (i32.const 1) (call $down (i32.sub (local.get 0) (i32.const 1)))))))"""


def test_a_reactors_exports_and_a_start_function() -> None:
    source = f"""(module {DEEP_WAT}
      (global $g (mut i32) (i32.const 0))
      (func $init (global.set $g (call $down (i32.const 300000))))
      (start $init)
      (func (export "down") (param i32) (result i32) (call $down (local.get 0)))
      (func (export "started") (result i32) (global.get $g)))""".encode()
    with pytest.raises(pywasi.Trap, match="max_wasm_stack"):
        pywasi.instantiate(pywasi.compile(source), {})
    instance = pywasi.instantiate(pywasi.compile(source, max_wasm_stack=BIG), {})
    assert instance.exports.started() == 300000
    assert instance.exports.down(400000) == 400000
    with pytest.raises(pywasi.Trap, match="The wasm stack .32 MiB. is exhausted"):
        instance.exports.down(10_000_000)
    assert instance.exports.down(5) == 5   # the instance is still usable


def test_wasi_threads_threads_get_the_stack_too() -> None:
    source = program(
        main="""(drop (call $spawn (i32.const 0)))
          (loop $w (br_if $w (i32.eqz (i32.atomic.load (i32.const 4)))))
          (call $proc_exit (i32.sub (i32.atomic.load (i32.const 4)) (i32.const 300000)))""",
        thread="(i32.atomic.store (i32.const 4) (call $down (i32.const 300000)))")
    source = source.replace(b"(func (export", DEEP_WAT.encode() + b" (func (export", 1)
    assert PRELUDE
    result = pywasi.run(source, max_wasm_stack=BIG, timeout=60.0)
    assert (result.exit_code, result.trap) == (0, None)


def cli(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "pywasi", "run", *args], capture_output=True,
                          timeout=120)


def test_the_command_line() -> None:
    proc = cli(str(STACK), DEEP)
    assert proc.returncode == 134 and proc.stdout == b""
    assert "-W max-wasm-stack=" in proc.stderr.decode()
    proc = cli("-W", "max-wasm-stack=32M", str(STACK), DEEP)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, b"reached 300000 (224)\n", b"")
    proc = cli("-W", f"max-wasm-stack={BIG}", str(STACK), "1000")
    assert proc.returncode == 0


@pytest.mark.parametrize("value", ["0", "2G", "lots", "-1"])
def test_the_command_line_refuses_a_bad_value(value: str) -> None:
    proc = cli("-W", f"max-wasm-stack={value}", str(STACK))
    err = proc.stderr.decode()
    assert proc.returncode == 2 and err.count("\n") == 1 and "max-wasm-stack" in err, err


def test_the_native_stack_is_only_asked_for_when_needed() -> None:
    """The default stack runs on the caller's thread; the thread size is
    restored after each start."""
    before = threading.stack_size()
    seen: list[str] = []
    _stack.call(_engines.DEFAULT_WASM_STACK * 2, lambda: seen.append(threading.current_thread().name))
    assert seen == ["pywasi-wasm-stack"] and threading.stack_size() == before
    module = pywasi.compile(STACK)
    instance = pywasi.instantiate(module, pywasi.WASI(version="preview1").get_import_object())
    assert type(instance.exports["_start"]) is pywasi.Function


def test_a_worker_is_reused_and_hands_back_exceptions(monkeypatch: pytest.MonkeyPatch) -> None:
    stack = _engines.DEFAULT_WASM_STACK * 3
    first = _stack.call(stack, threading.get_ident)
    assert _stack.call(stack, threading.get_ident) == first != threading.get_ident()

    def fail() -> None:
        raise pywasi.Trap("from the worker")

    with pytest.raises(pywasi.Trap, match="from the worker"):
        _stack.call(stack, fail)
    assert _stack.call(stack, threading.get_ident) == first
    # An idle worker ends after a while.
    monkeypatch.setattr(_stack, "IDLE_SECONDS", 0.05)
    other = _engines.DEFAULT_WASM_STACK * 5
    _stack.call(other, threading.get_ident)
    [worker] = _stack._idle[other]
    deadline = threading.Event()
    for _ in range(100):
        if not _stack._idle[other]:
            break
        deadline.wait(0.05)
    assert _stack._idle[other] == [] and worker.job is None


def test_the_end_of_a_threads_program_wakes_a_waiter_on_the_larger_stacks_engine() -> None:
    """A shared memory belongs to the engine it was made on: waking its
    waiters at the end must instantiate the helper there (it was always the
    default threads engine's: "cross-Store instantiation" when the thread
    was still registered, a race)."""
    from test_threads import BLOCK, SPAWN, STARTED, WAIT_STARTED
    source = program(main=f"{SPAWN} {WAIT_STARTED} (call $proc_exit (i32.const 7))",
                     thread=f"{STARTED} {BLOCK['wait']}")
    result = pywasi.run(source, max_wasm_stack=BIG, timeout=60.0)
    assert (result.exit_code, result.trap) == (7, None)
