"""``IntEnum`` and ``IntFlag`` as the ABI's types use them, without ``enum``.

Importing ``enum`` and building the ABI's twenty classes with it cost ~6 ms
of wall time at every ``pywasi run`` start-up (2026-12-08, shared 2-core VM:
the WASI layer's modules imported alone, medians of 21 interleaved runs, 45.7
ms with enum, 39.3 ms with these; ``import pywasi._abi`` 29.6 -> 20.7 ms).
mypy checks the ABI against the real ``enum`` (``_errno``/``_types`` import
these names only when not TYPE_CHECKING), so what is kept here is the
run-time behaviour of CPython 3.11's classes (3.12's and 3.13's are the same
here; 3.10's str() and composite names differ, and these follow 3.11 there
too) that pywasi and its users reach:

* a member is an ``int`` (hash, equality, arithmetic, ``str()`` and
  ``format()`` as the int's) with ``name`` and ``value``; ``repr`` is
  ``<Errno.BADF: 8>``; members are singletons (``Errno(8) is Errno.BADF``,
  also through pickle and copy);
* the class: ``Errno(8)`` (``ValueError`` for a value it lacks),
  ``Errno["BADF"]``, iteration in definition order, ``len``, ``in`` (a
  plain int answers as in 3.12; 3.11 raises TypeError), ``__members__``;
* a flag set: ``|``, ``&``, ``^`` with a member or an int give a member of
  the set (a composite for several bits, named ``"A|B"``, unknown bits kept
  and named by their number); ``~`` complements within the defined bits
  (and any unknown ones); ``Flag(value)`` accepts any int (3.11's KEEP
  boundary); ``flag in flags`` and iterating a composite give its defined
  bits.

Not kept: aliases, ``auto()``, methods or non-int values in a class body,
``_missing_`` hooks, functional creation -- the ABI uses none of them.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping
    from typing import Any

__all__ = ["IntEnum", "IntFlag"]


class _EnumType(type):
    """Turns a class body's ``NAME = int`` lines into members of the class."""

    _member_map_: dict[str, Any]
    _value2member_map_: dict[int, Any]
    _flag_mask_: int

    def __new__(mcls, name: str, bases: tuple[type, ...], namespace: dict[str, Any]) -> _EnumType:
        values = {key: value for key, value in namespace.items()
                  if not key.startswith("_") and isinstance(value, int)}
        for key in values:
            del namespace[key]
        cls = super().__new__(mcls, name, bases, namespace)
        cls._member_map_ = {}
        cls._value2member_map_ = {}
        mask = 0
        for key, value in values.items():
            member: Any = int.__new__(cls, value)  # type: ignore[arg-type]
            member._name_ = key
            member._value_ = value
            setattr(cls, key, member)
            cls._member_map_[key] = member
            cls._value2member_map_.setdefault(value, member)
            mask |= value
        cls._flag_mask_ = mask
        return cls

    def __call__(cls, value: object) -> Any:
        try:
            return cls._value2member_map_[value]  # type: ignore[index]
        except (KeyError, TypeError):
            pass
        if not cls._member_map_:
            raise TypeError(f"{cls!r} has no members defined")
        return cls._missing_(value)

    def _missing_(cls, value: object) -> Any:
        raise ValueError(f"{value!r} is not a valid {cls.__qualname__}")

    def __getitem__(cls, name: str) -> Any:
        return cls._member_map_[name]

    def __iter__(cls) -> Iterator[Any]:
        return iter(cls._member_map_.values())

    def __reversed__(cls) -> Iterator[Any]:
        return reversed(cls._member_map_.values())

    def __len__(cls) -> int:
        return len(cls._member_map_)

    def __contains__(cls, value: object) -> bool:
        if isinstance(value, cls):
            return value.name in cls._member_map_
        return value in cls._value2member_map_

    @property
    def __members__(cls) -> Mapping[str, Any]:
        from types import MappingProxyType
        return MappingProxyType(cls._member_map_)

    def __repr__(cls) -> str:
        kind = "flag" if issubclass(cls, IntFlag) else "enum"
        return f"<{kind} {cls.__name__!r}>"


class IntEnum(int, metaclass=_EnumType):
    """A member is its value, an int, with a ``name``."""

    _name_: str | None
    _value_: int

    @property
    def name(self) -> str | None:
        try:
            return self._name_
        except AttributeError:  # a flag composite, named on first use (start-up)
            self._name_ = type(self)._compose_name_(self._value_)  # type: ignore[attr-defined]
            return self._name_

    @property
    def value(self) -> int:
        return self._value_

    def __repr__(self) -> str:
        cls, name = type(self).__name__, self.name
        if name is None:
            return f"<{cls}: {self._value_}>"
        return f"<{cls}.{name}: {self._value_}>"

    # As 3.11's IntEnum (ReprEnum): str() and format() are the int's.
    __str__ = int.__repr__
    __format__ = int.__format__

    def __reduce_ex__(self, protocol: object) -> tuple[Any, ...]:
        return type(self), (self._value_,)

    def __copy__(self) -> IntEnum:
        return self

    def __deepcopy__(self, memo: object) -> IntEnum:
        return self


class IntFlag(IntEnum):
    """A set of bits; what the operators make of members stays a member."""

    @classmethod
    def _missing_(cls, value: object) -> Any:
        if not isinstance(value, int):
            raise ValueError(f"{value!r} is not a valid {cls.__qualname__}")
        if value < 0:  # as 3.11's KEEP boundary: two's complement, as wide as the
            mask = cls._flag_mask_  # defined bits (or the number, when wider)
            all_bits = (1 << mask.bit_length()) - 1
            if value < ~all_bits or value & (all_bits ^ mask):
                value += max(all_bits + 1, 1 << value.bit_length())
            if value < 0:
                value += all_bits + 1
        pseudo = cls._value2member_map_.get(value)
        if pseudo is None:
            pseudo = int.__new__(cls, value)
            pseudo._value_ = value  # its name: ``name``, when asked
            pseudo = cls._value2member_map_.setdefault(value, pseudo)
        return pseudo

    @classmethod
    def _compose_name_(cls, value: int) -> str | None:
        names = [m._name_ for m in cls if m._value_ & value]
        unknown = value & ~cls._flag_mask_
        if unknown and names:
            names.append(str(unknown))
        return "|".join(names) or None

    def __or__(self, other: object) -> Any:
        if not isinstance(other, int):
            return NotImplemented
        return type(self)(self._value_ | int(other))

    def __and__(self, other: object) -> Any:
        if not isinstance(other, int):
            return NotImplemented
        return type(self)(self._value_ & int(other))

    def __xor__(self, other: object) -> Any:
        if not isinstance(other, int):
            return NotImplemented
        return type(self)(self._value_ ^ int(other))

    __ror__ = __or__
    __rand__ = __and__
    __rxor__ = __xor__

    def __invert__(self) -> Any:
        return type(self)(~self._value_)

    def __contains__(self, other: object) -> bool:
        if not isinstance(other, type(self)):
            raise TypeError(f"unsupported operand type(s) for 'in': {type(other).__qualname__!r} "
                            f"and {type(self).__qualname__!r}")
        return other._value_ & self._value_ == other._value_

    def __iter__(self) -> Iterator[Any]:
        return (m for m in type(self) if m._value_ & self._value_)

    def __len__(self) -> int:
        return self._value_.bit_count()  # as 3.11: unknown bits count too
