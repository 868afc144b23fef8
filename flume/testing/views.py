"""``ViewConformance``: the reusable test suite every flume view must pass.

Subclass it in a pytest test module with a factory of the view and a function that reads its
whole answer; pytest then checks the promises of DESIGN.md against it::

    from flume.testing import OnDiskViewConformance, ViewConformance

    class CountSpec:
        def make_view(self, version, seen):
            def reducer(acc, value):
                seen(value)                 # the suite counts the calls of the user function
                return acc + 1
            return Reduce(reducer, initial=0, version=version)

        def read_view(self, view):
            return view.get()

        def expected(self, values):         # optional: a model of the answer
            return len(values)

    class TestCountInMemory(CountSpec, ViewConformance): ...
    class TestCountOnDisk(CountSpec, OnDiskViewConformance): ...

The checks: a view built incrementally while appends happen (from other threads too, and
mounted midway) answers exactly like the same view rebuilt from scratch (``db.rebuild()``, and a
fresh database over the same log) and like the model; close and reopen keep it and resume from
its ``since`` (the user function sees only the new entries); a version change, in either
direction, rebuilds it; reads right after an append always see it (read-your-writes).

``ViewConformance`` runs on a ``MemoryLog`` with in-memory view stores; ``OnDiskViewConformance``
on ``flume.open(dir)`` (LMDB and RocksDB).
"""

from __future__ import annotations

import os
import random
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import flume
from flume.db import Flume, MountedView
from flume.logs.memory import MemoryLog
from flume.views.base import View
from flume.views.store import MemoryStore

WAIT = 10.0  # upper bound of every wait: only a real hang trips it
NAME = "v"  # the name the suite mounts the view under

Seen = Callable[[Any], None]


class Counter:
    """A ``seen`` callback that counts the values a view's user function was called with."""

    def __init__(self) -> None:
        self.values: list[Any] = []
        self._lock = threading.Lock()

    def __call__(self, value: Any) -> None:
        with self._lock:
            self.values.append(value)

    @property
    def count(self) -> int:
        return len(self.values)


class ViewConformance:
    """The view conformance suite on in-memory storage; subclass with a factory (see the
    module docstring). Test classes must be named ``Test...`` for pytest to collect them."""

    # -- the factory (override) ---------------------------------------------------------------

    def make_view(self, version: int, seen: Seen) -> View:
        """A new instance of the view under test. Its user function (map, reducer, index fn)
        must call ``seen(value)`` once for each log value it processes."""
        raise NotImplementedError

    def read_view(self, view: MountedView) -> Any:
        """The view's whole answer, as a comparable value (e.g. ``list(view.read())``)."""
        raise NotImplementedError

    def expected(self, values: list[Any]) -> Any:
        """The answer the view must give for a log holding ``values``; ``NotImplemented`` (the
        default) when there is no model, and then only the other checks run."""
        return NotImplemented

    def value(self, i: int, rng: random.Random) -> Any:
        """The ``i``-th value the suite appends (random but reproducible; override to taste)."""
        return {
            "author": rng.choice(["@a", "@b", "@c", "@d"]),
            "ts": rng.randrange(50),
            "type": rng.choice(["post", "post", "vote", "skip"]),
            "tags": rng.sample(["x", "y", "z"], rng.randrange(3)),
            "i": i,
        }

    # -- storage (override for other stores) ---------------------------------------------------

    def open_db(self, tmp_path: Path) -> Flume:
        """A new, empty, writable database."""
        store = MemoryStore()
        db = Flume(MemoryLog(), store=store)
        self._memory_stores[id(db)] = store
        return db

    def reopen_db(self, db: Flume, tmp_path: Path) -> Flume:
        """Close ``db`` and open the same database again (same log, same view store)."""
        store = self._memory_stores.pop(id(db))
        values = [e.value for e in db.stream()]
        db.close()
        log = MemoryLog()
        log.append_many(values)
        again = Flume(log, store=store)
        self._memory_stores[id(again)] = store
        return again

    def fresh_db(self, db: Flume, tmp_path: Path) -> Flume:
        """A second database holding the same log as ``db`` and no views (``db`` stays open)."""
        log = MemoryLog()
        log.append_many([e.value for e in db.stream()])
        return Flume(log)

    # -- fixtures and helpers ------------------------------------------------------------------

    @pytest.fixture
    def db(self, tmp_path: Path) -> Iterator[Flume]:
        self._memory_stores: dict[int, MemoryStore] = {}
        self._dbs: list[Flume] = []
        self._tmp_path = tmp_path
        db = self.open_db(tmp_path)
        self._dbs.append(db)
        try:
            yield db
        finally:
            for opened in self._dbs:
                opened.close()

    def _reopen(self, db: Flume) -> Flume:
        again = self.reopen_db(db, self._tmp_path)
        self._dbs.append(again)
        return again

    def _fresh(self, db: Flume) -> Flume:
        fresh = self.fresh_db(db, self._tmp_path)
        self._dbs.append(fresh)
        return fresh

    def _mount(self, db: Flume, version: int = 1) -> tuple[MountedView, Counter]:
        seen = Counter()
        db.use(NAME, self.make_view(version, seen))
        mounted = db.views[NAME]
        assert getattr(db, NAME) is mounted
        return mounted, seen

    def _values(self, seed: int, start: int, n: int) -> list[Any]:
        rng = random.Random(seed * 100_003 + start)
        return [self.value(start + i, rng) for i in range(n)]

    def _check_model(self, db: Flume, answer: Any) -> None:
        want = self.expected([e.value for e in db.stream()])
        if want is not NotImplemented:
            assert answer == want

    # -- the checks ----------------------------------------------------------------------------

    def test_empty_log(self, db: Flume) -> None:
        mounted, seen = self._mount(db)
        answer = self.read_view(mounted)
        self._check_model(db, answer)
        assert seen.count == 0
        assert mounted.since.value == -1

    @pytest.mark.parametrize("seed", [1, 2])
    def test_incremental_equals_rebuilt_from_scratch(self, db: Flume, seed: int) -> None:
        db.append_many(self._values(seed, 0, 40))  # indexed as a catch-up, once mounted
        rng = random.Random(seed)
        written = threading.Event()

        def write_more() -> None:
            start = 200
            for _ in range(15):
                n = rng.randrange(1, 6)
                db.append_many(self._values(seed, start, n))
                start += n
            written.set()

        writer = threading.Thread(target=write_more)
        writer.start()
        mounted, seen = self._mount(db)  # mounted while another thread appends
        answers = []
        for i in range(40, 80):
            db.append(self._values(seed, i, 1)[0])
            if i % 10 == 0:
                answers.append(self.read_view(mounted))
        writer.join(WAIT)
        assert written.is_set()
        incremental = self.read_view(mounted)
        self._check_model(db, incremental)
        total = db.since.value + 1
        assert seen.count == total  # every value reached the user function exactly once
        assert mounted.since.value == total - 1

        db.rebuild()
        assert self.read_view(mounted) == incremental
        assert seen.count == 2 * total

        fresh = self._fresh(db)
        fresh_view, fresh_seen = self._mount(fresh)
        assert self.read_view(fresh_view) == incremental
        assert fresh_seen.count == total

    def test_mounted_late_equals_mounted_early(self, db: Flume) -> None:
        early, _ = self._mount(db)
        db.append_many(self._values(3, 0, 60))
        for i in range(60, 70):
            db.append(self._values(3, i, 1)[0])
        fresh = self._fresh(db)
        late, _ = self._mount(fresh)
        assert self.read_view(late) == self.read_view(early)
        self._check_model(db, self.read_view(early))

    def test_read_your_writes(self, db: Flume) -> None:
        mounted, _ = self._mount(db)
        values: list[Any] = []
        for i in range(120):
            batch = self._values(4, i * 3, 1 if i % 2 else 3)
            seq = db.append(batch[0]) if len(batch) == 1 else db.append_many(batch)
            values.extend(batch)
            answer = self.read_view(mounted)
            assert mounted.since.value >= seq
            want = self.expected(values)
            if want is not NotImplemented:
                assert answer == want, f"read after append #{i} (seq {seq}) was stale"

    def test_read_your_writes_from_many_threads(self, db: Flume) -> None:
        mounted, _ = self._mount(db)
        failures: list[str] = []

        def work(t: int) -> None:
            for i in range(25):
                seq = db.append(self._values(5, t * 1000 + i, 1)[0])
                self.read_view(mounted)
                if mounted.since.value < seq:
                    failures.append(f"thread {t}: read before seq {seq} was indexed")

        threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(WAIT)
        assert failures == []
        self._check_model(db, self.read_view(mounted))

    def test_ready_and_status(self, db: Flume) -> None:
        mounted, _ = self._mount(db)
        seq = db.append_many(self._values(6, 0, 30))
        mounted.ready(timeout=WAIT)
        assert mounted.since.value == seq
        status = db.status()
        assert status["since"] == seq
        assert status["views"][NAME]["since"] == seq
        assert status["views"][NAME]["lag"] == 0
        assert status["views"][NAME]["state"] == "ready"

    def test_reopen_keeps_it_and_resumes_from_its_since(self, db: Flume) -> None:
        mounted, _ = self._mount(db)
        db.append_many(self._values(7, 0, 50))
        before = self.read_view(mounted)
        since = mounted.since.value

        db = self._reopen(db)
        mounted, seen = self._mount(db)
        assert mounted.since.value == since  # resumes from its stored since ...
        assert self.read_view(mounted) == before
        assert seen.count == 0  # ... without running the user function again
        assert db.status()["views"][NAME]["since"] == since

        db.append_many(self._values(7, 50, 10))
        after = self.read_view(mounted)
        assert seen.count == 10  # only the new entries
        self._check_model(db, after)
        fresh_view, _ = self._mount(self._fresh(db))
        assert self.read_view(fresh_view) == after

    def test_reopen_with_no_view_declared_keeps_it(self, db: Flume) -> None:
        mounted, _ = self._mount(db)
        db.append_many(self._values(8, 0, 20))
        mounted.ready(timeout=WAIT)
        since = mounted.since.value
        assert since == 19
        db = self._reopen(db)
        db.append_many(self._values(8, 20, 5))  # appended while the view is not declared
        db = self._reopen(db)
        mounted, seen = self._mount(db)
        assert mounted.since.value == since
        answer = self.read_view(mounted)
        assert seen.count == 5, seen.count  # catches up on the five it missed, and only those
        self._check_model(db, answer)
        fresh_view, _ = self._mount(self._fresh(db))
        assert self.read_view(fresh_view) == answer

    def test_version_change_rebuilds_it(self, db: Flume) -> None:
        mounted, _ = self._mount(db)
        db.append_many(self._values(9, 0, 30))
        before = self.read_view(mounted)
        total = db.since.value + 1

        db = self._reopen(db)
        mounted, seen = self._mount(db, version=2)
        assert self.read_view(mounted) == before
        assert seen.count == total  # rebuilt from the first entry

        db = self._reopen(db)
        mounted, seen = self._mount(db, version=2)
        assert self.read_view(mounted) == before
        assert seen.count == 0  # same version: resumed

        db = self._reopen(db)
        mounted, seen = self._mount(db, version=1)  # back down: rebuilt again
        assert self.read_view(mounted) == before
        assert seen.count == total


class OnDiskViewConformance(ViewConformance):
    """The view conformance suite on ``flume.open(dir)``: LMDB log, RocksDB view store."""

    def open_db(self, tmp_path: Path) -> Flume:
        return flume.open(tmp_path / "db")

    def reopen_db(self, db: Flume, tmp_path: Path) -> Flume:
        db.close()
        return flume.open(tmp_path / "db")

    def fresh_db(self, db: Flume, tmp_path: Path) -> Flume:
        # A copy of the log's data file, with no views directory: every view starts empty.
        assert db.log.dir is not None
        n = sum(1 for p in tmp_path.iterdir() if p.name.startswith("fresh"))
        target = tmp_path / f"fresh{n}"
        os.makedirs(target / "log")
        shutil.copyfile(os.path.join(db.log.dir, "data.mdb"), target / "log" / "data.mdb")
        return flume.open(target)
