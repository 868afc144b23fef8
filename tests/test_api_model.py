"""A stateful model test of flume's whole public API (hypothesis ``RuleBasedStateMachine``).

The model is a Python list of the appended values; every view's answer is computed from it in
plain Python: a Reduce view folds the list, an Index view sorts its ``(key, seq)`` pairs in flume
order (the order ``flume.keys`` encodes), a Query view runs the same query over the list with the
stand-alone executor (``flume.query.execute``), in the read order the plan names (log order for a
scan, the chosen index's key order otherwise: "an indexed run returns what a full scan returns").

Rules open, close and reopen the database (on disk: ``flume.open(dir)``; in memory:
``Flume(MemoryLog())``), declare views with changed, reordered and re-declared definitions and
versions, append from one thread and from four at once, delete (by seq and by query; the model
holds ``DELETED`` at a deleted seq, and every answer skips it), read (plain, bounded, reversed,
limited, live), stream the log, drop, rebuild, and ask ``status()`` and ``flume.verify``. Every answer is
compared exactly: dict key order, and int / float / bool, included.

Every read takes a timeout, and live reads are drained by a helper thread with a deadline, so a
stall fails the test instead of hanging it.

``-m slow`` runs the same machine for many more examples and steps.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    precondition,
    rule,
    run_state_machine_as_test,
)

import flume
from flume import DELETED, Entry, Flume, MemoryLog
from flume import keys as fkeys
from flume.errors import (
    DeletedError,
    InvalidArgumentError,
    NotFoundError,
    QueryError,
    ViewNameError,
)
from flume.query import compile_live, execute, parse_query
from flume.query.paths import get_path
from flume.verify import verify
from flume.views import Index, Query, Reduce

# Seconds a read may wait for its view: generous (the views are tiny), so only a stall reaches it.
READ_TIMEOUT = 10.0
# A handle kept from before its view was re-declared: it must answer or refuse, within this.
OLD_HANDLE_TIMEOUT = 3.0
THREADS = 4
# Threads switch this often (seconds) while a rule runs several: races show within a few steps.
SWITCH_INTERVAL = 1e-6


class fast_switching:
    """Make the interpreter switch threads very often, for the duration of a threaded rule."""

    def __enter__(self) -> None:
        self.saved = sys.getswitchinterval()
        sys.setswitchinterval(SWITCH_INTERVAL)

    def __exit__(self, *exc: object) -> None:
        sys.setswitchinterval(self.saved)


def nested(path: list[str], rule: Any) -> dict[str, Any]:
    """A filter that puts ``rule`` at ``path`` (``["c", "d"]`` -> ``{"c": {"d": rule}}``)."""
    for step in reversed(path):
        rule = {step: rule}
    return rule

# -- exact comparison --------------------------------------------------------------------------


def tag(x: Any) -> Any:
    """``x`` as JSON-able data that tells every type apart (bool / int / float, list / tuple,
    str / bytes) and keeps dict key order."""
    if x is None:
        return ["none"]
    if isinstance(x, bool):
        return ["bool", x]
    if isinstance(x, int):
        return ["int", str(x)]
    if isinstance(x, float):
        return ["float", repr(x)]
    if isinstance(x, str):
        return ["str", x]
    if isinstance(x, bytes):
        return ["bytes", x.hex()]
    if isinstance(x, tuple):
        return ["tuple", [tag(i) for i in x]]
    if isinstance(x, list):
        return ["list", [tag(i) for i in x]]
    if isinstance(x, dict):
        return ["dict", [[tag(k), tag(v)] for k, v in x.items()]]
    raise AssertionError(f"unexpected type in an answer: {type(x).__name__}: {x!r}")


def same(actual: Any, expected: Any) -> bool:
    return json.dumps(tag(actual)) == json.dumps(tag(expected))


def assert_same(actual: Any, expected: Any, what: str) -> None:
    assert same(actual, expected), f"{what}:\n  flume: {actual!r}\n  model: {expected!r}"


# -- values ------------------------------------------------------------------------------------

SMALL_INTS = st.integers(-3, 3)
BIG_INTS = st.sampled_from([2**53 + 1, -(2**63), 2**64 - 1, 10**12])
FLOATS = st.sampled_from([0.0, -0.0, 1.0, -1.5, 2.5, 1e300, math.inf, -math.inf])
TEXT = st.text(alphabet="ab\u00e9", max_size=3)
BYTES = st.binary(max_size=2)
SCALARS = st.one_of(
    st.none(), st.booleans(), SMALL_INTS, SMALL_INTS, BIG_INTS, FLOATS, TEXT, TEXT, BYTES
)


def ordered_dicts(keys: str, children: st.SearchStrategy[Any], max_size: int = 3) -> st.SearchStrategy[dict[str, Any]]:
    """Dicts whose keys come in a random order (so key order is something to keep)."""
    return st.lists(
        st.tuples(st.sampled_from(list(keys)), children), max_size=max_size, unique_by=lambda kv: kv[0]
    ).map(dict)


NESTED = st.recursive(
    SCALARS,
    lambda children: st.one_of(st.lists(children, max_size=3), ordered_dicts("zyb", children)),
    max_leaves=5,
)
RECORDS = st.lists(
    st.one_of(
        st.tuples(st.just("a"), NESTED),
        st.tuples(st.just("b"), SCALARS),
        st.tuples(st.just("c"), st.one_of(ordered_dicts("dz", NESTED), SCALARS)),
        st.tuples(st.just("t"), st.lists(st.one_of(SMALL_INTS, TEXT, NESTED), max_size=3)),
        st.tuples(st.just("z"), NESTED),
    ),
    max_size=5,
    unique_by=lambda kv: kv[0],
).map(dict)
VALUES = st.one_of(RECORDS, RECORDS, RECORDS, NESTED)
BATCHES = st.lists(VALUES, min_size=1, max_size=6)

# -- views and their pure-Python answers -------------------------------------------------------


def _field(name: str) -> Callable[[Any], Any]:
    def get(v: Any) -> Any:
        return v.get(name) if isinstance(v, dict) else None

    return get


def _sum_small(acc: int, x: int) -> int:
    return acc + x


def _small_int_a(v: Any) -> Any:
    a = _field("a")(v)
    return a % 1000 if type(a) is int else None


def _count(acc: int, _: Any) -> int:
    return acc + 1


def _kinds(acc: dict[str, Any], v: Any) -> dict[str, Any]:
    name = type(v).__name__
    acc[name] = acc.get(name, 0) + 1
    return acc


def _last_two(acc: list[Any], v: Any) -> list[Any]:
    return [*acc, v][-2:]


# Code-defined views: name -> (constructor of a fresh view for a version, the model's answer).
REDUCERS: dict[str, tuple[Callable[[int], Reduce], Callable[[list[Any]], Any]]] = {
    # cnt and suma forget deletes in place (unreduce); kinds and last are rebuilt.
    "cnt": (
        lambda ver: Reduce(_count, initial=0, version=ver, unreduce=lambda acc, _: acc - 1),
        lambda vs: len(vs),
    ),
    "suma": (
        lambda ver: Reduce(
            _sum_small, initial=0, map=_small_int_a, version=ver, unreduce=lambda a, x: a - x
        ),
        lambda vs: sum(x for x in map(_small_int_a, vs) if x is not None),
    ),
    "kinds": (lambda ver: Reduce(_kinds, initial={"z": 0}, version=ver), None),  # type: ignore[dict-item]
    "last": (lambda ver: Reduce(_last_two, initial=[], version=ver), lambda vs: list(vs[-2:])),
}


def _kinds_model(vs: list[Any]) -> dict[str, Any]:
    acc: dict[str, Any] = {"z": 0}
    for v in vs:
        acc = _kinds(acc, v)
    return acc


REDUCERS["kinds"] = (REDUCERS["kinds"][0], _kinds_model)


def _ab(v: Any) -> Any:
    return (v.get("a"), v.get("b")) if isinstance(v, dict) else None


def _tags(v: Any) -> Any:
    t = _field("t")(v)
    return t if isinstance(t, list) else None


INDEX_FNS: dict[str, Callable[[Any], Any]] = {"ia": _field("a"), "iab": _ab, "itags": _tags}


def keys_of(result: Any) -> list[Any]:
    """What an Index function's result means (DESIGN.md): None no key, a list several."""
    if result is None:
        return []
    return list(result) if isinstance(result, list) else [result]


def key_bytes(key: Any) -> bytes:
    return fkeys.encode_tuple(key if isinstance(key, tuple) else (key,))


def after_prefix(b: bytes) -> bytes | None:
    """The least byte string above every string that starts with ``b``."""
    b = b.rstrip(b"\xff")
    return None if not b else b[:-1] + bytes([b[-1] + 1])


def index_entries(values: list[Any], fn: Callable[[Any], Any]) -> list[tuple[bytes, tuple[Any, int, Any]]]:
    """Every stored entry of an Index view, ``(raw key, (key, seq, value))`` in key order. A key
    a value gives twice is stored once (the seq makes a stored key)."""
    out: dict[bytes, tuple[Any, int, Any]] = {}
    for seq, v in alive(values):
        for k in keys_of(fn(v)):
            out[key_bytes(k) + seq.to_bytes(8, "big")] = (k, seq, v)
    return sorted(out.items())


def alive(values: list[Any]) -> list[tuple[int, Any]]:
    """``(seq, value)`` of the values not deleted."""
    return [(seq, v) for seq, v in enumerate(values) if v is not DELETED]


def in_bounds(raw: bytes, b: dict[str, Any]) -> bool:
    """Does a stored key lie within Index.read's bounds (compared as encoded keys)?"""
    if "prefix" in b:
        p = key_bytes(b["prefix"])
        if not raw.startswith(p):
            return False
    if "gte" in b and raw < key_bytes(b["gte"]):
        return False
    if "gt" in b:
        above = after_prefix(key_bytes(b["gt"]))
        if above is None or raw < above:
            return False
    if "lt" in b and raw >= key_bytes(b["lt"]):
        return False
    if "lte" in b:
        above = after_prefix(key_bytes(b["lte"]))
        if above is not None and raw >= above:
            return False
    return True


def query_entries(values: list[Any], paths: list[list[str]] | None) -> list[tuple[int, Any]]:
    """``(seq, value)`` in a plan's read order: the log's for a scan, else the index's keys."""
    entries = alive(values)
    if paths is not None:
        entries.sort(
            key=lambda e: fkeys.encode_tuple(tuple(get_path(e[1], tuple(p)) for p in paths))
            + e[0].to_bytes(8, "big")
        )
    return entries


def query_answer(
    values: list[Any], paths: list[list[str]] | None, query: Any, reverse: bool, limit: int | None, seqs: bool
) -> list[Any]:
    entries = query_entries(values, paths)
    if reverse:
        entries.reverse()
    out = list(execute(parse_query(query), entries, reverse=reverse, limit=limit, seqs=seqs))
    return [Entry(s, v) for s, v in out] if seqs else out


# -- queries -----------------------------------------------------------------------------------

FIELDS = [["a"], ["b"], ["c", "d"], ["t"], ["z"]]
INDEX_PATHS = [[["a"]], [["b"]], [["c", "d"]], [["a"], ["b"]], [["b"], ["a"]], [["c", "d"], ["a"]]]
INDEX_NAMES = ["x", "y", "w"]

LITERALS = st.one_of(SCALARS, st.lists(SMALL_INTS, max_size=2), ordered_dicts("zyb", SMALL_INTS, 2))
RANGES = st.one_of(
    st.fixed_dictionaries({"$gte": SMALL_INTS}),
    st.fixed_dictionaries({"$gt": SMALL_INTS, "$lte": st.integers(0, 4)}),
    st.fixed_dictionaries({"$lt": st.sampled_from([0, 1.5, 3])}),
    st.fixed_dictionaries({"$gte": st.just("a"), "$lt": st.just("b")}),
    st.fixed_dictionaries({"$prefix": st.sampled_from(["", "a", "b"])}),
)
LEAF_RULES = st.one_of(
    LITERALS,
    LITERALS,
    RANGES,
    RANGES,
    st.fixed_dictionaries({"$eq": LITERALS}),
    st.fixed_dictionaries({"$ne": LITERALS}),
    st.fixed_dictionaries({"$in": st.lists(SCALARS, min_size=1, max_size=3)}),
    st.fixed_dictionaries(
        {"$is": st.sampled_from(["null", "boolean", "number", "string", "bytes", "array", "object", "undefined"])}
    ),
    st.fixed_dictionaries({"$truthy": st.booleans()}),
    st.fixed_dictionaries({"$not": LITERALS}),
)


@st.composite
def filters(draw: st.DrawFn) -> dict[str, Any]:
    rule: dict[str, Any] = {}
    for path in draw(st.lists(st.sampled_from(FIELDS), min_size=1, max_size=2, unique_by=tuple)):
        leaf = draw(LEAF_RULES)
        if path == ["c", "d"]:
            rule.setdefault("c", {})["d"] = leaf
        else:
            rule[path[0]] = leaf
    return rule


MAPS = st.sampled_from(
    [True, "a", ["c", "d"], ["a"], {"z": ["a"], "b": True}, {"out": {"k": ["b"]}, "a": True}, ["t", 0]]
)
REDUCES = st.sampled_from(
    [
        {"$count": True},
        {"$count": 1},
        {"$count": ["a"]},
        {"$sum": ["b"]},
        {"$sum": True},
        {"$collect": ["a"]},
        {"$max": ["a"]},
        {"$min": True},
        {"n": {"$count": True}, "hi": {"$max": ["a"]}},
        {"a": True, "n": {"$count": True}},
        {"g": ["b"], "all": {"$collect": ["a"]}},
    ]
)
SORTS = st.sampled_from([[["a"]], [["b"], ["a"]], [{"$reverse": ["b"]}], [["c", "d"], ["a"]], [True]])


@st.composite
def queries(draw: st.DrawFn, live: bool = False) -> Any:
    shape = draw(st.sampled_from(["f", "fm", "fr", "fs", "fmr", "frs", "none", "m"] if not live else ["f", "fm", "none", "m"]))
    stages: list[Any] = []
    if "f" in shape:
        stages.append({"$filter": draw(filters())})
    if "m" in shape:
        stages.append({"$map": draw(MAPS)})
    if "r" in shape:
        stages.append({"$reduce": draw(REDUCES)})
    if "s" in shape:
        stages.append({"$sort": draw(SORTS)})
    if shape == "none":
        return draw(st.sampled_from([None, []]))
    if len(stages) == 1 and draw(st.booleans()):
        return stages[0]
    return stages


QUERY_DEFS = st.lists(
    st.tuples(st.sampled_from(INDEX_NAMES), st.sampled_from(INDEX_PATHS)),
    min_size=1,
    max_size=3,
    unique_by=lambda t: t[0],
).map(dict)


def yields_records(query: Any) -> bool:
    return parse_query(query).yields_records


# -- the machine -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Spec:
    """A declared view: its kind, the code-defined function's name or the Query definition,
    and its version."""

    kind: str
    fn: str
    version: int
    indexes: tuple[tuple[str, tuple[tuple[str, ...], ...]], ...] = ()

    def make(self) -> Any:
        if self.kind == "reduce":
            return REDUCERS[self.fn][0](self.version)
        if self.kind == "index":
            return Index(INDEX_FNS[self.fn], version=self.version)
        return Query({n: [list(p) for p in paths] for n, paths in self.indexes}, version=self.version)

    def index_paths(self, name: str | None) -> list[list[str]] | None:
        if name is None:
            return None
        return [list(p) for p in dict(self.indexes)[name]]


def query_spec(indexes: dict[str, list[list[str]]], version: int) -> Spec:
    return Spec("query", "", version, tuple((n, tuple(tuple(p) for p in ps)) for n, ps in indexes.items()))


VIEW_NAMES = {"reduce": ["cnt", "suma", "kinds", "last"], "index": ["ia", "iab", "itags"], "query": ["q1", "q2"]}


class Drain:
    """Reads a (live) stream in a helper thread, so that waiting for items has a deadline."""

    def __init__(self, stream: Iterator[Any]) -> None:
        self.stream = stream
        self.items: list[Any] = []
        self.error: BaseException | None = None
        self.cond = threading.Condition()
        self.done = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            for item in self.stream:
                with self.cond:
                    self.items.append(item)
                    self.cond.notify_all()
        except BaseException as e:  # noqa: BLE001 - reported by the test thread
            self.error = e
        with self.cond:
            self.done = True
            self.cond.notify_all()

    def wait_for(self, n: int, timeout: float = READ_TIMEOUT) -> list[Any]:
        with self.cond:
            self.cond.wait_for(lambda: len(self.items) >= n or self.done, timeout)
            if self.error is not None:
                raise self.error
            return list(self.items)

    def close(self) -> None:
        self.stream.close()  # type: ignore[attr-defined]
        self.thread.join(READ_TIMEOUT)
        assert not self.thread.is_alive(), "closing a live read did not end its iteration"


class FlumeModel(RuleBasedStateMachine):
    """The whole API against a list of values. ``disk`` is set by the subclass."""

    disk = False

    def __init__(self) -> None:
        super().__init__()
        self.values: list[Any] = []
        # Views as stored in the database (name -> Spec) and as mounted now (name -> stored?).
        self.stored: dict[str, Spec] = {}
        self.mounted: dict[str, bool] = {}
        self.old_handles: list[tuple[str, Any, Spec]] = []
        self.dir: str | None = None
        self.db: Flume
        if self.disk:
            self.dir = tempfile.mkdtemp(prefix="flume-model-")
            self.db = flume.open(self.dir, timeout=READ_TIMEOUT)
        else:
            self.db = Flume(MemoryLog(), timeout=READ_TIMEOUT)

    def teardown(self) -> None:
        self.db.close()
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)

    # -- helpers ---------------------------------------------------------------------------

    def spec(self, name: str) -> Spec:
        return self.stored[name]

    def names(self, kind: str) -> list[str]:
        return [n for n in sorted(self.mounted) if self.stored[n].kind == kind]

    def check_view(self, name: str, handle: Any = None, spec: Spec | None = None, timeout: float = READ_TIMEOUT) -> None:
        """Compare the plain answers of view ``name`` with the model's."""
        spec = spec or self.spec(name)
        handle = handle if handle is not None else getattr(self.db, name)
        if spec.kind == "reduce":
            assert_same(handle.get(timeout=timeout), REDUCERS[spec.fn][1]([v for _, v in alive(self.values)]), f"{name}.get()")
        elif spec.kind == "index":
            expected = [e for _, e in index_entries(self.values, INDEX_FNS[spec.fn])]
            got = [tuple(e) for e in handle.read(timeout=timeout)]
            assert_same(got, expected, f"{name}.read()")
        else:
            probes: list[Any] = [None, {"$filter": {"a": {"$gte": -100}}}]
            for _, paths in spec.indexes:
                first = list(paths[0])
                probes += [
                    [{"$sort": [list(p) for p in paths]}],  # reads this index whole
                    [{"$filter": nested(first, {"$is": "object"})}, {"$map": first}],  # covered
                    [{"$filter": nested(first, {"$gte": 0})}, {"$reduce": {"$count": 1}}],  # exact range
                ]
            for query in probes:
                got = list(handle.read(query, timeout=timeout))
                plan = handle.explain(query)["index"]
                assert_same(got, query_answer(self.values, spec.index_paths(plan), query, False, None, False), f"{name}.read({query!r})")

    def declare(self, name: str, spec: Spec) -> None:
        """``db.use(name, ...)``, with the outcome the contract gives: a mounted view declared
        again is replaced (and rebuilt) unless the declaration has its fingerprint; the same
        Query definition is reused, and a view defined by code with the same version (its
        functions cannot be compared) is a clash."""
        if name in self.mounted and not self.mounted[name]:
            current = self.stored[name]
            same = (spec.kind, spec.version, spec.indexes) == (
                current.kind, current.version, current.indexes
            )  # order-sensitive: the indexes' order orders the key prefixes
            if same and spec.kind != "query":
                with pytest.raises(ViewNameError):
                    self.db.use(name, spec.make())
                return
        if name in self.mounted:
            self.old_handles.append((name, getattr(self.db, name), self.stored[name]))
        self.db.use(name, spec.make())
        self.stored[name] = spec
        self.mounted[name] = False

    # -- rules: views ----------------------------------------------------------------------

    @rule(name=st.sampled_from(VIEW_NAMES["reduce"]), version=st.integers(1, 2))
    def use_reduce(self, name: str, version: int) -> None:
        self.declare(name, Spec("reduce", name, version))
        self.check_view(name)

    @rule(name=st.sampled_from(VIEW_NAMES["index"]), version=st.integers(1, 2))
    def use_index(self, name: str, version: int) -> None:
        self.declare(name, Spec("index", name, version))
        self.check_view(name)

    @rule(name=st.sampled_from(VIEW_NAMES["query"]), indexes=QUERY_DEFS, version=st.integers(1, 2))
    def use_query(self, name: str, indexes: dict[str, list[list[str]]], version: int) -> None:
        self.declare(name, query_spec(indexes, version))
        self.check_view(name)

    @precondition(lambda self: any(self.stored[n].kind == "query" for n in self.mounted))
    @rule(data=st.data(), how=st.sampled_from(["same", "reordered", "renamed", "reversed-paths"]))
    def redeclare_query(self, data: st.DataObject, how: str) -> None:
        """Declare a mounted Query view again: the same definition, its indexes in another
        order, the same index names over other paths (swapped), each index's paths reversed."""
        name = data.draw(st.sampled_from(self.names("query")))
        spec = self.stored[name]
        indexes = {n: [list(p) for p in ps] for n, ps in spec.indexes}
        items = list(indexes.items())
        if how == "reordered":
            items = items[::-1] if len(items) > 1 else items
            indexes = dict(items)
        elif how == "renamed" and len(items) > 1:
            names = [n for n, _ in items]
            indexes = dict(zip(names, [ps for _, ps in items[1:] + items[:1]]))
        elif how == "reversed-paths":
            indexes = {n: ps[::-1] for n, ps in items}
        self.declare(name, query_spec(indexes, spec.version))
        self.check_view(name)

    @precondition(lambda self: bool(self.stored))
    @rule(data=st.data())
    def drop(self, data: st.DataObject) -> None:
        name = data.draw(st.sampled_from(sorted(self.stored)))
        self.db.drop(name)
        del self.stored[name]
        self.mounted.pop(name, None)
        assert name not in self.db.views
        with pytest.raises(NotFoundError):
            self.db.drop(name)

    @rule()
    def rebuild(self) -> None:
        self.db.rebuild(timeout=READ_TIMEOUT)
        for name in self.mounted:
            self.check_view(name)

    @rule()
    def status(self) -> None:
        for name in self.mounted:
            self.db.views[name].ready(timeout=READ_TIMEOUT)
        status = self.db.status()
        since = len(self.values) - 1
        assert status["since"] == since
        assert sorted(status["views"]) == sorted(self.mounted)
        for name, info in status["views"].items():
            assert info["kind"] == self.stored[name].kind
            assert (info["since"], info["lag"], info["state"]) == (since, 0, "ready"), (name, info)

    @precondition(lambda self: bool(self.old_handles))
    @rule(data=st.data())
    def read_old_handle(self, data: st.DataObject) -> None:
        """A handle got before its view was re-declared answers by the view now under that
        name, at once; after a drop it raises NotFoundError."""
        name, handle, old_spec = data.draw(st.sampled_from(self.old_handles))
        if name in self.mounted:
            self.check_view(name, handle, self.stored[name], timeout=OLD_HANDLE_TIMEOUT)
        else:
            with pytest.raises(NotFoundError):
                self.check_view(name, handle, old_spec)

    # -- rules: the log ----------------------------------------------------------------------

    @rule(value=VALUES)
    def append(self, value: Any) -> None:
        seq = self.db.append(value)
        assert seq == len(self.values)
        self.values.append(value)
        assert_same(self.db.get(seq), value, f"get({seq})")

    @rule(values=BATCHES)
    def append_many(self, values: list[Any]) -> None:
        last = self.db.append_many(values)
        self.values.extend(values)
        assert last == len(self.values) - 1

    @precondition(lambda self: bool(self.values))
    @rule(data=st.data(), one=st.booleans())
    def delete(self, data: st.DataObject, one: bool) -> None:
        """Delete seqs (some deleted before): each reads as deleted, every view forgets them."""
        n = len(self.values)
        seqs = data.draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=4))
        fresh = {seq for seq in seqs if self.values[seq] is not DELETED}
        if one:
            assert self.db.delete(seqs[0]) == (seqs[0] in fresh)
            fresh = {seqs[0]} & fresh
        else:
            assert self.db.delete_many(seqs) == len(fresh)
        for seq in fresh:
            self.values[seq] = DELETED
        with pytest.raises(DeletedError):
            self.db.get(seqs[0])
        for name in self.mounted:
            self.check_view(name)

    @precondition(lambda self: bool(self.values))
    @rule(data=st.data())
    def delete_refused(self, data: st.DataObject) -> None:
        """A batch naming a seq past the log's end deletes nothing."""
        n = len(self.values)
        seqs = data.draw(st.lists(st.integers(0, n + 2), min_size=1, max_size=3)) + [n]
        with pytest.raises(NotFoundError):
            self.db.delete_many(seqs)
        assert_same([e.value for e in self.db.stream()], [v for _, v in alive(self.values)], "log")

    @rule(query=queries(), view=st.booleans())
    def delete_where(self, query: Any, view: bool) -> None:
        """Delete what a query's first filter matches, by a scan or through a Query view."""
        first = query[:1] if isinstance(query, list) and query and "$filter" in query[0] else []
        where = first or [{"$filter": {"a": 0}}]
        names = self.names("query")
        name = names[0] if view and names else None
        matched = {e.seq for e in query_answer(self.values, None, where, False, None, True)}
        assert self.db.delete_where(where, view=name) == len(matched)
        for seq in matched:
            self.values[seq] = DELETED
        for name in self.mounted:
            self.check_view(name)

    @rule(batches=st.lists(BATCHES, min_size=THREADS, max_size=THREADS), many=st.booleans())
    def append_threads(self, batches: list[list[Any]], many: bool) -> None:
        """Four threads append at once (one value at a time, or batches): all land, whole, each
        thread's in its order."""
        failures: list[BaseException] = []
        start = len(self.values)
        # Each value says which thread appended it, and its place there.
        batches = [[{"th": [k, i], "v": v} for i, v in enumerate(b)] for k, b in enumerate(batches)]

        def run(values: list[Any]) -> None:
            try:
                if many:
                    self.db.append_many(values)
                else:
                    for v in values:
                        self.db.append(v)
            except BaseException as e:  # noqa: BLE001
                failures.append(e)

        threads = [threading.Thread(target=run, args=(b,)) for b in batches]
        with fast_switching():
            for t in threads:
                t.start()
            for t in threads:
                t.join(READ_TIMEOUT)
                assert not t.is_alive(), "an append thread did not finish"
        assert not failures, failures
        total = sum(len(b) for b in batches)
        assert self.db.since.value == start + total - 1
        landed = [e.value for e in self.db.stream(gte=start)]
        assert len(landed) == total
        # Every thread's values, whole and in its order (a batch contiguous).
        for k, b in enumerate(batches):
            mine = [v for v in landed if isinstance(v, dict) and v.get("th", [None])[0] == k]
            assert_same(mine, b, f"the values thread {k} appended")
            if many:
                at = next(i for i, v in enumerate(landed) if same(v, b[0]))
                assert_same(landed[at : at + len(b)], b, f"thread {k}'s batch, contiguous")
        self.values.extend(landed)
        for name in self.mounted:
            self.check_view(name)

    @rule(
        gt=st.none() | st.integers(0, 8), lt=st.none() | st.integers(0, 12), inclusive=st.booleans(),
        reverse=st.booleans(), limit=st.none() | st.integers(0, 4),
        form=st.sampled_from(["entries", "values", "seqs"]),
    )
    def stream(self, gt: int | None, lt: int | None, inclusive: bool, reverse: bool, limit: int | None, form: str) -> None:
        opts: dict[str, Any] = {}
        if gt is not None:
            opts["gte" if inclusive else "gt"] = gt
        if lt is not None:
            opts["lte" if inclusive else "lt"] = lt
        if gt is not None and lt is not None and gt > lt:
            with pytest.raises(InvalidArgumentError):
                self.db.stream(**opts)
            return
        entries = alive(self.values)
        if gt is not None:
            entries = [e for e in entries if (e[0] >= gt if inclusive else e[0] > gt)]
        if lt is not None:
            entries = [e for e in entries if (e[0] <= lt if inclusive else e[0] < lt)]
        if reverse:
            entries.reverse()
        if limit is not None:
            entries = entries[:limit]
        expected: list[Any] = [Entry(s, v) for s, v in entries]
        if form == "values":
            opts["seqs"] = False
            expected = [v for _, v in entries]
        elif form == "seqs":
            opts["values"] = False
            expected = [s for s, _ in entries]
        with self.db.stream(reverse=reverse, limit=limit, **opts) as s:  # type: ignore[attr-defined]
            got = list(s)
        assert_same(got, expected, f"stream({opts}, reverse={reverse}, limit={limit})")

    # -- rules: reads ----------------------------------------------------------------------

    @precondition(lambda self: bool(self.names("reduce")))
    @rule(data=st.data())
    def reduce_get(self, data: st.DataObject) -> None:
        self.check_view(data.draw(st.sampled_from(self.names("reduce"))))

    @precondition(lambda self: bool(self.names("index")))
    @rule(
        data=st.data(), bound=st.one_of(SCALARS, st.tuples(SCALARS), st.tuples(SCALARS, SCALARS)),
        bound2=st.one_of(SCALARS, st.tuples(SCALARS)),
        which=st.sampled_from(["none", "gt", "gte", "lt", "lte", "prefix", "gte+lt", "gt+lte", "prefix+gt"]),
        reverse=st.booleans(), limit=st.none() | st.integers(0, 4),
    )
    def index_read(self, data: st.DataObject, bound: Any, bound2: Any, which: str, reverse: bool, limit: int | None) -> None:
        name = data.draw(st.sampled_from(self.names("index")))
        spec = self.stored[name]
        bounds: dict[str, Any] = {}
        if which != "none":
            # None is no bound (the API's default), not a bound at None.
            parts = which.split("+")
            if bound is not None:
                bounds[parts[0]] = bound
            if len(parts) == 2 and bound2 is not None:
                bounds[parts[1]] = bound2
        low = bounds.get("gt", bounds.get("gte"))
        high = bounds.get("lt", bounds.get("lte"))
        handle = getattr(self.db, name)
        if low is not None and high is not None and fkeys.compare(low, high) > 0:
            with pytest.raises(InvalidArgumentError):
                handle.read(**bounds, timeout=READ_TIMEOUT)
            return
        expected = [e for raw, e in index_entries(self.values, INDEX_FNS[spec.fn]) if in_bounds(raw, bounds)]
        if reverse:
            expected.reverse()
        if limit is not None:
            expected = expected[:limit]
        got = [tuple(e) for e in handle.read(**bounds, reverse=reverse, limit=limit, timeout=READ_TIMEOUT)]
        assert_same(got, expected, f"{name}.read({bounds}, reverse={reverse}, limit={limit})")
        # get(key): the newest value with exactly that key.
        key = bound if not isinstance(bound, tuple) or spec.fn == "iab" else bound[0]
        exact = [e for raw, e in index_entries(self.values, INDEX_FNS[spec.fn]) if raw[:-8] == key_bytes(key)]
        if exact:
            assert_same(handle.get(key, timeout=READ_TIMEOUT), exact[-1][2], f"{name}.get({key!r})")
        else:
            with pytest.raises(NotFoundError):
                handle.get(key, timeout=READ_TIMEOUT)

    def run_query(self, name: str, query: Any, reverse: bool, limit: int | None, seqs: bool) -> None:
        handle = getattr(self.db, name)
        try:
            parse_query(query)
        except QueryError:
            with pytest.raises(QueryError):
                handle.read(query, timeout=READ_TIMEOUT)
            return
        seqs = seqs and yields_records(query)
        plan = handle.explain(query)["index"]
        expected = query_answer(self.values, self.stored[name].index_paths(plan), query, reverse, limit, seqs)
        got = list(handle.read(query, reverse=reverse, limit=limit, seqs=seqs, timeout=READ_TIMEOUT))
        assert_same(got, expected, f"{name}.read({query!r}, reverse={reverse}, limit={limit}, seqs={seqs}) [index {plan}]")

    @precondition(lambda self: bool(self.names("query")))
    @rule(data=st.data(), query=queries(), reverse=st.booleans(), limit=st.none() | st.integers(0, 4), seqs=st.booleans())
    def query_read(self, data: st.DataObject, query: Any, reverse: bool, limit: int | None, seqs: bool) -> None:
        self.run_query(data.draw(st.sampled_from(self.names("query"))), query, reverse, limit, seqs)

    @precondition(lambda self: bool(self.names("query")))
    @rule(data=st.data(), base=st.lists(queries(), min_size=1, max_size=3))
    def query_threads(self, data: st.DataObject, base: list[Any]) -> None:
        """Four threads query one view at once, each many distinct queries (more than the plan
        cache holds), and every answer is the model's."""
        name = data.draw(st.sampled_from(self.names("query")))
        failures: list[BaseException] = []

        def run(k: int) -> None:
            try:
                for i in range(80):
                    # Distinct queries: a filter on a value no record holds, beside the drawn one.
                    q = base[i % len(base)]
                    extra = {"$filter": {"zz": {"$ne": [k, i]}}}
                    query = [extra, *(q if isinstance(q, list) else [] if q is None else [q])]
                    self.run_query(name, query, False, None, False)
            except BaseException as e:  # noqa: BLE001
                failures.append(e)

        threads = [threading.Thread(target=run, args=(k,)) for k in range(THREADS)]
        with fast_switching():
            for t in threads:
                t.start()
            for t in threads:
                t.join(READ_TIMEOUT * 4)
                assert not t.is_alive(), "a query thread did not finish"
        if failures:
            raise failures[0]

    # -- rules: live reads -------------------------------------------------------------------

    def live_check(self, start: Callable[[], Any], expected_old: list[Any], new: list[Any],
                   expected_for: Callable[[int, Any], list[Any]], ready: Callable[[], None], wait_first: bool) -> None:
        """Start a live read, append ``new``, and check it yields ``expected_old`` then each
        new match exactly once: a sentinel appended last (a copy of a matching new value) must
        come right after them, with nothing repeated in between."""
        stream = start()
        drain: Drain | None = None
        try:
            if not wait_first:
                drain = Drain(stream)
                drain.wait_for(0, 0)
            first = len(self.values)
            self.db.append_many(new)
            self.values.extend(new)
            if wait_first:
                ready()  # the new values are indexed before the read's first next()
                drain = Drain(stream)
            expected = list(expected_old)
            for i, v in enumerate(new):
                expected.extend(expected_for(first + i, v))
            got = drain.wait_for(len(expected))
            assert_same(got[: len(expected)], expected, "a live read, before the sentinel")
            sentinel = next((v for i, v in enumerate(new) if expected_for(first + i, v)), None)
            if sentinel is not None:
                seq = self.db.append(sentinel)
                self.values.append(sentinel)
                tail = expected_for(seq, sentinel)
                got = drain.wait_for(len(expected) + len(tail))
                assert_same(got[len(expected):], tail, "a live read: after its items, the sentinel's (nothing twice)")
        finally:
            if drain is not None:
                drain.close()
            else:
                stream.close()

    @precondition(lambda self: bool(self.names("index")))
    @rule(data=st.data(), new=BATCHES, old=st.booleans(), wait_first=st.booleans())
    def index_live(self, data: st.DataObject, new: list[Any], old: bool, wait_first: bool) -> None:
        name = data.draw(st.sampled_from(self.names("index")))
        fn = INDEX_FNS[self.stored[name].fn]
        handle = getattr(self.db, name)
        expected_old = [e for _, e in index_entries(self.values, fn)] if old else []

        def expected_for(seq: int, v: Any) -> list[Any]:
            return [e for _, e in index_entries([None] * seq + [v], fn) if e[1] == seq]

        self.live_check(
            lambda: handle.read(live=True, old=old, timeout=READ_TIMEOUT), expected_old, new,
            expected_for, lambda: handle.ready(timeout=READ_TIMEOUT), wait_first,
        )
        # (the live stream yields IndexEntry tuples: compared as tuples)

    @precondition(lambda self: bool(self.names("query")))
    @rule(data=st.data(), query=queries(live=True), new=BATCHES, old=st.booleans(), wait_first=st.booleans())
    def query_live(self, data: st.DataObject, query: Any, new: list[Any], old: bool, wait_first: bool) -> None:
        name = data.draw(st.sampled_from(self.names("query")))
        handle = getattr(self.db, name)
        seqs = yields_records(query)
        plan = handle.explain(query)["index"]
        expected_old = query_answer(self.values, self.stored[name].index_paths(plan), query, False, None, seqs) if old else []
        live = compile_live(parse_query(query))

        def expected_for(seq: int, v: Any) -> list[Any]:
            item = live(v)
            if item is fkeys.MISSING:
                return []
            return [Entry(seq, v) if seqs else item]

        self.live_check(
            lambda: handle.read(query, live=True, old=old, seqs=seqs, timeout=READ_TIMEOUT), expected_old, new,
            expected_for, lambda: handle.ready(timeout=READ_TIMEOUT), wait_first,
        )

    @rule(new=BATCHES, old=st.booleans())
    def stream_live(self, new: list[Any], old: bool) -> None:
        expected_old = [Entry(s, v) for s, v in alive(self.values)] if old else []
        self.live_check(
            lambda: self.db.stream(live=True, old=old), expected_old, new,
            lambda seq, v: [Entry(seq, v)], lambda: None, False,
        )


class MemoryModel(FlumeModel):
    disk = False


class DiskModel(FlumeModel):
    disk = True

    @rule()
    def reopen(self) -> None:
        """Close and open again: stored Query views are mounted from their stored definitions;
        views defined by code wait to be declared again."""
        self.db.close()
        assert self.dir is not None
        self.db = flume.open(self.dir, timeout=READ_TIMEOUT)
        self.mounted = {n: True for n, s in self.stored.items() if s.kind == "query"}
        self.old_handles = []
        assert sorted(self.db.views) == sorted(self.mounted)
        for name in self.mounted:
            self.check_view(name)

    @rule()
    def verify(self) -> None:
        for name in self.mounted:
            self.db.views[name].ready(timeout=READ_TIMEOUT)
        report = verify(self.dir)  # type: ignore[arg-type]
        assert report.ok, report.lines()
        checked = {v.name for v in report.views if v.status == "ok"}
        assert {n for n, s in self.stored.items() if s.kind == "query"} <= checked, report.lines()


# A fixed sequence of examples for the default suite: the same steps every run.
FAST = settings(
    max_examples=int(os.environ.get("FLUME_MODEL_EXAMPLES", "12")),
    stateful_step_count=20,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
SLOW = settings(
    max_examples=int(os.environ.get("FLUME_MODEL_EXAMPLES_SLOW", "300")),
    stateful_step_count=60,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)


def test_model_memory() -> None:
    run_state_machine_as_test(MemoryModel, settings=FAST)


def test_model_disk() -> None:
    run_state_machine_as_test(DiskModel, settings=FAST)


@pytest.mark.slow
def test_model_memory_long() -> None:
    run_state_machine_as_test(MemoryModel, settings=SLOW)


@pytest.mark.slow
def test_model_disk_long() -> None:
    run_state_machine_as_test(DiskModel, settings=SLOW)
