"""``WASI``: node:wasi's class, in Python spelling.

One object is one guest environment: its args, environment, stdio and
preopened directories, and the descriptor table the guest's calls act on.
"""

from __future__ import annotations

import os
import sys
import weakref
from collections.abc import Iterable, Mapping
from typing import Any

import wasmtime

from ._dispatch import HostFunction
from ._engine import Instance, Memory, SharedMemory, WeakMemory
from ._errors import PywasiError, WasiExit
from ._fdtable import FdTable
from ._fs._dir import HostDirectory
from ._fs._stream import open_stdio
from ._memory import GuestMemory, MemorySource
from ._syscalls import Syscalls, build_imports
from ._threads import ThreadSpawn, outcome_of_start

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
    """

    def __init__(self, *, version: str, args: Iterable[str] = (),
                 env: Mapping[str, str] | None = None,
                 preopens: Mapping[str, str | os.PathLike[str]] | None = None,
                 return_on_exit: bool = True, stdin: Any = 0, stdout: Any = 1,
                 stderr: Any = 2, sockets: Iterable[Any] = ()) -> None:
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
        self._finalizer = weakref.finalize(self, fds.close_all)
        fds.allocate(open_stdio("stdin", stdin, reading=True))
        fds.allocate(open_stdio("stdout", stdout, reading=False))
        fds.allocate(open_stdio("stderr", stderr, reading=False))
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

        self._ctx = Syscalls(args=arg_list, environ=environ, fds=fds,
                             unstable=version == "unstable")
        self.wasi_import: dict[str, HostFunction] = build_imports(self._ctx)
        self._thread_spawn = self._ctx.thread_spawn = ThreadSpawn(self._ctx)
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
        guest = GuestMemory(source, stable=memory.stable, cell=self._ctx.memory_cell)
        self._ctx.memory = guest
        instance._attach(self._ctx)
        self._bound = True

    def start(self, instance: Instance) -> int:
        """Run the command's ``_start``; returns its exit code (0 when ``_start``
        returns). With ``return_on_exit=False`` the process exits instead."""
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
        self._started = True
        self.finalize_bindings(instance, None if "memory" in exports else shared)
        _flush_python_stdio()
        spawner = self._thread_spawn
        if instance.link is not None and instance.link[1].get("wasi", {}).get(
                "thread-spawn") is spawner:
            # A wasi-threads program: every thread has ended when this returns.
            spawner.begin(instance)
            outcome = spawner.end(outcome_of_start(entry))
            _flush_python_stdio()
            if isinstance(outcome, BaseException):
                raise outcome
            code = int(outcome)
        else:
            try:
                entry()
                code = 0
            except WasiExit as e:
                code = e.code
        if not self.return_on_exit:
            _flush_python_stdio()
            raise SystemExit(code)
        return code

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
        if not isinstance(instance, Instance):
            raise TypeError(f"{what}(): instance must be a pywasi Instance, not {type(instance).__name__}")
        if self._started:
            raise PywasiError(f"{what}(): this WASI object has already started an instance")
        return instance.exports

    # -- Python extras ---------------------------------------------------
    def define_imports(self, linker: Any) -> None:
        """Define every WASI function in a user's own ``wasmtime.Linker``
        (fast route). Then ``start(pywasi.Instance.wrap(store, instance))``."""
        from ._engine import define_raw
        for fn in self.wasi_import.values():
            define_raw(linker, self.namespace, fn)

    def close(self) -> None:
        """Close every descriptor the guest still holds (preopens, files).
        Borrowed stdio fds are left open."""
        self._finalizer()

    def __enter__(self) -> WASI:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _open_preopen(guest: Any, host: Any) -> HostDirectory:
    if not isinstance(guest, str):
        raise TypeError(f"preopens: guest paths must be strings, not {type(guest).__name__}")
    if not isinstance(host, (str, os.PathLike)):
        raise TypeError(f"preopens[{guest!r}]: the host path must be a string or path, "
                        f"not {type(host).__name__}")
    try:
        fd = os.open(host, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as e:
        reason = e.strerror or str(e)
        raise PreopenError(f"preopen {guest!r}: cannot open host directory {os.fspath(host)!r}: "
                           f"{reason}") from None
    return HostDirectory(fd, preopen=_encode("preopens", guest, "a guest path"))


def _open_socket(item: Any) -> Any:
    from ._fs._socket import listen_on, socket_descriptor
    if isinstance(item, str):
        sock = listen_on(item)
        try:
            return socket_descriptor(sock)
        finally:
            sock.close()  # the descriptor holds its own duplicate
    return socket_descriptor(item)


def _flush_python_stdio() -> None:
    # Output Python printed before the guest runs must come out before the
    # guest's own, which goes straight to the file descriptors.
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):
            pass

