"""``$sort`` rules: validation, and one byte-string sort key per item.

``{"$sort": [path, {"$reverse": path}, ...]}`` sorts in flume order by each path in turn,
``$reverse`` making only its own path descending; ties go by a tie-breaker the executor gives
(the record's seq, or the input position of items that come from no single record).

Each item gets one ``bytes`` key: the key encodings of its path values (flume order by
construction), a descending path's encoding with every byte inverted, then the 8-byte
tie-breaker. Key encodings are self-delimiting and none is a prefix of another, so the
concatenation compares path by path, and inverting the bytes of such an encoding reverses its
order exactly. One bytes comparison per pair then replaces a chain of per-path comparisons.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from flume import keys
from flume.errors import QueryError
from flume.query.maps import Getter, compile_map, key_path
from flume.query.paths import Path, at, is_operator

__all__ = ["CompiledSort", "SortPath", "compile_sort"]

_INVERT: Final = bytes(range(255, -1, -1))
"""A ``bytes.translate`` table mapping each byte b to 255 - b."""


@dataclass(frozen=True, slots=True)
class SortPath:
    """One path of a ``$sort``: its getter, direction, and its key path (None if not one)."""

    get: Getter
    descending: bool
    key_path: Path | None
    rule: Any


@dataclass(frozen=True, slots=True)
class CompiledSort:
    """A compiled ``$sort``: ``key(item, tie)`` is the item's sort key (ascending bytes order)."""

    rule: Any
    paths: tuple[SortPath, ...]
    key: Callable[[Any, int], bytes]
    reads: tuple[Path, ...]


def compile_sort(rule: Any, position: str) -> CompiledSort:
    """Validate and compile the list of a ``$sort`` stage found at ``position``.

    Raises:
        QueryError: the sort is not a non-empty list, or an element is no path or
            ``{"$reverse": path}``.
    """
    if not isinstance(rule, (list, tuple)):
        raise QueryError(
            f'$sort takes a list of paths and {{"$reverse": path}} dicts, not {rule!r:.60}',
            position,
        )
    if not rule:
        raise QueryError("$sort needs at least one path to sort by", position)
    paths: list[SortPath] = []
    reads: list[Path] = []
    for i, element in enumerate(rule):
        where = at(position, i)
        descending = False
        if isinstance(element, dict) and any(map(is_operator, element)):
            for k in element:
                if k != "$reverse":
                    raise QueryError(
                        f"unknown $sort operator {k}; a $sort element is a path or "
                        '{"$reverse": path}'
                        if is_operator(k)
                        else 'a {"$reverse": path} dict holds nothing else',
                        at(where, k),
                    )
            descending = True
            where = at(where, "$reverse")
            element = element["$reverse"]
        compiled = compile_map(element, where)
        paths.append(SortPath(compiled.get, descending, key_path(element), element))
        reads.extend(compiled.reads)
    return CompiledSort(rule, tuple(paths), _key_function(tuple(paths)), tuple(reads))


def _key_function(paths: tuple[SortPath, ...]) -> Callable[[Any, int], bytes]:
    encode = keys.encode
    if len(paths) == 1 and not paths[0].descending:
        get = paths[0].get

        def one_key(v: Any, tie: int) -> bytes:
            return encode(get(v)) + tie.to_bytes(8, "big")

        return one_key
    parts = tuple((p.get, p.descending) for p in paths)

    def key(v: Any, tie: int) -> bytes:
        out = [encode(get(v)).translate(_INVERT) if down else encode(get(v)) for get, down in parts]
        out.append(tie.to_bytes(8, "big"))
        return b"".join(out)

    return key
