"""``pywasi run [OPTIONS] MODULE [ARGS...]``: the command line, flags as the
wasmtime CLI spells them.

Exit status: the guest's exit code; 134 after a trap (as wasmtime), and
after a limit that stops the guest (fuel, output; or memory the module
needs to start); 124 when the time limit stopped it (as GNU timeout(1):
wasmtime's CLI gives 134, a trap, which scripts cannot tell from a crash);
2 for a usage error (a bad ``--invoke`` too); 1 when the module cannot be
loaded or has nothing to run; 70 (EX_SOFTWARE)
for a bug in pywasi. Nothing but the guest's own output (and the results of an
``--invoke``d export) ever goes to stdout,
and no Python traceback reaches the user: every failure is a ``Failure`` (or
an exception ``main`` does not know, a bug) that ``main`` alone turns into
one stderr line (a trap: its report) and a status. A new flag or stage
raises ``UsageError`` or ``Failure`` and inherits that.
"""

from __future__ import annotations

import atexit
import os
import sys
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any

__all__ = ["main", "command"]

USAGE = """\
usage: pywasi run [--dir HOST[::GUEST]]... [--env NAME[=VALUE]]... [--inherit-env] [-W LIMIT=VALUE]...
                  [--deterministic] [--seed N] [--invoke NAME] MODULE [ARGS...]
       pywasi compile MODULE.wasm [-o MODULE.cwasm]
       pywasi wizer [--init-func NAME] [--dir ...] [--env ...] [--deterministic] [--trace] -o OUT IN
       pywasi --version

Runs a WebAssembly program built for WASI preview1 (or wasi_unstable).

options for run:
  --dir HOST[::GUEST]   give the program the host directory HOST, seen as GUEST
                        (default: the same path as HOST)
  --dir HOST::GUEST::ro       ... read-only (every change answers ENOTCAPABLE)
  --dir HOST::GUEST::overlay  ... writable, the changes kept in memory: HOST is never written
  --dir ZIP::GUEST::zip       the zip archive ZIP as a read-only directory
  --env NAME[=VALUE]    set an environment variable (NAME alone: the value it has here)
  --inherit-env         pass this process's whole environment
  --tcplisten HOST:PORT listen on a TCP address and give the program the socket as a
                        preopened descriptor (after the --dir ones); with port 0 the
                        bound address is reported on stderr
  --listenfd            give the program the listening sockets this process inherited
                        (systemd's LISTEN_FDS protocol: fds 3.. ; without LISTEN_FDS,
                        fd 3), before the --tcplisten ones
  -W timeout=DURATION   stop the program after DURATION of wall-clock time (500ms, 2s, 1m;
                        status 124)
  -W fuel=N             stop it once it has used N units of fuel (wasmtime's instruction
                        count; status 134)
  -W max-memory-size=BYTES  cap each linear memory at BYTES (K/M/G or KiB/MiB/GiB: powers
                        of 1024); memory.grow past it fails, malloc returns NULL
  -W max-wasm-stack=BYTES  bytes of wasm stack before a call traps with "call stack
                        exhausted" (default 512K, wasmtime's; at most 1G)
                        (several: -W timeout=2s,fuel=1000000)
  --max-open-files N    at most N descriptors open at once, stdio and --dir included
                        (an open past it fails with EMFILE)
  --max-output BYTES    stop the program (status 134) at the write that takes its stdout
                        and stderr together past BYTES; what fits is written
  --trace[=FILE]        write a syscall trace, one line per host call, to stderr (or FILE)
  --trace-filter=CALLS  trace only these functions: names or shell patterns, comma-separated
                        (path_*,fd_read); implies --trace
  --trace-format=json   the trace as JSON lines (default: text, as strace); implies --trace
  --deterministic       a reproducible run: virtual clocks (fixed start, fixed step per
                        read, sleeps return at once), seeded random bytes, sorted listings
  --seed N              the seed of those random bytes (default 0); implies --deterministic
  --invoke NAME         call the export NAME instead of _start (after _initialize), with
                        ARGS parsed by its parameter types; print its results
  --no-cache            compile without the compiled-module cache (read or write)
  --allow-precompiled   accept a precompiled MODULE (from `pywasi compile`): native code
  -h, --help            show this help

compile: precompile MODULE to native code for this machine and wasmtime version
  -o, --output FILE     where to write it (default: MODULE with the suffix .cwasm)

wizer: pre-initialise IN (as `wasmtime wizer`): run its init function once under
this WASI (--dir, --env, --inherit-env, --deterministic, --seed, --trace* as for
run; ARGS after IN are its arguments) and write a module that starts in the state
it left (docs/preinit.md)
  -f, --init-func NAME  the init function's export (default: wizer.initialize)
  -o, --output FILE     where to write the new module (default: stdout; then the
                        init's own stdout goes to stderr)
  -r, --rename-func DST=SRC  export SRC as DST in the new module (replacing DST)
  --keep-init-func[=true|false]  keep exporting the init function (default false)
  -W unknown-imports-trap=y  link imports that neither WASI nor pywasi provides as
                        functions that trap when called (the init must not call them)
"""

EXIT_TRAP = 134
EXIT_TIMEOUT = 124
EXIT_USAGE = 2
EXIT_LOAD = 1
EXIT_BUG = 70  # sysexits.h EX_SOFTWARE: an internal software error

# Where an internal error asks to be reported (printed with it).
BUG_REPORTS = "pywasi's issue tracker"


class Failure(Exception):
    """What ends the command with ``status`` after one line on stderr (a
    trap's report may be longer): raised by any stage, written by ``main``."""

    def __init__(self, message: str, status: int = EXIT_LOAD) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class UsageError(Failure):
    def __init__(self, message: str) -> None:
        super().__init__(message, EXIT_USAGE)


class RunOptions:
    """What ``pywasi run`` was asked. (A plain class: a dataclass would import
    ``inspect``, milliseconds of every start-up.)"""

    def __init__(self) -> None:
        self.module = ""
        self.args: list[str] = []
        self.dirs: list[tuple[str, str, str]] = []  # host, guest, mode ("" or _DIR_MODES)
        self.env: dict[str, str] = {}
        self.inherit_env = False
        self.cache = True
        self.allow_precompiled = False
        self.tcplisten: list[str] = []
        self.listenfd = False
        self.timeout: float | None = None
        self.fuel: int | None = None
        self.max_memory: int | None = None
        self.max_wasm_stack: int | None = None
        self.max_open_files: int | None = None
        self.max_output: int | None = None
        self.trace: str | None = None  # "-": stderr, else a file
        self.trace_filter: str | None = None
        self.trace_format = "text"
        self.deterministic = False
        self.seed: int | None = None
        self.invoke: str | None = None  # --invoke NAME: the export to call


# --dir HOST::GUEST::MODE: what a preopen of the command line may be besides
# a host directory the guest reads and writes.
_DIR_MODES = ("ro", "overlay", "zip")


def _preopen(host: str, mode: str) -> Any:
    """A --dir's preopen: the host path, or a pywasi.fs tree over it."""
    if not mode:
        return host
    import zipfile

    import pywasi.fs  # only when asked: start-up
    try:
        if mode == "ro":
            return pywasi.fs.ReadOnly(host)
        if mode == "overlay":
            return pywasi.fs.Overlay(host)
        return pywasi.fs.ZipFS(host)
    except (OSError, ValueError, zipfile.BadZipFile) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise Failure(f"--dir {host} ({mode}): {reason}", EXIT_USAGE) from None


def _take_value(argv: Sequence[str], i: int, flag: str) -> tuple[str, int]:
    arg = argv[i]
    if arg.startswith(flag + "="):
        return arg[len(flag) + 1:], i + 1
    if i + 1 >= len(argv):
        raise UsageError(f"{flag} needs a value")
    return argv[i + 1], i + 2


def parse_run(argv: Sequence[str],
              extra: Callable[[Sequence[str], int], int | None] | None = None) -> RunOptions:
    """``run``'s options; ``extra(argv, i)`` is asked first about each flag
    (another subcommand's: ``wizer``) and returns the index after it, or
    None to leave it to ``run``'s parsing."""
    opts = RunOptions()
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            i += 1
            break
        if not arg.startswith("-") or arg == "-":
            break
        if extra is not None and (after := extra(argv, i)) is not None:
            i = after
            continue
        if arg in ("-h", "--help"):
            raise SystemExit(_print_help())
        if arg == "--dir" or arg.startswith("--dir="):
            value, i = _take_value(argv, i, "--dir")
            parts = value.split("::")
            if len(parts) > 3 or not all(parts) or len(parts) == 3 and parts[2] not in _DIR_MODES:
                raise UsageError(f"--dir {value!r}: expected HOST, HOST::GUEST or "
                                 f"HOST::GUEST::MODE (MODE: {', '.join(_DIR_MODES)})")
            opts.dirs.append((parts[0], parts[1] if len(parts) > 1 else parts[0],
                              parts[2] if len(parts) == 3 else ""))
        elif arg == "--env" or arg.startswith("--env="):
            value, i = _take_value(argv, i, "--env")
            name, sep, val = value.partition("=")
            if not name:
                raise UsageError(f"--env {value!r}: expected NAME or NAME=VALUE")
            if not sep:
                if name not in os.environ:
                    # NOTE: wasmtime passes nothing for an unset NAME; so do we.
                    continue
                val = os.environ[name]
            opts.env[name] = val
        elif arg == "--inherit-env":
            opts.inherit_env = True
            i += 1
        elif arg == "--tcplisten" or arg.startswith("--tcplisten="):
            value, i = _take_value(argv, i, "--tcplisten")
            host, sep, port = value.rpartition(":")
            if not sep or not host or not port.isdigit():
                raise UsageError(f"--tcplisten {value!r}: expected HOST:PORT")
            opts.tcplisten.append(value)
        elif arg == "--listenfd":
            opts.listenfd = True
            i += 1
        elif arg == "-W" or arg.startswith("-W"):
            value, i = (arg[2:], i + 1) if len(arg) > 2 else _take_value(argv, i, "-W")
            for item in value.split(","):
                _wasmtime_option(opts, item)
        elif arg == "--max-open-files" or arg.startswith("--max-open-files="):
            value, i = _take_value(argv, i, "--max-open-files")
            opts.max_open_files = _count("--max-open-files", value)
        elif arg == "--max-output" or arg.startswith("--max-output="):
            value, i = _take_value(argv, i, "--max-output")
            opts.max_output = _bytes("--max-output", value)
        elif arg == "--trace" or arg.startswith("--trace="):
            # --trace alone never takes the next argument: that is MODULE.
            opts.trace = arg[len("--trace="):] if arg.startswith("--trace=") else "-"
            if not opts.trace:
                raise UsageError("--trace= needs a FILE (--trace alone: stderr)")
            i += 1
        elif arg == "--trace-filter" or arg.startswith("--trace-filter="):
            opts.trace_filter, i = _take_value(argv, i, "--trace-filter")
            opts.trace = opts.trace or "-"
        elif arg == "--trace-format" or arg.startswith("--trace-format="):
            opts.trace_format, i = _take_value(argv, i, "--trace-format")
            if opts.trace_format not in ("text", "json"):
                raise UsageError(f"--trace-format {opts.trace_format!r}: expected text or json")
            opts.trace = opts.trace or "-"
        elif arg == "--deterministic":
            opts.deterministic = True
            i += 1
        elif arg == "--seed" or arg.startswith("--seed="):
            value, i = _take_value(argv, i, "--seed")
            opts.seed = _count("--seed", value)
            opts.deterministic = True
        elif arg == "--invoke" or arg.startswith("--invoke="):
            opts.invoke, i = _take_value(argv, i, "--invoke")
        elif arg == "--no-cache":
            opts.cache = False
            i += 1
        elif arg == "--allow-precompiled":
            opts.allow_precompiled = True
            i += 1
        else:
            raise UsageError(f"unknown option {arg!r} (see pywasi run --help)")
    if i >= len(argv):
        raise UsageError("no MODULE given")
    opts.module = argv[i]
    opts.args = list(argv[i + 1:])
    return opts


def _wasmtime_option(opts: RunOptions, item: str) -> None:
    """One ``-W NAME=VALUE`` (wasmtime's spelling of its limits)."""
    name, sep, value = item.partition("=")
    if not sep or not value:
        raise UsageError(f"-W {item!r}: expected NAME=VALUE (timeout, fuel, max-memory-size, "
                         f"max-wasm-stack)")
    if name == "timeout":
        opts.timeout = _duration(value)
    elif name == "fuel":
        opts.fuel = _count("-W fuel", value)
    elif name == "max-memory-size":
        opts.max_memory = _bytes("-W max-memory-size", value)
        if not opts.max_memory:
            raise UsageError("-W max-memory-size must be at least 1 byte")
    elif name == "max-wasm-stack":
        from pywasi._engine._engines import check_wasm_stack
        try:
            opts.max_wasm_stack = check_wasm_stack(_bytes("-W max-wasm-stack", value),
                                                   "-W max-wasm-stack")
        except ValueError as e:
            raise UsageError(str(e)) from None
    else:
        raise UsageError(f"unknown -W option {name!r} (pywasi knows timeout, fuel, "
                         f"max-memory-size, max-wasm-stack)")


_DURATION_UNITS = (("ms", 0.001), ("s", 1.0), ("m", 60.0), ("h", 3600.0))
_BYTE_UNITS = (("KiB", 1 << 10), ("MiB", 1 << 20), ("GiB", 1 << 30),
               ("K", 1 << 10), ("M", 1 << 20), ("G", 1 << 30))


def _duration(text: str) -> float:
    """``500ms``, ``2s``, ``1.5s``, ``1m``, ``1h``; a bare number is seconds."""
    number, scale = text, 1.0
    for unit, factor in _DURATION_UNITS:
        if text.endswith(unit):  # "ms" is tried before "s" and "m"
            number, scale = text[:-len(unit)], factor
            break
    try:
        seconds = float(number) * scale
    except ValueError:
        raise UsageError(f"-W timeout={text!r}: expected a duration such as 500ms, 2s or 1m") from None
    if not 0 < seconds < float("inf"):
        raise UsageError(f"-W timeout={text!r}: the duration must be positive")
    return seconds


def _bytes(flag: str, text: str) -> int:
    number, scale = text, 1
    for unit, factor in _BYTE_UNITS:
        if text.endswith(unit):
            number, scale = text[:-len(unit)], factor
            break
    if not number.isdigit():
        raise UsageError(f"{flag} {text!r}: expected a number of bytes (suffix K, M, G, KiB, MiB "
                         f"or GiB: powers of 1024)")
    return int(number) * scale


def _count(flag: str, text: str) -> int:
    if not text.isdigit():
        raise UsageError(f"{flag} {text!r}: expected a whole number")
    return int(text)


def _print_help() -> int:
    sys.stdout.write(USAGE)
    return 0


def _error(message: str, status: int) -> int:
    try:
        sys.stderr.write(f"pywasi: {message}\n")
        sys.stderr.flush()
    except (AttributeError, OSError, ValueError):  # no stderr (closed): nothing to say it on
        pass
    return status


def _internal_error(error: BaseException) -> int:
    """A bug: one line that says so and where to report it; the traceback
    only under PYWASI_DEBUG=1 (it is for whoever fixes pywasi, not for the
    user of a program)."""
    if os.environ.get("PYWASI_DEBUG") == "1":
        import traceback
        try:
            traceback.print_exception(error, file=sys.stderr)
        except (AttributeError, OSError, ValueError):
            pass
        hint = ""
    else:
        hint = " (PYWASI_DEBUG=1 shows the traceback)"
    lines = str(error).splitlines()
    what = f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__
    return _error(f"internal error, a bug in pywasi: {what}; please report it with the "
                  f"command you ran to {BUG_REPORTS}{hint}", EXIT_BUG)


def _compile(path: str, *, cache: bool, allow_precompiled: bool, interruptible: bool = False,
             consume_fuel: bool = False, max_wasm_stack: int | None = None) -> Any:
    """``_engine.compile`` with its failures as a ``Failure`` (status 1) and
    the cache's warnings as ``pywasi: warning: ...`` lines."""
    import warnings

    import pywasi
    from pywasi import _cache
    from pywasi._engine import compile as compile_module

    _cache.detach_writes()  # this process is the command's own (see _cache)
    # A warning from the cache's writer thread, after the compile (an entry
    # larger than the cache's cap): one line too.
    warnings.showwarning = _warning_line
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            return compile_module(path, cache=None if cache else False,
                                  allow_precompiled=allow_precompiled, interruptible=interruptible,
                                  consume_fuel=consume_fuel, max_wasm_stack=max_wasm_stack)
        except FileNotFoundError:
            raise Failure(f"cannot read module {path!r}: no such file") from None
        except IsADirectoryError:
            raise Failure(f"cannot read module {path!r}: it is a directory") from None
        except OSError as e:
            raise Failure(f"cannot read module {path!r}: {e.strerror or e}") from None
        except pywasi.PywasiError as e:
            raise Failure(f"{path}: {e}") from None
        finally:
            for w in caught:
                sys.stderr.write(f"pywasi: warning: {w.message}\n")


def _warning_line(message: Warning | str, *args: Any, **kwargs: Any) -> None:
    sys.stderr.write(f"pywasi: warning: {message}\n")


def run(opts: RunOptions) -> int:
    import pywasi

    module = _compile(opts.module, cache=opts.cache, allow_precompiled=opts.allow_precompiled,
                      interruptible=opts.timeout is not None, consume_fuel=opts.fuel is not None,
                      max_wasm_stack=opts.max_wasm_stack)
    namespaces = {m for m, _, _ in module.imports}
    # The ABI comes from the module: old programs import wasi_unstable.
    version = "unstable" if "wasi_unstable" in namespaces and \
        "wasi_snapshot_preview1" not in namespaces else "preview1"
    trace, trace_file = _open_trace(opts) if opts.trace is not None else (None, None)
    wasi = new_wasi(opts, version, trace, lambda: [
        *(_inherited_sockets() if opts.listenfd else []), *opts.tcplisten])
    try:
        _report_ephemeral_ports(wasi, opts.tcplisten)
        try:
            instance = pywasi.instantiate(module, wasi.get_import_object(), fuel=opts.fuel,
                                          max_memory=opts.max_memory)
        except pywasi.LimitExceeded as e:
            raise Failure(str(e), EXIT_TRAP) from None
        except pywasi.Trap as e:
            raise Failure(f"error while instantiating {opts.module}: {e}", EXIT_TRAP) from None
        except pywasi.PywasiError as e:
            raise Failure(f"cannot instantiate {opts.module}: {e}") from None
        exports = instance.exports
        for name in ("_start", "_initialize"):
            _check_entry_point(exports, name, opts.module)
        try:
            if "_start" in exports and "_initialize" in exports:
                raise Failure(f"{opts.module} exports both _start and _initialize: "
                              f"neither a command nor a reactor")
            if opts.invoke is None and ("_start" in exports or not (
                    "_initialize" in exports or "" in exports)):
                code = wasi.start(instance, timeout=opts.timeout)
            else:
                code = _run_export(wasi, instance, opts, uses_wasi=bool(
                    namespaces & {"wasi_snapshot_preview1", "wasi_unstable"}))
        except pywasi.WasiExit as e:  # proc_exit in _initialize
            code = e.code
        except pywasi.LimitExceeded as e:
            status = EXIT_TIMEOUT if e.limit == "timeout" else EXIT_TRAP
            raise Failure(str(e), status) from None
        except pywasi.Trap as e:
            raise Failure(f"error while running {opts.module}:\n{e}", EXIT_TRAP) from None
        except pywasi.PywasiError as e:
            raise Failure(f"{opts.module}: {e}") from None
    finally:
        wasi.close()
        if trace_file is not None:
            _close_trace(trace_file)
    # A POSIX exit status is 8 bits: a code above 255 would wrap (256 → 0,
    # "success"), so it is reported as 255.
    return code if 0 <= code <= 255 else 255


def _run_export(wasi: Any, instance: Any, opts: RunOptions, *, uses_wasi: bool) -> int:
    """As wasmtime's run when there is no ``_start`` to call, or --invoke
    names another export: ``_initialize`` (if exported), then the export
    (``--invoke NAME``, else the default export ``""``) with ARGS parsed by
    its parameter types; its results are printed. A reactor with neither is
    an error after its ``_initialize``: nothing of the program ran."""
    from pywasi._engine import Function
    from pywasi._invoke import InvokeError, format_results, parse_arguments, signature

    exports = instance.exports
    name = "" if opts.invoke is None else opts.invoke
    target = exports.get(name)
    if target is not None and not isinstance(target, Function):
        raise Failure(f"{opts.module}: its export {name!r} is not a function", EXIT_USAGE)
    if target is not None:
        try:  # the arguments are checked before anything runs
            params, results = signature(name, target.wasmtime_func.type(instance.store))
            values = parse_arguments(name, params, opts.args)
        except InvokeError as e:
            raise Failure(str(e), EXIT_USAGE) from None
    elif opts.invoke is not None:
        raise Failure(f"{opts.module} has no function export named {name!r}", EXIT_USAGE)
    if "memory" not in exports and not uses_wasi:
        # A module of pure computation: nothing for WASI to bind to (so no
        # time limit either: instance.call's needs a WASI to stop it).
        if opts.timeout is not None:
            raise UsageError("-W timeout needs a module that uses WASI or exports its memory")
    else:
        wasi.finalize_bindings(instance)  # --invoke on a command: bound, _start not run
    # As wasmtime's -W timeout: one deadline for _initialize and the export
    # together, each call stopped wherever it is at the deadline.
    deadline = None if opts.timeout is None else time.monotonic() + opts.timeout
    if "_start" not in exports and "_initialize" in exports:
        _bounded_call(instance, "_initialize", (), deadline, opts.timeout)
    if target is None:
        raise Failure(f"{opts.module} is a reactor (exports _initialize, no _start and no "
                      f'default export ""): _initialize ran, nothing else to run '
                      f"(call an export with --invoke NAME)")
    out = format_results(results, _bounded_call(instance, name, values, deadline, opts.timeout))
    sys.stdout.write(out)
    sys.stdout.flush()
    return 0


def _bounded_call(instance: Any, name: str, args: Sequence[Any], deadline: float | None,
                  timeout: float | None) -> Any:
    """``instance.call(name, *args)`` within what is left before ``deadline``
    (``time.monotonic()``; -W timeout's ``timeout`` seconds from the start)."""
    from pywasi import LimitExceeded
    from pywasi._threads import duration

    if deadline is None or timeout is None:
        return instance.call(name, *args)
    left = deadline - time.monotonic()
    try:
        if left > 0:
            return instance.call(name, *args, timeout=left)
    except LimitExceeded as e:
        if e.limit != "timeout":
            raise
    # Named as the user gave it, not by what was left of it for this call.
    raise LimitExceeded("timeout", f"time limit of {duration(timeout)} reached") from None


def new_wasi(opts: RunOptions, version: str, trace: Any,
             sockets: Callable[[], list[Any]] = list, **more: Any) -> Any:
    """The WASI of the options (args, env, preopens, limits, determinism),
    a flag's bad value as a usage ``Failure``."""
    import pywasi
    env = dict(os.environ) if opts.inherit_env else {}
    env.update(opts.env)
    try:
        return pywasi.WASI(version=version, args=[opts.module, *opts.args], env=env,
                           preopens=dict((guest, _preopen(host, mode))
                                         for host, guest, mode in opts.dirs),
                           sockets=sockets(), max_open_files=opts.max_open_files,
                           max_output=opts.max_output, trace=trace,
                           deterministic=opts.deterministic, random=opts.seed, **more)
    except (pywasi.PywasiError, ValueError, TypeError) as e:  # a flag's value
        raise Failure(str(e), EXIT_USAGE) from None
    except OSError as e:
        raise Failure(str(e.strerror or e)) from None


def _open_trace(opts: RunOptions) -> tuple[Any, Any]:
    """--trace: the trace and the file it writes. On stderr it is this
    process's own (a duplicate of fd 2, unbuffered: each line is one write,
    in order with the guest's writes to its stderr), never the guest's fd 2,
    which the guest may close or redirect; a FILE is buffered, closed at
    the end."""
    from pywasi import Trace
    assert opts.trace is not None
    if opts.trace == "-":
        out: Any = os.fdopen(os.dup(2), "wb", buffering=0)
    else:
        try:
            out = open(opts.trace, "wb")
        except OSError as e:
            raise Failure(f"cannot write the trace to {opts.trace!r}: {e.strerror or e}",
                          EXIT_USAGE) from None
    try:
        return Trace(out, calls=opts.trace_filter, format=opts.trace_format,
                     flush=opts.trace == "-"), out
    except ValueError as e:
        out.close()
        raise UsageError(f"--trace-filter: {e}") from None


def _close_trace(out: Any) -> None:
    try:
        out.close()
    except OSError as e:
        raise Failure(f"cannot write the trace: {e.strerror or e}") from None


def _check_entry_point(exports: Any, name: str, module: str) -> None:
    """The WASI application ABI's entry points are functions [] -> []:
    anything else is the module's mistake, said before it runs."""
    from pywasi._engine import Function, type_text

    if name not in exports:
        return
    entry = exports[name]
    if isinstance(entry, Function):
        ty = entry.wasmtime_func.type(entry._owner.store)
        if not ty.params and not ty.results:
            return
        shown = type_text(ty)
    else:
        shown = f"a {type(entry).__name__.lower()}"
    raise Failure(f"{module}: its {name} export is {shown}, not a function [] -> []")


def compile_command(argv: Sequence[str]) -> int:
    """``pywasi compile MODULE [-o OUT]``: write wasmtime's serialized form of
    MODULE (as ``wasmtime compile`` does)."""
    module_path = output = None
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("-h", "--help"):
            return _print_help()
        if arg in ("-o", "--output") or arg.startswith("--output="):
            output, i = _take_value(argv, i, "--output" if arg.startswith("--output") else arg)
        elif arg.startswith("-o") and len(arg) > 2:
            output, i = arg[2:], i + 1
        elif arg.startswith("-") and arg != "-":
            raise UsageError(f"unknown option {arg!r} for compile (see pywasi --help)")
        elif module_path is None:
            module_path, i = arg, i + 1
        else:
            raise UsageError(f"compile takes one MODULE, got also {arg!r}")
    if module_path is None:
        raise UsageError("no MODULE given")
    if not output:
        output = os.path.splitext(module_path)[0] + ".cwasm"
    module = _compile(module_path, cache=True, allow_precompiled=False)
    from pywasi._cache import write_atomic
    try:
        write_atomic(output, module.wasmtime_module.serialize())
    except OSError as e:
        raise Failure(f"cannot write {output!r}: {e.strerror or e}") from None
    return 0


def _inherited_sockets() -> list[Any]:
    """--listenfd. NOTE: systemd's protocol (sd_listen_fds(3)): LISTEN_FDS=n
    names fds 3..3+n-1, and LISTEN_PID, when set, must be this process (else
    the variables were meant for a parent). Without LISTEN_FDS, fd 3 is taken,
    as wasmtime's --listenfd does when the variables are absent."""
    import socket
    count_text = os.environ.get("LISTEN_FDS")
    pid_text = os.environ.get("LISTEN_PID")
    if count_text is not None and (pid_text is None or pid_text == str(os.getpid())):
        if not count_text.isdigit():
            raise ValueError(f"--listenfd: LISTEN_FDS={count_text!r} is not a number")
        fds = range(3, 3 + int(count_text))
    else:
        fds = range(3, 4)
    sockets = []
    for fd in fds:
        try:
            sock = socket.socket(fileno=fd)
        except OSError as e:
            raise ValueError(f"--listenfd: fd {fd} is not a socket ({e.strerror})") from None
        sockets.append(sock)
    return sockets


def _report_ephemeral_ports(wasi: Any, requested: list[str]) -> None:
    # The guest cannot learn its own address (preview1 has no getsockname),
    # so a port the system chose is told to whoever started us, on stderr.
    ephemeral = {value for value in requested if value.endswith(":0")}
    if not ephemeral:
        return
    for fd, address in wasi.sockets.items():
        if isinstance(address, tuple) and len(address) >= 2:
            host, port = address[0], address[1]
            shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
            sys.stderr.write(f"pywasi: fd {fd} listening on {shown}\n")
    sys.stderr.flush()


def main(argv: Sequence[str] | None = None) -> int:
    """The command: its status; every failure written here, as one line."""
    from pywasi import _cache
    # The cache's warnings are lines of the command while it runs (and
    # warnings again for whoever called main in a process that goes on).
    previous = _cache.report_warnings(_warning_line)
    try:
        return _command(list(sys.argv[1:] if argv is None else argv))
    except UsageError as e:
        hint = "" if "--help" in e.message else " (see pywasi --help)"
        return _error(e.message + hint, e.status)
    except Failure as e:
        return _error(e.message, e.status)
    except KeyboardInterrupt:
        return 130
    except SystemExit:
        raise
    except BaseException as e:  # an exception no stage expected: a bug
        return _internal_error(e)
    finally:
        _cache.report_warnings(previous)


def _command(argv: list[str]) -> int:
    if not argv:
        sys.stderr.write(USAGE)
        return EXIT_USAGE
    if argv[0] in ("-h", "--help"):
        return _print_help()
    if argv[0] in ("-V", "--version"):
        from pywasi import __version__
        sys.stdout.write(f"pywasi {__version__}\n")
        return 0
    if argv[0] == "compile":
        return compile_command(argv[1:])
    if argv[0] == "wizer":
        from pywasi._wizer_cli import wizer_command  # only for this subcommand: start-up
        return wizer_command(argv[1:])
    if argv[0] == "run":
        opts = parse_run(argv[1:])
    elif argv[0].startswith("-"):
        raise UsageError(f"unknown option {argv[0]!r} (see pywasi --help)")
    else:
        # `pywasi MODULE ...` as `wasmtime MODULE ...`.
        opts = parse_run(argv)
    from . import _lean
    try:   # a cache hit of a plain command: no wasmtime-py (see _lean); None: the full route
        status = _lean.run(opts, lambda version: new_wasi(opts, version, None))
    except _lean.LeanTrap as e:   # worded as run()'s below
        if e.stage == "linking":
            raise Failure(f"cannot instantiate {opts.module}: {e.message}") from None
        separator = ":\n" if e.stage == "running" else ": "
        raise Failure(f"error while {e.stage} {opts.module}{separator}{e.message}",
                      EXIT_TRAP) from None
    return run(opts) if status is None else status


def command() -> int:
    """The ``pywasi`` command and ``python -m pywasi``: ``main`` in a process
    of its own, which ends right after (never returns)."""
    status = main()
    _end_process(status)
    return status  # pragma: no cover - _end_process does not return


def _end_process(status: int) -> None:
    """End the process as ``os._exit(status)``, after what the interpreter's
    exit would do that matters here.

    Why: the interpreter's teardown frees every object left one by one --
    wasmtime-py's thousands of ctypes prototypes, and wasmtime's module,
    store and memory mappings, which the kernel drops at exit anyway. That
    is ~14 ms of a hello world and ~30 ms after a cold CPython compile.

    What is kept: non-daemon threads are joined (the cache's entry writer,
    see ``_cache.wait_for_writes``), atexit handlers run, and sys.stdout and
    sys.stderr are flushed. Nothing the guest wrote is in a Python buffer:
    its output and files went straight to host fds. Only ``__del__`` of
    objects still alive is skipped."""
    # Only threads started through ``threading`` can be joined; a run that
    # never imported it (pywasi._lean's) started none.
    threading = sys.modules.get("threading")
    main_thread = threading.main_thread() if threading is not None else None
    try:
        for thread in threading.enumerate() if threading is not None else ():
            if thread is not main_thread and not thread.daemon:
                thread.join()
    except KeyboardInterrupt:  # Ctrl-C while waiting: as during the run
        status = 130
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed or broken pipe: nothing left to say
            pass
    os._exit(status)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(command())
