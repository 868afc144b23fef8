"""Tests of flume.keys: the byte encoding of index keys sorts exactly in flume order.

The reference is ``flume_compare`` below, written straight from QUERY.md ("Values and their
order") with exact rational arithmetic for numbers; the properties compare the encoding against
it on random values (hypothesis), then check round trips, prefixes, ranges and errors.
"""

from __future__ import annotations

import copy
import enum
import functools
import math
import pickle
from collections import OrderedDict
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from flume.errors import (
    CorruptionError,
    EncodeError,
    FlumeError,
    InvalidArgumentError,
    InvalidTypeError,
)
from flume.keys import (
    MISSING,
    MissingType,
    compare,
    decode,
    decode_tuple,
    encode,
    encode_tuple,
    prefix_key,
    successor,
    type_hint,
    type_range,
)

MIN_INT = -(2**63)
MAX_INT = 2**64 - 1
NAN = math.nan
INF = math.inf

settings.register_profile(
    "keys", deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=100
)
KEYS = settings.get_profile("keys")


# --- the reference order -----------------------------------------------------------------------


def kind(v: Any) -> str:
    """The $is name of a value."""
    if v is MISSING:
        return "undefined"
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, bytes):
        return "bytes"
    if isinstance(v, (list, tuple)):
        return "array"
    if isinstance(v, dict):
        return "object"
    raise AssertionError(f"not a value: {v!r}")


KINDS = ["null", "boolean", "number", "string", "bytes", "array", "object", "undefined"]


def _sign(x: Any) -> int:
    return (x > 0) - (x < 0)


def _compare_numbers(a: int | float, b: int | float) -> int:
    a_nan, b_nan = a != a, b != b
    if a_nan or b_nan:
        return b_nan - a_nan  # NaN is below every number and equal to itself
    ia = 0 if not math.isinf(a) else (1 if a > 0 else -1)
    ib = 0 if not math.isinf(b) else (1 if b > 0 else -1)
    if ia or ib:
        return _sign(ia - ib)
    return _sign(Fraction(a) - Fraction(b))  # exact: 2**63-1 < 9.223372036854776e18


def flume_compare(a: Any, b: Any) -> int:
    """flume order, implemented directly from QUERY.md."""
    ka, kb = KINDS.index(kind(a)), KINDS.index(kind(b))
    if ka != kb:
        return _sign(ka - kb)
    k = KINDS[ka]
    if k in ("null", "undefined"):
        return 0
    if k == "boolean":
        return _sign(int(a) - int(b))
    if k == "number":
        return _compare_numbers(a, b)
    if k in ("string", "bytes"):
        return (a > b) - (a < b)  # str: by code point; bytes: bytewise
    if k == "array":
        for x, y in zip(a, b):
            c = flume_compare(x, y)
            if c:
                return c
        return _sign(len(a) - len(b))
    # dicts: the lists of their items sorted by key (by value among flume-equal keys)
    def items(d: dict[Any, Any]) -> list[list[Any]]:
        return sorted(
            ([k, v] for k, v in d.items()), key=functools.cmp_to_key(flume_compare)
        )

    return flume_compare(items(a), items(b))


def same(a: Any, b: Any) -> bool:
    """Type-strict equality: 1 vs 1.0 differ, -0.0 vs 0.0 differ, NaN equals NaN."""
    if type(a) is not type(b):
        return False
    if type(a) is float:
        if a != a:
            return b != b
        return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)
    if type(a) in (list, tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if type(a) is dict:
        def ordered(d: dict[Any, Any]) -> list[tuple[Any, Any]]:
            return sorted(d.items(), key=lambda kv: encode(kv[0]) + encode(kv[1]))

        return len(a) == len(b) and all(
            same(ka, kb) and same(va, vb) for (ka, va), (kb, vb) in zip(ordered(a), ordered(b))
        )
    return bool(a == b) and (a is not MISSING or b is MISSING)


def bytes_compare(x: bytes, y: bytes) -> int:
    return (x > y) - (x < y)


# --- strategies --------------------------------------------------------------------------------

EDGES = [0, 1, 2**32, 2**53, 2**62, 2**63, 2**64, -(2**53), -(2**62), -(2**63)]

edge_ints = st.builds(
    lambda base, d: base + d, st.sampled_from(EDGES), st.integers(-2100, 2100)
).filter(lambda x: MIN_INT <= x <= MAX_INT)


def _step(f: float, n: int) -> float:
    for _ in range(abs(n)):
        f = math.nextafter(f, INF if n > 0 else -INF)
    return f


edge_floats = st.builds(
    lambda base, n: _step(float(base), n), st.sampled_from(EDGES), st.integers(-3, 3)
)
special_floats = st.sampled_from(
    [0.0, -0.0, NAN, INF, -INF, 5e-324, -5e-324, 1.7976931348623157e308, -1.7976931348623157e308,
     0.5, -0.5, 1.0, -1.0, 2.0, 9.223372036854776e18, 1.8446744073709552e19]
)
ints = st.integers(MIN_INT, MAX_INT) | edge_ints | st.integers(-3, 3)
floats = st.floats() | edge_floats | special_floats
numbers = ints | floats

# Small alphabets make shared prefixes, escapes (0x00, 0x01) and ties likely.
texts = (
    st.text(max_size=5)
    | st.text("\x00\x01\x02a\x7f\x80é\ud800\udfff\ue000\uffff\U00010000", max_size=5)
    # any code point, lone surrogates included
    | st.lists(st.integers(0, 0x10FFFF).map(chr), max_size=4).map("".join)
)
binaries = st.binary(max_size=5) | st.lists(
    st.sampled_from([0, 1, 2, 0x7F, 0x80, 0xFE, 0xFF]), max_size=5
).map(bytes)

scalars = (
    st.none() | st.booleans() | numbers | texts | binaries | st.just(MISSING)
)
# Dict keys: any hashable value, tuples (compared like lists) included.
dict_keys = st.recursive(
    st.none() | st.booleans() | numbers | texts | binaries,
    lambda inner: st.lists(inner, max_size=3).map(tuple),
    max_leaves=4,
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(dict_keys, inner, max_size=3),
    max_leaves=12,
)
key_tuples = st.lists(values, max_size=4).map(tuple)


def floatify(v: Any) -> Any:
    """A flume-equal copy of v with small ints as floats, -0.0 for 0, tuples as lists."""
    if type(v) is int:
        if v == 0:
            return -0.0
        return float(v) if abs(v) <= 2**53 else v
    if type(v) in (list, tuple):
        return [floatify(x) for x in v]
    if type(v) is dict:
        return {k: floatify(x) for k, x in v.items()}
    return v


# --- order -------------------------------------------------------------------------------------


@settings(KEYS, max_examples=300)
@given(values, values)
@example(2**63 - 1, 9.223372036854776e18)
@example(2**63, 9.223372036854776e18)
@example(2**64 - 1, 1.8446744073709552e19)
@example(NAN, -INF)
@example(-0.0, 0)
@example(True, 1)
@example("\uffff", "\U00010000")
@example("\ud800", "\ue000")
@example("a", "a\x00")
@example("a\x00", "a\x01")
@example(b"a\xff", b"a\xff\x00")
@example([1], [1, None])
@example({1: 2}, {1.0: 2, 3: None})
@example({(1, 2): "x"}, {(1, 2.0, None): "x"})
def test_encoding_sorts_in_flume_order(a: Any, b: Any) -> None:
    expected = flume_compare(a, b)
    assert bytes_compare(encode(a), encode(b)) == expected
    assert compare(a, b) == expected
    assert (encode(a) == encode(b)) == (expected == 0)


@KEYS
@given(st.lists(values, min_size=2, max_size=7))
def test_sorting_many_values(vs: list[Any]) -> None:
    encoded = [encode(v) for v in vs]
    for i, a in enumerate(vs):
        for j, b in enumerate(vs):
            assert bytes_compare(encoded[i], encoded[j]) == flume_compare(a, b)


@settings(KEYS, max_examples=400)
@given(numbers, numbers)
def test_numbers_exactly(a: int | float, b: int | float) -> None:
    assert bytes_compare(encode(a), encode(b)) == _compare_numbers(a, b)


def test_numbers_near_the_edges_sort_exactly() -> None:
    nums: list[int | float] = []
    for base in EDGES + [1, 3]:
        nums += [x for x in range(base - 1030, base + 1030, 7) if MIN_INT <= x <= MAX_INT]
        nums += [x for x in (base - 1, base, base + 1) if MIN_INT <= x <= MAX_INT]
        nums += [_step(float(base), n) for n in range(-3, 4)]
    nums += [NAN, INF, -INF, -0.0, 0.5, -0.5]
    by_key = sorted(nums, key=encode)
    by_ref = sorted(nums, key=functools.cmp_to_key(_compare_numbers))
    assert [encode(x) for x in by_key] == [encode(x) for x in by_ref]
    for x, y in zip(by_key, by_key[1:]):
        assert _compare_numbers(x, y) <= 0
        assert (encode(x) == encode(y)) == (_compare_numbers(x, y) == 0)


@KEYS
@given(values)
def test_flume_equal_values_encode_identically(v: Any) -> None:
    assert encode(floatify(v)) == encode(v)


def test_flume_order_examples() -> None:
    ordered = [
        None, False, True, NAN, -INF, MIN_INT, -1.5, -1, -5e-324, 0, 5e-324, 0.5, 1, 2**53,
        2**53 + 1, 2**63 - 1, 2**63, 2**63 + 1, 2**64 - 1, 1.8446744073709552e19, INF,
        "", "\x00", "\x00\x00", "\x01", "A", "a", "a\x00", "ab", "é", "\ud800", "\ue000",
        "\uffff", "\U00010000", b"", b"\x00", b"\x00\x00", b"\x01", b"\xff", b"\xff\x00",
        [], [None], [None, None], [False], [1, "a"], [1, "b"], [1.5], ["a"], [[]], [{}],
        {}, {None: 1}, {False: []}, {1: None}, {1: 2}, {1: 2, 2: 0}, {1: 3}, {"a": 1},
        {(1, 2): 0}, {(1, 2, 3): 0}, MISSING,
    ]
    keys = [encode(v) for v in ordered]
    assert keys == sorted(keys)
    assert len(set(keys)) == len(keys)
    for i in range(len(ordered) - 1):
        assert flume_compare(ordered[i], ordered[i + 1]) == -1, (ordered[i], ordered[i + 1])


def test_flume_equal_examples() -> None:
    assert encode(1) == encode(1.0)
    assert encode(0) == encode(0.0) == encode(-0.0)
    assert encode(NAN) == encode(-NAN) == encode(float("nan"))
    assert encode(2**63) == encode(9.223372036854776e18)
    assert encode(2**63 - 1) != encode(9.223372036854776e18)
    assert encode(True) != encode(1)
    assert encode([1, (2,)]) == encode((1.0, [2.0]))
    assert encode({1: [2]}) == encode({1.0: (2.0,)})
    assert compare(NAN, NAN) == 0
    assert compare(2**63 - 1, 9.223372036854776e18) == -1
    assert compare(2**64 - 1, 1.8446744073709552e19) == -1
    assert compare(MIN_INT, float(MIN_INT)) == 0


# --- tuples ------------------------------------------------------------------------------------


@KEYS
@given(key_tuples, key_tuples)
def test_tuples_compare_element_wise(a: tuple[Any, ...], b: tuple[Any, ...]) -> None:
    expected = flume_compare(list(a), list(b))
    assert bytes_compare(encode_tuple(a), encode_tuple(b)) == expected
    assert encode_tuple(a) == b"".join(encode(v) for v in a)


@KEYS
@given(key_tuples, key_tuples)
def test_tuples_with_a_shared_prefix(a: tuple[Any, ...], b: tuple[Any, ...]) -> None:
    b = tuple(floatify(x) for x in a[:2]) + b
    assert bytes_compare(encode_tuple(a), encode_tuple(b)) == flume_compare(list(a), list(b))


@KEYS
@given(key_tuples, key_tuples)
def test_tuple_prefix_is_byte_prefix_and_only_then(
    t: tuple[Any, ...], u: tuple[Any, ...]
) -> None:
    et = encode_tuple(t)
    for k in range(len(t) + 1):
        assert et.startswith(encode_tuple(t[:k]))
        assert et.startswith(encode_tuple(tuple(floatify(x) for x in t[:k])))
    # Encodings are prefix-free: a byte prefix is always a tuple prefix.
    is_prefix = len(u) <= len(t) and all(flume_compare(x, y) == 0 for x, y in zip(u, t))
    assert et.startswith(encode_tuple(u)) == is_prefix


def test_encode_tuple_accepts_sequences_and_iterators() -> None:
    assert encode_tuple(["a", 1]) == encode_tuple(("a", 1)) == encode_tuple(iter(("a", 1)))
    assert encode_tuple(x for x in ("a", OrderedDict(b=1))) == encode("a") + encode({"b": 1})
    assert encode_tuple(()) == b""
    assert encode_tuple(("a",)) == encode("a")


# --- round trips -------------------------------------------------------------------------------

# Tuples come back as lists (as from msgpack), except as dict keys: leave them out of values.
plain_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(dict_keys, inner, max_size=3),
    max_leaves=12,
)
plain_tuples = st.lists(plain_values, max_size=4).map(tuple)


@settings(KEYS, max_examples=200)
@given(plain_tuples)
@example((2.0, -0.0, 0.0, 0, 1, 2**63 - 1, 9.223372036854776e18, NAN, INF, "x", b"y"))
@example(([1.0, {2.0: -0.0, 3: [4.0]}], {(1.0, (2, 3.0)): 0.0}))
@example((1e300, -1e300, 1.8446744073709552e19, -9.223372036854776e18))
def test_exact_round_trip_with_the_hint(t: tuple[Any, ...]) -> None:
    data = encode_tuple(t)
    hint = type_hint(t)
    assert same(decode_tuple(data, hint), t)
    for v in t:
        assert same(decode(encode(v), type_hint(v)), v)
    assert data == b"".join(encode(v) for v in t)


@KEYS
@given(plain_tuples)
def test_round_trip_without_hint_keeps_the_value(t: tuple[Any, ...]) -> None:
    data = encode_tuple(t)
    back = decode_tuple(data)
    assert len(back) == len(t)
    assert encode_tuple(back) == data
    for x, y in zip(back, t):
        assert flume_compare(x, y) == 0


def test_decoding_without_hint_picks_int_for_integral_numbers() -> None:
    assert same(decode(encode(2.0)), 2)
    assert same(decode(encode(-0.0)), 0)
    assert same(decode(encode(2.5)), 2.5)
    assert same(decode(encode(2**63 - 1)), 2**63 - 1)
    assert same(decode(encode(MAX_INT)), MAX_INT)
    assert same(decode(encode(MIN_INT)), MIN_INT)
    assert same(decode(encode(1e300)), 1e300)  # integral, but no 64-bit int
    assert same(decode(encode(1.8446744073709552e19)), 1.8446744073709552e19)
    assert same(decode(encode(INF)), INF)
    assert same(decode(encode(-INF)), -INF)
    assert same(decode(encode(NAN)), NAN)
    assert same(decode(encode({(1, "a"): [b"\x00\x01"]})), {(1, "a"): [b"\x00\x01"]})
    assert decode(encode(MISSING)) is MISSING


def test_type_hint_is_empty_unless_needed() -> None:
    assert type_hint(("a", 1)) == b""
    assert type_hint(("a", 1.5)) == b""
    assert type_hint(("a", NAN, INF, None, True, b"", [1, 2.5], {"k": 3})) == b""
    assert type_hint(1.5) == b""
    assert type_hint(("a", 2.0)) != b""
    assert type_hint(("a", -0.0)) != b""
    assert type_hint(0.0) != b""
    assert type_hint(["a", [1, {2: 3.0}]]) != b""
    assert type_hint({2.0: 1}) != b""
    assert decode_tuple(encode_tuple(("a", 2.0)), type_hint(("a", 2.0))) == ("a", 2.0)


# --- prefixes and ranges -----------------------------------------------------------------------


def _in_range(key: bytes, lo: bytes, hi: bytes | None) -> bool:
    return lo <= key and (hi is None or key < hi)


@KEYS
@given(texts, texts, values)
@example("", "", "")
@example("a", "a\x00", "a")
@example("\x00", "\x00\x01", b"\x00")
def test_string_prefix_key(p: str, suffix: str, other: Any) -> None:
    pk = prefix_key(p)
    hi = successor(pk)
    for s in (p, p + suffix, suffix, p[:-1], other):
        ok = isinstance(s, str) and s.startswith(p)
        assert encode(s).startswith(pk) == ok
        assert _in_range(encode(s), pk, hi) == ok
    assert encode(p).startswith(prefix_key(""))


@KEYS
@given(binaries, binaries, values)
@example(b"\xff", b"\xff", b"\xff")
def test_bytes_prefix_key(p: bytes, suffix: bytes, other: Any) -> None:
    pk = prefix_key(p)
    hi = successor(pk)
    for s in (p, p + suffix, suffix, p[:-1], other):
        ok = isinstance(s, bytes) and s.startswith(p)
        assert encode(s).startswith(pk) == ok
        assert _in_range(encode(s), pk, hi) == ok


@KEYS
@given(st.lists(values, max_size=3), st.lists(values, max_size=3), values)
@example([], [], [])
@example(["a"], [], ["a\x00"])
@example([1], [2], [1.0, 2])
def test_list_prefix_key(p: list[Any], extra: list[Any], other: Any) -> None:
    pk = prefix_key(p)
    hi = successor(pk)
    for v in (p, floatify(p) + extra, extra, p[:-1], [*p[:-1], other], other):
        ok = (
            isinstance(v, list)
            and len(v) >= len(p)
            and all(flume_compare(x, y) == 0 for x, y in zip(v, p))
        )
        assert encode(v).startswith(pk) == ok
        assert _in_range(encode(v), pk, hi) == ok
    assert prefix_key(tuple(p)) == pk


@KEYS
@given(values)
def test_type_range(v: Any) -> None:
    key = encode(v)
    for k in KINDS:
        lo, hi = type_range(k)
        assert (lo <= key < hi) == (kind(v) == k)


def test_type_ranges_are_ordered_and_disjoint() -> None:
    ranges = [type_range(k) for k in KINDS]
    for (lo, hi), (lo2, _) in zip(ranges, ranges[1:]):
        assert lo < hi <= lo2
    assert ranges[-1][1] < b"\xff"
    samples = [None, False, True, NAN, -INF, MIN_INT, -0.0, 0, 0.5, MAX_INT, INF, "", "\U0010ffff",
               b"", b"\xff", [], [MISSING], {}, {"a": [{}]}, MISSING]
    for v in samples:
        for k in KINDS:
            lo, hi = type_range(k)
            assert (lo <= encode(v) < hi) == (kind(v) == k), (v, k)


@settings(KEYS, max_examples=300)
@given(
    st.lists(st.sampled_from([0, 1, 0x7F, 0xFE, 0xFF]), max_size=4).map(bytes),
    st.lists(st.sampled_from([0, 1, 0x7F, 0xFE, 0xFF]), max_size=6).map(bytes),
)
def test_successor(p: bytes, x: bytes) -> None:
    s = successor(p)
    # [p, successor(p)) is exactly the set of byte strings that start with p.
    assert _in_range(x, p, s) == x.startswith(p)
    if s is None:
        assert p.strip(b"\xff") == b""
    else:
        assert s > p and not s.startswith(p)


def test_successor_examples() -> None:
    assert successor(b"") is None
    assert successor(b"\xff\xff") is None
    assert successor(b"a") == b"b"
    assert successor(b"a\xff\xff") == b"b"
    assert successor(b"\x00") == b"\x01"
    assert successor(b"a\x00") == b"a\x01"


# --- MISSING -----------------------------------------------------------------------------------


def test_missing() -> None:
    assert repr(MISSING) == "MISSING"
    assert not MISSING
    assert bool(MISSING) is False
    assert MissingType() is MISSING
    assert copy.copy(MISSING) is MISSING
    assert copy.deepcopy([MISSING])[0] is MISSING
    assert pickle.loads(pickle.dumps(MISSING)) is MISSING
    assert MISSING is not None
    assert encode(MISSING) > encode({"z": [b"\xff" * 10]})
    assert encode([1, MISSING]) > encode([1, {}])


# --- errors and other types --------------------------------------------------------------------


class Color(enum.IntEnum):
    RED = 1


class Name(str):
    pass


def test_subclasses_of_storable_types_encode_like_their_base() -> None:
    assert encode(Color.RED) == encode(1)
    assert encode(Name("x")) == encode("x")
    assert encode(OrderedDict(a=1)) == encode({"a": 1})
    assert encode(bytearray(b"\x00a")) == encode(b"\x00a")
    assert encode(memoryview(b"ab")) == encode(b"ab")
    assert encode_tuple((Color.RED, Name("x"))) == encode_tuple((1, "x"))
    assert type_hint((Color.RED,)) == b""


@pytest.mark.parametrize(
    "bad",
    [
        {1, 2},
        object(),
        2**64,
        MIN_INT - 1,
        [1, {2}],
        {"a": [frozenset()]},
        {frozenset(): 1},
        1j,
    ],
    ids=repr,
)
def test_unstorable_values_raise_encode_error(bad: Any) -> None:
    with pytest.raises(EncodeError) as info:
        encode(bad)
    assert isinstance(info.value, FlumeError) and isinstance(info.value, TypeError)
    with pytest.raises(EncodeError):
        encode_tuple(("ok", bad))
    with pytest.raises(EncodeError):
        encode_tuple(("ok", 1, bad))


def test_encode_error_messages_are_clear() -> None:
    with pytest.raises(EncodeError, match="set"):
        encode({1})
    with pytest.raises(EncodeError, match="64-bit"):
        encode(2**64)


def test_cyclic_and_too_deep_values_raise_encode_error() -> None:
    cyclic: list[Any] = []
    cyclic.append(cyclic)
    with pytest.raises(EncodeError):
        encode(cyclic)
    with pytest.raises(EncodeError):
        encode_tuple((cyclic,))
    deep: Any = 1
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(EncodeError):
        encode(deep)


def test_encode_tuple_wants_a_sequence() -> None:
    for bad in ("ab", b"ab", 5, None, {"a": 1}):
        with pytest.raises(EncodeError):
            encode_tuple(bad)


def test_prefix_key_and_type_range_reject_bad_arguments() -> None:
    with pytest.raises(InvalidTypeError):
        prefix_key(5)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError):
        type_range("int")
    with pytest.raises(ValueError):
        type_range("list")


@pytest.mark.parametrize(
    "data",
    [
        b"\x99",
        b"\x31\x00",
        b"\x40abc",
        b"\x60\x10",
        b"\x70\x10",
        b"\x40\x01\x05\x00",
        b"\x40\xff\x00",
        b"\x30" + b"\xff" * 10,
    ],
    ids=bytes.hex,
)
def test_malformed_bytes_raise_corruption_error(data: bytes) -> None:
    with pytest.raises(CorruptionError):
        decode_tuple(data)
    with pytest.raises(CorruptionError):
        decode(data)


def test_decode_wants_exactly_one_value() -> None:
    with pytest.raises(CorruptionError):
        decode(b"")
    with pytest.raises(CorruptionError):
        decode(encode(1) + encode(2))
    assert decode_tuple(b"") == ()
    assert decode_tuple(encode(1) + encode(2)) == (1, 2)
    with pytest.raises(CorruptionError):
        decode_tuple(encode(1)[:-1])
