"""The typed, immutable form of a parsed query: one dataclass per stage kind.

Each stage keeps the rule as written (for ``explain`` and the planner), its position in the
query (for messages), the compiled closures that run it, and the value paths it reads.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

from flume.query.filters import Leaf
from flume.query.maps import Getter
from flume.query.paths import Path
from flume.query.sorting import SortPath
from flume.query.values import Matcher

__all__ = ["FilterStage", "MapStage", "ParsedQuery", "ReduceStage", "SortStage", "Stage"]


@dataclass(frozen=True, slots=True)
class FilterStage:
    """``{"$filter": rule}``: keeps the items ``match`` accepts."""

    name: ClassVar[str] = "$filter"
    position: str
    rule: Any
    match: Matcher
    leaves: tuple[Leaf, ...]


@dataclass(frozen=True, slots=True)
class MapStage:
    """``{"$map": rule}``: replaces each item by ``apply(item)``, dropping MISSING results."""

    name: ClassVar[str] = "$map"
    position: str
    rule: Any
    apply: Getter
    reads: tuple[Path, ...]


@dataclass(frozen=True, slots=True)
class ReduceStage:
    """``{"$reduce": rule}``: ``run(items)`` is the list of items the stage emits."""

    name: ClassVar[str] = "$reduce"
    position: str
    rule: Any
    run: Callable[[Iterable[Any]], list[Any]]
    grouped: bool
    reads: tuple[Path, ...]


@dataclass(frozen=True, slots=True)
class SortStage:
    """``{"$sort": [paths]}``: ``key(item, tie)`` orders the buffered items (ascending bytes)."""

    name: ClassVar[str] = "$sort"
    position: str
    rule: Any
    paths: tuple[SortPath, ...]
    key: Callable[[Any, int], bytes]
    reads: tuple[Path, ...]


Stage = FilterStage | MapStage | ReduceStage | SortStage


@dataclass(frozen=True, slots=True)
class ParsedQuery:
    """A validated query: its stages in order, and the normalised source (a list of stages).

    ``stages`` is empty for a query matching every value. Built by
    :func:`flume.query.parse.parse_query`; immutable, so it can be shared between threads and
    reused for any number of reads.
    """

    stages: tuple[Stage, ...]
    source: tuple[dict[str, Any], ...]

    @property
    def live_able(self) -> bool:
        """True when the query can run live: only ``$filter`` and ``$map`` stages."""
        return all(isinstance(s, (FilterStage, MapStage)) for s in self.stages)

    @property
    def yields_records(self) -> bool:
        """True when the items are the stored values themselves (only ``$filter``/``$sort``).

        Only such queries can yield ``(seq, value)`` pairs (``seqs=True``).
        """
        return all(isinstance(s, (FilterStage, SortStage)) for s in self.stages)

    @property
    def ordered(self) -> bool:
        """True when the output order is the query's own: after its last ``$sort`` or grouping
        ``$reduce`` there are only ``$filter``/``$map`` stages.

        Otherwise the order is the read order (the log's, or an index's).
        """
        for stage in reversed(self.stages):
            if isinstance(stage, SortStage):
                return True
            if isinstance(stage, ReduceStage):
                return stage.grouped
        return False

    @property
    def first_filter(self) -> FilterStage | None:
        """The first stage when it is a ``$filter`` (the only one that can pick an index)."""
        if self.stages and isinstance(self.stages[0], FilterStage):
            return self.stages[0]
        return None

    def without_first_filter(self) -> ParsedQuery:
        """The same query without its first stage, which must be a ``$filter``.

        For an exact plan, whose key range already holds exactly what that filter matches.
        """
        assert self.first_filter is not None
        return ParsedQuery(self.stages[1:], self.source)  # replace() costs 2 us more

    def without_final_sort(self) -> ParsedQuery:
        """The same query without its last stage, which must be a ``$sort``.

        For a plan whose index order already is the sort's order.
        """
        assert self.stages and isinstance(self.stages[-1], SortStage)
        return ParsedQuery(self.stages[:-1], self.source)
