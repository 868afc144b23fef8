"""The msgpack value codec: what round-trips, what comes back changed, what is refused."""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import math
import uuid
from collections import OrderedDict
from typing import Any

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from flume import codec
from flume.errors import CorruptionError, EncodeError, FlumeError
from flume.logs import MemoryLog


class Colour(enum.Enum):
    RED = 1


@dataclasses.dataclass
class Point:
    x: int


ROUND_TRIPS: list[Any] = [
    None, True, False, 0, 1, -1, 2**31, 2**32, 2**63 - 1, 2**63, 2**64 - 1, -(2**63),
    -(2**31) - 1, 0.0, -0.0, 1.5, -2.25, 1e308, 5e-324, float("inf"), float("-inf"),
    "", "a", "snow ☃", "clef 𝄞", "\x00nul", "é" * 1000, b"", b"\x00\xff" * 3, bytes(range(256)),
    [], [None], [1, [2, [3, [4]]]], {}, {"a": 1}, {"nested": {"list": [{"x": b"y"}]}},
    {1: "int key", -5: "negative key"}, {b"bytes": "key"}, {None: 1, True: 2, 1.5: 3},
]


@pytest.mark.parametrize("value", ROUND_TRIPS, ids=repr)
def test_storable_values_round_trip_exactly(value: Any) -> None:
    got = codec.decode(codec.encode(value))
    assert got == value
    assert type(got) is type(value)  # bool stays bool, 1.0 stays float, etc.
    if isinstance(value, float):
        assert math.copysign(1.0, got) == math.copysign(1.0, value)  # -0.0 keeps its sign


def test_nan_round_trips() -> None:
    got = codec.decode(codec.encode(float("nan")))
    assert isinstance(got, float) and math.isnan(got)
    got = codec.decode(codec.encode({"x": [float("nan")]}))
    assert math.isnan(got["x"][0])


def test_ints_and_floats_stay_distinct() -> None:
    assert type(codec.decode(codec.encode(1.0))) is float
    assert type(codec.decode(codec.encode(1))) is int
    assert type(codec.decode(codec.encode(2**53 + 1))) is int
    assert codec.decode(codec.encode(2**53 + 1)) == 2**53 + 1  # no float rounding


def test_tuples_come_back_as_lists() -> None:
    assert codec.decode(codec.encode((1, 2))) == [1, 2]
    assert codec.decode(codec.encode({"t": (1, (2, 3))})) == {"t": [1, [2, 3]]}
    assert codec.decode(codec.encode(())) == []


def test_tuple_dict_keys_come_back_as_tuples() -> None:
    value = {(1, 2): "pair", (1, (2, 3)): "nested", ("a",): [1, (2,)]}
    got = codec.decode(codec.encode(value))
    assert got == {(1, 2): "pair", (1, (2, 3)): "nested", ("a",): [1, [2]]}
    assert all(isinstance(k, tuple) for k in got)


def test_bytes_like_values_come_back_as_bytes() -> None:
    assert codec.decode(codec.encode(bytearray(b"ab"))) == b"ab"
    assert codec.decode(codec.encode(memoryview(b"cd"))) == b"cd"


def test_subclasses_of_storable_types_are_stored_as_the_base_type() -> None:
    got = codec.decode(codec.encode(OrderedDict([("b", 1), ("a", 2)])))
    assert got == {"b": 1, "a": 2} and type(got) is dict
    assert list(got) == ["b", "a"]  # insertion order kept


@pytest.mark.parametrize(
    "value",
    [
        2**64, -(2**63) - 1, 10**30, object(), {1, 2}, frozenset(), 1j, decimal.Decimal("1.5"),
        datetime.date(2020, 1, 1), datetime.datetime(2020, 1, 1, 12), datetime.time(1, 2),
        uuid.UUID(int=1), Colour.RED, Point(1), {"when": datetime.date(2020, 1, 1)},
        ["id", uuid.UUID(int=2)], "\ud800", "ok \udfff", {"k": "\ud83d"}, [1, [2, {3}]],
        {"a": {"b": object()}}, {frozenset(): 1}, ..., type,
    ],
    ids=repr,
)
def test_unencodable_values_raise_encode_error(value: Any) -> None:
    with pytest.raises(EncodeError) as info:
        codec.encode(value)
    assert isinstance(info.value, TypeError)
    assert isinstance(info.value, FlumeError)
    assert "cannot store" in str(info.value)


def test_an_unencodable_value_is_refused_before_anything_is_written() -> None:
    log = MemoryLog()
    log.append("first")
    with pytest.raises(EncodeError) as info:
        log.append_many(["a", "b", "c", {"bad": {1}}, "e"])
    assert "item 3" in str(info.value)
    with pytest.raises(EncodeError):
        log.append(2**64)
    assert log.since.value == 0
    assert list(log.stream(seqs=False)) == ["first"]


def test_encode_many_names_the_bad_item() -> None:
    assert [codec.decode(b) for b in codec.encode_many([1, "a", None])] == [1, "a", None]
    assert codec.encode_many([]) == []
    with pytest.raises(EncodeError, match="item 1 of the batch"):
        codec.encode_many([1, object(), 3])


def test_the_encoding_is_plain_msgpack() -> None:
    value = {"a": [1, b"x", "y", None, 1.5]}
    assert msgpack.unpackb(codec.encode(value), raw=False) == value


@pytest.mark.parametrize("data", [b"\xc1", b"\x92\x01", b"\xa5ab", b"\xdb\xff\xff"])
def test_damaged_bytes_raise_corruption_error(data: bytes) -> None:
    with pytest.raises(CorruptionError):
        codec.decode(data)


storable = st.recursive(
    st.one_of(
        st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1), st.floats(allow_nan=False),
        st.text(), st.binary(),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=5),
        st.dictionaries(st.one_of(st.text(), st.integers(-(2**63), 2**64 - 1)), inner, max_size=5),
    ),
    max_leaves=20,
)


@given(storable)
def test_random_storable_values_round_trip(value: Any) -> None:
    assert codec.decode(codec.encode(value)) == value
