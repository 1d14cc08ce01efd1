"""Stopping a run from outside: ``cancel=`` (a ``pywasi.CancelToken`` or a
``threading.Event``) on ``pywasi.run`` and ``wasi.start``, and cancelling
the asyncio task awaiting ``pywasi.run_async``, in every place a guest can be: computing, asleep in poll_oneoff, blocked reading a pipe
nobody writes, in sock_accept, and in every thread of a wasi-threads
program. A cancel must stop the guest within 0.5 s of being set (issue 25,
item 1), the bound test_limits holds the timeout to: generous for an epoch
tick and a pipe write, meaningful on a loaded 2-core machine.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

import pywasi
from test_threads import BLOCK, SPAWN, STARTED, WAIT_STARTED, program, wasi_threads
from wasmbuild import build_c

STOP_WITHIN = 0.5
CANCEL_AFTER = 0.3
LIMITS = build_c("limits")
ACCEPT = b"""(module
  (import "wasi_snapshot_preview1" "sock_accept" (func $accept (param i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "_start") (drop (call $accept (i32.const 3) (i32.const 0) (i32.const 900)))))"""
# Writes "before\n", then sleeps 100 s in poll_oneoff: what it wrote is kept.
WRITE_THEN_SLEEP = b"""(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 100) "before\\n")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 100)) (i32.store (i32.const 4) (i32.const 7))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
    (i32.store8 (i32.const 264) (i32.const 0))
    (i64.store (i32.const 280) (i64.const 100000000000))
    (drop (call $poll (i32.const 256) (i32.const 512) (i32.const 1) (i32.const 600)))))"""


@pytest.fixture(scope="module")
def interruptible() -> pywasi.Module:
    return pywasi.compile(LIMITS, interruptible=True)


@contextmanager
def place(name: str, interruptible: pywasi.Module) -> Iterator[tuple[pywasi.Module, dict[str, Any]]]:
    """A guest blocked in ``name`` forever: the module and run()'s keywords."""
    if name in ("compute", "poll_oneoff", "stdin pipe"):
        mode = {"compute": "spin", "poll_oneoff": "sleep", "stdin pipe": "read"}[name]
        read, write = os.pipe()  # stdin: a pipe nobody writes
        try:
            yield interruptible, {"args": ["limits", mode], "stdin": read}
        finally:
            os.close(read)
            os.close(write)
    elif name == "sock_accept":
        listener = socket.create_server(("127.0.0.1", 0))  # nobody connects
        try:
            yield pywasi.compile(ACCEPT, interruptible=True), {"sockets": [listener]}
        finally:
            listener.close()
    else:  # "threads: X": main waits on a futex nobody notifies, a thread blocks in X
        block = name.split(": ")[1]
        read, write = os.pipe()
        listener = socket.create_server(("127.0.0.1", 0))
        source = program(main=f"{SPAWN} {WAIT_STARTED} {BLOCK['wait']}",
                         thread=f"{STARTED} {BLOCK[block]}")
        try:
            yield pywasi.compile(source), {"args": ["t"], "stdin": read, "sockets": [listener]}
        finally:
            os.close(read)
            os.close(write)
            listener.close()


PLACES = ["compute", "poll_oneoff", "stdin pipe", "sock_accept", "threads: busy",
          "threads: sleep", "threads: stdin", "threads: accept"]
KINDS = {"CancelToken": pywasi.CancelToken, "threading.Event": threading.Event}


def start(module: pywasi.Module, kwargs: dict[str, Any], cancel: Any,
          out: list[bytes] | None = None) -> int | BaseException:
    """The low-level route (``run()`` takes no sockets): WASI, instantiate,
    start(cancel=); the exit code or the LimitExceeded."""
    wasi = pywasi.WASI(version="preview1", stdout=(out if out is not None else []).append,
                       **kwargs)
    instance = pywasi.instantiate(module, wasi.get_import_object())
    try:
        return wasi.start(instance, cancel=cancel)
    except pywasi.LimitExceeded as e:
        return e
    finally:
        wasi.close()


def set_later(cancel: Any, delay: float = CANCEL_AFTER) -> threading.Timer:
    timer = threading.Timer(delay, cancel.set)
    timer.start()
    return timer


def assert_cancelled_in_time(elapsed: float) -> None:
    assert CANCEL_AFTER <= elapsed < CANCEL_AFTER + STOP_WITHIN, elapsed


@pytest.mark.parametrize("route", ["run", "start"])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("where", PLACES)
def test_cancel_stops_a_run_wherever_the_guest_is(where: str, kind: str, route: str,
                                                  interruptible: pywasi.Module) -> None:
    cancel = KINDS[kind]()
    with place(where, interruptible) as (module, kwargs):
        began = time.monotonic()
        set_later(cancel)
        if route == "run":
            result = pywasi.run(module, cancel=cancel, **kwargs)
            outcome: Any = (result.limit, result.trap, result.exit_code)
        else:
            error = start(module, kwargs, cancel)
            assert isinstance(error, pywasi.LimitExceeded), error
            outcome = (error.limit, str(error), None)
        elapsed = time.monotonic() - began
    assert outcome == ("cancelled", "the run was cancelled", None)
    assert_cancelled_in_time(elapsed)
    assert wasi_threads() == []  # every thread of the program has ended


def test_the_output_written_before_the_cancel_is_kept() -> None:
    module = pywasi.compile(WRITE_THEN_SLEEP, interruptible=True)
    cancel = pywasi.CancelToken()
    set_later(cancel)
    result = pywasi.run(module, cancel=cancel)
    assert (result.limit, result.stdout, result.exit_code) == ("cancelled", b"before\n", None)
    out: list[bytes] = []
    cancel = pywasi.CancelToken()
    set_later(cancel)
    error = start(module, {}, cancel, out)
    assert isinstance(error, pywasi.LimitExceeded) and error.limit == "cancelled"
    assert out == [b"before\n"]


@pytest.mark.parametrize("kind", KINDS)
def test_a_cancel_set_before_the_run_stops_it_at_once(kind: str,
                                                      interruptible: pywasi.Module) -> None:
    cancel = KINDS[kind]()
    cancel.set()
    result = pywasi.run(interruptible, args=["limits", "spin"], cancel=cancel)
    assert (result.limit, result.exit_code) == ("cancelled", None)


@pytest.mark.parametrize("kind", KINDS)
def test_a_cancel_never_set_changes_nothing(kind: str, interruptible: pywasi.Module) -> None:
    cancel = KINDS[kind]()
    result = pywasi.run(interruptible, args=["limits", "hello"], cancel=cancel)
    assert (result.exit_code, result.stdout, result.limit) == (0, b"hello\n", None)
    # Setting it after the run has ended stops nothing (the next run is fine).
    cancel.set()
    time.sleep(0.15)  # a watcher thread would have seen it by now
    assert pywasi.run(interruptible, args=["limits", "hello"]).exit_code == 0


def test_one_token_stops_every_run_it_was_given(interruptible: pywasi.Module) -> None:
    cancel = pywasi.CancelToken()
    results: list[pywasi.RunResult] = []
    runs = [threading.Thread(target=lambda: results.append(
        pywasi.run(interruptible, args=["limits", "spin"], cancel=cancel))) for _ in range(3)]
    for run in runs:
        run.start()
    set_later(cancel)
    for run in runs:
        run.join(5)
    assert [r.limit for r in results] == ["cancelled"] * 3


def test_a_cancel_stops_only_its_own_run(interruptible: pywasi.Module) -> None:
    """Another run on the same engine, in another thread, runs on."""
    cancel = pywasi.CancelToken()
    other: list[pywasi.RunResult] = []
    runner = threading.Thread(target=lambda: other.append(
        pywasi.run(interruptible, args=["limits", "spin"], timeout=1.0)))
    runner.start()
    set_later(cancel, 0.1)
    assert pywasi.run(interruptible, args=["limits", "spin"], cancel=cancel).limit == "cancelled"
    runner.join(5)
    assert other[0].limit == "timeout"


def test_timeout_and_cancel_together_the_first_decides(interruptible: pywasi.Module) -> None:
    cancel = pywasi.CancelToken()
    assert pywasi.run(interruptible, args=["limits", "spin"], timeout=0.2,
                      cancel=cancel).limit == "timeout"
    set_later(cancel, 0.1)
    assert pywasi.run(interruptible, args=["limits", "spin"], timeout=30,
                      cancel=cancel).limit == "cancelled"


def test_a_cancel_needs_an_interruptible_module() -> None:
    plain = pywasi.compile(LIMITS)
    with pytest.raises(ValueError, match=r"run\(cancel=...\).*interruptible=True"):
        pywasi.run(plain, args=["limits", "hello"], cancel=threading.Event())
    wasi = pywasi.WASI(version="preview1")
    instance = pywasi.instantiate(plain, wasi.get_import_object())
    with pytest.raises(pywasi.PywasiError, match=r"start\(cancel=...\).*interruptible=True"):
        wasi.start(instance, cancel=pywasi.CancelToken())
    # Given bytes, run() compiles what the cancel needs.
    cancel = pywasi.CancelToken()
    set_later(cancel, 0.1)
    assert pywasi.run(LIMITS, args=["limits", "spin"], cancel=cancel).limit == "cancelled"


@pytest.mark.parametrize("bad", [True, "yes", 1, object()])
def test_a_cancel_without_is_set_is_refused(bad: Any, interruptible: pywasi.Module) -> None:
    with pytest.raises(TypeError, match="cancel must be a threading.Event"):
        pywasi.run(interruptible, args=["limits", "hello"], cancel=bad)


def test_a_cancel_token_is_an_event() -> None:
    token = pywasi.CancelToken()
    assert isinstance(token, threading.Event) and not token.is_set()
    assert token.wait(0.01) is False
    token.set()
    assert token.is_set() and token.wait(0)
    token.clear()
    assert not token.is_set()


def test_an_object_with_only_is_set_is_watched(interruptible: pywasi.Module) -> None:
    class Flag:
        value = False

        def is_set(self) -> bool:
            return self.value

    flag = Flag()
    threading.Timer(CANCEL_AFTER, lambda: setattr(flag, "value", True)).start()
    began = time.monotonic()
    assert pywasi.run(interruptible, args=["limits", "spin"], cancel=flag).limit == "cancelled"
    assert_cancelled_in_time(time.monotonic() - began)



# -- run_async ------------------------------------------------------------------

def arun(coro: Any) -> Any:
    return asyncio.run(coro)


def test_run_async_gives_what_run_gives(interruptible: pywasi.Module) -> None:
    result = arun(pywasi.run_async(interruptible, args=["limits", "hello"]))
    assert (result.exit_code, result.stdout, result.limit) == (0, b"hello\n", None)
    # every keyword of run(): here a timeout
    result = arun(pywasi.run_async(interruptible, args=["limits", "spin"], timeout=0.2))
    assert (result.limit, result.exit_code) == ("timeout", None)


@pytest.mark.parametrize("where", PLACES)
def test_cancelling_the_task_stops_the_guest_wherever_it_is(where: str,
                                                           interruptible: pywasi.Module) -> None:
    executor = concurrent.futures.ThreadPoolExecutor(1)

    async def main() -> float:
        with place(where, interruptible) as (module, kwargs):
            task = asyncio.ensure_future(pywasi.run_async(module, executor=executor, **kwargs))
            await asyncio.sleep(CANCEL_AFTER)
            assert not task.done()  # the loop ran on while the guest is blocked
            began = time.monotonic()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            return time.monotonic() - began

    try:
        elapsed = arun(main())
        assert elapsed < STOP_WITHIN, elapsed
        assert wasi_threads() == []
        # The executor's one thread is free again: nothing runs on the task's behalf.
        assert executor.submit(lambda: 42).result(timeout=5) == 42
    finally:
        executor.shutdown()


@pytest.mark.parametrize("how", ["asyncio.wait_for"] + (["asyncio.timeout"]
                                                        if hasattr(asyncio, "timeout") else []))
def test_a_deadline_on_the_task_stops_the_guest(how: str, interruptible: pywasi.Module) -> None:
    async def main() -> None:
        run = pywasi.run_async(interruptible, args=["limits", "sleep"])
        if how == "asyncio.wait_for":
            await asyncio.wait_for(run, CANCEL_AFTER)
        else:
            async with asyncio.timeout(CANCEL_AFTER):  # Python 3.11+
                await run

    began = time.monotonic()
    with pytest.raises(TimeoutError):
        arun(main())
    assert_cancelled_in_time(time.monotonic() - began)


def test_the_loop_stays_responsive_while_guests_run(interruptible: pywasi.Module) -> None:
    async def main() -> int:
        runs = [asyncio.ensure_future(pywasi.run_async(interruptible, args=["limits", "spin"],
                                                       timeout=0.5)) for _ in range(2)]
        ticks = 0
        while not all(r.done() for r in runs):
            await asyncio.sleep(0.01)
            ticks += 1
        assert [r.result().limit for r in runs] == ["timeout", "timeout"]
        return ticks

    assert arun(main()) > 5  # a loop blocked by the guests would tick once or twice


def test_a_run_still_queued_when_its_task_is_cancelled_never_starts(
        interruptible: pywasi.Module) -> None:
    executor = concurrent.futures.ThreadPoolExecutor(1)
    reads: list[int] = []

    class Stdin:
        def read(self, n: int = -1) -> bytes:
            reads.append(n)
            return b""

    async def main() -> None:
        busy = asyncio.ensure_future(pywasi.run_async(interruptible, executor=executor,
                                                      args=["limits", "spin"]))
        queued = asyncio.ensure_future(pywasi.run_async(interruptible, executor=executor,
                                                        args=["limits", "read"], stdin=Stdin()))
        await asyncio.sleep(0.1)
        queued.cancel()
        with pytest.raises(asyncio.CancelledError):
            await queued
        busy.cancel()
        with pytest.raises(asyncio.CancelledError):
            await busy

    try:
        arun(main())
        executor.submit(lambda: None).result(timeout=5)  # anything queued has run by now
    finally:
        executor.shutdown()
    assert reads == []


def test_run_async_takes_the_callers_cancel_too(interruptible: pywasi.Module) -> None:
    for kind in KINDS.values():
        cancel = kind()
        set_later(cancel)
        result = arun(pywasi.run_async(interruptible, args=["limits", "spin"], cancel=cancel))
        assert result.limit == "cancelled"


def test_run_async_needs_an_interruptible_module() -> None:
    with pytest.raises(ValueError, match=r"run_async\(\).*interruptible=True"):
        arun(pywasi.run_async(pywasi.compile(LIMITS), args=["limits", "hello"]))
    # bytes or a path: compiled interruptible
    result = arun(pywasi.run_async(LIMITS, args=["limits", "hello"]))
    assert result.exit_code == 0
