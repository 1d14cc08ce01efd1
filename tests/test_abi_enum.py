"""``_abi._enum``: the ABI's enums and flag sets behave at run time as the
standard library's ``IntEnum``/``IntFlag`` of the same members (what mypy
checks them as). Each ABI class is compared, expression by expression, with a
twin built by ``enum`` from its members."""

from __future__ import annotations

import copy
import enum
import pickle
import sys
import warnings
from typing import Any

import pytest

from pywasi._abi import WITX_TYPES, Errno, Fdflags, Rights, Siflags, Whence
from pywasi._abi._enum import IntFlag

CLASSES = {"errno": Errno, **WITX_TYPES}

# Evaluated with C the class and m0, m1 its first members.
EXPRESSIONS = [
    "repr(C)", "C.__name__", "len(C)", "list(C)", "list(reversed(C))", "dict(C.__members__)",
    "repr(m0)", "str(m0)", "f'{m1}'", "format(m1, '>4')", "'%d %s' % (m1, m1)", "m1.name", "m1.value",
    "type(m1.value).__name__", "int(m1)", "hash(m1) == hash(int(m1))", "m1 == int(m1)", "m0 < m1",
    "m1 + 1", "type(m1 + 1).__name__", "-m1", "C[m1.name] is m1", "C(int(m1)) is m1", "C(m1) is m1",
    "m1 in C", "repr(max(C))", "repr(sorted(C, reverse=True))", "isinstance(m1, int)",
    "pickle.loads(pickle.dumps(m1)) is m1", "copy.copy(m1) is m1", "copy.deepcopy(m1) is m1",
    "{m1: 'x'}[int(m1)]", "bool(m0)", "m1.__class__.__name__",
    # operators: a flag set keeps its type, an enum gives ints
    "repr(m0 | m1)", "repr(m0 & m1)", "repr(m0 ^ m1)", "repr(m1 | 64)", "repr(64 | m1)",
    "repr(m1 & 0xFF)", "repr(0xFF & m1)", "repr(~m1)", "repr(~(m0 | m1))", "(m0 | m1).name",
    "repr(C(int(m0) | int(m1)) is (m0 | m1))",
]
# Evaluated with C the class and v a value (known, composite, unknown, negative).
BY_VALUE = ["repr(C(v))", "C(v).name", "str(C(v))", "repr(~C(v))", "list(C(v))", "len(C(v))",
            "m1 in C(v)"]
VALUES = [0, 1, 2, 3, 5, 7, 8, 30, 31, 32, 63, 64, 65, 76, 77, 0xFFFF, (1 << 30) - 1, 1 << 30,
          1 << 40, -1, -2, -3, -32, -33, "1", None, 1.0]


def _twin(cls: Any) -> Any:
    base = enum.IntFlag if issubclass(cls, IntFlag) else enum.IntEnum
    return base(cls.__name__, [(m.name, int(m)) for m in cls])


def _outcome(expr: str, scope: dict[str, Any]) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            return repr(eval(expr, {"pickle": pickle, "copy": copy}, scope))
        except Exception as e:
            return f"{type(e).__name__}: {e}"


def _scope(cls: Any, **extra: object) -> dict[str, Any]:
    members = list(cls)
    return {"C": cls, "m0": members[0] if members else None,
            "m1": members[1] if len(members) > 1 else members[0] if members else None, **extra}


@pytest.mark.skipif(sys.version_info < (3, 11), reason="3.10's enum has the str() and composite "
                    "names 3.11 changed; _abi._enum follows 3.11 (and 3.12, 3.13) everywhere")
@pytest.mark.parametrize("witx", sorted(CLASSES))
def test_behaves_as_the_standard_library(witx: str) -> None:
    ours = CLASSES[witx]
    twin = _twin(ours)
    # A twin's members pickle by its name, which is not importable: compare the rest.
    exprs = [e for e in EXPRESSIONS if "pickle" not in e] if len(ours) else ["repr(C)", "len(C)", "list(C)"]
    for expr in exprs:
        assert _outcome(expr, _scope(ours)) == _outcome(expr, _scope(twin)), expr
    for v in VALUES if len(ours) else [0, 1]:
        for expr in BY_VALUE:
            assert _outcome(expr, _scope(ours, v=v)) == _outcome(expr, _scope(twin, v=v)), (expr, v)


def test_members_are_singletons_across_pickle() -> None:
    for cls in CLASSES.values():
        for member in cls:
            assert pickle.loads(pickle.dumps(member)) is member
    both = Rights.FD_READ | Rights.FD_WRITE
    assert pickle.loads(pickle.dumps(both)) is both
    assert copy.deepcopy({Errno.BADF: [Whence.END]}) == {Errno.BADF: [Whence.END]}


def test_the_uses_in_pywasi() -> None:
    assert Errno(8) is Errno.BADF and Errno.BADF.name == "BADF" and str(Errno.BADF) == "8"
    with pytest.raises(ValueError, match="999 is not a valid Errno"):
        Errno(999)
    assert Whence[Whence.END.name] is Whence.END
    flags = Fdflags.APPEND | Fdflags.NONBLOCK
    assert type(flags) is Fdflags and flags.name == "APPEND|NONBLOCK" and flags == 5
    assert 0b100000 & ~flags == 0  # 3.11: ~ keeps only defined bits when there is no unknown one
    assert Fdflags.APPEND in flags and Fdflags.SYNC not in flags
    assert len(Siflags) == 0 and list(Siflags) == []
    with pytest.raises(TypeError):
        Siflags(0)
