"""The command line every bench driver shares (the wasm runners' common shape):

    DRIVER [--dir HOST::GUEST]... [--argv0 NAME] [--exceptions] [--cache DIR] MODULE [ARGS...]

``--exceptions`` turns on wasm exception handling in engines we configure
(wasmtime); ``--cache DIR`` keeps compiled modules in DIR (wasmtime's
serialized form, as pywasi's own cache and yowasp-runtime do). A runner that
has no such thing ignores the option.
"""

from __future__ import annotations


class Options:
    # A plain class: a dataclass would import inspect, ~5 ms of every
    # driver's start-up, which START would then charge to the runtime.
    def __init__(self) -> None:
        self.module = ""
        self.args: list[str] = []
        self.dirs: list[tuple[str, str]] = []  # (host, guest)
        self.argv0: str | None = None
        self.exceptions = False
        self.cache: str | None = None


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
