"""Model test: LmdbLog and MemoryLog driven by the same random operations always agree, with
each other and with a plain Python list (values, errors and ``since``), across reopens."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from typing import Any

import hypothesis.strategies as st
from hypothesis import HealthCheck, settings
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from flume.errors import FlumeError, InvalidArgumentError
from flume.logs import LmdbLog, MemoryLog
from flume.testing.logs import is_inverted, model_seqs

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False),
    st.text(max_size=8),
    st.binary(max_size=8),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.tuples(inner, inner),
        st.dictionaries(st.one_of(st.text(max_size=4), st.integers(-5, 5)), inner, max_size=4),
    ),
    max_leaves=10,
)
unencodable = st.sampled_from([object(), {1, 2}, 2**64, -(2**63) - 1, 1j, "\ud800", [1, {2}]])
seq_bound = st.one_of(st.none(), st.none(), st.integers(-3, 45), st.sampled_from(["3", 2.0, True]))
limits = st.one_of(st.none(), st.integers(0, 12), st.sampled_from([-1, "2", 1.0]))
flags = st.one_of(st.booleans(), st.booleans(), st.booleans(), st.sampled_from([0, None, "x"]))


def as_stored(value: Any) -> Any:
    """What a stored value reads back as: tuples become lists (dict keys here are scalars)."""
    if isinstance(value, (list, tuple)):
        return [as_stored(v) for v in value]
    if isinstance(value, dict):
        return {k: as_stored(v) for k, v in value.items()}
    return value


def outcome(fn: Callable[[], Any]) -> tuple[str, Any]:
    """``("ok", result)`` or ``("error", the FlumeError class)`` (anything else propagates)."""
    try:
        return ("ok", fn())
    except FlumeError as e:
        return ("error", type(e))


class LogsAgree(RuleBasedStateMachine):
    @initialize()
    def open_logs(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="flume-model-")
        self.lmdb = LmdbLog(self.dir + "/log", sync=False)  # agreement, not durability
        self.memory = MemoryLog()
        self.model: list[Any] = []
        self.reopens = 0

    def teardown(self) -> None:
        if hasattr(self, "dir"):
            self.lmdb.close()
            self.memory.close()
            shutil.rmtree(self.dir, ignore_errors=True)

    def both(self, fn: Callable[[Any], Any]) -> tuple[str, Any]:
        a = outcome(lambda: fn(self.lmdb))
        b = outcome(lambda: fn(self.memory))
        assert a == b, f"LmdbLog gave {a!r}, MemoryLog gave {b!r}"
        return a

    @rule(value=values)
    def append(self, value: Any) -> None:
        result = self.both(lambda log: log.append(value))
        assert result == ("ok", len(self.model))
        self.model.append(as_stored(value))

    @rule(
        batch=st.lists(values, max_size=6),
        bad=st.one_of(st.none(), st.none(), unencodable),
        where=st.integers(0, 6),
    )
    def append_many(self, batch: list[Any], bad: Any, where: int) -> None:
        if bad is not None:
            batch = batch[:where] + [bad] + batch[where:]
        result = self.both(lambda log: log.append_many(batch))
        if bad is not None:
            assert result[0] == "error" and issubclass(result[1], TypeError)
            return
        self.model.extend(as_stored(v) for v in batch)
        assert result == ("ok", len(self.model) - 1)

    @rule(
        gt=seq_bound, gte=seq_bound, lt=seq_bound, lte=seq_bound, reverse=flags, limit=limits,
        seqs=flags, values=flags,
    )
    def stream(
        self, gt: Any, gte: Any, lt: Any, lte: Any, reverse: Any, limit: Any, seqs: Any,
        values: Any,
    ) -> None:
        opts = {
            "gt": gt, "gte": gte, "lt": lt, "lte": lte, "reverse": reverse, "limit": limit,
            "seqs": seqs, "values": values,
        }
        result = self.both(lambda log: list(log.stream(**opts)))
        bounds = {"gt": gt, "gte": gte, "lt": lt, "lte": lte}
        well_typed = all(
            type(v) is bool for v in (reverse, seqs, values)
        ) and all(b is None or type(b) is int for b in (*bounds.values(), limit))
        if not well_typed:
            assert result[0] == "error"
            return
        if (gt is not None and gte is not None) or (lt is not None and lte is not None):
            assert result == ("error", InvalidArgumentError)
            return
        if limit is not None and limit < 0 or is_inverted(gt, gte, lt, lte):
            assert result == ("error", InvalidArgumentError)
            return
        want = model_seqs(len(self.model), **bounds, reverse=reverse, limit=limit)
        if not values:
            assert result == ("ok", want)
        elif not seqs:
            assert result == ("ok", [self.model[s] for s in want])
        else:
            assert result == ("ok", [(s, self.model[s]) for s in want])

    @rule(seq=st.one_of(st.integers(-3, 45), st.sampled_from(["0", 1.0, None, True])))
    def get(self, seq: Any) -> None:
        result = self.both(lambda log: log.get(seq))
        if type(seq) is int and 0 <= seq < len(self.model):
            assert result == ("ok", self.model[seq])
        else:
            assert result[0] == "error" and issubclass(result[1], (KeyError, TypeError))

    @rule(seqs=st.lists(st.integers(-2, 45), max_size=6))
    def get_many(self, seqs: list[int]) -> None:
        result = self.both(lambda log: log.get_many(seqs))
        if all(0 <= s < len(self.model) for s in seqs):
            assert result == ("ok", [self.model[s] for s in seqs])
        else:
            assert result[0] == "error" and issubclass(result[1], KeyError)

    @precondition(lambda self: self.reopens < 3)
    @rule()
    def reopen_lmdb(self) -> None:
        self.reopens += 1
        self.lmdb.close()
        self.lmdb = LmdbLog(self.dir + "/log", sync=False)  # agreement, not durability

    @invariant()
    def since_agrees(self) -> None:
        assert self.lmdb.since.value == self.memory.since.value == len(self.model) - 1


LogsAgree.TestCase.settings = settings(
    max_examples=40,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestLogsAgree = LogsAgree.TestCase
