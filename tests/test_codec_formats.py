"""The codec's two encoders write one format: ormsgpack's bytes equal msgpack's wherever
ormsgpack accepts a value, and whatever it refuses still round-trips through msgpack."""

from __future__ import annotations

from typing import Any

import msgpack
import ormsgpack
from hypothesis import given, settings
from hypothesis import strategies as st

from flume import codec

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text()
    | st.binary()
)
keys = st.text() | st.integers(min_value=-(2**63), max_value=2**63 - 1) | st.none() | st.booleans()
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=20,
)


def _reference(value: Any) -> bytes:
    data: bytes = msgpack.packb(value, use_bin_type=True)
    return data


@settings(max_examples=300, deadline=None)
@given(values)
def test_encode_writes_msgpack_bytes(value: Any) -> None:
    assert codec.encode(value) == _reference(value)


@settings(max_examples=300, deadline=None)
@given(values)
def test_decode_reads_what_msgpack_reads(value: Any) -> None:
    data = _reference(value)
    expected = msgpack.unpackb(data, raw=False, strict_map_key=False)
    assert codec.decode(data) == expected


def test_fast_path_is_taken_for_string_keyed_values() -> None:
    value = {"a": [1, 2.5, "x", b"y", None, True]}
    assert ormsgpack.packb(value) == codec.encode(value)
    assert codec.decode(codec.encode(value)) == value


def test_non_string_keys_fall_back_to_msgpack() -> None:
    value = {1: "one", None: [1], "s": {2: 3}}
    assert codec.decode(codec.encode(value)) == value
