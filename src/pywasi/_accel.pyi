# Stub of the compiled extension (_accel.c), for mypy --strict.
from collections.abc import Callable, Sequence

TRAMPOLINE: int  # wasm_trap_t *(void *env, void *caller, wasmtime_val_raw_t *, size_t)
FINALIZER: int   # void (void *env)

def setup(trap_new_address: int | None, /) -> None: ...

class MemoryCell:
    threads: bool  # a wasi-threads program is running (Context.set_cancel_fd)
    def set(self, address: int, size: int, /) -> None: ...

def new_env(impl: Callable[..., None], params: Sequence[str], has_result: bool,
            outcome: Callable[[BaseException], int | str],
            fast: tuple[str, MemoryCell, object] | None, /) -> int: ...
