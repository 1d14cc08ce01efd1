"""``WASI``: node:wasi's class, in Python spelling.

One object is one guest environment: its args, environment, stdio and
preopened directories, and the descriptor table the guest's calls act on.
"""

from __future__ import annotations

import _weakref
import os
import sys
from collections.abc import Iterable, Mapping

from ._dispatch import HostFunction
from ._errors import LimitExceeded, PywasiError, Trap, WasiExit
from ._fdtable import FdTable
from ._fs._base import Directory
from ._fs._dir import DIR_INHERITING, DIR_RIGHTS, HostDirectory
from ._fs._stream import open_stdio
from ._memory import GuestMemory, MemorySource
from ._syscalls import Syscalls, build_imports
from ._threads import ThreadSpawn, cancels_of, check_timeout, duration, outcome_of_start

# The engine (and wasmtime-py) is imported where a method needs it, not here:
# ``pywasi run``'s lean route (``_lean``) builds a WASI without it.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    import wasmtime

    from ._engine import Instance, Memory, SharedMemory

__all__ = ["WASI", "PreopenError"]

_VERSIONS = {"preview1": "wasi_snapshot_preview1", "unstable": "wasi_unstable"}


class PreopenError(PywasiError, ValueError):
    """A preopen's host directory cannot be opened."""


def _encode(option: str, value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise TypeError(f"{option} must contain strings, got {type(value).__name__} in {what}")
    if "\0" in value:
        raise ValueError(f"{option}: {what} contains a NUL character")
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError:
        # Lone surrogates (os.fsdecode of undecodable bytes) go back to bytes.
        return os.fsencode(value)


class WASI:
    """A WASI environment. ``version`` is required, as in node:wasi.

    ``stdin``/``stdout``/``stderr`` take a host fd (the default 0/1/2), a
    file object, or Python objects: bytes (or an object with ``read``) for
    stdin; a callable taking bytes (or an object with ``write``) for output.

    ``sockets`` hands the guest sockets as preopened descriptors, numbered
    after the preopened directories in the order given: a ``socket.socket``
    (listening: the guest calls ``sock_accept`` on it; connected: it reads
    and writes it) is duplicated, the caller keeps its own; a ``"HOST:PORT"``
    string (``"[::1]:PORT"`` for IPv6) is a TCP socket pywasi binds and
    listens on (port 0: any free port; ``WASI.sockets`` tells which).

    Limits of the guest's environment: ``max_open_files``, how many
    descriptors may be open at once (stdio and preopens count; an open past
    it answers ``MFILE``); ``max_output``, bytes the guest may write to
    stdout and stderr together (the write that passes it writes what fits,
    then the guest is stopped: ``start`` raises ``LimitExceeded``).

    ``trace``: a syscall trace (docs/trace.md): a callable (one
    ``TraceEvent`` per host call), a file object (one strace-style line per
    call) or a ``pywasi.Trace`` (which calls, JSON lines).

    Reproducible runs (docs/deterministic.md): ``deterministic=True`` gives
    the guest a ``VirtualClock`` (fixed start, a fixed step per read, sleeps
    that return at once having moved time), random bytes from
    ``SeededRandom(0)`` and directory listings sorted by name. ``clock``
    (a ``pywasi.Clock``: ``time``/``resolution``/``sleep``) and ``random``
    (a seed, or a callable ``n -> n bytes``) replace one source each, with
    or without ``deterministic``.
    """

    def __init__(self, *, version: str, args: Iterable[str] = (),
                 env: Mapping[str, str] | None = None,
                 preopens: Mapping[str, Any] | None = None,
                 return_on_exit: bool = True, stdin: Any = 0, stdout: Any = 1,
                 stderr: Any = 2, sockets: Iterable[Any] = (), max_open_files: int | None = None,
                 max_output: int | None = None, trace: Any = None, deterministic: bool = False,
                 clock: Any = None, random: Any = None) -> None:
        if not isinstance(version, str):
            raise TypeError(f"version must be a string, not {type(version).__name__}")
        if version not in _VERSIONS:
            raise ValueError(f"unsupported WASI version {version!r}: expected 'preview1' or 'unstable'")
        if isinstance(args, (str, bytes)) or not isinstance(args, Iterable):
            raise TypeError(f"args must be a list of strings, not {type(args).__name__}")
        if env is not None and not isinstance(env, Mapping):
            raise TypeError(f"env must be a mapping of strings, not {type(env).__name__}")
        if preopens is not None and not isinstance(preopens, Mapping):
            raise TypeError(f"preopens must be a mapping {{guest path: host path}}, "
                            f"not {type(preopens).__name__}")
        if not isinstance(return_on_exit, bool):
            raise TypeError(f"return_on_exit must be a bool, not {type(return_on_exit).__name__}")
        _check_count("max_open_files", max_open_files)
        _check_count("max_output", max_output)
        if not isinstance(deterministic, bool):
            raise TypeError(f"deterministic must be a bool, not {type(deterministic).__name__}")

        self.version = version
        self.return_on_exit = return_on_exit
        arg_list = [_encode("args", a, f"argument {i}") + b"\0" for i, a in enumerate(args)]
        environ = []
        for key, value in (env or {}).items():
            k = _encode("env", key, "a name")
            if b"=" in k or not k:
                raise ValueError(f"env: invalid variable name {key!r}")
            environ.append(k + b"=" + _encode("env", value, f"the value of {key}") + b"\0")

        fds = FdTable()
        self._fds = fds
        # Everything opened from here on is closed by close() or when the
        # WASI object is collected.
        self._closer = _close_when_collected(self, fds)
        fds.allocate(open_stdio("stdin", stdin, reading=True))
        self._output: Any = None
        if max_output is None:
            fds.allocate(open_stdio("stdout", stdout, reading=False))
            fds.allocate(open_stdio("stderr", stderr, reading=False))
        else:
            from ._fs._output import LimitedOutput, OutputBudget  # only when asked: start-up
            self._output = OutputBudget(max_output)
            for name, value in (("stdout", stdout), ("stderr", stderr)):
                fds.allocate(LimitedOutput(open_stdio(name, value, reading=False), self._output))
        for guest, host in (preopens or {}).items():
            fds.allocate(_open_preopen(guest, host))
        self.sockets: dict[int, Any] = {}
        """Guest fd -> the host address of each socket from ``sockets``."""
        if isinstance(sockets, (str, bytes)) or not isinstance(sockets, Iterable):
            raise TypeError(f"sockets must be a list of sockets or 'HOST:PORT' strings, "
                            f"not {type(sockets).__name__}")
        for item in sockets:
            desc = _open_socket(item)
            self.sockets[fds.allocate(desc)] = desc.sock.getsockname()
        if max_open_files is not None:
            if max_open_files < len(fds):
                raise ValueError(f"max_open_files={max_open_files} is less than the {len(fds)} "
                                 f"descriptors the program starts with (stdio, preopens, sockets)")
            fds.max_open = max_open_files

        self._ctx = Syscalls(args=arg_list, environ=environ, fds=fds,
                             unstable=version == "unstable")
        self._ctx.output_budget = self._output
        if deterministic or clock is not None or random is not None:
            _reproducible(self._ctx, deterministic, clock, random)
        self._trace: Any = None
        if trace is not None:
            from ._trace import Trace  # only when asked: start-up
            self._trace = trace if isinstance(trace, Trace) else Trace(trace)
        self.wasi_import: dict[str, HostFunction] = build_imports(self._ctx, self._trace)
        self._thread_spawn = self._ctx.thread_spawn = ThreadSpawn(self._ctx)
        if self._trace is not None:
            self._trace.bind(self._thread_spawn)
        self._bound = False
        self._started = False

    # -- node:wasi's methods --------------------------------------------
    def get_import_object(self) -> dict[str, dict[str, HostFunction]]:
        # wasi-threads' `wasi`.`thread-spawn` is not in it (node:wasi's shape):
        # ``instantiate`` links this WASI's when a module imports it.
        return {_VERSIONS[self.version]: self.wasi_import}

    @property
    def namespace(self) -> str:
        """The import module name of this version."""
        return _VERSIONS[self.version]

    def finalize_bindings(self, instance: Instance,
                          memory: Memory | SharedMemory | wasmtime.SharedMemory | None = None) -> None:
        """Bind to ``instance``'s memory (or ``memory``) without running anything.
        ``memory`` may be a ``wasmtime.SharedMemory``, for callers that run
        threads themselves."""
        import wasmtime

        from ._engine import Instance, Memory, SharedMemory, WeakMemory
        if not isinstance(instance, Instance):
            raise TypeError(f"instance must be a pywasi Instance, not {type(instance).__name__} "
                            f"(wrap a wasmtime instance with pywasi.Instance.wrap(store, instance))")
        if self._bound:
            raise PywasiError("WASI bindings are already finalized: a WASI object binds once")
        if memory is None:
            memory = instance.exports.get("memory")
            if memory is None:
                raise PywasiError("the instance does not export a memory named 'memory'")
        if isinstance(memory, wasmtime.SharedMemory):
            memory = SharedMemory(memory)
        if not isinstance(memory, (Memory, SharedMemory)):
            raise TypeError(f"memory must be a memory export, not {type(memory).__name__}")
        source: MemorySource = memory  # a shared memory: owned by no store
        if isinstance(memory, Memory):
            # Not ``memory`` itself: it holds the store, which holds this context.
            source = WeakMemory(memory, on_gone=lambda: guest.release())
        guest = self._bind_memory(source, stable=memory.stable)
        instance._attach(self._ctx)
        self._bound = True

    def _bind_memory(self, source: MemorySource, *, stable: bool) -> GuestMemory:
        """The syscalls' view of the guest's memory, wherever it lives
        (``finalize_bindings``; ``_lean``'s run binds it directly)."""
        guest = GuestMemory(source, stable=stable, cell=self._ctx.memory_cell)
        self._ctx.memory = guest
        return guest

    def start(self, instance: Instance, *, timeout: float | None = None,
              cancel: Any = None) -> int:
        """Run the command's ``_start``; returns its exit code (0 when ``_start``
        returns). With ``return_on_exit=False`` the process exits instead.

        ``timeout`` (seconds of wall-clock time) and ``cancel`` (a
        ``pywasi.CancelToken``, a ``threading.Event`` or anything with
        ``is_set()``), for a module compiled with ``interruptible=True``:
        when the time is up or the cancel is set, the program is stopped
        wherever it is -- running wasm, in every thread, or blocked in
        poll_oneoff, fd_read, fd_write, sock_accept, sock_recv, sock_send --
        and ``start`` raises ``LimitExceeded`` (``limit == "timeout"`` or
        ``"cancelled"``). A limit that stops the guest (fuel, output) raises
        it too; another trap raises ``Trap``."""
        if self._trace is not None:  # its exit or trap line after the run
            return int(self._trace.run(lambda: self._start(instance, timeout, cancel)))
        return self._start(instance, timeout, cancel)

    def _start(self, instance: Instance, timeout: float | None, cancel: Any) -> int:
        from ._engine import SharedMemory
        from ._engine._engines import has_epochs
        seconds = check_timeout(timeout)
        exports = self._check_instance(instance, "start")
        if "_initialize" in exports:
            raise PywasiError("start(): the instance exports _initialize (a reactor); use initialize()")
        entry = exports.get("_start")
        if entry is None:
            raise PywasiError("start(): the instance does not export a _start function")
        # A threads program imports its shared memory and need not export it.
        shared = instance.imported_memory if isinstance(instance.imported_memory, SharedMemory) else None
        if "memory" not in exports and shared is None:
            raise PywasiError("start(): the instance does not export a memory named 'memory'")
        cancels = cancels_of(cancel)
        if (seconds is not None or cancels) and not has_epochs(instance.store.engine):
            what = "timeout" if seconds is not None else "cancel"
            raise PywasiError(f"start({what}=...) needs a module compiled to be interruptible: "
                              "pywasi.compile(..., interruptible=True)")
        self._started = True
        self.finalize_bindings(instance, None if "memory" in exports else shared)
        _flush_python_stdio()
        spawner = self._thread_spawn
        if seconds is not None or cancels or instance.link is not None and instance.link[1].get(
                "wasi", {}).get("thread-spawn") is spawner:
            # A wasi-threads program, or one with a time limit or a cancel:
            # every thread has ended when this returns.
            spawner.begin(instance, None if seconds is None else (seconds, duration(seconds)),
                          cancels)
            outcome = spawner.end(outcome_of_start(entry))
            _flush_python_stdio()
            if isinstance(outcome, BaseException):
                raise self._limit_of(outcome)
            code = int(outcome)
        else:
            try:
                entry()
                code = 0
            except WasiExit as e:
                code = e.code
            except Trap as e:
                raise self._limit_of(e) from None
        if not self.return_on_exit:
            _flush_python_stdio()
            raise SystemExit(code)
        return code

    def _limit_of(self, error: BaseException) -> BaseException:
        """A trap is the output limit's when a write passed it (a thread's
        trap: the main instance's calls say so themselves)."""
        if isinstance(error, Trap) and not isinstance(error, LimitExceeded):
            return self._ctx.limit_reached() or error
        return error

    @property
    def output_written(self) -> int | None:
        """Bytes the guest wrote to stdout and stderr, when ``max_output`` is set."""
        return None if self._output is None else self._output.written

    def initialize(self, instance: Instance) -> None:
        """Initialize a reactor: call ``_initialize`` if it is exported."""
        exports = self._check_instance(instance, "initialize")
        if "_start" in exports:
            raise PywasiError("initialize(): the instance exports _start (a command); use start()")
        if "memory" not in exports:
            raise PywasiError("initialize(): the instance does not export a memory named 'memory'")
        self._started = True
        self.finalize_bindings(instance)
        init = exports.get("_initialize")
        if init is not None:
            _flush_python_stdio()
            init()

    def _check_instance(self, instance: Any, what: str) -> Any:
        from ._engine import Instance
        if not isinstance(instance, Instance):
            raise TypeError(f"{what}(): instance must be a pywasi Instance, not {type(instance).__name__}")
        if self._started:
            raise PywasiError(f"{what}(): this WASI object has already started an instance")
        return instance.exports

    # -- Python extras ---------------------------------------------------
    def define_imports(self, linker: Any) -> None:
        """Define every WASI function in a user's own ``wasmtime.Linker``
        (fast route). Then ``start(pywasi.Instance.wrap(store, instance))``."""
        from ._engine import define_raw, warn_if_degraded
        warn_if_degraded()
        for fn in self.wasi_import.values():
            define_raw(linker, self.namespace, fn)

    def close(self) -> None:
        """Close every descriptor the guest still holds (preopens, files).
        Borrowed stdio fds are left open."""
        _CLOSERS.discard(self._closer)
        self._fds.close_all()

    def __enter__(self) -> WASI:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# The weak references whose callbacks close a collected WASI's descriptors
# (kept here: a weak reference's callback runs only while it is alive).
# weakref.finalize without the weakref module, an import of every start-up
# (pywasi._lean); unlike finalize, nothing is closed at interpreter exit: the
# process's descriptors end with it.
_CLOSERS: set[Any] = set()


def _close_when_collected(wasi: WASI, fds: FdTable) -> Any:
    def collected(ref: Any) -> None:
        _CLOSERS.discard(ref)
        fds.close_all()
    ref = _weakref.ref(wasi, collected)
    _CLOSERS.add(ref)
    return ref


def _open_preopen(guest: Any, host: Any) -> Directory:
    """A preopen's directory: a host path (opened here), a tree living in
    Python (``pywasi.fs.MemoryFS``: anything with ``wasi_preopen``) or a
    ``pywasi.fs.Directory`` of the user's own."""
    if not isinstance(guest, str):
        raise TypeError(f"preopens: guest paths must be strings, not {type(guest).__name__}")
    name = _encode("preopens", guest, "a guest path")
    if isinstance(host, Directory):
        host.preopen = name
        if not host.rights_base:  # a user's own kind: a preopen's usual rights
            host.rights_base, host.rights_inheriting = DIR_RIGHTS, DIR_INHERITING
        return host
    if hasattr(host, "wasi_preopen"):
        directory: Directory = host.wasi_preopen(name)
        return directory
    if not isinstance(host, (str, os.PathLike)):
        raise TypeError(f"preopens[{guest!r}]: expected a host path (str or os.PathLike), a "
                        f"pywasi.fs.MemoryFS or a pywasi.fs.Directory, not {type(host).__name__}")
    try:
        fd = os.open(host, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as e:
        reason = e.strerror or str(e)
        raise PreopenError(f"preopen {guest!r}: cannot open host directory {os.fspath(host)!r}: "
                           f"{reason}") from None
    return HostDirectory(fd, preopen=name)


def _reproducible(ctx: Syscalls, deterministic: bool, clock: Any, random: Any) -> None:
    """The clock and random sources of ``WASI(deterministic=, clock=,
    random=)`` on the context, before ``build_imports`` picks the calls."""
    from ._determinism import Clock, SeededRandom, VirtualClock, random_source  # only when asked
    if clock is None and deterministic:
        clock = VirtualClock()
    if clock is not None and not isinstance(clock, Clock):
        raise TypeError(f"clock must be a pywasi.Clock (methods time, resolution and sleep), "
                        f"not {type(clock).__name__}")
    if random is None and deterministic:
        random = SeededRandom(0)
    ctx.clock = clock
    ctx.rng = None if random is None else random_source(random)
    ctx.ordered_readdir = deterministic
    if clock is not None:
        # Trees in Python stamp times from the run's realtime clock (what
        # they open inherits it); a host directory's times are the host's.
        for _, desc in ctx.fds:
            if hasattr(desc, "now"):
                desc.now = lambda: int(clock.time(0))


def _open_socket(item: Any) -> Any:
    from ._fs._socket import listen_on, socket_descriptor
    if isinstance(item, str):
        sock = listen_on(item)
        try:
            return socket_descriptor(sock)
        finally:
            sock.close()  # the descriptor holds its own duplicate
    return socket_descriptor(item)


def _check_count(name: str, value: Any) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if value < 0:
        raise ValueError(f"{name} must not be negative, got {value}")


def _flush_python_stdio() -> None:
    # Output Python printed before the guest runs must come out before the
    # guest's own, which goes straight to the file descriptors.
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):
            pass

