"""The value codec: msgpack, the one format of values on disk and between processes.

A storable value is ``None``, ``bool``, ``int`` (-2**63 .. 2**64-1), ``float``, ``str``,
``bytes``, ``list`` or ``dict`` (keys of any storable type), nested at most :data:`MAX_DEPTH`
(256) deep. Tuples are accepted and come back as lists, as msgpack has no tuple type (except as
dict keys, where they come back as tuples, since a list cannot be a dict key). Anything else
raises :class:`EncodeError` before anything is written.

Two libraries write the same bytes here: ``ormsgpack`` (Rust, 2-3x faster) encodes and decodes
the common case, values whose dict keys are all strings; whatever it refuses goes through
``msgpack``, which handles the rest of the format (non-string keys, deeper nesting) and gives
the errors. The test suite checks that both produce identical bytes for every storable value.
"""

from __future__ import annotations

import reprlib
from collections.abc import Callable, Iterable
from typing import Any

import msgpack
import ormsgpack

from flume.errors import CorruptionError, EncodeError

MAX_DEPTH = 256
"""The deepest nesting flume stores, indexes and queries: a value (or a key, or a query) holds
at most this many lists and dicts inside one another (``[]`` is 1 deep, ``[[1]]`` 2). Deeper
values are refused at append with an :class:`EncodeError`, deeper queries with a QueryError."""


def depth_exceeds(value: Any, limit: int = MAX_DEPTH) -> bool:
    """Does ``value`` nest lists, tuples and dicts (keys included) more than ``limit`` deep?
    A loop, not recursion; a value that contains itself counts as too deep."""
    stack = [(value, 0)]
    pop, push = stack.pop, stack.append
    while stack:
        item, depth = pop()
        if isinstance(item, (list, tuple)):
            children: Any = item
        elif isinstance(item, dict):
            children = [*item, *item.values()]
        else:
            continue
        if depth >= limit:
            return True
        for child in children:
            if isinstance(child, (list, tuple, dict)):
                push((child, depth + 1))
    return False


def too_deep_message(what: str) -> str:
    """The one message for anything nested deeper than :data:`MAX_DEPTH`."""
    return (
        f"{what} is nested more than {MAX_DEPTH} lists/dicts deep (or contains itself); flume "
        f"stores, indexes and queries values at most {MAX_DEPTH} deep: flatten it"
    )

_packer_options: dict[str, Any] = {"use_bin_type": True, "strict_types": False}
# ormsgpack would store datetimes, UUIDs, enums and dataclasses (as strings or dicts) where
# flume promises an EncodeError: pass them through to msgpack, which refuses them.
_FAST_OPTIONS = (
    ormsgpack.OPT_PASSTHROUGH_DATETIME
    | ormsgpack.OPT_PASSTHROUGH_UUID
    | ormsgpack.OPT_PASSTHROUGH_ENUM
    | ormsgpack.OPT_PASSTHROUGH_DATACLASS
)


def encode(value: Any) -> bytes:
    """Encode one value to msgpack bytes.

    Raises:
        EncodeError: the value (or something inside it) is not storable.
    """
    try:
        fast: bytes = ormsgpack.packb(value, option=_FAST_OPTIONS)
        return fast
    except Exception:
        pass
    # ormsgpack refuses values deeper than 255, below MAX_DEPTH: only values it refused can be
    # too deep, so the common case pays nothing for the check.
    if depth_exceeds(value):
        raise EncodeError(f"cannot store {describe(value)}: " + too_deep_message("it"))
    try:
        data: bytes = msgpack.packb(value, **_packer_options)
        return data
    except (TypeError, ValueError, OverflowError, UnicodeEncodeError) as e:
        raise EncodeError(
            f"cannot store {describe(value)}: {e}. Store only None, bool, int (64-bit), float, "
            "str, bytes, list and dict values (convert other types first)"
        ) from None


def encode_many(values: Iterable[Any]) -> list[bytes]:
    """Encode every value, or raise :class:`EncodeError` naming the first bad one's position."""
    out = []
    for i, value in enumerate(values):
        try:
            out.append(encode(value))
        except EncodeError as e:
            raise EncodeError(f"item {i} of the batch: {e}") from None
    return out


decode_fast: Callable[[bytes], Any] = ormsgpack.unpackb
"""Hot loops call this first and fall back to :func:`decode` when it raises (values with
non-string dict keys, damaged bytes): one C call for the common case."""


def decode(data: bytes | memoryview) -> Any:
    """Decode msgpack bytes written by :func:`encode`.

    Raises:
        CorruptionError: the bytes are not a msgpack value (a damaged file).
    """
    try:
        return ormsgpack.unpackb(data)
    except Exception:
        pass
    try:
        return msgpack.unpackb(data, raw=False, strict_map_key=False, use_list=True)
    except TypeError:
        # A dict whose keys were tuples: lists cannot be dict keys, so rebuild those keys as
        # tuples. Rare, hence the second pass only on failure instead of a hook on every value.
        return _decode_with_tuple_keys(data)
    except Exception as e:  # msgpack raises several unrelated types for bad input
        raise _corrupt(e) from None


def _decode_with_tuple_keys(data: bytes | memoryview) -> Any:
    try:
        return msgpack.unpackb(
            data,
            raw=False,
            strict_map_key=False,
            use_list=True,
            object_pairs_hook=lambda pairs: {hashable(k): v for k, v in pairs},
        )
    except Exception as e:
        raise _corrupt(e) from None


def _corrupt(e: Exception) -> CorruptionError:
    return CorruptionError(
        f"a stored value cannot be decoded ({type(e).__name__}: {e or 'invalid msgpack'}); "
        "the file is damaged: run `flume verify` and restore the database from a copy"
    )


def hashable(key: Any) -> Any:
    """A decoded dict key made hashable: lists become tuples (a list cannot be a dict key),
    dicts tuples of pairs, at any depth."""
    if isinstance(key, list):
        return tuple([hashable(k) for k in key])
    if isinstance(key, dict):
        return tuple([(hashable(k), hashable(v)) for k, v in key.items()])
    return key


def describe(value: Any) -> str:
    """``a value of type T (repr...)`` for error messages: a bounded repr of at most 60
    characters, safe on deep and huge values."""
    # reprlib: a bounded repr, so that a deeply nested value (msgpack refuses those) does not
    # raise RecursionError here, and a huge one is not copied whole.
    try:
        text = reprlib.repr(value)
    except Exception:
        text = "?"
    if len(text) > 60:
        text = text[:57] + "..."
    return f"a value of type {type(value).__name__} ({text})"
