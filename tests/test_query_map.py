"""``$map``: every row of QUERY.md's map table, and the map differences from JS."""

from __future__ import annotations

from typing import Any

import pytest

from flume.keys import MISSING
from flume.query import execute, parse_query
from flume.query.maps import compile_map


def mapped(rule: Any, value: Any) -> Any:
    return compile_map(rule, "query").get(value)


def run(query: Any, values: list[Any], **options: Any) -> list[Any]:
    return list(execute(parse_query(query), list(enumerate(values)), **options))


def test_true_gives_the_value_itself() -> None:
    for v in (None, 0, "x", [1], {"a": 1}):
        assert mapped(True, v) == v


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"k": 1}, 1),
        ({"k": None}, None),
        ({"x": 1}, MISSING),
        (["k"], MISSING),
        ("k", MISSING),
        (None, MISSING),
        (MISSING, MISSING),
    ],
)
def test_key_gives_the_dict_item(value: Any, expected: Any) -> None:
    assert mapped("k", value) == expected


@pytest.mark.parametrize(
    ("rule", "value", "expected"),
    [
        (0, [5, 6, 7], 5),
        (2, [5, 6, 7], 7),
        (3, [5, 6, 7], MISSING),
        (-1, [5, 6, 7], 7),
        (-3, [5, 6, 7], 5),
        (-4, [5, 6, 7], MISSING),
        (0, [], MISSING),
        (0, "abc", MISSING),
        (-1, "abc", MISSING),
        (0, {0: "x"}, MISSING),
        (0, MISSING, MISSING),
    ],
)
def test_index_gives_the_list_item(rule: int, value: Any, expected: Any) -> None:
    assert mapped(rule, value) == expected


@pytest.mark.parametrize(
    ("rule", "value", "expected"),
    [
        (["a", "b"], {"a": {"b": 2}}, 2),
        (["a", 0], {"a": [9, 8]}, 9),
        (["a", -1, "c"], {"a": [{"c": 1}, {"c": 2}]}, 2),
        (["a", ["b", "c"]], {"a": {"b": {"c": 3}}}, 3),  # a nested path
        (["a", "b"], {"a": "str"}, MISSING),
        (["a", "b", "c"], {"x": 1}, MISSING),
        (["a", 5], {"a": [1]}, MISSING),
        ([], {"a": 1}, {"a": 1}),
        (["a", True], {"a": 1}, 1),
    ],
)
def test_path_applies_each_step_in_turn(rule: Any, value: Any, expected: Any) -> None:
    assert mapped(rule, value) == expected


def test_projection_builds_a_new_dict() -> None:
    value = {"author": "@a", "content": {"type": "post", "text": "hi"}, "seq": 3}
    rule = {"author": True, "type": ["content", "type"], "first": ["content", "x"]}
    assert mapped(rule, value) == {"author": "@a", "type": "post"}  # missing keys left out


def test_projection_nested_rules_apply_to_the_value() -> None:
    value = {"a": 1, "b": {"c": 2}}
    assert mapped({"x": {"a": True, "c": ["b", "c"]}}, value) == {"x": {"a": 1, "c": 2}}
    assert mapped({"y": {"z": True}}, value) == {"y": {}}
    assert mapped({"whole": True}, value) == {}  # `true` means v["whole"]


def test_projection_of_non_dicts() -> None:
    assert mapped({"a": True}, "str") == {}
    assert mapped({"first": 0}, [1, 2]) == {"first": 1}
    assert mapped({}, {"a": 1}) == {}


def test_map_stage_drops_only_missing_results() -> None:
    values = [{"v": 0}, {"v": None}, {"v": ""}, {"v": False}, {"v": {}}, {"w": 1}, {"v": []}]
    assert run([{"$map": "v"}], values) == [0, None, "", False, {}, []]


def test_map_stage_keeps_order_and_chains() -> None:
    values = [{"a": {"b": i}} for i in range(4)]
    assert run([{"$map": "a"}, {"$map": "b"}], values) == [0, 1, 2, 3]
    assert run([{"$map": "a"}, {"$filter": {"b": {"$gt": 1}}}, {"$map": "b"}], values) == [2, 3]
    assert run([{"$filter": {"a": {"b": 1}}}, {"$map": ["a", "b"]}], values) == [1]


# --- differences from the JavaScript packages --------------------------------------------------


def test_difference_map_drops_only_missing_results() -> None:
    # JS dropped every falsy result, 0 included.
    assert run([{"$map": "n"}], [{"n": 0}, {"n": 1}, {}]) == [0, 1]


def test_difference_integer_step_on_missing_gives_missing() -> None:
    # JS raised (undefined[0]).
    assert run([{"$map": ["a", 0]}], [{}, {"a": None}, {"a": [7]}]) == [7]


def test_difference_negative_indexes_apply_to_lists_only() -> None:
    assert mapped(-1, "abc") is MISSING
    assert mapped(-1, {"-1": 1}) is MISSING
    assert mapped(-1, [1, 2]) == 2
