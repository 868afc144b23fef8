"""The value model of the query language: kinds (the ``$is`` names) and flume equality.

Values are what msgpack stores (None, bool, int, float, str, bytes, list, dict) plus
:data:`~flume.keys.MISSING` for a path that does not exist. As in :mod:`flume.keys`, tuples
count as lists and bytearray as bytes, so a value means the same thing to a filter
as to an index key.

Equality is *flume equality*: numbers by value (``1 == 1.0``, NaN equal to itself), ``True``
never equal to ``1``, containers element by element. Every predicate here is compiled once per
query into a closure, so records are never dispatched on the rule's shape.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from flume import keys
from flume.errors import EncodeError, QueryError
from flume.keys import MISSING
from flume.query.paths import at

__all__ = [
    "BYTES_TYPES",
    "KIND_NAMES",
    "LIST_TYPES",
    "Matcher",
    "check_value",
    "compile_equals",
    "compile_is",
    "flume_less",
    "is_array",
    "is_bytes",
    "is_number",
    "is_string",
    "kind_of",
]

Matcher = Callable[[Any], bool]
"""A compiled predicate over one value (MISSING included)."""

KIND_NAMES: Final = ("null", "boolean", "number", "string", "bytes", "array", "object", "undefined")
"""The ``$is`` names, in flume order; also the kinds :func:`flume.keys.type_range` knows."""

BYTES_TYPES: Final = (bytes, bytearray)
LIST_TYPES: Final = (list, tuple)


def is_number(v: Any) -> bool:
    """True for an int or float, False for bools (True is not a number) and everything else."""
    return isinstance(v, (int, float)) and v is not True and v is not False


def kind_of(v: Any) -> str:
    """The ``$is`` name of a value's kind (``"undefined"`` for MISSING).

    Raises:
        QueryError: ``v`` is of no storable kind.
    """
    if v is None:
        return "null"
    if v is True or v is False:
        return "boolean"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, BYTES_TYPES):
        return "bytes"
    if isinstance(v, LIST_TYPES):
        return "array"
    if isinstance(v, dict):
        return "object"
    if v is MISSING:
        return "undefined"
    raise QueryError(f"{type(v).__name__} is not a value a query can hold ({v!r:.60})")


def check_value(v: Any, position: str) -> None:
    """Check that a literal in a query is a storable value, nested at will.

    Raises:
        QueryError: at ``position`` (or inside it) something is not None, bool, int, float,
            str, bytes, list or dict.
    """
    if v is None or isinstance(v, (bool, int, float, str, *BYTES_TYPES)):
        return
    if isinstance(v, LIST_TYPES):
        for i, item in enumerate(v):
            check_value(item, at(position, i))
        return
    if isinstance(v, dict):
        for k, item in v.items():
            check_value(k, position)
            check_value(item, at(position, k))
        return
    raise QueryError(
        f"{type(v).__name__} is not a value a query can hold ({v!r:.60}); use None, bool, int, "
        "float, str, bytes, list or dict",
        position,
    )


# --- equality ----------------------------------------------------------------------------------


def _is_none(v: Any) -> bool:
    return v is None


def _is_true(v: Any) -> bool:
    return v is True


def _is_false(v: Any) -> bool:
    return v is False


def _is_nan(v: Any) -> bool:
    return isinstance(v, float) and v != v


def compile_equals(x: Any, position: str) -> Matcher:
    """A predicate true for the values flume-equal to ``x`` (never for MISSING).

    Raises:
        QueryError: ``x`` (or something inside it) is not a storable value.
    """
    check_value(x, position)
    return _equals(x)


def _equals(x: Any) -> Matcher:
    if x is None:
        return _is_none
    if x is True:
        return _is_true
    if x is False:
        return _is_false
    if isinstance(x, float) and x != x:
        return _is_nan
    if isinstance(x, (int, float)):
        number = x

        def equals_number(v: Any) -> bool:
            # `==` already compares ints with floats exactly; only bools need excluding.
            equal: bool = v == number and v is not True and v is not False
            return equal

        return equals_number
    if isinstance(x, str):
        text = x

        def equals_str(v: Any) -> bool:
            equal: bool = v == text  # str.__eq__ is False for every non-str
            return equal

        return equals_str
    if isinstance(x, BYTES_TYPES):
        data = bytes(x)

        def equals_bytes(v: Any) -> bool:
            return isinstance(v, BYTES_TYPES) and v == data

        return equals_bytes
    if isinstance(x, LIST_TYPES):
        return _equals_list([_equals(item) for item in x])
    # A dict: flume equality of dicts is the equality of their canonical encodings (items
    # sorted by key, numbers by value), which sidesteps Python's `True == 1` for dict keys.
    encoded = keys.encode(x)

    def equals_dict(v: Any) -> bool:
        if not isinstance(v, dict) or len(v) != len(x):
            return False
        try:
            return keys.encode(v) == encoded
        except EncodeError:
            return False

    return equals_dict


def _equals_list(items: list[Matcher]) -> Matcher:
    n = len(items)
    if n == 0:

        def equals_empty(v: Any) -> bool:
            return isinstance(v, LIST_TYPES) and not v

        return equals_empty
    if n == 1:
        (first,) = items

        def equals_one(v: Any) -> bool:
            return isinstance(v, LIST_TYPES) and len(v) == 1 and first(v[0])

        return equals_one
    pairs = tuple(enumerate(items))

    def equals_list(v: Any) -> bool:
        if not isinstance(v, LIST_TYPES) or len(v) != n:
            return False
        for i, item in pairs:
            if not item(v[i]):
                return False
        return True

    return equals_list


# --- kinds -------------------------------------------------------------------------------------


def _is_boolean(v: Any) -> bool:
    return v is True or v is False


def is_string(v: Any) -> bool:
    return isinstance(v, str)


def is_bytes(v: Any) -> bool:
    return isinstance(v, BYTES_TYPES)


def is_array(v: Any) -> bool:
    return isinstance(v, LIST_TYPES)


def _is_object(v: Any) -> bool:
    return isinstance(v, dict)


def _is_undefined(v: Any) -> bool:
    return v is MISSING


_KIND_MATCHERS: Final[dict[str, Matcher]] = {
    "null": _is_none,
    "boolean": _is_boolean,
    "number": is_number,
    "string": is_string,
    "bytes": is_bytes,
    "array": is_array,
    "object": _is_object,
    "undefined": _is_undefined,
}


def compile_is(name: Any, position: str) -> Matcher:
    """The predicate of ``{"$is": name}``.

    Raises:
        QueryError: ``name`` is not one of :data:`KIND_NAMES`.
    """
    if not isinstance(name, str) or name not in _KIND_MATCHERS:
        raise QueryError(f"$is takes one of {', '.join(KIND_NAMES)}, not {name!r:.60}", position)
    return _KIND_MATCHERS[name]


# --- order -------------------------------------------------------------------------------------


def flume_less(a: Any, b: Any) -> bool:
    """``a < b`` in flume order (MISSING sorts last).

    Numbers and strings, by far the commonest, compare natively; anything else compares by its
    key encoding, which is flume order by construction.
    """
    ta = a.__class__
    tb = b.__class__
    if (ta is int or ta is float) and (tb is int or tb is float) and a == a and b == b:
        return bool(a < b)
    if ta is str and tb is str:
        return bool(a < b)
    return keys.encode(a) < keys.encode(b)
