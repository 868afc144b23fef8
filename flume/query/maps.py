"""``$map`` rules (also the paths of reducers and of ``$sort``): validation and compilation.

A map rule compiles to a getter ``Callable[[value], result]`` that returns
:data:`~flume.keys.MISSING` when there is nothing there; the ``$map`` stage drops exactly those
results (JS dropped every falsy one). Compilation also lists the value paths the rule *reads*,
which the planner uses to tell whether index keys alone can answer a query.

Rules (QUERY.md, ``$map``): ``true`` is the value; ``"k"`` is ``v[k]`` of a dict; an int is
``v[i]`` of a list (negative from the end); ``[step, ...]`` applies keys, indexes and nested
paths in turn (``true`` as a step is the value, a no-op); ``{"out": rule, ...}`` builds a new
dict, where ``true`` means ``v["out"]`` and missing results leave their key out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from flume.errors import QueryError
from flume.keys import MISSING
from flume.query.paths import Path, at, is_operator

__all__ = ["CompiledMap", "Getter", "compile_map", "key_path", "reads_of_steps"]

Getter = Callable[[Any], Any]
"""A compiled map rule: value -> result, MISSING when there is none."""

_LIST_TYPES: Final = (list, tuple)


@dataclass(frozen=True, slots=True)
class CompiledMap:
    """A compiled map rule: ``get(value)`` and the value paths it reads (``()``: all of it)."""

    rule: Any
    get: Getter
    reads: tuple[Path, ...]


def _identity(v: Any) -> Any:
    return v


def compile_map(rule: Any, position: str) -> CompiledMap:
    """Validate and compile a map rule (a ``$map`` stage, a reducer's or a sort's path).

    Raises:
        QueryError: the rule or a part of it is malformed; ``path`` names that part.
    """
    if rule is True:
        return CompiledMap(rule, _identity, ((),))
    if isinstance(rule, str):
        return CompiledMap(rule, _key_getter(rule), ((rule,),))
    if isinstance(rule, int) and not isinstance(rule, bool):
        return CompiledMap(rule, _index_getter(rule), ((),))
    if isinstance(rule, _LIST_TYPES):
        steps = _flatten_steps(rule, position)
        return CompiledMap(rule, _path_getter(steps), (reads_of_steps(steps),))
    if isinstance(rule, dict):
        return _compile_projection(rule, position)
    raise QueryError(
        f"a $map rule is true, a key (str), an index (int), a path (list) or a projection "
        f"(dict), not {rule!r:.60}",
        position,
    )


def key_path(rule: Any) -> Path | None:
    """The path of dict keys a map rule follows (``"k"`` or a list of keys), else None.

    Index fields are such paths; the planner compares them with ``$sort`` and group paths.
    """
    if isinstance(rule, str):
        return (rule,)
    if isinstance(rule, _LIST_TYPES):
        out: list[Any] = []
        for step in rule:
            if isinstance(step, str):
                out.append(step)
            elif step is True:
                continue
            elif isinstance(step, _LIST_TYPES):
                inner = key_path(step)
                if inner is None:
                    return None
                out.extend(inner)
            else:
                return None
        return tuple(out)
    return None


def reads_of_steps(steps: tuple[Any, ...]) -> Path:
    """The value path a path of steps reads: its leading keys (an index reads all there)."""
    out: list[Any] = []
    for step in steps:
        if isinstance(step, int):
            break
        out.append(step)
    return tuple(out)


def _flatten_steps(rule: Any, position: str) -> tuple[Any, ...]:
    """The steps of a path, nested paths spliced in and ``true`` steps dropped."""
    steps: list[Any] = []
    for i, step in enumerate(rule):
        where = at(position, i)
        if step is True:
            continue
        if isinstance(step, str) or (isinstance(step, int) and not isinstance(step, bool)):
            steps.append(step)
        elif isinstance(step, _LIST_TYPES):
            steps.extend(_flatten_steps(step, where))
        elif isinstance(step, dict) and any(map(is_operator, step)):
            op = next(k for k in step if is_operator(k))
            raise QueryError(
                f"a path step holds the operator {op}; steps are keys (str), indexes (int) "
                "or nested paths (list)",
                at(where, op),
            )
        else:
            raise QueryError(
                f"a path step is a key (str), an index (int) or a nested path (list), "
                f"not {step!r:.60}",
                where,
            )
    return tuple(steps)


def _key_getter(key: Any) -> Getter:
    def get_key(v: Any) -> Any:
        return v.get(key, MISSING) if isinstance(v, dict) else MISSING

    return get_key


def _index_getter(i: int) -> Getter:
    def get_index(v: Any) -> Any:
        if isinstance(v, _LIST_TYPES):
            try:
                return v[i]
            except IndexError:
                return MISSING
        return MISSING  # negative indexes apply to lists only, never to strings

    return get_index


def _path_getter(steps: tuple[Any, ...]) -> Getter:
    if not steps:
        return _identity
    if len(steps) == 1:
        (step,) = steps
        return _key_getter(step) if isinstance(step, str) else _index_getter(step)
    if all(isinstance(s, str) for s in steps):

        def get_keys(v: Any) -> Any:
            for k in steps:
                if not isinstance(v, dict):
                    return MISSING
                v = v.get(k, MISSING)
            return v

        return get_keys
    getters = tuple(_key_getter(s) if isinstance(s, str) else _index_getter(s) for s in steps)

    def get_path(v: Any) -> Any:
        for get in getters:
            v = get(v)
            if v is MISSING:
                return MISSING
        return v

    return get_path


def _compile_projection(rule: dict[Any, Any], position: str) -> CompiledMap:
    ops = [k for k in rule if is_operator(k)]
    if ops and len(ops) != len(rule):
        raise QueryError(
            f"a $map projection mixes operators ({', '.join(ops)}) with plain keys; a "
            "projection holds only output keys",
            position,
        )
    if ops:
        raise QueryError(
            f"{ops[0]} is not a $map rule: a projection holds output keys, and $map has no "
            "operators",
            at(position, ops[0]),
        )
    items: list[tuple[Any, Getter]] = []
    reads: list[Path] = []
    for key, sub in rule.items():
        if sub is True:
            # Inside a projection `true` means the value's own key of that name.
            items.append((key, _key_getter(key)))
            reads.append((key,))
        else:
            compiled = compile_map(sub, at(position, key))
            items.append((key, compiled.get))
            reads.extend(compiled.reads)
    fields = tuple(items)

    def project(v: Any) -> Any:
        out = {}
        for key, get in fields:
            x = get(v)
            if x is not MISSING:
                out[key] = x
        return out

    return CompiledMap(rule, project, tuple(reads))
