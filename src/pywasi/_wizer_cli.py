"""``pywasi wizer [OPTIONS] [-o OUT] IN [ARGS...]``: ``preinitialize`` from
the command line, with ``wasmtime wizer``'s flag names (``-f/--init-func``,
``-o/--output``, ``-r/--rename-func``, ``--keep-init-func``) and ``pywasi
run``'s for the WASI the init runs under (``--dir`` of any kind, ``--env``,
``--inherit-env``, ``--deterministic``, ``--seed``, ``--trace*``).

Imported only when the subcommand runs (``cli._command``): ``pywasi run``
never loads it, nor ``_preinit`` and ``_wasm`` behind it. Failures are
``cli.Failure``s, one line each: ``cli.main`` writes them.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from .cli import EXIT_USAGE, Failure, RunOptions, UsageError, _open_trace, _close_trace, \
    _take_value, new_wasi, parse_run

__all__ = ["wizer_command"]


class WizerOptions:
    def __init__(self) -> None:
        self.init = "wizer.initialize"
        self.output: str | None = None
        self.renames: dict[str, str] = {}
        self.keep_init = False
        self.unknown_imports_trap = False


def _wizer_flag(wizer: WizerOptions, argv: Sequence[str], i: int) -> int | None:
    """One of wizer's own flags at ``argv[i]``: the index after it, or None."""
    arg = argv[i]
    if arg.startswith("-W"):
        # wasmtime's -W unknown-imports-trap=y: imports nobody provides trap
        # when called. Other -W items are run's (and refused below).
        value, after = (arg[2:], i + 1) if len(arg) > 2 else _take_value(argv, i, "-W")
        items = [item.partition("=") for item in value.split(",")]
        if not all(name == "unknown-imports-trap" for name, _, _ in items):
            return None
        for _, _, flag in items:
            if flag not in ("", "y", "n", "true", "false"):
                raise UsageError(f"-W unknown-imports-trap={flag}: expected y or n")
            wizer.unknown_imports_trap = flag in ("", "y", "true")
        return after
    if arg in ("-f", "--init-func") or arg.startswith("--init-func="):
        wizer.init, i = _take_value(argv, i, "--init-func" if arg.startswith("--") else arg)
        if not wizer.init:
            raise UsageError("--init-func needs a function name")
        return i
    if arg in ("-o", "--output") or arg.startswith("--output="):
        wizer.output, i = _take_value(argv, i, "--output" if arg.startswith("--") else arg)
        return i
    if arg in ("-r", "--rename-func") or arg.startswith("--rename-func="):
        value, i = _take_value(argv, i, "--rename-func" if arg.startswith("--") else arg)
        dst, sep, src = value.partition("=")
        if not sep or not dst or not src:
            raise UsageError(f"--rename-func {value!r}: expected DST=SRC")
        if dst in wizer.renames or src in wizer.renames.values():
            raise UsageError(f"--rename-func {value!r}: {dst} or {src} is renamed twice")
        wizer.renames[dst] = src
        return i
    if arg == "--keep-init-func" or arg.startswith("--keep-init-func="):
        value = arg.partition("=")[2] or "true"
        if value not in ("true", "false"):
            raise UsageError(f"--keep-init-func={value}: expected true or false")
        wizer.keep_init = value == "true"
        return i + 1
    return None


def parse_wizer(argv: Sequence[str]) -> tuple[RunOptions, WizerOptions]:
    wizer = WizerOptions()
    opts = parse_run(argv, lambda args, i: _wizer_flag(wizer, args, i))
    refused = [flag for flag, given in (
        ("-W timeout", opts.timeout is not None), ("-W fuel", opts.fuel is not None),
        ("--tcplisten", bool(opts.tcplisten)), ("--listenfd", opts.listenfd),
        ("--allow-precompiled", opts.allow_precompiled),
        ("-W max-memory-size", opts.max_memory is not None),
        ("-W max-wasm-stack", opts.max_wasm_stack is not None),
        ("--invoke", opts.invoke is not None)) if given]
    if refused:
        raise UsageError(f"{refused[0]} is not an option of wizer")
    return opts, wizer


def wizer_command(argv: Sequence[str]) -> int:
    opts, wizer = parse_wizer(argv)
    from ._preinit import PreinitError, _Layout, _read_source, _wasi_version, preinitialize
    try:
        wasm = _read_source(opts.module)
        version = _wasi_version(_Layout.read(wasm, wizer.init))
    except PreinitError as e:
        raise Failure(f"cannot pre-initialise {opts.module}: {e}") from None
    trace, trace_file = _open_trace(opts) if opts.trace is not None else (None, None)
    # Without -o the module goes to stdout: the init's own output goes to stderr.
    wasi = new_wasi(opts, version, trace, stdout=1 if wizer.output else 2)
    try:
        try:
            result = preinitialize(wasm, init=wizer.init, wasi=wasi,
                                   keep_init_func=wizer.keep_init, rename_funcs=wizer.renames,
                                   unknown_imports_trap=wizer.unknown_imports_trap,
                                   cache=None if opts.cache else False)
        except PreinitError as e:
            raise Failure(f"cannot pre-initialise {opts.module}: {e}") from None
    finally:
        wasi.close()
        if trace_file is not None:
            _close_trace(trace_file)
    if wizer.output is None:
        sys.stdout.flush()
        sys.stdout.buffer.write(result)
        sys.stdout.flush()
        return 0
    from ._cache import write_atomic
    try:
        write_atomic(wizer.output, result)
    except OSError as e:
        raise Failure(f"cannot write {wizer.output!r}: {e.strerror or e}", EXIT_USAGE) from None
    return 0
