"""Bounded calls into a live instance (issue 25, item 3): ``instance.call(name,
*args, timeout=, fuel=, cancel=, max_output=)`` on a C reactor
(``tests/c/reactor_session.c``) kept across calls, as an interpreter session
is: each call stopped wherever it blocks (compute, poll_oneoff, a pipe
nobody writes, sock_accept) by its own timeout or cancel, a fresh fuel
budget per call, an output cap per call, state carried between calls, and
an instance that refuses calls once a limit stopped one. The 0.5 s bound is
test_limits' and test_cancel's.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

import pywasi
from wasmbuild import build_c

STOP_WITHIN = 0.5
AFTER = 0.3
SESSION = build_c("reactor_session", flags=["-mexec-model=reactor"])


@pytest.fixture(scope="module")
def both() -> pywasi.Module:
    return pywasi.compile(SESSION, interruptible=True, consume_fuel=True)


@contextmanager
def session(module: pywasi.Module, **wasi_options: Any) -> Iterator[tuple[pywasi.Instance, list[bytes]]]:
    """An initialized reactor whose stdin is a pipe nobody writes and whose
    fd 3 is a listening socket nobody connects to; its stdout."""
    out: list[bytes] = []
    read, write = os.pipe()
    listener = socket.create_server(("127.0.0.1", 0))
    wasi = pywasi.WASI(version="preview1", stdin=read, stdout=out.append, sockets=[listener],
                       **wasi_options)
    try:
        instance = pywasi.instantiate(module, wasi.get_import_object())
        wasi.initialize(instance)
        yield instance, out
    finally:
        wasi.close()
        listener.close()
        os.close(read)
        os.close(write)


BLOCKING = {"compute": ("spin",), "poll_oneoff": ("nap",), "stdin pipe": ("read_in",),
            "sock_accept": ("accept_on", 3)}


@pytest.mark.parametrize("how", ["timeout", "CancelToken", "threading.Event"])
@pytest.mark.parametrize("where", BLOCKING)
def test_a_bounded_call_is_stopped_wherever_it_blocks(where: str, how: str,
                                                      both: pywasi.Module) -> None:
    with session(both) as (instance, _):
        assert instance.call("turn", 1, timeout=5) == 1001
        began = time.monotonic()
        if how == "timeout":
            limits: dict[str, Any] = {"timeout": AFTER}
        else:
            cancel = pywasi.CancelToken() if how == "CancelToken" else threading.Event()
            threading.Timer(AFTER, cancel.set).start()
            limits = {"cancel": cancel}
        with pytest.raises(pywasi.LimitExceeded) as caught:
            instance.call(*BLOCKING[where], **limits)
        elapsed = time.monotonic() - began
        assert caught.value.limit == ("timeout" if how == "timeout" else "cancelled")
        assert AFTER <= elapsed < AFTER + STOP_WITHIN, elapsed
        # The instance was abandoned mid-call: it refuses every later call.
        for later in (lambda: instance.call("turn", 2), lambda: instance.exports.turn(2),
                      lambda: instance.call("turn", 2, timeout=5)):
            with pytest.raises(pywasi.PywasiError, match="refuses further calls"):
                later()
        assert instance.stopped is not None and caught.value.limit in instance.stopped


def test_state_carries_over_between_bounded_and_plain_calls(both: pywasi.Module) -> None:
    with session(both) as (instance, out):
        assert instance.exports.turn(1) == 1001
        assert instance.call("turn", 2, timeout=5) == 2002
        assert instance.call("turn", 3, cancel=pywasi.CancelToken()) == 3003
        assert instance.exports.turn(4) == 4004  # a bounded call that ended leaves no stop behind
        assert instance.call("say", 5, timeout=5, fuel=10**9) == 5
        assert instance.call("turn", 6) == 5006  # no limits: the plain call (the 5th turn)
        assert b"".join(out) == b"x" * 5
        assert instance.stopped is None


def test_a_fresh_fuel_budget_per_call(both: pywasi.Module) -> None:
    with session(both) as (instance, _):
        instance.call("work", 1000, fuel=10**7)
        first = instance.fuel_consumed
        instance.call("work", 1000, fuel=10**7)
        assert first is not None and 1000 < first < 10**7
        assert instance.fuel_consumed == first  # deterministic, and a fresh budget each time
        instance.call("work", 2000, fuel=10**7)
        assert instance.fuel_consumed is not None and instance.fuel_consumed > first
        with pytest.raises(pywasi.LimitExceeded) as caught:
            instance.call("work", 10**9, fuel=50_000)
        assert (caught.value.limit, str(caught.value)) == ("fuel", "fuel of 50000 used up")
        assert instance.fuel_consumed == 50_000
        with pytest.raises(pywasi.PywasiError, match="refuses further calls"):
            instance.call("turn", 1)


def test_a_call_budget_within_the_instances_own(both: pywasi.Module) -> None:
    """instantiate(fuel=) is the instance's budget; a call's comes out of it."""
    wasi = pywasi.WASI(version="preview1")
    instance = pywasi.instantiate(both, wasi.get_import_object(), fuel=10**6)
    wasi.initialize(instance)
    instance.call("work", 1000, fuel=10**9)
    used = instance.fuel_consumed
    assert used is not None and instance.store.get_fuel() <= 10**6 - used
    with pytest.raises(pywasi.LimitExceeded, match=r"fuel of 1000000 used up"):
        instance.call("work", 10**9, fuel=10**9)


def test_an_output_cap_per_call(both: pywasi.Module) -> None:
    with session(both, max_output=10_000) as (instance, out):
        assert instance.call("say", 300, max_output=500) == 300
        assert instance.call("say", 300, max_output=500) == 300  # each call its own 500
        with pytest.raises(pywasi.LimitExceeded) as caught:
            instance.call("say", 600, max_output=500)
        assert (caught.value.limit, str(caught.value)) == ("output",
                                                           "output limit of 500 bytes reached")
        assert len(b"".join(out)) == 300 + 300 + 500  # what fit was written
        with pytest.raises(pywasi.PywasiError, match="refuses further calls"):
            instance.call("say", 1)


def test_a_flood_is_stopped_by_its_calls_cap(both: pywasi.Module) -> None:
    with session(both, max_output=1 << 30) as (instance, out):
        with pytest.raises(pywasi.LimitExceeded, match="output limit of 5000 bytes"):
            instance.call("flood", max_output=5000, timeout=30)
        assert len(b"".join(out)) == 5000


def test_the_wasi_objects_max_output_is_a_limit_from_a_plain_export_too(
        both: pywasi.Module) -> None:
    """It used to be a plain Trap("fd_write: output limit ... reached")."""
    with session(both, max_output=1000) as (instance, out):
        assert instance.exports.say(600) == 600
        with pytest.raises(pywasi.LimitExceeded) as caught:
            instance.exports.say(600)
        assert (caught.value.limit, str(caught.value)) == ("output",
                                                           "output limit of 1000 bytes reached")
        assert len(b"".join(out)) == 1000


def test_a_call_with_no_limits_is_the_plain_call(both: pywasi.Module) -> None:
    with session(both) as (instance, _):
        assert instance.call("turn", 7) == 1007
        assert instance.exports.turn(8) == 2008
        with pytest.raises(pywasi.PywasiError, match="no exported function named 'nope'"):
            instance.call("nope")
        with pytest.raises(pywasi.PywasiError, match="no exported function named 'memory'"):
            instance.call("memory", timeout=1)


def test_limits_a_module_was_not_compiled_for_are_refused() -> None:
    plain = pywasi.compile(SESSION)
    with session(plain, max_output=100) as (instance, _):
        with pytest.raises(pywasi.PywasiError, match=r"call\(timeout=...\).*interruptible=True"):
            instance.call("turn", 1, timeout=1)
        with pytest.raises(pywasi.PywasiError, match=r"call\(cancel=...\).*interruptible=True"):
            instance.call("turn", 1, cancel=threading.Event())
        with pytest.raises(pywasi.PywasiError, match=r"call\(fuel=...\).*consume_fuel=True"):
            instance.call("turn", 1, fuel=100)
        assert instance.call("say", 10, max_output=50) == 10  # needs no compile flag
        assert instance.stopped is None


def test_bad_call_limits_are_refused(both: pywasi.Module) -> None:
    with session(both) as (instance, _):
        with pytest.raises(pywasi.PywasiError, match=r"max_output.*WASI\(..., max_output="):
            instance.call("say", 1, max_output=10)
        with pytest.raises(ValueError, match="timeout must be a positive"):
            instance.call("turn", 1, timeout=0)
        with pytest.raises(TypeError, match="cancel must be"):
            instance.call("turn", 1, cancel="now")
        with pytest.raises(ValueError, match="fuel must be a non-negative int"):
            instance.call("turn", 1, fuel=-1)
        assert instance.call("turn", 1, timeout=5) == 1001  # none of those ran it


def test_an_instance_without_wasi_takes_fuel_but_not_a_timeout() -> None:
    module = pywasi.compile(b"""(module (func (export "loop") (param i32) (result i32)
        (local $i i32)
        (loop $l (local.set $i (i32.add (local.get $i) (i32.const 1)))
                 (br_if $l (i32.lt_u (local.get $i) (local.get 0))))
        (local.get $i)))""", interruptible=True, consume_fuel=True)
    instance = pywasi.instantiate(module, {})
    assert instance.call("loop", 100, fuel=10**6) == 100
    with pytest.raises(pywasi.PywasiError, match="bound to a WASI object"):
        instance.call("loop", 100, timeout=1)
