"""``$filter`` rules: validation and compilation to one predicate per rule.

A rule compiles once into a tree of closures; running it on a record never looks at the rule
again. Besides the predicate, compilation records the rule's *leaves*: where the rule stops
walking plain dicts (a literal, a list rule, a dict of operators, or ``{}``), with the value path
it stands at. The planner reads index constraints and index coverage from the leaves.

Semantics (QUERY.md, ``$filter``), with the fixes over the JavaScript packages: ranges are
type-strict, equality is flume equality, a dict rule needs a dict, a list rule a list of the
same length, ``$not`` and ``$truthy`` honour their arguments, ``$is`` names Python kinds.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from flume import keys
from flume.errors import EncodeError, QueryError
from flume.keys import MISSING
from flume.query.paths import Path, at, is_operator
from flume.query.values import (
    BYTES_TYPES,
    LIST_TYPES,
    Matcher,
    check_value,
    compile_equals,
    compile_is,
    is_array,
    is_bytes,
    is_number,
    is_string,
)

__all__ = [
    "RANGE_OPERATORS",
    "CompiledFilter",
    "Leaf",
    "compile_filter",
    "compile_filter_later",
    "is_literal",
]

RANGE_OPERATORS: Final = ("$gt", "$gte", "$lt", "$lte")
_OPERATORS: Final = frozenset(
    {*RANGE_OPERATORS, "$eq", "$ne", "$prefix", "$in", "$is", "$truthy", "$not"}
)


@dataclass(frozen=True, slots=True)
class Leaf:
    """Where a filter rule stops walking plain dicts.

    ``path`` is the value path of the rule (``()`` for a rule on the whole value), ``rule``
    the rule as written there, ``match`` its compiled predicate (applied to the value at
    ``path``), ``position`` its place in the query.
    """

    path: Path
    rule: Any
    match: Matcher
    position: str


@dataclass(frozen=True, slots=True)
class CompiledFilter:
    """A compiled ``$filter`` rule: ``match(value)`` and the leaves it is made of."""

    rule: Any
    match: Matcher
    leaves: tuple[Leaf, ...]


def compile_filter(rule: Any, position: str) -> CompiledFilter:
    """Validate and compile a ``$filter`` rule found at ``position`` in the query.

    Raises:
        QueryError: the rule or a part of it is malformed; ``path`` names that part.
    """
    leaves: list[Leaf] = []
    match = _compile(rule, position, (), leaves)
    return CompiledFilter(rule, match, tuple(leaves))


def compile_filter_later(rule: Any, position: str, like: tuple[Leaf, ...]) -> CompiledFilter:
    """``compile_filter(rule, position)`` for a rule of the same shape as one that compiled
    into the leaves ``like`` (:mod:`flume.query.shapes`): its leaves are at the same paths and
    positions, and every matcher compiles at its first call. A read whose key range already
    decides the filter never calls them, and compiling costs more than such a read's lookup.
    """
    leaves = []
    for leaf in like:
        at_path = rule
        for key in leaf.path:  # a leaf's path is the chain of dict keys down the rule
            at_path = at_path[key]
        leaves.append(Leaf(leaf.path, at_path, _later(at_path, leaf.position, None), leaf.position))
    return CompiledFilter(rule, _later(rule, position, ()), tuple(leaves))


def _later(rule: Any, position: str, path: Path | None) -> Matcher:
    compiled: Matcher | None = None

    def match(v: Any) -> bool:
        nonlocal compiled
        if compiled is None:
            compiled = _compile(rule, position, path, [] if path is not None else None)
        return compiled(v)

    return match


def is_literal(rule: Any) -> bool:
    """True when a filter rule is a plain equality: a scalar, or a list of such literals.

    (A dict inside a list rule is a dict *rule*, which ignores extra keys, so it is no literal.)
    """
    if rule is None or isinstance(rule, (bool, int, float, str, *BYTES_TYPES)):
        return True
    if isinstance(rule, LIST_TYPES):
        return all(is_literal(item) for item in rule)
    return False


def _compile(rule: Any, position: str, path: Path | None, leaves: list[Leaf] | None) -> Matcher:
    """Compile ``rule``; when ``path`` is given, record leaves (at value path ``path``)."""
    if isinstance(rule, dict):
        ops = [k for k in rule if is_operator(k)]
        if ops and len(ops) != len(rule):
            plain = [k for k in rule if not is_operator(k)]
            raise QueryError(
                f"a rule mixes operators ({', '.join(ops)}) with plain keys "
                f"({', '.join(map(repr, plain))}); put the operators under a key, or the keys "
                "in separate rules",
                position,
            )
        if ops:
            match = _compile_operators(rule, position)
        elif rule:
            return _compile_dict(rule, position, path, leaves)
        else:
            match = _is_dict  # `{}` matches any dict
    elif isinstance(rule, LIST_TYPES):
        match = _compile_list(rule, position)
    else:
        match = compile_equals(rule, position)  # scalars; anything else is refused there
    if path is not None and leaves is not None:
        leaves.append(Leaf(path, rule, match, position))
    return match


def _is_dict(v: Any) -> bool:
    return isinstance(v, dict)


def _compile_dict(
    rule: dict[Any, Any], position: str, path: Path | None, leaves: list[Leaf] | None
) -> Matcher:
    """``{"k": rule, ...}``: the value is a dict and each ``v[k]`` (maybe MISSING) matches."""
    # A chain of one-key dicts ({"value": {"content": {"type": "post"}}}) compiles to a single
    # walk down the keys instead of one closure per level: it is the most common filter shape.
    chain: list[Any] = []
    while isinstance(rule, dict) and len(rule) == 1:
        (key,) = rule
        if is_operator(key):
            break
        chain.append(key)
        position = at(position, key)
        if path is not None:
            path = (*path, key)
        rule = rule[key]
    if isinstance(rule, dict) and len(rule) > 1 and not any(map(is_operator, rule)):
        items = tuple(
            (key, _compile(sub, at(position, key), None if path is None else (*path, key), leaves))
            for key, sub in rule.items()
        )
        match = _all_keys(items)
    else:
        # Whatever the chain ends on (an operator dict, a literal, `{}`...) is a rule of its own.
        match = _compile(rule, position, path, leaves)
        if isinstance(rule, str) and chain:
            # The commonest filter of all ({"value": {"content": {"type": "post"}}}): compare
            # in the walk itself, one call per record (str == is False for every non-str).
            return _walk_to_str(tuple(chain), rule)
    return _walk(tuple(chain), match)


def _walk(chain: tuple[Any, ...], match: Matcher) -> Matcher:
    """Apply ``match`` to ``v[k1][k2]...``; every level must be a dict (the last may lack the
    key)."""
    if not chain:
        return match
    if len(chain) == 1:
        (k,) = chain

        def walk1(v: Any) -> bool:
            return isinstance(v, dict) and match(v.get(k, MISSING))

        return walk1
    if len(chain) == 2:
        k1, k2 = chain

        def walk2(v: Any) -> bool:
            if not isinstance(v, dict):
                return False
            v = v.get(k1, MISSING)
            return isinstance(v, dict) and match(v.get(k2, MISSING))

        return walk2

    def walk(v: Any) -> bool:
        for k in chain:
            if not isinstance(v, dict):
                return False
            v = v.get(k, MISSING)
        return match(v)

    return walk


def _walk_to_str(chain: tuple[Any, ...], text: str) -> Matcher:
    """``_walk(chain, equals(text))`` in one closure."""
    *parents, last = chain

    def walk_to_str(v: Any) -> bool:
        for k in parents:
            if not isinstance(v, dict):
                return False
            v = v.get(k, MISSING)
        if not isinstance(v, dict):
            return False
        equal: bool = v.get(last, MISSING) == text
        return equal

    return walk_to_str


def _all_keys(items: tuple[tuple[Any, Matcher], ...]) -> Matcher:
    """A dict whose every listed key's value matches its predicate."""

    def all_keys(v: Any) -> bool:
        if not isinstance(v, dict):
            return False
        get = v.get
        for k, match in items:
            if not match(get(k, MISSING)):
                return False
        return True

    return all_keys


def _compile_list(rule: Any, position: str) -> Matcher:
    """``[r0, r1, ...]``: a list of the same length, item ``i`` matching ``r_i``."""
    items = tuple(_compile(sub, at(position, i), None, None) for i, sub in enumerate(rule))
    n = len(items)
    pairs = tuple(enumerate(items))

    def list_rule(v: Any) -> bool:
        if not isinstance(v, LIST_TYPES) or len(v) != n:
            return False
        for i, match in pairs:
            if not match(v[i]):
                return False
        return True

    return list_rule


# --- operators ---------------------------------------------------------------------------------


def _compile_operators(rule: dict[str, Any], position: str) -> Matcher:
    """A dict of operators: every one must hold (ranges combine into one check)."""
    matchers: list[Matcher] = []
    bounds: list[tuple[str, Any]] = []
    for op, arg in rule.items():
        where = at(position, op)
        if op in RANGE_OPERATORS:
            bounds.append((op, arg))
        elif op == "$eq":
            matchers.append(compile_equals(arg, where))
        elif op == "$ne":
            matchers.append(_negate(compile_equals(arg, where)))
        elif op == "$prefix":
            matchers.append(_compile_prefix(arg, where))
        elif op == "$in":
            matchers.append(_compile_in(arg, where))
        elif op == "$is":
            matchers.append(compile_is(arg, where))
        elif op == "$truthy":
            if not isinstance(arg, bool):
                raise QueryError(f"$truthy takes true or false, not {arg!r:.60}", where)
            matchers.append(_truthy if arg else _falsy)
        elif op == "$not":
            matchers.append(_negate(_compile(arg, where, None, None)))
        else:
            raise QueryError(
                f"unknown filter operator {op}; expected one of {', '.join(sorted(_OPERATORS))}",
                where,
            )
    if bounds:
        matchers.insert(0, _compile_range(bounds, position))
    return _all_of(matchers)


def _all_of(matchers: list[Matcher]) -> Matcher:
    if len(matchers) == 1:
        return matchers[0]
    if len(matchers) == 2:
        a, b = matchers

        def both(v: Any) -> bool:
            return a(v) and b(v)

        return both
    chain = tuple(matchers)

    def every(v: Any) -> bool:
        for match in chain:
            if not match(v):
                return False
        return True

    return every


def _negate(match: Matcher) -> Matcher:
    def negated(v: Any) -> bool:
        return not match(v)

    return negated


def _truthy(v: Any) -> bool:
    return bool(v)  # MISSING is falsy


def _falsy(v: Any) -> bool:
    return not v


def _compile_prefix(p: Any, position: str) -> Matcher:
    """``$prefix``: a str/bytes that starts with ``p``, or a list whose first items equal ``p``."""
    if isinstance(p, str):

        def str_prefix(v: Any) -> bool:
            return isinstance(v, str) and v.startswith(p)

        return str_prefix
    if isinstance(p, BYTES_TYPES):
        data = bytes(p)

        def bytes_prefix(v: Any) -> bool:
            return isinstance(v, BYTES_TYPES) and v.startswith(data)

        return bytes_prefix
    if isinstance(p, LIST_TYPES):
        items = tuple(enumerate(compile_equals(x, at(position, i)) for i, x in enumerate(p)))
        n = len(items)

        def list_prefix(v: Any) -> bool:
            # An equal-length list matches too (JS wanted a strictly longer one).
            if not isinstance(v, LIST_TYPES) or len(v) < n:
                return False
            for i, equals in items:
                if not equals(v[i]):
                    return False
            return True

        return list_prefix
    raise QueryError(f"$prefix takes a str, bytes or list, not {p!r:.60}", position)


def _compile_in(options: Any, position: str) -> Matcher:
    """``$in``: flume-equal to one of the options (hash lookups for scalars)."""
    if not isinstance(options, LIST_TYPES):
        raise QueryError(f"$in takes a list of values, not {options!r:.60}", position)
    for i, x in enumerate(options):
        check_value(x, at(position, i))
    # str, bytes and (non-bool) numbers never compare equal across those kinds, and Python's
    # set lookup compares ints and floats by value, so one set serves them all. Bools, None,
    # NaN and containers are checked apart (True would otherwise find 1).
    scalars = frozenset(
        bytes(x) if isinstance(x, bytearray) else x
        for x in options
        if isinstance(x, (str, *BYTES_TYPES)) or (is_number(x) and x == x)
    )
    has_none = any(x is None for x in options)
    has_true = any(x is True for x in options)
    has_false = any(x is False for x in options)
    has_nan = any(isinstance(x, float) and x != x for x in options)
    containers = tuple(
        compile_equals(x, position) for x in options if isinstance(x, (*LIST_TYPES, dict))
    )

    def in_options(v: Any) -> bool:
        t = v.__class__
        if t is str or t is int or t is float or t is bytes:
            return v in scalars or (has_nan and v != v)
        if v is None:
            return has_none
        if v is True:
            return has_true
        if v is False:
            return has_false
        if isinstance(v, (*LIST_TYPES, dict)):
            for equals in containers:
                if equals(v):
                    return True
            return False
        if isinstance(v, bytearray):
            return bytes(v) in scalars
        if is_number(v) or isinstance(v, str):  # subclasses of int, float, str
            return v in scalars or (has_nan and v != v)
        return False

    return in_options


# --- ranges ------------------------------------------------------------------------------------

_RANGE_KINDS: Final = ("number", "string", "bytes", "array")


def _range_kind(bound: Any) -> str | None:
    if is_number(bound):
        return "number"
    if isinstance(bound, str):
        return "string"
    if isinstance(bound, BYTES_TYPES):
        return "bytes"
    if isinstance(bound, LIST_TYPES):
        return "array"
    return None


def range_kind(bounds: list[tuple[str, Any]], position: str) -> str:
    """The one kind (``$is`` name) of a set of range bounds.

    Raises:
        QueryError: a bound is no number, str, bytes or list, or bounds disagree on the kind.
    """
    kind: str | None = None
    for op, bound in bounds:
        k = _range_kind(bound)
        if k is None:
            raise QueryError(
                f"a range bound must be a number, str, bytes or list, not {bound!r:.60}",
                at(position, op),
            )
        if kind is None:
            kind = k
        elif k != kind:
            raise QueryError(
                f"range bounds must all be numbers, all strings, all bytes or all lists; "
                f"{op} is {'a ' + k if k != 'array' else 'a list'} but the range is over "
                f"{kind if kind != 'array' else 'lists'}",
                at(position, op),
            )
        if k == "array":
            check_value(bound, at(position, op))
    assert kind is not None
    return kind


_LOWER: Final = {"$gt": operator.gt, "$gte": operator.ge}
_UPPER: Final = {"$lt": operator.lt, "$lte": operator.le}


def _compile_range(bounds: list[tuple[str, Any]], position: str) -> Matcher:
    """``$gt/$gte/$lt/$lte``: the value has the bounds' kind and lies in the range (flume order)."""
    kind = range_kind(bounds, position)
    if kind == "number":
        return _number_range(bounds)
    if kind == "string":
        return _ordered_range(bounds, is_string, None)
    if kind == "bytes":
        return _ordered_range([(op, bytes(b)) for op, b in bounds], is_bytes, None)
    # Lists compare in flume order, which is the order of their key encodings.
    return _ordered_range([(op, keys.encode(b)) for op, b in bounds], is_array, _list_key)


def _list_key(v: Any) -> Any:
    try:
        return keys.encode(v)
    except EncodeError:
        return None  # never in range: the caller sees None and refuses


def _tightest(
    bounds: list[tuple[str, Any]],
) -> tuple[tuple[str, Any] | None, tuple[str, Any] | None]:
    """The strongest lower and upper bound of several (bounds of one comparable kind)."""
    lower: tuple[str, Any] | None = None
    upper: tuple[str, Any] | None = None
    for op, b in bounds:
        if op in _LOWER:
            if lower is None or b > lower[1] or (b == lower[1] and op == "$gt"):
                lower = (op, b)
        elif upper is None or b < upper[1] or (b == upper[1] and op == "$lt"):
            upper = (op, b)
    return lower, upper


def _ordered_range(
    bounds: list[tuple[str, Any]],
    is_kind: Matcher,
    convert: Callable[[Any], Any] | None,
) -> Matcher:
    """A range over one kind whose Python order is flume order (after ``convert``)."""
    lower, upper = _tightest(bounds)
    if convert is not None:
        to_key = convert

        def converted_range(v: Any) -> bool:
            if not is_kind(v):
                return False
            k = to_key(v)
            if k is None:
                return False
            if lower is not None and not _LOWER[lower[0]](k, lower[1]):
                return False
            return upper is None or bool(_UPPER[upper[0]](k, upper[1]))

        return converted_range
    return _native_range(lower, upper, is_kind)


def _native_range(
    lower: tuple[str, Any] | None, upper: tuple[str, Any] | None, is_kind: Matcher
) -> Matcher:
    if lower is not None and upper is not None:
        lo_op, lo = _LOWER[lower[0]], lower[1]
        hi_op, hi = _UPPER[upper[0]], upper[1]

        def between(v: Any) -> bool:
            return is_kind(v) and lo_op(v, lo) and hi_op(v, hi)

        return between
    if lower is not None:
        lo_op, lo = _LOWER[lower[0]], lower[1]

        def above(v: Any) -> bool:
            return is_kind(v) and lo_op(v, lo)

        return above
    assert upper is not None
    hi_op, hi = _UPPER[upper[0]], upper[1]

    def below(v: Any) -> bool:
        return is_kind(v) and hi_op(v, hi)

    return below


def _never(v: Any) -> bool:
    return False


def _number_range(bounds: list[tuple[str, Any]]) -> Matcher:
    """A numeric range in flume order, where NaN is a number below all others, equal to itself.

    Python's comparisons are false for NaN on either side, so NaN is settled here once: a NaN
    bound becomes a constant, and a NaN value gets the precomputed ``nan_matches``.
    """
    # Does a NaN value lie in the range? It is below every number and equal to a NaN bound.
    nan_matches = all(
        (op == "$gte" and b != b) or (op in ("$lt", "$lte") and not (op == "$lt" and b != b))
        for op, b in bounds
    )
    real: list[tuple[str, Any]] = []
    for op, b in bounds:
        if b == b:
            real.append((op, b))
        elif op in ("$lt", "$lte"):
            # Below (or equal to) NaN: only NaN itself.
            return _nan_only if nan_matches else _never
        # `$gt`/`$gte` NaN: every non-NaN number passes: no constraint on those.
    if not real:

        def any_number(v: Any) -> bool:
            return is_number(v) and (v == v or nan_matches)

        return any_number
    lower, upper = _tightest(real)
    inner = _native_range(lower, upper, _true)

    def number_range(v: Any) -> bool:
        if not isinstance(v, (int, float)) or v is True or v is False:
            return False
        if v != v:
            return nan_matches
        return inner(v)

    return number_range


def _true(v: Any) -> bool:
    return True


def _nan_only(v: Any) -> bool:
    return isinstance(v, float) and v != v
