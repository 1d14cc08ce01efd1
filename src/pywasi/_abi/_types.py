"""The preview1 enums and flag sets, with the spec's names and values.

Source: WebAssembly/WASI legacy/preview1/witx/typenames.witx. A witx ``enum``
numbers its cases densely from 0; a witx ``flags`` gives case *n* the bit
``1 << n``. Members are the spec's case names, upper case. wasi_unstable
(legacy/preview0/witx/typenames.witx) shares every type here except
``whence`` (reordered: ``WhenceUnstable``) and ``rights`` (it has no
``sock_accept`` bit, which preview1 added as bit 29).
"""

from __future__ import annotations

# mypy checks these classes against the real enum (it takes any TYPE_CHECKING
# as true); run time builds them with ``_enum``'s lighter twins (start-up).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from enum import IntEnum, IntFlag
else:
    from ._enum import IntEnum, IntFlag

__all__ = [
    "Clockid", "Whence", "WhenceUnstable", "Filetype", "Advice", "Fdflags",
    "Fstflags", "Lookupflags", "Oflags", "Rights", "Eventtype", "Eventrwflags",
    "Subclockflags", "Riflags", "Roflags", "Siflags", "Sdflags", "Preopentype",
    "Signal", "WITX_TYPES",
]


class Clockid(IntEnum):
    """``$clockid`` (tag u32)."""

    REALTIME = 0
    MONOTONIC = 1
    PROCESS_CPUTIME_ID = 2
    THREAD_CPUTIME_ID = 3


class Whence(IntEnum):
    """``$whence`` (tag u8), preview1 order."""

    SET = 0
    CUR = 1
    END = 2


class WhenceUnstable(IntEnum):
    """``$whence`` of wasi_unstable (snapshot 0): the same cases, another order."""

    CUR = 0
    END = 1
    SET = 2


class Filetype(IntEnum):
    """``$filetype`` (tag u8)."""

    UNKNOWN = 0
    BLOCK_DEVICE = 1
    CHARACTER_DEVICE = 2
    DIRECTORY = 3
    REGULAR_FILE = 4
    SOCKET_DGRAM = 5
    SOCKET_STREAM = 6
    SYMBOLIC_LINK = 7


class Advice(IntEnum):
    """``$advice`` (tag u8)."""

    NORMAL = 0
    SEQUENTIAL = 1
    RANDOM = 2
    WILLNEED = 3
    DONTNEED = 4
    NOREUSE = 5


class Fdflags(IntFlag):
    """``$fdflags`` (repr u16)."""

    APPEND = 1 << 0
    DSYNC = 1 << 1
    NONBLOCK = 1 << 2
    RSYNC = 1 << 3
    SYNC = 1 << 4


class Fstflags(IntFlag):
    """``$fstflags`` (repr u16)."""

    ATIM = 1 << 0
    ATIM_NOW = 1 << 1
    MTIM = 1 << 2
    MTIM_NOW = 1 << 3


class Lookupflags(IntFlag):
    """``$lookupflags`` (repr u32)."""

    SYMLINK_FOLLOW = 1 << 0


class Oflags(IntFlag):
    """``$oflags`` (repr u16)."""

    CREAT = 1 << 0
    DIRECTORY = 1 << 1
    EXCL = 1 << 2
    TRUNC = 1 << 3


class Rights(IntFlag):
    """``$rights`` (repr u64), in the spec's bit order."""

    FD_DATASYNC = 1 << 0
    FD_READ = 1 << 1
    FD_SEEK = 1 << 2
    FD_FDSTAT_SET_FLAGS = 1 << 3
    FD_SYNC = 1 << 4
    FD_TELL = 1 << 5
    FD_WRITE = 1 << 6
    FD_ADVISE = 1 << 7
    FD_ALLOCATE = 1 << 8
    PATH_CREATE_DIRECTORY = 1 << 9
    PATH_CREATE_FILE = 1 << 10
    PATH_LINK_SOURCE = 1 << 11
    PATH_LINK_TARGET = 1 << 12
    PATH_OPEN = 1 << 13
    FD_READDIR = 1 << 14
    PATH_READLINK = 1 << 15
    PATH_RENAME_SOURCE = 1 << 16
    PATH_RENAME_TARGET = 1 << 17
    PATH_FILESTAT_GET = 1 << 18
    PATH_FILESTAT_SET_SIZE = 1 << 19
    PATH_FILESTAT_SET_TIMES = 1 << 20
    FD_FILESTAT_GET = 1 << 21
    FD_FILESTAT_SET_SIZE = 1 << 22
    FD_FILESTAT_SET_TIMES = 1 << 23
    PATH_SYMLINK = 1 << 24
    PATH_REMOVE_DIRECTORY = 1 << 25
    PATH_UNLINK_FILE = 1 << 26
    POLL_FD_READWRITE = 1 << 27
    SOCK_SHUTDOWN = 1 << 28
    # preview1 only; wasi_unstable's rights end at SOCK_SHUTDOWN.
    SOCK_ACCEPT = 1 << 29


class Eventtype(IntEnum):
    """``$eventtype`` (tag u8)."""

    CLOCK = 0
    FD_READ = 1
    FD_WRITE = 2


class Eventrwflags(IntFlag):
    """``$eventrwflags`` (repr u16)."""

    FD_READWRITE_HANGUP = 1 << 0


class Subclockflags(IntFlag):
    """``$subclockflags`` (repr u16)."""

    SUBSCRIPTION_CLOCK_ABSTIME = 1 << 0


class Riflags(IntFlag):
    """``$riflags`` (repr u16)."""

    RECV_PEEK = 1 << 0
    RECV_WAITALL = 1 << 1


class Roflags(IntFlag):
    """``$roflags`` (repr u16)."""

    RECV_DATA_TRUNCATED = 1 << 0


class Siflags(IntFlag):
    """``$siflags``: the spec declares it a bare ``u16`` with no flags defined
    ("it must be set to zero"), so this set is empty."""


class Sdflags(IntFlag):
    """``$sdflags`` (repr u8)."""

    RD = 1 << 0
    WR = 1 << 1


class Preopentype(IntEnum):
    """``$preopentype`` (tag u8)."""

    DIR = 0


class Signal(IntEnum):
    """``$signal`` (tag u8). ``NONE`` is reserved (POSIX ``kill(pid, 0)``)."""

    NONE = 0
    HUP = 1
    INT = 2
    QUIT = 3
    ILL = 4
    TRAP = 5
    ABRT = 6
    BUS = 7
    FPE = 8
    KILL = 9
    USR1 = 10
    SEGV = 11
    USR2 = 12
    PIPE = 13
    ALRM = 14
    TERM = 15
    CHLD = 16
    CONT = 17
    STOP = 18
    TSTP = 19
    TTIN = 20
    TTOU = 21
    URG = 22
    XCPU = 23
    XFSZ = 24
    VTALRM = 25
    PROF = 26
    WINCH = 27
    POLL = 28
    PWR = 29
    SYS = 30


# The witx name of each enum and flag set above: what decodes a call's
# arguments by their witx types (the trace) looks them up here. wasi_unstable
# has its own ``whence`` (``WhenceUnstable``).
WITX_TYPES: dict[str, type[IntEnum] | type[IntFlag]] = {
    "clockid": Clockid, "whence": Whence, "filetype": Filetype, "advice": Advice,
    "fdflags": Fdflags, "fstflags": Fstflags, "lookupflags": Lookupflags, "oflags": Oflags,
    "rights": Rights, "eventtype": Eventtype, "eventrwflags": Eventrwflags,
    "subclockflags": Subclockflags, "riflags": Riflags, "roflags": Roflags, "siflags": Siflags,
    "sdflags": Sdflags, "preopentype": Preopentype, "signal": Signal,
}
