"""``$sort`` and the read options the executor owns (reverse, limit, seqs), and query shapes."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import pytest

from flume.errors import InvalidArgumentError, InvalidTypeError, QueryError
from flume.keys import MISSING
from flume.query import compile_live, execute, is_live_able, parse_query


def run(query: Any, values: list[Any], **options: Any) -> list[Any]:
    """Run over ``values`` as a log would yield them (newest first when reverse=True)."""
    entries = list(enumerate(values))
    if options.get("reverse"):
        entries.reverse()
    return list(execute(parse_query(query), entries, **options))


FLUME_ORDER: list[Any] = [
    None,
    False,
    True,
    -math.inf,
    -1,
    0,
    0.5,
    2,
    "",
    "a",
    "b",
    b"",
    b"a",
    [],
    [0],
    {},
]


def test_sort_in_flume_order() -> None:
    values = [{"k": v} for v in reversed(FLUME_ORDER)] + [{"other": 1}]
    out = run([{"$sort": ["k"]}], values)
    assert [v.get("k", MISSING) for v in out] == [*FLUME_ORDER, MISSING]


def test_sort_nan_is_the_lowest_number() -> None:
    out = run([{"$sort": [True]}], [1, "x", math.nan, -math.inf, True])
    assert out[0] is True and math.isnan(out[1]) and out[2:] == [-math.inf, 1, "x"]


def test_sort_by_several_paths() -> None:
    values = [{"a": 2, "b": "x"}, {"a": 1, "b": "y"}, {"a": 1, "b": "x"}, {"a": 2, "b": "a"}]
    assert run([{"$sort": ["a", "b"]}], values) == [values[2], values[1], values[3], values[0]]


def test_reverse_flips_only_its_own_path() -> None:
    values = [{"a": 2, "b": "x"}, {"a": 1, "b": "y"}, {"a": 1, "b": "x"}, {"a": 2, "b": "a"}]
    out = run([{"$sort": [{"$reverse": "a"}, "b"]}], values)
    assert out == [values[3], values[0], values[2], values[1]]
    out = run([{"$sort": ["a", {"$reverse": "b"}]}], values)
    assert out == [values[1], values[2], values[0], values[3]]


def test_reverse_of_a_prefix_value_still_flips() -> None:
    # "a" < "ab": descending puts "ab" first even though one encoding extends the other's text.
    values = [{"s": "a"}, {"s": "ab"}, {"s": ""}, {"s": [1]}, {"s": [1, 0]}]
    out = run([{"$sort": [{"$reverse": "s"}]}], values)
    assert [v["s"] for v in out] == [[1, 0], [1], "ab", "a", ""]


def test_sort_ties_keep_seq_order() -> None:
    values = [{"k": 1, "i": i} for i in range(5)] + [{"k": 0, "i": 5}]
    out = run([{"$sort": ["k"]}], values)
    assert [v["i"] for v in out] == [5, 0, 1, 2, 3, 4]
    # Entries arriving in another order (an index) still tie by seq.
    entries = [(3, values[3]), (1, values[1]), (4, values[4]), (0, values[0])]
    out = list(execute(parse_query([{"$sort": ["k"]}]), entries))
    assert [v["i"] for v in out] == [0, 1, 3, 4]


def test_sort_by_a_projection_and_by_index_paths() -> None:
    values = [[3, "a"], [1, "b"], [2, "c"]]
    assert run([{"$sort": [0]}], values) == [[1, "b"], [2, "c"], [3, "a"]]
    assert run([{"$sort": [{"x": 1}]}], values) == [[3, "a"], [1, "b"], [2, "c"]]


def test_sort_strings_by_code_point() -> None:
    # UTF-16 order (JS) would put U+1F600 (a surrogate pair D83D DE00) before U+FFFF.
    values = ["\U0001f600", "\uffff", "z", "\u00e9"]
    assert run([{"$sort": [True]}], values) == ["z", "\u00e9", "\uffff", "\U0001f600"]


def test_sort_after_reduce_keeps_input_order_on_ties() -> None:
    values = [{"t": t} for t in "cbaab"]
    query = [{"$reduce": {"t": True, "n": {"$count": True}}}, {"$sort": [{"$reverse": "n"}]}]
    # groups a:2, b:2, c:1 arrive ascending; a and b tie on n and keep that order
    expected = [{"t": "a", "n": 2}, {"t": "b", "n": 2}, {"t": "c", "n": 1}]
    assert run(query, values) == expected
    assert run(query, values, reverse=True) == expected[::-1]


def test_sort_after_map_ties_by_record_seq() -> None:
    values = [{"a": {"k": 1}, "i": 0}, {"a": {"k": 0}}, {"a": {"k": 1}}]
    assert run([{"$map": "a"}, {"$sort": ["k"]}], values) == [{"k": 0}, {"k": 1}, {"k": 1}]
    out = run([{"$map": {"k": ["a", "k"], "i": True}}, {"$sort": ["k"]}], values)
    assert out == [{"k": 0}, {"k": 1, "i": 0}, {"k": 1}]


# --- reverse ------------------------------------------------------------------------------------


def test_reverse_without_sort_is_read_order() -> None:
    values = list(range(5))
    assert run([], values, reverse=True) == [4, 3, 2, 1, 0]


@pytest.mark.parametrize(
    "query",
    [
        [{"$sort": ["k"]}],
        [{"$filter": {"k": {"$gte": 0}}}, {"$sort": ["k"]}],
        [{"$sort": ["k"]}, {"$map": "i"}],
        [{"$sort": [{"$reverse": "k"}, "i"]}],
    ],
)
def test_reverse_yields_the_exact_reverse_of_the_sorted_order(query: Any) -> None:
    values = [{"k": k, "i": i} for i, k in enumerate([2, 0, 1, 0, 2, 1, 1])]
    forward = run(query, values)
    assert run(query, values, reverse=True) == forward[::-1]


def test_reverse_reverses_a_sort_wherever_it_stands() -> None:
    values = [{"k": k} for k in [2, 0, 1]]
    query = [{"$sort": ["k"]}, {"$reduce": {"$collect": "k"}}]
    assert run(query, values) == [[0, 1, 2]]
    assert run(query, values, reverse=True) == [[2, 1, 0]]


# --- limit --------------------------------------------------------------------------------------


class Counting:
    """An entries iterable that counts what was read."""

    def __init__(self, values: list[Any]) -> None:
        self.values = values
        self.read = 0

    def __iter__(self) -> Iterator[tuple[int, Any]]:
        for i, v in enumerate(self.values):
            self.read += 1
            yield i, v


def test_limit_caps_the_final_items() -> None:
    values = [{"k": k} for k in [5, 3, 4, 1, 2]]
    assert run([], values, limit=2) == values[:2]
    assert run([{"$sort": ["k"]}], values, limit=2) == [{"k": 1}, {"k": 2}]
    assert run([{"$sort": ["k"]}], values, limit=2, reverse=True) == [{"k": 5}, {"k": 4}]
    assert run([{"$sort": ["k"]}], values, limit=99) == sorted(values, key=lambda v: v["k"])
    assert run([{"$sort": ["k"]}, {"$map": "k"}], values, limit=3) == [1, 2, 3]
    assert run([{"$reduce": {"k": True}}], values, limit=1) == [{"k": 1}]
    assert run([{"$map": "k"}, {"$filter": {"$gt": 2}}], values, limit=2) == [5, 3]


def test_limit_none_is_no_cap() -> None:
    assert run([], list(range(7)), limit=None) == list(range(7))


def test_limit_zero_yields_nothing_and_reads_nothing() -> None:
    entries = Counting(list(range(5)))
    assert list(execute(parse_query([{"$sort": [True]}]), entries, limit=0)) == []
    assert list(execute(parse_query(None), entries, limit=0)) == []
    assert entries.read == 0


def test_limit_stops_reading_a_stream() -> None:
    entries = Counting(list(range(100)))
    out = list(execute(parse_query([{"$filter": {"$gte": 10}}]), entries, limit=3))
    assert out == [10, 11, 12]
    assert entries.read == 13


def test_nothing_is_read_until_the_first_item_is_asked_for() -> None:
    entries = Counting(list(range(5)))
    it = execute(parse_query([{"$sort": [True]}, {"$reduce": {"$count": True}}]), entries)
    assert entries.read == 0
    assert list(it) == [5]


@pytest.mark.parametrize(
    ("limit", "error"),
    [
        (-1, InvalidArgumentError),
        ("3", InvalidTypeError),
        (True, InvalidTypeError),
        (1.0, InvalidTypeError),
    ],
)
def test_bad_limit_raises_before_reading(limit: Any, error: type[Exception]) -> None:
    entries = Counting([1])
    with pytest.raises(error):
        execute(parse_query(None), entries, limit=limit)
    assert entries.read == 0


def test_difference_limit_zero_yields_nothing() -> None:
    # JS treated limit 0 as no limit.
    assert run([], [1, 2, 3], limit=0) == []


# --- seqs ---------------------------------------------------------------------------------------


def test_seqs_yields_seq_value_pairs() -> None:
    values = [{"k": k} for k in [3, 1, 2]]
    assert run([], values, seqs=True) == list(enumerate(values))
    assert run([{"$filter": {"k": {"$gt": 1}}}, {"$sort": ["k"]}], values, seqs=True) == [
        (2, {"k": 2}),
        (0, {"k": 3}),
    ]
    assert run([{"$sort": ["k"]}], values, seqs=True, reverse=True, limit=1) == [(0, {"k": 3})]


@pytest.mark.parametrize(
    ("query", "path"),
    [
        ([{"$map": "k"}], "query[0].$map"),
        ([{"$filter": {}}, {"$reduce": {"$count": True}}], "query[1].$reduce"),
        ({"$map": True}, "query.$map"),
    ],
)
def test_seqs_with_map_or_reduce_is_a_query_error(query: Any, path: str) -> None:
    entries = Counting([1])
    with pytest.raises(QueryError) as e:
        execute(parse_query(query), entries, seqs=True)
    assert e.value.path == path
    assert entries.read == 0


# --- live -----------------------------------------------------------------------------------------


def test_live_able_queries() -> None:
    assert is_live_able(parse_query(None))
    assert is_live_able(parse_query([{"$filter": {"a": 1}}, {"$map": "a"}, {"$filter": 1}]))
    assert not is_live_able(parse_query([{"$sort": ["a"]}]))
    assert not is_live_able(parse_query([{"$reduce": {"$count": True}}]))


def test_compile_live_applies_filters_and_maps() -> None:
    f = compile_live(parse_query([{"$filter": {"a": {"$gt": 0}}}, {"$map": "a"}]))
    assert f({"a": 2}) == 2
    assert f({"a": 0}) is MISSING
    assert compile_live(parse_query(None))("x") == "x"
    with pytest.raises(QueryError) as e:
        compile_live(parse_query([{"$filter": {}}, {"$sort": ["a"]}]))
    assert e.value.path == "query[1].$sort"


# --- query shapes -------------------------------------------------------------------------------

SHAPE_VALUES = [{"t": "a", "n": 1}, {"t": "b", "n": 2}, "x", {"t": "a", "n": 3}]


def test_list_of_stages() -> None:
    assert run([{"$filter": {"t": "a"}}, {"$map": "n"}], SHAPE_VALUES) == [1, 3]


def test_lone_stage_dict_is_a_one_stage_query() -> None:
    assert run({"$map": "n"}, SHAPE_VALUES) == [1, 2, 3]
    assert run({"$filter": {"t": "b"}}, SHAPE_VALUES) == [SHAPE_VALUES[1]]


def test_difference_lone_dict_query_filters() -> None:
    # JS only used a lone dict to pick an index and returned everything.
    assert run({"t": "a"}, SHAPE_VALUES) == [SHAPE_VALUES[0], SHAPE_VALUES[3]]
    assert run({}, SHAPE_VALUES) == [v for v in SHAPE_VALUES if isinstance(v, dict)]


@pytest.mark.parametrize("query", [None, [], ()])
def test_empty_queries_match_every_value(query: Any) -> None:
    assert run(query, SHAPE_VALUES) == SHAPE_VALUES


def test_parsed_query_is_reusable_and_passes_through() -> None:
    parsed = parse_query([{"$filter": {"t": "a"}}])
    assert parse_query(parsed) is parsed
    entries = list(enumerate(SHAPE_VALUES))
    assert list(execute(parsed, entries)) == list(execute(parsed, entries))
    assert parsed.source == ({"$filter": {"t": "a"}},)
    assert parse_query({"t": "a"}).source == ({"$filter": {"t": "a"}},)
