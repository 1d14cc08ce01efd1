"""The dispatcher: the one place where a syscall's outcome becomes an errno,
a trap or the end of the program.

For each function of the ABI it builds a ``HostFunction``: a Python callable
(the public route, and what tests and the trace call) that also hands the
engine what its raw routes need: the syscall (``impl``) and ``outcome``, for
the compiled trampoline (``_accel.c``), or a ctypes callback
(``raw_callback``). Every route follows these rules, and both raw routes
classify a syscall's exception with the one method ``outcome``:

- arguments are masked to the spec's unsigned types (wasmtime passes i32 and
  i64 to Python *signed*: a pointer 0xFFFFFFF0 would arrive as -16 and a
  negative index silently reads from the end of a memoryview);
- the syscall returns normally → SUCCESS; ``WasiError`` → its errno;
  ``OSError`` → ``errno_from_host``; ``GuestFault`` → a trap whose message
  names the call; ``ProcExit`` → the exit code is recorded on the host and
  the guest unwinds with a trap; any other ``Exception`` is a pywasi bug and
  traps with a message saying so; ``KeyboardInterrupt``/``SystemExit`` are
  recorded and re-raised once the guest has unwound.
No exception ever leaves the raw callback (ctypes would report it as
success and wasmtime would read a garbage result).
"""

from __future__ import annotations

import ctypes
import struct
import _thread

from ._abi import Errno, Signature, errno_from_host
from ._errors import GuestFault, LimitExceeded, ProcExit, WasiError

# The engine's ctypes callback route is imported where it is used: the
# compiled trampoline (``_accel``) needs none of it, and ``pywasi run``'s
# lean route (``_lean``) does not import the engine.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

__all__ = ["HostFunction", "HostState", "errno_of"]

_RESULT = struct.Struct("<I")
# The raw array holds one 16-byte wasmtime_val_raw_t per argument; an i32
# argument is its low 4 bytes, an i64 its low 8 (little-endian).
_SLOT = {"i32": "I12x", "i64": "Q8x"}


def errno_of(error: BaseException) -> int | None:
    """The errno a syscall's exception answers the guest with; None when it
    answers none (a fault, proc_exit, a bug, an interrupt: the call traps)."""
    if isinstance(error, WasiError):
        return int(error.errno)
    if isinstance(error, OSError):
        return int(errno_from_host(error.errno))
    return None


class _Pending(_thread._local):  # threading.local, without importing threading
    exit_code: int | None = None
    interrupt: BaseException | None = None


class HostState:
    """What the dispatcher records for the code that bound it (WASI):
    a pending exit code and a pending interrupt, per thread (and, with the
    compiled accelerator, the C-side copy of the bound memory's bounds). With
    wasi-threads every thread unwinds from its own host call and then asks
    for the outcome (``Instance._outcome``); one shared field would let a
    thread that traps at the same time take another's exit code (and that
    one then report a trap), or two exits overwrite each other."""

    # wasi-threads' `thread-spawn` for this host (``_threads.ThreadSpawn``),
    # which ``instantiate`` links when a module imports it.
    thread_spawn: Any = None
    memory_cell: Any = None  # an _accel.MemoryCell, made by the first fast_path()
    # WASI(max_output=): the ``_fs._output.OutputBudget`` stdout and stderr
    # share (not imported here: start-up).
    output_budget: Any = None

    def __init__(self) -> None:
        self._pending = _Pending()

    @property
    def exit_code(self) -> int | None:
        return self._pending.exit_code

    @exit_code.setter
    def exit_code(self, code: int | None) -> None:
        self._pending.exit_code = code

    @property
    def interrupt(self) -> BaseException | None:
        return self._pending.interrupt

    @interrupt.setter
    def interrupt(self, exc: BaseException | None) -> None:
        self._pending.interrupt = exc

    def take_exit(self) -> int | None:
        code, self.exit_code = self.exit_code, None
        return code

    def take_interrupt(self) -> BaseException | None:
        exc, self.interrupt = self.interrupt, None
        return exc

    def limit_reached(self) -> LimitExceeded | None:
        """The limit a trap was the doing of: the output limit, once a write
        passed it (the write trapped, the guest unwound)."""
        budget = self.output_budget
        if budget is not None and budget.exceeded:
            return LimitExceeded("output", budget.message())
        return None


class HostFunction:
    """One WASI function: ``name(*params) -> results``, bound to a syscall."""

    __slots__ = ("name", "params", "results", "signature", "_impl", "wasi_host", "_raw")

    def __init__(self, signature: Signature, impl: Callable[..., None] | str,
                 host: HostState) -> None:
        """``impl``: the syscall, or the name of the host's method that is
        (looked up on first use: the syscalls' groups are imported as a run
        needs them, ``_syscalls.Syscalls``)."""
        self.signature = signature
        self.name = signature.name
        self.params = signature.param_types
        self.results = signature.results
        self._impl = impl
        self.wasi_host = host
        self._raw: Any = None

    @property
    def impl(self) -> Callable[..., None]:
        impl = self._impl
        if isinstance(impl, str):
            impl = self._impl = getattr(self.wasi_host, impl)
        return impl

    def __repr__(self) -> str:
        return f"<WASI host function {self.name}{self.signature.param_names}>"

    # -- the public route ------------------------------------------------
    def __call__(self, *args: int) -> int | None:
        """Call the syscall with Python ints (as wasm would). Returns the
        errno; raises ``GuestFault`` for a bad pointer and ``ProcExit`` for
        proc_exit, as a trap would end the guest."""
        if len(args) != len(self.params):
            raise TypeError(f"{self.name} takes {len(self.params)} arguments, got {len(args)}")
        masked = [a & (0xFFFFFFFF if t == "i32" else 0xFFFFFFFFFFFFFFFF)
                  for a, t in zip(args, self.params)]
        try:
            self.impl(*masked)
        except (WasiError, OSError) as e:
            return errno_of(e)
        except ProcExit as e:
            self.wasi_host.exit_code = e.code
            raise
        if self.results:
            return 0
        return None

    # -- the raw routes --------------------------------------------------
    def outcome(self, error: BaseException) -> int | str:
        """What the syscall's exception means for the guest: the errno to
        return (an int), or the message of the trap that ends the call."""
        errno = errno_of(error)
        if errno is None:
            return self.trap_message(error)
        if self.results:
            return errno
        return f"{self.name}: failed with errno {Errno(errno).name}"

    def trap_message(self, error: BaseException) -> str:
        """The trap for an exception that answers no errno (``errno_of``)."""
        if isinstance(error, GuestFault):
            return f"{self.name}: {error}"
        if isinstance(error, ProcExit):
            self.wasi_host.exit_code = error.code
            return f"exit with code {error.code}"
        if isinstance(error, Exception):  # a bug in pywasi: trap, never crash the host
            return f"pywasi internal error in {self.name}: {type(error).__name__}: {error}"
        # KeyboardInterrupt, SystemExit from a user callback
        self.wasi_host.interrupt = error
        return f"{self.name}: interrupted ({type(error).__name__})"

    def fast_path(self, accel: Any) -> tuple[str, Any, Any] | None:
        """For ``accel.new_env``: this call's name, the memory cell its C
        fast path (if it has one) may write and what else that path needs
        (the syscall group's ``<name>_accel()``), when ``impl`` is the
        syscall of that name (not wasi_unstable's replacement, not a test's
        stand-in, not the trace's wrapper: a traced call takes the Python
        route, so the trace sees it)."""
        if getattr(self.impl, "__name__", None) != self.name:
            return None
        host = self.wasi_host
        if host.memory_cell is None:
            host.memory_cell = accel.MemoryCell()
        extra = getattr(host, self.name + "_accel", None)
        return self.name, host.memory_cell, extra() if extra is not None else None

    def raw_callback(self) -> Any:
        from ._engine import RAW_CALLBACK
        if self._raw is None:
            self._raw = RAW_CALLBACK(_make_raw(self.params, bool(self.results), self.impl,
                                               self.outcome))
        return self._raw


def _make_raw(params: tuple[str, ...], has_result: bool, impl: Callable[..., None],
              outcome: Callable[[BaseException], int | str]) -> Callable[[Any, Any, int, int], int]:
    from ._engine import trap_pointer
    unpack = struct.Struct("<" + "".join(_SLOT[t] for t in params)).unpack_from
    nslots = max(len(params), 1)
    pack = _RESULT.pack_into
    # wasmtime reuses the same argument array from call to call, so the view
    # over it is built once and rebuilt only when the address changes. The
    # address and its view are one tuple, swapped in one assignment: with
    # wasi-threads several threads run this callback (each with its own
    # array), and a thread switch between two separate assignments would
    # pair one thread's address with another's view.
    cache: tuple[int, memoryview] = (0, memoryview(bytearray(16 * nslots)))

    def callback(env: Any, caller: Any, address: int, count: int) -> int:
        nonlocal cache
        cached_address, view = cache
        try:
            if address != cached_address:
                view = memoryview((ctypes.c_char * (16 * nslots)).from_address(address)).cast("B")
                cache = (address, view)
            impl(*unpack(view))
            if has_result:
                pack(view, 0, 0)
            return 0
        except BaseException as e:
            answer = outcome(e)
            if isinstance(answer, str):
                return trap_pointer(answer)
            pack(view, 0, answer)
            return 0

    return callback
