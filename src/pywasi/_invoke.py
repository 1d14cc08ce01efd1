"""``pywasi run --invoke NAME [ARGS...]`` and a module's default export ``""``:
an export called with arguments from the command line, parsed by its
parameter types, its results printed one per line -- as the wasmtime CLI
does, so that the same command line gives the same output under both.

What wasmtime's CLI does (wasmtime 49, checked side by side): an ``i32`` or
``i64`` argument is a signed decimal (``+`` allowed) or ``0x`` and hex
digits, in the type's signed range; an ``f32``/``f64`` argument is a decimal
float (``.5``, ``1e3``, ``inf``, ``nan``; a value past the type's range is
infinity). Extra arguments are left to the program (they are its argv too).
Results: integers as signed decimals, floats as the shortest decimal that
reads back as the same value, written out without an exponent (``1e20`` is
``100000000000000000000``, an f32's 123456789 is ``123456790``), ``NaN``,
``inf``, ``-0``; references as ``<funcref>``, ``<null externref>``.

Only the command line imports this module (start-up: see tests/test_startup.py).
"""

from __future__ import annotations

import ctypes
import re
from collections.abc import Sequence
from typing import Any

__all__ = ["InvokeError", "signature", "parse_arguments", "format_results"]


class InvokeError(Exception):
    """An argument or an export that cannot be invoked: one line for the user."""


# wasmtime parses an integer as Rust's ``str::parse`` does (optional sign,
# ASCII digits) or, with a ``0x`` prefix, as hex digits.
_DECIMAL = re.compile(r"[+-]?[0-9]+\Z")
_HEX = re.compile(r"0x[0-9a-fA-F]+\Z")
# Rust's float grammar: no spaces or ``_`` (which Python's float() accepts),
# no hex floats.
_FLOAT = re.compile(r"[+-]?(inf|infinity|nan|([0-9]+\.?[0-9]*|\.[0-9]+)(e[+-]?[0-9]+)?)\Z",
                    re.IGNORECASE)
_BITS = {"i32": 32, "i64": 64}
_NUMBERS = ("i32", "i64", "f32", "f64")


def signature(name: str, ty: Any) -> tuple[list[str], list[str]]:
    """The export's parameter and result types as text; an ``InvokeError``
    for a parameter that cannot be given on the command line (a reference:
    nothing to spell it with)."""
    params, results = [str(t) for t in ty.params], [str(t) for t in ty.results]
    for i, t in enumerate(params):
        if t not in _NUMBERS:
            raise InvokeError(f"cannot invoke {_shown(name)}: its parameter {i + 1} is {t}, "
                              f"which cannot be given on the command line")
    # NOTE: no v128 here: wasmtime's C API aborts the process when asked the
    # type of a function that has one (wasmtime-py 50/51), before we see it.
    return params, results


def parse_arguments(name: str, params: Sequence[str], args: Sequence[str]) -> list[Any]:
    if len(args) < len(params):
        raise InvokeError(f"not enough arguments for {_shown(name)}: it takes {len(params)} "
                          f"({', '.join(params)}), {len(args)} given")
    return [_parse(name, i, t, text) for i, (t, text) in enumerate(zip(params, args))]


def _parse(name: str, index: int, ty: str, text: str) -> Any:
    where = f"argument {index + 1} of {_shown(name)} ({ty})"
    if ty in _BITS:
        bits = _BITS[ty]
        if _HEX.match(text):
            value = int(text[2:], 16)
        elif _DECIMAL.match(text):
            value = int(text)
        else:
            raise InvokeError(f"{where}: {text!r} is not an integer")
        if not -(1 << (bits - 1)) <= value < 1 << (bits - 1):
            raise InvokeError(f"{where}: {text} is out of range for a signed {bits}-bit integer")
        return value
    if not _FLOAT.match(text):
        raise InvokeError(f"{where}: {text!r} is not a number")
    number = float(text)
    # As Rust's f32 parse: past f32's range is infinity (struct would raise).
    return ctypes.c_float(number).value if ty == "f32" else number


def format_results(results: Sequence[str], values: Any) -> str:
    """What the command prints: one line per result."""
    if len(results) == 1:
        values = [values]
    elif not results:
        values = []
    return "".join(_format(t, v) + "\n" for t, v in zip(results, values))


def _format(ty: str, value: Any) -> str:
    if ty in _BITS:
        return str(value)
    if ty in ("f32", "f64"):
        return _float_text(float(value), ty)
    kind = "funcref" if "func" in ty else "externref"
    return f"<null {kind}>" if value is None else f"<{kind}>"


def _float_text(x: float, ty: str) -> str:
    if x != x:
        return "NaN"
    if x in (float("inf"), float("-inf")):
        return "inf" if x > 0 else "-inf"
    if ty == "f32":
        # The shortest decimal that reads back as the same f32.
        for digits in range(1, 10):
            short = f"{x:.{digits}g}"
            if ctypes.c_float(float(short)).value == x:
                break
    else:
        short = repr(x)
    from decimal import Decimal  # only for a float result
    text = format(Decimal(short), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def _shown(name: str) -> str:
    return "the default export \"\"" if name == "" else f"`{name}`"
