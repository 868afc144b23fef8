"""``$reduce``: every reducer and shape of QUERY.md, and the reduce differences from JS."""

from __future__ import annotations

import math
from typing import Any

import pytest

from flume.query import execute, parse_query


def run(query: Any, values: list[Any], **options: Any) -> list[Any]:
    entries = list(enumerate(values))
    if options.get("reverse"):
        entries.reverse()
    return list(execute(parse_query(query), entries, **options))


def reduce1(rule: Any, values: list[Any]) -> Any:
    (out,) = run([{"$reduce": rule}], values)
    return out


VALUES = [
    {"n": 3, "t": "b", "x": 1.5},
    {"n": 1, "t": "a"},
    {"n": "9", "t": "a", "x": 2},
    {"t": "c", "x": None},
    {"n": 2.0, "t": "b", "x": True},
    "not a dict",
]


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ({"$count": True}, 6),
        ({"$count": "n"}, 4),  # missing inputs skipped
        ({"$sum": "n"}, 6.0),  # "9" is no number: skipped
        ({"$sum": "x"}, 3.5),  # True is no number
        ({"$product": "n"}, 6.0),
        ({"$min": "n"}, 1),
        ({"$max": "n"}, "9"),  # strings after numbers in flume order
        ({"$min": "x"}, None),  # None first in flume order
        ({"$max": "x"}, 2),
        ({"$collect": "t"}, ["b", "a", "a", "c", "b"]),
        ({"$collect": "x"}, [1.5, 2, None, True]),
        ({"$collect": ["n"]}, [3, 1, "9", 2.0]),
    ],
)
def test_reducer_alone_emits_one_item(rule: Any, expected: Any) -> None:
    assert reduce1(rule, VALUES) == expected


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ({"$count": True}, 0),
        ({"$sum": "n"}, 0),
        ({"$product": "n"}, 1),
        ({"$min": "n"}, None),
        ({"$max": "n"}, None),
        ({"$collect": "n"}, []),
    ],
)
def test_reducer_of_nothing(rule: Any, expected: Any) -> None:
    assert run([{"$reduce": rule}], []) == [expected]
    assert run([{"$filter": {"none": 1}}, {"$reduce": rule}], VALUES) == [expected]


def test_reducer_of_the_item_itself() -> None:
    assert reduce1({"$sum": True}, [1, 2.5, "x", None, True]) == 3.5
    assert reduce1({"$max": True}, [1, [0], {"a": 1}, "z"]) == {"a": 1}


def test_min_max_keep_the_first_of_equal_values_as_stored() -> None:
    assert repr(reduce1({"$min": True}, [1.0, 1, 2])) == "1.0"
    assert repr(reduce1({"$max": True}, [2, 2.0, 1])) == "2"


def test_min_max_compare_in_flume_order() -> None:
    values = [[1, "a"], [1], "z", {"a": 1}, None, False, b"b", math.nan]
    assert reduce1({"$min": True}, values) is None
    assert reduce1({"$max": True}, values) == {"a": 1}
    assert math.isnan(reduce1({"$min": True}, [3, math.nan, -math.inf]))


def test_sum_keeps_ints_exact() -> None:
    assert reduce1({"$sum": True}, [2**62, 2**62, 1]) == 2**63 + 1


def test_named_reducers_emit_one_dict() -> None:
    rule = {"count": {"$count": True}, "hi": {"$max": "n"}, "lo": {"$min": "n"}}
    assert reduce1(rule, VALUES) == {"count": 6, "hi": "9", "lo": 1}
    assert run([{"$reduce": rule}], []) == [{"count": 0, "hi": None, "lo": None}]
    nested = {"stats": {"c": {"$count": True}, "s": {"$sum": "n"}}, "all": {"$collect": "t"}}
    assert reduce1(nested, VALUES[:2]) == {"stats": {"c": 2, "s": 4}, "all": ["b", "a"]}


def test_grouping_by_paths() -> None:
    rule = {"t": True, "count": {"$count": True}, "total": {"$sum": "n"}}
    assert run([{"$reduce": rule}], VALUES) == [
        {"t": "a", "count": 2, "total": 1},
        {"t": "b", "count": 2, "total": 5.0},
        {"t": "c", "count": 1, "total": 0},
        {"count": 1, "total": 0},  # the string value: its "t" is missing, a group sorted last
    ]


def test_grouping_orders_groups_by_flume_order_of_the_key_tuple() -> None:
    values = [
        {"a": "x", "b": 2},
        {"a": 1, "b": 1},
        {"a": None, "b": 1},
        {"a": 1.0, "b": 0},
        {"a": [0], "b": 1},
        {"a": True, "b": 1},
        {"a": 1, "b": 0},
    ]
    out = run([{"$reduce": {"a": True, "b": True, "n": {"$count": True}}}], values)
    assert out == [
        {"a": None, "b": 1, "n": 1},
        {"a": True, "b": 1, "n": 1},
        {"a": 1.0, "b": 0, "n": 2},  # 1.0 and 1 are one group; the first value seen
        {"a": 1, "b": 1, "n": 1},
        {"a": "x", "b": 2, "n": 1},
        {"a": [0], "b": 1, "n": 1},
    ]


def test_grouping_is_ascending_whatever_reverse_says() -> None:
    values = [{"k": k} for k in "cabac"]
    rule = [{"$reduce": {"k": True, "n": {"$count": True}}}]
    expected = [{"k": "a", "n": 2}, {"k": "b", "n": 1}, {"k": "c", "n": 2}]
    assert run(rule, values) == expected
    assert run(rule, values, reverse=True) == expected


def test_grouping_nested_rule_is_shaped_like_the_rule() -> None:
    values = [
        {"value": {"author": "@a", "content": {"type": "post"}}},
        {"value": {"author": "@a", "content": {"type": "vote"}}},
        {"value": {"author": "@b", "content": {"type": "post"}}},
        {"value": {"author": "@a", "content": {"type": "post"}}},
    ]
    rule = {
        "who": ["value", "author"],
        "detail": {"type": ["value", "content", "type"], "n": {"$count": True}},
    }
    assert run([{"$reduce": rule}], values) == [
        {"who": "@a", "detail": {"type": "post", "n": 2}},
        {"who": "@a", "detail": {"type": "vote", "n": 1}},
        {"who": "@b", "detail": {"type": "post", "n": 1}},
    ]


def test_grouping_depth_first_key_order_and_true_means_own_key() -> None:
    # Group tuple is (outer, inner.k2, last) in written order, depth first.
    values = [{"outer": 1, "k2": "b", "last": 0}, {"outer": 1, "k2": "a", "last": 1}]
    rule = {"outer": True, "inner": {"k2": True}, "last": True}
    assert run([{"$reduce": rule}], values) == [
        {"outer": 1, "inner": {"k2": "a"}, "last": 1},
        {"outer": 1, "inner": {"k2": "b"}, "last": 0},
    ]


def test_grouping_without_reducers_gives_distinct_values() -> None:
    values = [{"t": "b"}, {"t": "a"}, {"t": "b"}]
    assert run([{"$reduce": {"t": True}}], values) == [{"t": "a"}, {"t": "b"}]
    assert run([{"$reduce": {"t": True}}], []) == []


def test_items_are_reduced_in_read_order() -> None:
    values = [{"n": i} for i in range(4)]
    assert run([{"$reduce": {"$collect": "n"}}], values) == [[0, 1, 2, 3]]
    assert run([{"$reduce": {"$collect": "n"}}], values, reverse=True) == [[3, 2, 1, 0]]


def test_reduce_then_later_stages() -> None:
    values = [{"t": t} for t in "abcab"]
    query = [
        {"$reduce": {"t": True, "n": {"$count": True}}},
        {"$filter": {"n": 2}},
        {"$map": "t"},
    ]
    assert run(query, values) == ["a", "b"]


# --- differences from the JavaScript packages --------------------------------------------------


def test_difference_reduce_results_are_not_flattened() -> None:
    # JS turned {hi, lo} into [hi, lo].
    out = reduce1({"hi": {"$max": True}, "lo": {"$min": True}}, [3, 1, 2])
    assert out == {"hi": 3, "lo": 1}


def test_difference_top_level_min_max_are_correct() -> None:
    # JS started them at 0, so the min of positives was 0 and the max of negatives 0.
    assert reduce1({"$min": True}, [3, 1, 2]) == 1
    assert reduce1({"$max": True}, [-3, -1, -2]) == -1


def test_difference_min_max_skip_missing_and_compare_strings() -> None:
    # JS gave NaN for both.
    values = [{"s": "b"}, {}, {"s": "a"}, {"s": "c"}]
    assert reduce1({"$min": "s"}, values) == "a"
    assert reduce1({"$max": "s"}, values) == "c"


def test_difference_collect_skips_missing_values() -> None:
    # JS collected undefined.
    assert reduce1({"$collect": "s"}, [{"s": 1}, {}, {"s": None}]) == [1, None]


def test_difference_empty_reduce_still_emits_its_item() -> None:
    assert run([{"$reduce": {"$count": True}}], []) == [0]
    assert run([{"$reduce": {"n": {"$count": True}}}], []) == [{"n": 0}]
