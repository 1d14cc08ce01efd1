"""The syscall trace: one event per host call, written as strace writes its
lines (or as JSON lines, for tools), and the program's end.

How it hooks in: with ``WASI(trace=...)``, ``build_imports`` wraps the
syscall of every function the trace selects in ``Trace.wrap`` before the
dispatcher's ``HostFunction`` is made, so every route (the compiled
trampoline, the ctypes callback, the public ``Func`` route, Python callers)
calls the wrapper. The wrapper is not the syscall of the function's name,
so the accelerator's C fast paths step aside for it (``fast_path``) and the
call takes the Python route: a traced call is always seen. Without a trace
nothing of this module is imported and the host functions are what they
were: a run without a trace pays nothing.

Arguments and results are decoded from the ABI tables (``_abi``): each
parameter by its witx type (``Signature.inputs``), each result through its
out-pointer by its witx type (``Signature.outputs``), structs by their
``Layout``, enums and flags by their ``WITX_TYPES`` class; wasi_unstable's
``whence``, ``filestat``, ``subscription`` and rights are its own. Nothing
here declares an offset.

Invariants: decoding never traps or raises (a pointer the guest got wrong
shows as the pointer; the call itself then traps as it would untraced);
the trace is written by the host to its own sink, never through the
guest's descriptors; a line is written whole, under a lock (threads), and
flushed when written unless ``flush=False``.
"""

from __future__ import annotations

import fnmatch
import io
import json
import threading
import time

from ._abi import (
    FDSTAT,
    FILESTAT,
    FILESTAT_UNSTABLE,
    IOVEC,
    PRESTAT,
    PREVIEW1,
    SUBSCRIPTION_CLOCK,
    SUBSCRIPTION_CLOCK_UNSTABLE,
    SUBSCRIPTION_FD_READWRITE,
    SUBSCRIPTION_FD_READWRITE_UNSTABLE,
    WITX_TYPES,
    Errno,
    Eventtype,
    Layout,
    Rights,
    Signature,
    WhenceUnstable,
)
from ._dispatch import errno_of
from ._errors import GuestFault, ProcExit, Trap

# The ABI's flag sets are enum.IntFlag for mypy, ``_abi._enum``'s at run time;
# the other names are for annotations only (mypy takes any TYPE_CHECKING as true).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from enum import IntFlag
    from typing import Any
else:
    from ._abi._enum import IntFlag

__all__ = ["Trace", "TraceEvent", "Pointer"]

# How much of a guest's string, iovec array or subscription array is shown.
_MAX_TEXT = 256
_MAX_ITEMS = 16

_U16 = Layout("u16", [("value", "u16")])
_U32 = Layout("u32", [("value", "u32")])
_U64 = Layout("u64", [("value", "u64")])
# Out-pointer result types -> how they are read (a scalar's width, or a struct).
_SCALAR = {"size": _U32, "fd": _U32, "filesize": _U64, "timestamp": _U64, "roflags": _U16}
# Which fields of a struct result are shown, and the witx type of those that
# have names (the others are numbers).
_STRUCT_FIELDS: dict[str, dict[str, str | None]] = {
    "fdstat": {"fs_filetype": "filetype", "fs_flags": "fdflags", "fs_rights_base": "rights",
               "fs_rights_inheriting": "rights"},
    "filestat": {"filetype": "filetype", "nlink": None, "size": None},
    "prestat": {"tag": "preopentype", "pr_name_len": None},
}


class Pointer(int):
    """A guest address: shown in hex, a number in JSON."""

    def __str__(self) -> str:
        return f"0x{int(self):x}"

    __repr__ = __str__


class TraceEvent:
    """One host call (``kind == "call"``), or the program's end (``"exit"``,
    ``"trap"``).

    ``name``: the function's spec name (``"exit"``/``"trap"`` for an end);
    ``args``: its arguments, decoded, by spec name (out-pointers left out):
    ints, ``bytes`` for guest strings, ``str`` for names of enums and flags
    (``"CREAT|TRUNC"``), lists (iovec lengths, subscriptions), ``Pointer``;
    ``raw``: the arguments as the guest passed them (unsigned); ``errno``:
    the result's name (``"SUCCESS"``, ``"NOENT"``), None when the call
    ended the program or trapped; ``results``: what a successful call wrote
    through its out-pointers, by spec name (for an exit: ``{"code": n}``);
    ``duration`` in seconds; ``thread``: the wasi-threads id of the caller
    (0: the main thread) once the program has spawned a thread, else None;
    ``detail``: why a call trapped, or the trap's message."""

    __slots__ = ("kind", "name", "args", "raw", "errno", "results", "duration", "thread",
                 "detail")

    def __init__(self, kind: str, name: str, *, args: dict[str, Any] | None = None,
                 raw: tuple[int, ...] = (), errno: str | None = None,
                 results: dict[str, Any] | None = None, duration: float = 0.0,
                 thread: int | None = None, detail: str | None = None) -> None:
        self.kind = kind
        self.name = name
        self.args = args or {}
        self.raw = raw
        self.errno = errno
        self.results = results or {}
        self.duration = duration
        self.thread = thread
        self.detail = detail

    def __repr__(self) -> str:
        return f"<TraceEvent {self.text()}>"

    def text(self) -> str:
        """The strace-style line (without its newline)."""
        prefix = "" if self.thread is None else f"[tid {self.thread}] "
        if self.kind == "exit":
            return f"{prefix}+++ exited with {self.results.get('code')} +++"
        if self.kind == "trap":
            return f"{prefix}+++ trapped: {_cause(self.detail or '')} +++"
        args = ", ".join(_text(v) for v in self.args.values())
        line = f"{prefix}{self.name}({args}) = {self.errno or '?'}"
        for key, value in self.results.items():
            line += f" {key}={_text(value)}"
        if self.detail:
            line += f" ({_one_line(self.detail)})"
        return f"{line} <{self.duration:.6f}>"

    def json(self) -> dict[str, Any]:
        """The event as a JSON object (what ``format="json"`` writes)."""
        if self.kind == "exit":
            out: dict[str, Any] = {"exit": self.results.get("code")}
        elif self.kind == "trap":
            out = {"trap": self.detail}
        else:
            out = {"call": self.name, "args": _plain(self.args), "errno": self.errno}
            if self.results:
                out["results"] = _plain(self.results)
            if self.detail:
                out["detail"] = self.detail
            out["duration"] = round(self.duration, 9)
        if self.thread is not None:
            out["tid"] = self.thread
        return out


def _cause(message: str) -> str:
    """A trap's reason without the engine's backtrace (JSON keeps it whole)."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    if "Caused by:" in lines:
        lines = lines[lines.index("Caused by:") + 1:]
    return " | ".join(lines)


def _one_line(text: str) -> str:
    return " | ".join(line.strip() for line in text.splitlines() if line.strip())


def _quote(data: bytes) -> str:
    shown = data[:_MAX_TEXT]
    out = ['"']
    for b in shown:
        c = chr(b)
        if c in '"\\':
            out.append("\\" + c)
        elif 0x20 <= b < 0x7F:
            out.append(c)
        else:
            out.append({0x0A: "\\n", 0x09: "\\t", 0x0D: "\\r", 0: "\\0"}.get(b, f"\\x{b:02x}"))
    out.append('"')
    if len(data) > _MAX_TEXT:
        out.append("...")
    return "".join(out)


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return _quote(value)
    if isinstance(value, list):
        return "[" + ", ".join(_text(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}={_text(v)}" for k, v in value.items()) + "}"
    return str(value)


def _plain(value: Any) -> Any:
    """``value`` as JSON has it: guest bytes as text (undecodable bytes as \\x..)."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, int):
        return int(value)
    return value


# -- names of enums and flags --------------------------------------------

def _name(cls: Any, value: int, unstable: bool) -> str:
    if issubclass(cls, IntFlag):
        return _flag_names(cls, value, unstable)
    try:
        return str(cls(value).name)
    except ValueError:
        return str(value)  # a value the spec does not define (the call answers INVAL)


def _flag_names(cls: Any, value: int, unstable: bool) -> str:
    if not value:
        return "0"
    members = [m for m in cls if not (unstable and cls is Rights and m is Rights.SOCK_ACCEPT)]
    known = 0
    for m in members:
        known |= int(m)
    unknown = value & ~known
    have = [m.name for m in members if value & int(m)]
    if cls is Rights and len(have) > len(members) // 2:
        # A right set is mostly "everything but ...": strace-style, the complement.
        missing = [m.name for m in members if not value & int(m)]
        text = "ALL" if not missing else "ALL&~" + (missing[0] if len(missing) == 1 else
                                                    "(" + "|".join(missing) + ")")
        return text + (f"|0x{unknown:x}" if unknown else "")
    if unknown:
        have.append(f"0x{unknown:x}")
    return "|".join(have)


# -- decoding one call -----------------------------------------------------

class _Decoder:
    """Decodes one function's arguments and results from guest memory."""

    def __init__(self, sig: Signature, ctx: Any, unstable: bool) -> None:
        self.sig = sig
        self.ctx = ctx
        self.unstable = unstable
        self.types = dict(WITX_TYPES)
        self.structs: dict[str, Layout] = {"fdstat": FDSTAT, "filestat": FILESTAT,
                                           "prestat": PRESTAT}
        if unstable:
            self.types["whence"] = WhenceUnstable
            self.structs["filestat"] = FILESTAT_UNSTABLE
        self.nout = len(sig.outputs)

    def inputs(self, raw: tuple[int, ...]) -> dict[str, Any]:
        args: dict[str, Any] = {}
        i = 0
        for pname, witx in self.sig.inputs:
            value = raw[i]
            if witx in ("string", "iovec_array", "ciovec_array"):
                length = raw[i + 1]
                i += 2
                args[pname] = self._guarded(self._text if witx == "string" else self._iovecs,
                                            value, length)
                continue
            i += 1
            if witx == "pointer":
                args[pname] = Pointer(value)
            elif witx == "filedelta":
                args[pname] = value - (1 << 64) if value >> 63 else value
            elif witx in self.types:
                args[pname] = _name(self.types[witx], value, self.unstable)
            else:
                args[pname] = value
        if self.sig.name == "poll_oneoff":
            args["in"] = self._guarded(self._subscriptions, raw[0], raw[2])
        return args

    def results(self, raw: tuple[int, ...]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        pointers = raw[len(raw) - self.nout:]
        for (rname, witx), ptr in zip(self.sig.outputs, pointers):
            out[rname] = self._guarded(self._result, witx, ptr)
        name = self.sig.name
        if name == "path_readlink" and isinstance(out.get("bufused"), int):
            out["target"] = self._guarded(self._text, raw[3], out["bufused"])
        elif name == "fd_prestat_dir_name":
            out["path"] = self._guarded(self._text, raw[1], raw[2])
        return out

    def _guarded(self, read: Callable[..., Any], *args: int | str) -> Any:
        memory = self.ctx.memory
        try:
            if memory is None:  # not bound yet: nothing to read
                raise ValueError("no memory")
            return read(memory, *args)
        except (GuestFault, OverflowError, ValueError, IndexError):
            # The guest's pointer is wrong: the call traps (or answers) on its
            # own; the pointer is what there is to show.
            return Pointer(next(a for a in args if isinstance(a, int)))

    @staticmethod
    def _text(memory: Any, ptr: int, length: int) -> bytes:
        # One byte past what is shown: _quote then marks the text as cut.
        data: bytes = memory.read_bytes(ptr, min(length, _MAX_TEXT + 1))
        return data

    @staticmethod
    def _iovecs(memory: Any, ptr: int, count: int) -> list[Any]:
        lengths: list[Any] = [memory.unpack(IOVEC, ptr + IOVEC.size * i)[1]
                              for i in range(min(count, _MAX_ITEMS))]
        if count > _MAX_ITEMS:
            lengths.append(f"...{count - _MAX_ITEMS} more")
        return lengths

    def _subscriptions(self, memory: Any, ptr: int, count: int) -> list[Any]:
        clock = SUBSCRIPTION_CLOCK_UNSTABLE if self.unstable else SUBSCRIPTION_CLOCK
        rw = SUBSCRIPTION_FD_READWRITE_UNSTABLE if self.unstable else SUBSCRIPTION_FD_READWRITE
        subs: list[Any] = []
        for i in range(min(count, _MAX_ITEMS)):
            at = ptr + clock.size * i
            tag = memory.read_bytes(at + clock.offsets["tag"], 1)[0]
            if tag == Eventtype.CLOCK:
                fields = dict(zip(clock.fields, memory.unpack(clock, at)))
                subs.append({"clock": _name(self.types["clockid"], fields["id"], self.unstable),
                             "timeout": fields["timeout"],
                             "flags": _name(self.types["subclockflags"], fields["flags"],
                                            self.unstable)})
            else:
                fields = dict(zip(rw.fields, memory.unpack(rw, at)))
                kind = _name(Eventtype, tag, self.unstable).lower()
                subs.append({kind: fields["file_descriptor"]})
        if count > _MAX_ITEMS:
            subs.append(f"...{count - _MAX_ITEMS} more")
        return subs

    def _result(self, memory: Any, witx: str, ptr: int) -> Any:
        if witx in _SCALAR:
            value = memory.unpack(_SCALAR[witx], ptr)[0]
            if witx in self.types:
                return _name(self.types[witx], value, self.unstable)
            return value
        layout = self.structs[witx]
        fields = dict(zip(layout.fields, memory.unpack(layout, ptr)))
        shown: dict[str, Any] = {}
        for field, ftype in _STRUCT_FIELDS[witx].items():
            value = fields[field]
            shown[field] = value if ftype is None else _name(self.types[ftype], value,
                                                                 self.unstable)
        return shown


def _describe(error: BaseException) -> str | None:
    """Why a call that answered no errno ended (proc_exit: nothing to say)."""
    if isinstance(error, ProcExit):
        return None
    if isinstance(error, GuestFault):
        return f"trap: {error}"
    if isinstance(error, Exception):
        return f"trap: pywasi internal error: {type(error).__name__}: {error}"
    return f"interrupted ({type(error).__name__})"


# -- the trace ---------------------------------------------------------------

class Trace:
    """Where a WASI object's trace goes and what it shows.

    ``to``: a callable, called with one ``TraceEvent`` per call (and at the
    end), or a file object (text or binary) that gets one line per event:
    strace-style text, or with ``format="json"`` one JSON object per line.
    ``calls``: which functions are traced, as shell patterns (``"path_*"``,
    ``"fd_read"``), a list or one comma-separated string; default all. A
    pattern that names no WASI function is a ``ValueError`` (a typo would
    silently trace nothing). ``flush``: flush a file after every line (the
    default: a trace on the terminal stays in order with the guest's own
    stderr); the ``pywasi`` command turns it off for ``--trace=FILE``.
    ``WASI(trace=x)`` also takes the callable or file itself."""

    def __init__(self, to: Any, *, calls: str | Iterable[str] | None = None,
                 format: str = "text", flush: bool = True) -> None:
        if format not in ("text", "json"):
            raise ValueError(f"trace format must be 'text' or 'json', not {format!r}")
        self.format = format
        self.flush = flush
        self.patterns = _patterns(calls)
        self._lock = threading.Lock()
        self._spawn: Any = None
        if callable(to) and not hasattr(to, "write"):
            self._sink: Callable[[TraceEvent], None] = to
        elif hasattr(to, "write"):
            self._file = to
            self._text_file = isinstance(to, io.TextIOBase) or "b" not in getattr(to, "mode", "b")
            self._sink = self._write
        else:
            raise TypeError(f"trace must be a callable, a file object or a pywasi.Trace, "
                            f"not {type(to).__name__}")

    def selects(self, name: str) -> bool:
        return self.patterns is None or any(fnmatch.fnmatchcase(name, p) for p in self.patterns)

    def bind(self, spawn: Any) -> None:
        """The WASI object's thread-spawn: it knows the calling thread's id."""
        self._spawn = spawn

    def wrap(self, sig: Signature, impl: Callable[..., None], ctx: Any,
             unstable: bool) -> Callable[..., None]:
        """``impl`` (the syscall), emitting one event per call."""
        decoder = _Decoder(sig, ctx, unstable)
        emit = self.emit
        clock = time.perf_counter
        name = sig.name
        names = {int(e): e.name for e in Errno}

        def traced(*raw: int) -> None:
            args = decoder.inputs(raw)
            start = clock()
            try:
                impl(*raw)
            except BaseException as error:
                duration = clock() - start
                errno = errno_of(error)
                emit(TraceEvent("call", name, args=args, raw=raw, duration=duration,
                                errno=None if errno is None else names.get(errno, str(errno)),
                                detail=None if errno is not None else _describe(error)))
                raise
            duration = clock() - start
            emit(TraceEvent("call", name, args=args, raw=raw, errno="SUCCESS",
                            results=decoder.results(raw), duration=duration))

        # Never the syscall's own name: the accelerator's fast paths then
        # leave this call to Python (``HostFunction.fast_path``).
        traced.__name__ = traced.__qualname__ = f"traced_{name}"
        return traced

    def emit(self, event: TraceEvent) -> None:
        spawn = self._spawn
        if spawn is not None:
            event.thread = spawn.thread_id()
        self._sink(event)

    def run(self, start: Callable[[], int]) -> int:
        """``start()`` (the program's run), then its exit or trap line."""
        try:
            code = start()
        except SystemExit as e:  # return_on_exit=False
            self.emit(TraceEvent("exit", "exit", results={"code": e.code}))
            raise
        except Trap as e:
            self.emit(TraceEvent("trap", "trap", detail=str(e)))
            raise
        self.emit(TraceEvent("exit", "exit", results={"code": code}))
        return code

    def _write(self, event: TraceEvent) -> None:
        line = (json.dumps(event.json(), separators=(",", ":")) if self.format == "json"
                else event.text()) + "\n"
        with self._lock:
            if self._text_file:
                self._file.write(line)
            else:
                data = memoryview(line.encode("utf-8", "backslashreplace"))
                while data:  # a raw file may write part of it
                    written = self._file.write(data)
                    data = data[written if written is not None else len(data):]
            if self.flush:
                self._file.flush()


def _patterns(calls: str | Iterable[str] | None) -> tuple[str, ...] | None:
    if calls is None:
        return None
    items = calls.split(",") if isinstance(calls, str) else list(calls)
    patterns = tuple(p.strip() for p in items if isinstance(p, str) and p.strip())
    if len(patterns) != len([p for p in items if not isinstance(p, str) or p.strip()]):
        raise TypeError("trace calls must be strings (function names or shell patterns)")
    if not patterns:
        raise ValueError("trace calls: no function names given")
    for pattern in patterns:
        if not any(fnmatch.fnmatchcase(name, pattern) for name in PREVIEW1):
            raise ValueError(f"trace calls: {pattern!r} matches no WASI function")
    return patterns
