"""The keys of a Query view's index entries, and values rebuilt from them.

An index is a list of paths of dict keys. Every stored value has one entry in every index; its
key is the key encoding of the tuple of the value's fields at those paths (a missing field as
:data:`~flume.keys.MISSING`) followed by the 8-byte big-endian seq::

    encode_tuple((get_path(value, p) for p in paths)) + seq.to_bytes(8, "big")

The planner's key ranges are ranges of such keys, and a *covered* query runs on the values
:func:`decode_index_key` rebuilds from them. Store ``index_hint(paths, value)`` beside the key
to get back the exact number types (``2.0`` rather than ``2``) and dict key order (keys encode
dicts with their items sorted); without it the rebuilt fields are flume-equal to the stored ones.
A covered answer is the scan's answer only with the hint.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from flume import keys
from flume.errors import CorruptionError
from flume.keys import MISSING
from flume.query.paths import Path, get_path

__all__ = ["decode_index_key", "index_entry", "index_hint", "index_key", "index_values"]


def index_values(paths: Sequence[Path], value: Any) -> tuple[Any, ...]:
    """The fields of ``value`` an index holds: the value at each path, or MISSING."""
    return tuple([get_path(value, path) for path in paths])


def index_entry(paths: Sequence[Path], suffix: bytes, value: Any) -> tuple[bytes, bytes]:
    """``(key, hint)`` of ``value``'s entry in the index over ``paths``; ``suffix`` is the
    entry's seq as :func:`flume.keys.seq_key` gives it. What a Query view stores.

    Raises:
        EncodeError: a field holds something keys cannot encode (never for a stored value).
    """
    fields = tuple([get_path(value, path) for path in paths])
    return keys.encode_tuple(fields) + suffix, keys.type_hint(fields)


def index_key(paths: Sequence[Path], seq: int, value: Any) -> bytes:
    """The key of ``value``'s entry (at ``seq``) in the index over ``paths``."""
    return index_entry(paths, keys.seq_key(seq), value)[0]


def index_hint(paths: Sequence[Path], value: Any) -> bytes:
    """The type hint that makes :func:`decode_index_key` exact (``b""`` in the common case)."""
    return index_entry(paths, b"", value)[1]


def decode_index_key(paths: Sequence[Path], key: bytes, hint: bytes = b"") -> tuple[int, Any]:
    """Rebuild ``(seq, value)`` from an index entry's key: the value holds just the indexed paths.

    Missing fields are left out; each present field is placed at its path in fresh dicts. This is
    what a covered query runs on: for the paths it reads, it sees what the stored value holds.

    Raises:
        CorruptionError: ``key`` is not an entry key of an index over ``paths``.
    """
    if len(key) < keys.SEQ_BYTES:
        raise CorruptionError(f"index key too short: {bytes(key).hex()}")
    fields = keys.decode_tuple(key[: -keys.SEQ_BYTES], hint)
    if len(fields) != len(paths):
        raise CorruptionError(
            f"index key holds {len(fields)} fields, the index has {len(paths)}: {bytes(key).hex()}"
        )
    return keys.seq_of(key), build_value(paths, fields)


def build_value(paths: Sequence[Path], fields: Sequence[Any]) -> Any:
    """A value holding each non-MISSING field at its path (a ``()`` path is the whole value)."""
    value: Any = {}
    # Shorter paths first: a field at ("a",) already holds ("a", "b"), which is then skipped.
    for path, field in sorted(zip(paths, fields), key=lambda pf: len(pf[0])):
        if field is MISSING:
            continue
        if not path:
            return field
        node = value
        for step in path[:-1]:
            child = node.get(step, MISSING)
            if child is MISSING:
                child = node[step] = {}
            elif not isinstance(child, dict):
                break  # an enclosing field is no dict: this path could not hold anything
            node = child
        else:
            node.setdefault(path[-1], field)
    return value
