"""The preview1 (and wasi_unstable) ABI, declared once: enums, flags, struct
layouts and function signatures. Nothing here does I/O."""

from ._errno import Errno, errno_from_host
from ._layout import (
    CIOVEC,
    DIRENT,
    EVENT,
    FDSTAT,
    FILESTAT,
    FILESTAT_UNSTABLE,
    IOVEC,
    PRESTAT,
    SUBSCRIPTION_CLOCK,
    SUBSCRIPTION_CLOCK_UNSTABLE,
    SUBSCRIPTION_FD_READWRITE,
    SUBSCRIPTION_FD_READWRITE_UNSTABLE,
    Layout,
)
from ._signatures import PREVIEW1, UNSTABLE, Signature
from ._types import (
    Advice,
    Clockid,
    Eventrwflags,
    Eventtype,
    Fdflags,
    Filetype,
    Fstflags,
    Lookupflags,
    Oflags,
    Preopentype,
    Riflags,
    Rights,
    Roflags,
    Sdflags,
    Siflags,
    Signal,
    Subclockflags,
    Whence,
    WhenceUnstable,
    WITX_TYPES,
)

__all__ = [
    "Errno", "errno_from_host",
    # _types
    "Advice", "Clockid", "Eventrwflags", "Eventtype", "Fdflags", "Filetype",
    "Fstflags", "Lookupflags", "Oflags", "Preopentype", "Riflags", "Rights",
    "Roflags", "Sdflags", "Siflags", "Signal", "Subclockflags", "Whence",
    "WhenceUnstable", "WITX_TYPES",
    # _layout
    "Layout", "IOVEC", "CIOVEC", "FDSTAT", "FILESTAT", "FILESTAT_UNSTABLE",
    "DIRENT", "PRESTAT", "EVENT", "SUBSCRIPTION_CLOCK", "SUBSCRIPTION_FD_READWRITE",
    "SUBSCRIPTION_CLOCK_UNSTABLE", "SUBSCRIPTION_FD_READWRITE_UNSTABLE",
    # _signatures
    "Signature", "PREVIEW1", "UNSTABLE",
]
