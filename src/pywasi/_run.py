"""``pywasi.run()``: one call that runs a WASI command under limits and says
what happened, shaped like ``subprocess.run``.

Each call has its own WASI environment, store, memory and descriptors, so
calls from several Python threads at once on one compiled ``Module`` are
isolated from each other; the module is compiled once and reused.
"""

from __future__ import annotations

import concurrent.futures
import os
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any

from ._engine import Instance, Memory, Module, SharedMemory, compile, instantiate
from ._engine._engines import has_fuel
from ._engine._stores import UNLIMITED_FUEL
from ._errors import LimitExceeded, PywasiError, Trap
from ._wasi import WASI

__all__ = ["run", "run_async", "RunResult", "RunError"]


class RunResult:
    """What ``run()`` saw.

    ``exit_code``: the guest's exit code, None when it did not exit (a trap,
    or a limit stopped it). ``stdout``/``stderr``: what it wrote (bytes;
    None without ``capture_output``), up to the moment it ended. ``limit``:
    None, or the limit that ended it: "timeout", "cancelled", "fuel",
    "output", "memory" (see ``run``). ``trap``: the trap's message, or None. ``fuel_consumed``:
    with a module that counts fuel, how much the run used. ``memory_peak``:
    bytes of linear memory at its largest (memories only grow: their size at
    the end). ``wall_time``: seconds from instantiation to the end.
    """

    __slots__ = ("exit_code", "stdout", "stderr", "limit", "trap", "fuel_consumed",
                 "memory_peak", "wall_time")

    def __init__(self, *, exit_code: int | None, stdout: bytes | None, stderr: bytes | None,
                 limit: str | None, trap: str | None, fuel_consumed: int | None,
                 memory_peak: int, wall_time: float) -> None:
        self.exit_code = exit_code
        self.stdout = stdout
        self.stderr = stderr
        self.limit = limit
        self.trap = trap
        self.fuel_consumed = fuel_consumed
        self.memory_peak = memory_peak
        self.wall_time = wall_time

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"RunResult({fields})"

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


class RunError(PywasiError):
    """``run(..., check=True)``: the program did not exit with code 0;
    ``result`` is its ``RunResult``."""

    def __init__(self, result: RunResult) -> None:
        if result.exit_code is not None:
            what = f"exited with code {result.exit_code}"
        elif result.limit is not None:
            what = f"was stopped by its {result.limit} limit: {result.trap}"
        else:
            what = f"trapped: {result.trap}"
        super().__init__(f"the program {what}")
        self.result = result

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.result,), self.__dict__


def run(module: Module | bytes | str | os.PathLike[str], *, args: Iterable[str] = (),
        env: Mapping[str, str] | None = None, preopens: Mapping[str, Any] | None = None,
        stdin: Any = b"", timeout: float | None = None, fuel: int | None = None,
        max_memory: int | None = None, max_open_files: int | None = None,
        max_output: int | None = None, capture_output: bool = True, check: bool = False,
        version: str | None = None, cache: bool | str | os.PathLike[str] | None = None,
        deterministic: bool = False, clock: Any = None, random: Any = None,
        max_wasm_stack: int | None = None, cancel: Any = None,
        sockets: Iterable[Any] = ()) -> RunResult:
    """Run a WASI command to its end and return a ``RunResult``.

    ``module``: a ``Module`` (reused as it is: compile it with
    ``interruptible=True`` for a ``timeout``, ``consume_fuel=True`` for
    ``fuel``), or wasm bytes or a path, compiled here with what the limits
    need (through the compiled-module cache; ``cache`` as ``compile``'s).
    ``args`` is the guest's whole argv (``args[0]`` its program name);
    ``env``, ``preopens``, ``sockets`` and ``stdin`` are ``WASI``'s (``stdin`` bytes by
    default: empty input). ``capture_output=False`` lets the guest write to
    this process's stdout and stderr instead.

    Limits: ``timeout`` seconds of wall-clock time; ``fuel``, wasmtime's
    instruction budget; ``max_memory`` bytes each linear memory may reach
    (``memory.grow`` past it fails, the guest's malloc gets NULL);
    ``max_open_files`` descriptors open at once (past it: ``MFILE``);
    ``max_output`` bytes to stdout and stderr together (the guest is stopped
    at the write that passes it). ``limit`` says which one ended the run;
    "memory" when a module needs more than ``max_memory`` to start, or when
    the program failed (a trap or a non-zero exit) with its memory at the
    cap (within max(1 MiB, max_memory/16)): the host cannot see a refused
    ``memory.grow`` itself, only where memory ended.

    ``max_wasm_stack``: bytes of wasm stack (``compile``'s; default
    wasmtime's 512 KiB): a deeper call traps with "call stack exhausted".

    ``cancel``: a ``pywasi.CancelToken`` (stops the run from the thread
    that sets it) or a ``threading.Event`` (anything with ``is_set()``;
    watched by a small thread while the run lasts). Setting it stops the
    guest wherever it is, as the timeout does: ``limit`` is "cancelled",
    the output written until then is in the result.

    ``check=True`` raises ``RunError`` (carrying the result) unless the
    program exited with code 0.

    ``deterministic``, ``clock``, ``random``: a reproducible run, as
    ``WASI``'s (the same module, arguments and input give the same result).
    """
    module = _module_for(module, timeout is not None or cancel is not None, fuel, cache,
                         "run(timeout=...)" if cancel is None else "run(cancel=...)",
                         max_wasm_stack)
    if version is None:
        namespaces = {ns for ns, _, _ in module.imports}
        version = "unstable" if "wasi_unstable" in namespaces and \
            "wasi_snapshot_preview1" not in namespaces else "preview1"
    out: list[bytes] = []
    err: list[bytes] = []
    wasi = WASI(version=version, args=list(args), env=env, preopens=preopens, stdin=stdin,
                sockets=sockets,
                stdout=out.append if capture_output else 1,
                stderr=err.append if capture_output else 2,
                max_open_files=max_open_files, max_output=max_output,
                deterministic=deterministic, clock=clock, random=random)
    exit_code: int | None = None
    limit = trap = None
    instance: Instance | None = None
    began = time.perf_counter()
    try:
        instance = instantiate(module, wasi.get_import_object(), fuel=fuel, max_memory=max_memory)
        exit_code = wasi.start(instance, timeout=timeout, cancel=cancel)
    except LimitExceeded as e:
        limit, trap = e.limit, str(e)
    except Trap as e:
        trap = str(e)
    finally:
        wall_time = time.perf_counter() - began
        wasi.close()
    peak = 0 if instance is None else _memory_size(instance)
    if limit is None and max_memory is not None and exit_code != 0 \
            and peak > max_memory - max(1 << 20, max_memory // 16):
        limit = "memory"
    result = RunResult(exit_code=exit_code, stdout=b"".join(out) if capture_output else None,
                       stderr=b"".join(err) if capture_output else None, limit=limit, trap=trap,
                       fuel_consumed=None if instance is None else _fuel_used(instance, fuel),
                       memory_peak=peak, wall_time=wall_time)
    if check and exit_code != 0:
        raise RunError(result)
    return result


async def run_async(module: Module | bytes | str | os.PathLike[str], *,
                    executor: concurrent.futures.Executor | None = None,
                    **kwargs: Any) -> RunResult:
    """``await`` a ``run()``: every keyword of ``run``, and ``executor``.

    The guest runs off the event loop, on ``executor`` (a
    ``concurrent.futures.ThreadPoolExecutor`` you size; None: the loop's default
    executor, ``loop.set_default_executor``), so the loop stays responsive
    and wasm runs without the GIL, guests in parallel. Cancelling the
    awaiting task (``task.cancel()``, ``asyncio.timeout``,
    ``asyncio.wait_for``) cancels the run as ``cancel=`` does: the guest is
    stopped wherever it is, this coroutine waits for its thread to be free
    again, and the task ends with ``CancelledError`` -- nothing keeps running
    on its behalf. A run still queued in the executor never starts.

    So that the task's cancel can stop the guest, a ``Module`` must be
    compiled ``interruptible=True`` (bytes or a path are compiled so).
    """
    import asyncio  # only here: the pywasi command never needs it

    from ._cancel import CancelToken, check_cancel

    if isinstance(module, Module) and not module.interruptible:
        raise ValueError("run_async() with a compiled module needs one compiled to be "
                         "interruptible, so that cancelling the task stops the guest: "
                         "pywasi.compile(..., interruptible=True)")
    if "cancel" in kwargs:
        check_cancel(kwargs["cancel"])
    token = CancelToken()
    cancel = kwargs.pop("cancel", None)
    loop = asyncio.get_running_loop()
    left = loop.create_future()  # done once the worker has left run()
    lock = threading.Lock()
    started = False

    def release() -> None:
        if not left.done():
            left.set_result(None)

    def work() -> RunResult | None:
        nonlocal started
        with lock:
            if token.is_set():
                return None  # cancelled while it waited for a thread
            started = True
        try:
            return run(module, cancel=token if cancel is None else (cancel, token), **kwargs)
        finally:
            try:
                loop.call_soon_threadsafe(release)
            except RuntimeError:
                pass  # the loop is closed: nobody waits

    future = loop.run_in_executor(executor, work)
    try:
        result = await future
    except asyncio.CancelledError:
        token.set()
        with lock:
            running = started
        while running and not left.done():
            try:
                await asyncio.shield(left)
            except asyncio.CancelledError:
                continue  # cancelled again: the guest is already stopping
        raise
    assert result is not None  # None only when the token was set: by our cancel
    return result


def _module_for(module: Any, stoppable: bool, fuel: int | None, cache: Any,
                what: str = "run(timeout=...)", max_wasm_stack: int | None = None) -> Module:
    """``module`` compiled for what the run asks: epochs when it can be
    stopped (a timeout, a cancel), fuel when it is metered."""
    if not isinstance(module, Module):
        return compile(module, cache=cache, interruptible=stoppable,
                       consume_fuel=fuel is not None, max_wasm_stack=max_wasm_stack)
    if max_wasm_stack is not None and module.max_wasm_stack != max_wasm_stack:
        raise ValueError(f"run(max_wasm_stack={max_wasm_stack}) with a compiled module needs one "
                         f"compiled with it (this one has {module.max_wasm_stack}): "
                         f"pywasi.compile(..., max_wasm_stack={max_wasm_stack})")
    if stoppable and not module.interruptible:
        raise ValueError(f"{what} with a compiled module needs one compiled to be "
                         "interruptible: pywasi.compile(..., interruptible=True)")
    if fuel is not None and not module.consume_fuel:
        raise ValueError("run(fuel=...) with a compiled module needs one compiled to count "
                         "fuel: pywasi.compile(..., consume_fuel=True)")
    return module


def _memory_size(instance: Instance) -> int:
    """Bytes of every memory the instance exports or imports, each once."""
    memories: dict[int, int] = {}
    candidates = [v for v in instance.exports.values() if isinstance(v, (Memory, SharedMemory))]
    if instance.imported_memory is not None:
        candidates.append(instance.imported_memory)
    for memory in candidates:
        address, length = memory.locate()
        memories[address] = length
    return sum(memories.values())


def _fuel_used(instance: Instance, fuel: int | None) -> int | None:
    if not has_fuel(instance.store.engine):
        return None
    return (UNLIMITED_FUEL if fuel is None else fuel) - int(instance.store.get_fuel())
