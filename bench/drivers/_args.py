"""The command line every bench driver shares (the wasm runners' common shape):

    DRIVER [--dir HOST::GUEST]... [--argv0 NAME] [--exceptions] [--cache DIR] MODULE [ARGS...]

``--exceptions`` turns on wasm exception handling in engines we configure
(wasmtime); ``--cache DIR`` keeps compiled modules in DIR (wasmtime's
serialized form, as pywasi's own cache and yowasp-runtime do). A runner that
has no such thing ignores the option.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Options:
    module: str = ""
    args: list[str] = field(default_factory=list)
    dirs: list[tuple[str, str]] = field(default_factory=list)  # (host, guest)
    argv0: str | None = None
    exceptions: bool = False
    cache: str | None = None


def parse(argv: list[str]) -> Options:
    opts = Options()
    i = 0
    while i < len(argv) and argv[i].startswith("--"):
        flag = argv[i]
        if flag == "--dir":
            host, _, guest = argv[i + 1].partition("::")
            opts.dirs.append((host, guest or host))
            i += 2
        elif flag == "--argv0":
            opts.argv0 = argv[i + 1]
            i += 2
        elif flag == "--cache":
            opts.cache = argv[i + 1]
            i += 2
        elif flag == "--exceptions":
            opts.exceptions = True
            i += 1
        elif flag == "--":
            i += 1
            break
        else:
            raise SystemExit(f"unknown option {flag}")
    opts.module = argv[i]
    opts.args = argv[i + 1:]
    return opts
