"""The compiled extension ``pywasi._accel`` (``_accel.c``) as the rest of the
package reaches it: the module, or None where it was not built (no C
compiler at install time) or where ``PYWASI_ACCEL=0`` asks for the
pure-Python code everywhere (the host-call trampoline, its fast paths and the
resolver's host syscalls alike)."""

from __future__ import annotations

import os

# Annotation-only names: mypy takes any TYPE_CHECKING as true, and run time
# never imports typing (nor the re it pulls in: start-up, tests/test_import_cost.py).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["ACCEL"]


def _load() -> Any:
    if os.environ.get("PYWASI_ACCEL") == "0":
        return None
    try:
        from . import _accel
    except ImportError:
        return None
    return _accel


ACCEL: Any = _load()
