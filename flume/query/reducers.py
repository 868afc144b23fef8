"""``$reduce`` rules: reducers, named reducers and group-by, validated and compiled.

Shapes (QUERY.md, ``$reduce``):

- ``{"$count": true}`` (or ``$sum``, ``$product``, ``$min``, ``$max``, ``$collect`` of a path):
  one item, the reduction of every input (``0``, ``0``, ``1``, ``None``, ``None``, ``[]`` when
  there is none).
- ``{"n": {"$count": true}, "hi": {"$max": "ts"}}``: one dict of named reductions.
- A dict that also holds path rules groups by the tuple of those paths' values (depth first
  through nested plain dicts, in written order; ``true`` means ``v[key]``): one dict per group,
  shaped like the rule, a missing group value's key left out, groups in ascending flume order of
  their key tuple.

Missing inputs are skipped; ``$sum``/``$product`` skip non-numbers; ``$min``/``$max`` compare in
flume order and keep the first of equal values as stored. Items are reduced in the order given.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final

from flume import keys
from flume.errors import QueryError
from flume.keys import MISSING
from flume.query.maps import Getter, compile_map
from flume.query.paths import Path, at, is_operator
from flume.query.values import flume_less, is_number

__all__ = ["REDUCERS", "CompiledReduce", "compile_reduce"]

REDUCERS: Final = ("$count", "$sum", "$product", "$min", "$max", "$collect")

Step = Callable[[Any, Any], Any]
"""``step(accumulator, input) -> accumulator``; the input may be MISSING."""

_SCALARS: Final = frozenset({str, int, float, bytes, bool, type(None), type(MISSING)})
"""Classes whose Python equality (within one class) is flume equality."""

_NOTHING: Final = object()
"""The accumulator of ``$min``/``$max`` before any input (None is a real value)."""


def _count(acc: Any, x: Any) -> Any:
    return acc if x is MISSING else acc + 1


def _count_all(acc: Any, x: Any) -> Any:
    return acc + 1  # `{"$count": true}`: every item is there


def _sum(acc: Any, x: Any) -> Any:
    return acc + x if is_number(x) else acc


def _product(acc: Any, x: Any) -> Any:
    return acc * x if is_number(x) else acc


def _min(acc: Any, x: Any) -> Any:
    if x is MISSING:
        return acc
    if acc is _NOTHING or flume_less(x, acc):  # strict: the first of equal values stays
        return x
    return acc


def _max(acc: Any, x: Any) -> Any:
    if x is MISSING:
        return acc
    if acc is _NOTHING or flume_less(acc, x):
        return x
    return acc


def _collect(acc: Any, x: Any) -> Any:
    if x is not MISSING:
        acc.append(x)
    return acc


def _no_value(acc: Any) -> Any:
    return None if acc is _NOTHING else acc


def _as_is(acc: Any) -> Any:
    return acc


@dataclass(frozen=True, slots=True)
class _Reducer:
    """One reducer: how to start, step and finish an accumulator over one path."""

    name: str
    get: Getter
    step: Step
    start: Callable[[], Any]
    finish: Callable[[Any], Any]


def _reducer(name: str, arg: Any, position: str) -> tuple[_Reducer, tuple[Path, ...]]:
    """Compile ``{name: arg}``; also return the value paths it reads."""
    compiled = compile_map(arg, position)
    get, reads = compiled.get, compiled.reads
    if name == "$count":
        if arg is True:
            return _Reducer(name, get, _count_all, int, _as_is), ()
        return _Reducer(name, get, _count, int, _as_is), reads
    if name == "$sum":
        return _Reducer(name, get, _sum, int, _as_is), reads
    if name == "$product":
        return _Reducer(name, get, _product, lambda: 1, _as_is), reads
    if name == "$min":
        return _Reducer(name, get, _min, lambda: _NOTHING, _no_value), reads
    if name == "$max":
        return _Reducer(name, get, _max, lambda: _NOTHING, _no_value), reads
    assert name == "$collect"
    return _Reducer(name, get, _collect, list, _as_is), reads


# A template mirrors the rule's dict: each key holds a reducer's slot, a group path's slot, or
# a nested template.
_Node = tuple[str, int] | tuple[str, "_Template"]
_Template = tuple[tuple[Any, _Node], ...]


@dataclass(frozen=True, slots=True)
class CompiledReduce:
    """A compiled ``$reduce`` rule.

    ``run(items)`` reduces an iterable of items to the list of items the stage emits;
    ``grouped`` says whether the rule groups (then the output is in group order);
    ``reads`` the value paths it reads (``()``: the whole item).
    """

    rule: Any
    run: Callable[[Iterable[Any]], list[Any]]
    grouped: bool
    reads: tuple[Path, ...]


def compile_reduce(rule: Any, position: str) -> CompiledReduce:
    """Validate and compile a ``$reduce`` rule found at ``position``.

    Raises:
        QueryError: an unknown reducer, two reducers in one dict, a dict mixing reducers with
            plain keys, a malformed path, or a rule that is no reducer or dict.
    """
    if not isinstance(rule, dict):
        raise QueryError(
            f'a $reduce rule is a reducer ({{"$count": true}}, {", ".join(REDUCERS[1:])}) or '
            f"a dict of named reducers and group paths, not {rule!r:.60}",
            position,
        )
    if rule and all(map(is_operator, rule)):
        reducer, reads = _reducer_of(rule, position)
        return CompiledReduce(rule, _single(reducer), False, reads)
    reducers: list[_Reducer] = []
    groups: list[Getter] = []
    all_reads: list[Path] = []
    template = _template(rule, position, reducers, groups, all_reads)
    if groups:
        run = _grouped(template, tuple(reducers), tuple(groups))
    else:
        run = _named(template, tuple(reducers))
    return CompiledReduce(rule, run, bool(groups), tuple(all_reads))


def _reducer_of(rule: dict[str, Any], position: str) -> tuple[_Reducer, tuple[Path, ...]]:
    for name in rule:
        if name not in REDUCERS:
            raise QueryError(
                f"unknown reducer {name}; expected one of {', '.join(REDUCERS)}",
                at(position, name),
            )
    if len(rule) != 1:
        raise QueryError(
            f"one reducer per dict, not {len(rule)} ({', '.join(rule)}); name each one: "
            '{"a": {"$min": ...}, "b": {"$max": ...}}',
            position,
        )
    ((name, arg),) = rule.items()
    return _reducer(name, arg, at(position, name))


def _template(
    rule: dict[Any, Any],
    position: str,
    reducers: list[_Reducer],
    groups: list[Getter],
    reads: list[Path],
) -> _Template:
    ops = [k for k in rule if is_operator(k)]
    if ops:
        raise QueryError(
            f"a $reduce dict mixes reducers or operators ({', '.join(ops)}) with plain keys; "
            'name each reducer: {"n": {"$count": true}}',
            position,
        )
    nodes: list[tuple[Any, _Node]] = []
    for key, sub in rule.items():
        where = at(position, key)
        if isinstance(sub, dict) and sub and all(map(is_operator, sub)):
            reducer, reducer_reads = _reducer_of(sub, where)
            nodes.append((key, ("reducer", len(reducers))))
            reducers.append(reducer)
            reads.extend(reducer_reads)
        elif isinstance(sub, dict):
            nodes.append((key, ("dict", _template(sub, where, reducers, groups, reads))))
        else:
            # A group path; `true` means the value's own key of that name, as in a projection.
            compiled = compile_map([key] if sub is True else sub, where)
            nodes.append((key, ("group", len(groups))))
            groups.append(compiled.get)
            reads.extend(compiled.reads)
    return tuple(nodes)


def _single(reducer: _Reducer) -> Callable[[Iterable[Any]], list[Any]]:
    get, step = reducer.get, reducer.step

    def run(items: Iterable[Any]) -> list[Any]:
        acc = reducer.start()
        for item in items:
            acc = step(acc, get(item))
        return [reducer.finish(acc)]

    return run


def _build(
    template: _Template, group: tuple[Any, ...], accs: list[Any], reducers: tuple[_Reducer, ...]
) -> dict[Any, Any]:
    out: dict[Any, Any] = {}
    for key, (kind, slot) in template:
        if kind == "reducer":
            assert isinstance(slot, int)
            out[key] = reducers[slot].finish(accs[slot])
        elif kind == "group":
            assert isinstance(slot, int)
            value = group[slot]
            if value is not MISSING:
                out[key] = value
        else:
            assert isinstance(slot, tuple)
            out[key] = _build(slot, group, accs, reducers)
    return out


def _named(
    template: _Template, reducers: tuple[_Reducer, ...]
) -> Callable[[Iterable[Any]], list[Any]]:
    steps = tuple((r.get, r.step) for r in reducers)
    slots = tuple(range(len(reducers)))

    def run(items: Iterable[Any]) -> list[Any]:
        accs = [r.start() for r in reducers]
        for item in items:
            for i in slots:
                get, step = steps[i]
                accs[i] = step(accs[i], get(item))
        return [_build(template, (), accs, reducers)]

    return run


def _grouped(
    template: _Template, reducers: tuple[_Reducer, ...], groups: tuple[Getter, ...]
) -> Callable[[Iterable[Any]], list[Any]]:
    steps = tuple((r.get, r.step) for r in reducers)
    slots = tuple(range(len(reducers)))
    encode_tuple = keys.encode_tuple

    def run(items: Iterable[Any]) -> list[Any]:
        # Groups are keyed by the key encoding of their value tuple: flume-equal tuples (1 and
        # 1.0) share a group, and sorting the encodings gives flume order of the tuples.
        table: dict[bytes, tuple[tuple[Any, ...], list[Any]]] = {}
        # Encoding every item's tuple is the cost of grouping; groups are few, so remember the
        # encoding of each tuple of hashable values, keyed with their types (1 and 1.0 are two
        # entries with one encoding; True and 1 stay apart).
        encoded: dict[tuple[Any, ...], bytes] = {}
        for item in items:
            values = tuple([g(item) for g in groups])
            typed = tuple([(v.__class__, v) for v in values])
            if all(t in _SCALARS for t, _ in typed):
                cached = encoded.get(typed)
                if cached is None:
                    cached = encoded[typed] = encode_tuple(values)
                k = cached
            else:  # containers: unhashable, or (tuples) equal in Python yet not in flume
                k = encode_tuple(values)
            entry = table.get(k)
            if entry is None:
                entry = table[k] = (values, [r.start() for r in reducers])
            accs = entry[1]
            for i in slots:
                get, step = steps[i]
                accs[i] = step(accs[i], get(item))
        return [
            _build(template, values, accs, reducers)
            for _, (values, accs) in sorted(table.items(), key=_first)
        ]

    return run


def _first(pair: tuple[bytes, Any]) -> bytes:
    return pair[0]
