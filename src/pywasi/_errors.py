"""The exceptions a syscall raises; the dispatcher (``_dispatch``) is the only
place that turns them into an errno, a trap or the end of the program.

Invariant: a syscall either returns normally (``SUCCESS``), raises
``WasiError`` (its errno goes back to the guest), raises ``OSError`` (mapped
through ``errno_from_host``), raises ``GuestFault`` (the guest handed us a bad
pointer: a trap) or raises ``ProcExit``. Anything else is a bug in pywasi and
also becomes a trap, with a message that says so, never a crash of the host.
"""

from __future__ import annotations

from ._abi._errno import Errno

# Annotation-only names: mypy takes any TYPE_CHECKING as true, and run time
# never imports typing (nor the re it pulls in: start-up, tests/test_import_cost.py).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["PywasiError", "Trap", "LimitExceeded", "WasiExit", "WasiError", "GuestFault", "ProcExit",
           "CompatibilityWarning", "STOPPED_MESSAGE"]


# The trap message of a wasm thread, or a blocking call, that the end of a
# wasi-threads program stops (``_engine``'s store switch and the syscalls
# that wait). A plain string here: the syscalls must not import ``_engine``
# (wasmtime) at start-up.
STOPPED_MESSAGE = "wasm thread stopped: the program is ending"


class PywasiError(Exception):
    """Root of the errors pywasi raises to its Python callers."""


class Trap(PywasiError):
    """The guest trapped (``WebAssembly.RuntimeError``); the message is the
    engine's, or the host call's that trapped."""


class LimitExceeded(Trap):
    """A limit stopped the guest (or, for "memory", kept it from starting):
    ``limit`` is "timeout", "cancelled", "fuel", "output" or "memory"; the
    message names the limit ("time limit of 2s reached"). A cancel is one
    more limit, not a class of its own: a run stopped from outside ends as
    one stopped by its deadline, through the same ending (``_cancel``)."""

    def __init__(self, limit: str, message: str) -> None:
        super().__init__(message)
        self.limit = limit

    def __reduce__(self) -> tuple[Any, ...]:
        # Exceptions unpickle by calling the class with ``args`` (here the
        # message alone): the fields go back through the constructor.
        return type(self), (self.limit, str(self)), self.__dict__


class WasiExit(PywasiError):
    """The guest called ``proc_exit`` inside an export called from Python
    (``start()`` turns this into its return value instead)."""

    def __init__(self, code: int) -> None:
        super().__init__(f"the program exited with code {code}")
        self.code = code

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.code,), self.__dict__


class CompatibilityWarning(RuntimeWarning):
    """The loaded wasmtime-py lacks, or declares differently, a private
    binding pywasi's fast routes use: pywasi runs on the public route there
    (slower, never wrong). Said once, at the first compile or instantiate."""


class WasiError(Exception):
    """A syscall failed with ``errno``; the guest sees that value."""

    __slots__ = ("errno",)

    def __init__(self, errno: Errno, detail: str = "") -> None:
        super().__init__(detail or errno.name)
        self.errno = errno


class GuestFault(Exception):
    """The guest passed something it cannot have meant (a pointer out of
    bounds, a length that overflows): the call traps with this message."""


class ProcExit(BaseException):
    """``proc_exit``: unwinds the guest. A BaseException so that no
    ``except Exception`` in a user's callback can swallow it."""

    __slots__ = ("code",)

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code
