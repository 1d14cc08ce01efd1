"""wasi-threads: thread-spawn over a shared memory, the ending of a program
with several threads, and the host-side pieces threads share (the raw
host-call callback, the descriptor table)."""

from __future__ import annotations

import ctypes
import sys
import threading
import time

from pywasi._dispatch import HostState, _make_raw


def test_raw_callback_keeps_each_threads_arguments_and_result() -> None:
    """Two threads call one raw callback, each with its own argument array
    (as wasmtime gives each thread); a thread switch inside the syscall must
    not make one thread's result land in the other's array."""
    seen: list[str] = []

    def impl(fd: int, value: int) -> None:
        time.sleep(0)  # let the other thread in, as a blocking syscall would
        if value != fd * 1000:
            seen.append(f"args {fd}, {value}")

    callback = _make_raw("fake_call", ("i32", "i64"), True, impl, HostState())

    def worker(fd: int) -> None:
        array = (ctypes.c_uint64 * 4)()
        for _ in range(3000):
            array[0], array[2] = fd, fd * 1000
            callback(None, None, ctypes.addressof(array), 2)
            if array[0] != 0:
                seen.append(f"result {array[0]} in thread {fd}")

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=worker, args=(fd,)) for fd in (7, 9)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(old)
    assert seen == []
