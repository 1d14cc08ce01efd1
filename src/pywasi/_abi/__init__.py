"""The preview1 (and wasi_unstable) ABI, declared once: enums, flags, struct
layouts and function signatures. Nothing here does I/O."""

from ._errno import Errno, errno_from_host

__all__ = ["Errno", "errno_from_host"]
