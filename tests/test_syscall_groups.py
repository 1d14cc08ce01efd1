"""The syscalls' groups are imported as a run needs them
(``pywasi._syscalls.GROUPS``): the table says exactly what each group's
class defines, and a WASI loads a group only when one of its calls is
linked or called."""

from __future__ import annotations

import importlib
import subprocess
import sys

from pywasi._syscalls import GROUPS, UNIMPLEMENTED, Syscalls
from pywasi._syscalls._context import Context


def test_the_table_is_what_each_group_defines() -> None:
    seen: set[str] = set()
    for group, class_name, names in GROUPS:
        cls = getattr(importlib.import_module(f"pywasi._syscalls.{group}"), class_name)
        assert issubclass(cls, Context)
        defined = {name for name in vars(cls) if not name.startswith("__")}
        assert set(names) == defined, group
        assert not seen & defined, f"{group} defines a name another group does too"
        seen |= defined
    assert not {name for name in vars(Context) if not name.startswith("__")} & seen
    assert UNIMPLEMENTED == frozenset()


def test_a_name_outside_the_groups_is_an_attribute_error() -> None:
    ctx = Syscalls(args=[], environ=[], fds=None, unstable=False)  # type: ignore[arg-type]
    try:
        ctx.no_such_call  # noqa: B018
    except AttributeError as e:
        assert "no_such_call" in str(e)
    else:
        raise AssertionError("no AttributeError")


_CHILD = """
import sys
import pywasi
wasi = pywasi.WASI(version="preview1")
before = {m for m in sys.modules if m.startswith("pywasi._syscalls.")}
wasi.wasi_import["fd_write"].impl
after = {m for m in sys.modules if m.startswith("pywasi._syscalls.")}
print(sorted(before), sorted(after - before))
"""


def test_a_group_is_imported_when_its_call_is_first_used() -> None:
    out = subprocess.run([sys.executable, "-c", _CHILD], capture_output=True, text=True,
                         check=True, timeout=120).stdout
    assert out.strip() == "['pywasi._syscalls._context'] ['pywasi._syscalls.fd']"
