"""The state every syscall group shares. Each group is a mixin over this
class, so a syscall is a bound method and the dispatcher calls it directly."""

from __future__ import annotations

from .._dispatch import HostState
from .._errors import GuestFault
from .._fdtable import FdTable
from .._memory import GuestMemory

__all__ = ["Context", "UnboundMemory"]


class UnboundMemory:
    """Stands in for guest memory until ``finalize_bindings``: any access is a
    trap that says what is missing, rather than an AttributeError."""

    def __getattr__(self, name: str) -> object:
        raise GuestFault("WASI is not bound to a memory yet: call start(), initialize() "
                         "or finalize_bindings() with the instance first")


class Context(HostState):
    memory: GuestMemory
    fds: FdTable
    args: list[bytes]      # each NUL-terminated, UTF-8
    environ: list[bytes]   # "KEY=VALUE\0", UTF-8
    unstable: bool         # wasi_unstable ABI (snapshot 0)

    def __init__(self, *, args: list[bytes], environ: list[bytes], fds: FdTable,
                 unstable: bool) -> None:
        self.args = args
        self.environ = environ
        self.fds = fds
        self.unstable = unstable
        self.memory = UnboundMemory()  # type: ignore[assignment]
