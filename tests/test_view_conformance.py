"""Reduce and Index pass the view conformance suite, in memory and on disk."""

from __future__ import annotations

from typing import Any

from flume.db import MountedView
from flume.testing.views import OnDiskViewConformance, Seen, ViewConformance
from flume.views import Index, IndexEntry, Reduce, View


class ReduceSpec:
    """A Reduce with a map that skips values and a reducer that updates its state in place."""

    def make_view(self, version: int, seen: Seen) -> View:
        def skip_some(value: Any) -> Any:
            seen(value)
            return None if value["type"] == "skip" else value

        def reducer(acc: dict[str, Any], value: Any) -> dict[str, Any]:
            by_author = acc.setdefault("by_author", {})
            by_author[value["author"]] = by_author.get(value["author"], 0) + 1
            acc["ts_sum"] += value["ts"]
            acc["last"] = value["i"]
            return acc

        return Reduce(reducer, initial={"ts_sum": 0, "last": None}, map=skip_some, version=version)

    def read_view(self, view: MountedView) -> Any:
        return view.get()

    def expected(self, values: list[Any]) -> Any:
        acc: dict[str, Any] = {"ts_sum": 0, "last": None}
        for v in values:
            if v["type"] == "skip":
                continue
            by_author = acc.setdefault("by_author", {})
            by_author[v["author"]] = by_author.get(v["author"], 0) + 1
            acc["ts_sum"] += v["ts"]
            acc["last"] = v["i"]
        return acc


class IndexSpec:
    """An Index with tuple keys, several keys per value, and values it skips (None)."""

    @staticmethod
    def keys_of(value: Any) -> Any:
        if value["type"] == "skip":
            return None
        return [(value["author"], value["ts"])] + [("#" + t, value["ts"]) for t in value["tags"]]

    def make_view(self, version: int, seen: Seen) -> View:
        def fn(value: Any) -> Any:
            seen(value)
            return self.keys_of(value)

        return Index(fn, version=version)

    def read_view(self, view: MountedView) -> Any:
        return list(view.read())

    def expected(self, values: list[Any]) -> Any:
        entries = [
            IndexEntry(key, seq, v)
            for seq, v in enumerate(values)
            for key in (self.keys_of(v) or [])
        ]
        # (str, int) tuples: Python's order is flume order here. Ties go by seq.
        return sorted(entries, key=lambda e: (e.key, e.seq))


class TestReduceInMemory(ReduceSpec, ViewConformance):
    pass


class TestReduceOnDisk(ReduceSpec, OnDiskViewConformance):
    pass


class TestIndexInMemory(IndexSpec, ViewConformance):
    pass


class TestIndexOnDisk(IndexSpec, OnDiskViewConformance):
    pass
