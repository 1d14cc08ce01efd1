"""The preview1 ``errno`` enum and the one table that maps host errors onto it.

Values are the spec's (WebAssembly/WASI legacy/preview1/witx/typenames.witx,
``$errno``, a dense enum from 0 to 76); wasi_unstable numbers them the same way.
"""

from __future__ import annotations

import errno as _host

# mypy checks these classes against the real enum (it takes any TYPE_CHECKING
# as true); run time builds them with ``_enum``'s lighter twins (start-up).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from enum import IntEnum
else:
    from ._enum import IntEnum

__all__ = ["Errno", "errno_from_host"]


class Errno(IntEnum):
    """``$errno``. ``TOOBIG`` is the spec's ``2big`` (not a Python identifier)."""

    SUCCESS = 0
    TOOBIG = 1
    ACCES = 2
    ADDRINUSE = 3
    ADDRNOTAVAIL = 4
    AFNOSUPPORT = 5
    AGAIN = 6
    ALREADY = 7
    BADF = 8
    BADMSG = 9
    BUSY = 10
    CANCELED = 11
    CHILD = 12
    CONNABORTED = 13
    CONNREFUSED = 14
    CONNRESET = 15
    DEADLK = 16
    DESTADDRREQ = 17
    DOM = 18
    DQUOT = 19
    EXIST = 20
    FAULT = 21
    FBIG = 22
    HOSTUNREACH = 23
    IDRM = 24
    ILSEQ = 25
    INPROGRESS = 26
    INTR = 27
    INVAL = 28
    IO = 29
    ISCONN = 30
    ISDIR = 31
    LOOP = 32
    MFILE = 33
    MLINK = 34
    MSGSIZE = 35
    MULTIHOP = 36
    NAMETOOLONG = 37
    NETDOWN = 38
    NETRESET = 39
    NETUNREACH = 40
    NFILE = 41
    NOBUFS = 42
    NODEV = 43
    NOENT = 44
    NOEXEC = 45
    NOLCK = 46
    NOLINK = 47
    NOMEM = 48
    NOMSG = 49
    NOPROTOOPT = 50
    NOSPC = 51
    NOSYS = 52
    NOTCONN = 53
    NOTDIR = 54
    NOTEMPTY = 55
    NOTRECOVERABLE = 56
    NOTSOCK = 57
    NOTSUP = 58
    NOTTY = 59
    NXIO = 60
    OVERFLOW = 61
    OWNERDEAD = 62
    PERM = 63
    PIPE = 64
    PROTO = 65
    PROTONOSUPPORT = 66
    PROTOTYPE = 67
    RANGE = 68
    ROFS = 69
    SPIPE = 70
    SRCH = 71
    STALE = 72
    TIMEDOUT = 73
    TXTBSY = 74
    XDEV = 75
    NOTCAPABLE = 76


def _build_host_table() -> dict[int, Errno]:
    table: dict[int, Errno] = {}
    for member in Errno:
        name = "E2BIG" if member is Errno.TOOBIG else "E" + member.name
        code = getattr(_host, name, None)
        if code is not None:
            table[code] = member
    # Host spellings the spec folds into one value.
    for alias, member in (("EWOULDBLOCK", Errno.AGAIN), ("EOPNOTSUPP", Errno.NOTSUP),
                          ("ENOTSUP", Errno.NOTSUP), ("EDEADLOCK", Errno.DEADLK)):
        code = getattr(_host, alias, None)
        if code is not None:
            table.setdefault(code, member)
    return table


_HOST_TO_WASI = _build_host_table()


def errno_from_host(code: int | None) -> Errno:
    """The WASI errno for a host ``errno`` value; ``IO`` for one WASI has no name for."""
    if code is None:
        return Errno.IO
    return _HOST_TO_WASI.get(code, Errno.IO)
