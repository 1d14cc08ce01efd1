"""args_get, args_sizes_get, environ_get, environ_sizes_get."""

from __future__ import annotations

from ._context import Context

__all__ = ["ArgsEnvCalls"]


def _write_list(ctx: Context, items: list[bytes], pointers: int, buf: int) -> None:
    """Write NUL-terminated strings at ``buf`` and their addresses at
    ``pointers``, as the guest sized them with the *_sizes_get call."""
    mem = ctx.memory
    mem.slice(pointers, 4 * len(items))  # bounds first: no partial output
    mem.slice(buf, sum(len(i) for i in items))
    offset = buf
    for i, item in enumerate(items):
        mem.store_u32(pointers + 4 * i, offset)
        mem.write_bytes(offset, item)
        offset += len(item)


class ArgsEnvCalls(Context):
    def args_get(self, argv: int, argv_buf: int) -> None:
        _write_list(self, self.args, argv, argv_buf)

    def args_sizes_get(self, argc_ptr: int, argv_buf_size_ptr: int) -> None:
        self.memory.store_u32(argc_ptr, len(self.args))
        self.memory.store_u32(argv_buf_size_ptr, sum(len(a) for a in self.args))

    def environ_get(self, environ: int, environ_buf: int) -> None:
        _write_list(self, self.environ, environ, environ_buf)

    def environ_sizes_get(self, environc_ptr: int, environ_buf_size_ptr: int) -> None:
        self.memory.store_u32(environc_ptr, len(self.environ))
        self.memory.store_u32(environ_buf_size_ptr, sum(len(e) for e in self.environ))
