"""``$filter``: every row of QUERY.md's filter table, and the filter differences from JS."""

from __future__ import annotations

import math
from typing import Any

import pytest

from flume.keys import MISSING
from flume.query import execute, parse_query
from flume.query.filters import compile_filter

NAN = math.nan


def matches(rule: Any, value: Any) -> bool:
    """Does ``rule`` (a ``$filter`` rule) match ``value`` (MISSING allowed)?"""
    return compile_filter(rule, "query").match(value)


def run(query: Any, values: list[Any], **options: Any) -> list[Any]:
    return list(execute(parse_query(query), list(enumerate(values)), **options))


# --- literals: None, bool, number, str, bytes -------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "value", "expected"),
    [
        (None, None, True),
        (None, False, False),
        (None, MISSING, False),
        (None, 0, False),
        (True, True, True),
        (True, 1, False),
        (False, 0, False),
        (False, False, True),
        (False, MISSING, False),
        (1, 1, True),
        (1, 1.0, True),
        (1.0, 1, True),
        (1, True, False),
        (0, False, False),
        (1, "1", False),
        (2**64 - 1, 2**64 - 1, True),
        (2**53 + 1, float(2**53), False),  # numbers by value, exactly
        (NAN, NAN, True),  # NaN equals itself in flume order
        (NAN, 0, False),
        ("a", "a", True),
        ("a", b"a", False),
        ("", "", True),
        ("a", MISSING, False),
        (b"a", b"a", True),
        (b"a", "a", False),
        (b"", b"", True),
        (5, MISSING, False),
    ],
)
def test_literal_rule_matches_equal_values(rule: Any, value: Any, expected: bool) -> None:
    assert matches(rule, value) is expected


# --- dict rules ---------------------------------------------------------------------------------


def test_dict_rule_matches_each_key_and_ignores_others() -> None:
    rule = {"type": "post", "n": {"$gt": 1}}
    assert matches(rule, {"type": "post", "n": 2, "other": "x"})
    assert not matches(rule, {"type": "post", "n": 1})
    assert not matches(rule, {"type": "vote", "n": 2})
    assert not matches(rule, {"n": 2})  # v["type"] is missing: the literal never matches it


def test_dict_rule_passes_missing_to_its_subrules() -> None:
    assert matches({"a": {"$is": "undefined"}}, {"b": 1})
    assert matches({"a": {"$ne": 1}}, {})
    assert not matches({"a": {"$is": "undefined"}}, {"a": None})


def test_empty_dict_rule_matches_any_dict() -> None:
    assert matches({}, {})
    assert matches({}, {"a": 1})
    non_dicts: list[Any] = [None, [], "x", 0, MISSING, [{}]]
    for value in non_dicts:
        assert not matches({}, value)


def test_nested_dict_rules() -> None:
    rule = {"value": {"content": {"type": "post"}}}
    assert matches(rule, {"value": {"content": {"type": "post", "text": "hi"}}})
    assert not matches(rule, {"value": {"content": "encrypted"}})
    assert not matches(rule, {"value": None})
    assert not matches(rule, {"value": {"content": {"type": "vote"}}})
    rule2 = {"value": {"author": "@a", "content": {"type": "post"}}}
    assert matches(rule2, {"value": {"author": "@a", "content": {"type": "post"}}})
    assert not matches(rule2, {"value": {"author": "@b", "content": {"type": "post"}}})


# --- list rules ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "value", "expected"),
    [
        ([1, "a"], [1, "a"], True),
        ([1, "a"], [1.0, "a"], True),
        ([1, "a"], [1, "a", 2], False),
        ([1, "a"], [1], False),
        ([1, {"$gt": 2}], [1, 3], True),
        ([1, {"$gt": 2}], [1, 2], False),
        ([{"k": 1}], [{"k": 1, "other": 2}], True),  # a dict inside is a dict rule
        ([], [], True),
        ([], [1], False),
        ([], {}, False),
        (["a", "b"], "ab", False),
        ([1], MISSING, False),
        ([[1, 2], 3], [[1, 2], 3], True),
    ],
)
def test_list_rule_matches_same_length_lists_item_by_item(
    rule: Any, value: Any, expected: bool
) -> None:
    assert matches(rule, value) is expected


# --- $eq and $ne --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("x", "value", "eq"),
    [
        (1, 1.0, True),
        (1, True, False),
        ("a", "a", True),
        (None, None, True),
        (None, MISSING, False),
        ([1, 2], [1, 2], True),
        ([1, 2], [1, 2, 3], False),
        ({"a": 1}, {"a": 1}, True),
        ({"a": 1}, {"a": 1.0}, True),
        ({"a": 1}, {"a": 1, "b": 2}, False),  # $eq on a dict is whole-value equality
        ({"a": [1, {"b": None}]}, {"a": [1, {"b": None}]}, True),
        ({1: "x"}, {True: "x"}, False),
        ({}, {}, True),
        ([], [], True),
        (NAN, NAN, True),
        (b"x", b"x", True),
    ],
)
def test_eq_and_ne(x: Any, value: Any, eq: bool) -> None:
    assert matches({"$eq": x}, value) is eq
    assert matches({"$ne": x}, value) is (not eq)


def test_ne_matches_missing_and_other_types() -> None:
    assert matches({"$ne": 1}, MISSING)
    assert matches({"$ne": 1}, "1")
    assert matches({"$ne": 1}, True)
    assert matches({"a": {"$ne": "vote"}}, {"b": 1})


# --- ranges -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "value", "expected"),
    [
        ({"$gt": 5}, 6, True),
        ({"$gt": 5}, 5, False),
        ({"$gt": 5}, 5.5, True),
        ({"$gte": 5}, 5.0, True),
        ({"$lt": 5}, 4.999, True),
        ({"$lt": 5}, 5, False),
        ({"$lte": 5}, 5, True),
        ({"$gt": 5}, "10", False),  # type-strict
        ({"$lt": 5}, None, False),
        ({"$lt": 5}, True, False),  # True is not a number
        ({"$lt": 5}, MISSING, False),
        ({"$gt": 1, "$lt": 3}, 2, True),
        ({"$gt": 1, "$lt": 3}, 3, False),
        ({"$gte": 1, "$lte": 3}, 3, True),
        ({"$gt": 1, "$gte": 2}, 1.5, False),  # all bounds hold
        ({"$gt": 2**64 - 2}, 2**64 - 1, True),
        ({"$lt": 2**53 + 1}, float(2**53), True),
        ({"$gt": -math.inf}, -1e308, True),
        ({"$lt": math.inf}, math.inf, False),
        # NaN is a number below every other number, equal to itself.
        ({"$lt": 0}, NAN, True),
        ({"$lte": -math.inf}, NAN, True),
        ({"$gt": -math.inf}, NAN, False),
        ({"$gte": NAN}, NAN, True),
        ({"$gt": NAN}, NAN, False),
        ({"$gt": NAN}, -math.inf, True),
        ({"$lt": NAN}, NAN, False),
        ({"$lt": NAN}, -1, False),
        ({"$lte": NAN}, NAN, True),
        ({"$lte": NAN}, 0, False),
        # strings by code point
        ({"$gte": "a", "$lt": "b"}, "abc", True),
        ({"$gte": "a", "$lt": "b"}, "b", False),
        ({"$gt": "\uffff"}, "\U0001f600", True),
        ({"$gt": "a"}, b"b", False),
        ({"$gt": ""}, "", False),
        ({"$gte": ""}, "", True),
        # bytes bytewise
        ({"$gt": b"\x00"}, b"\x01", True),
        ({"$gt": b"\x00"}, b"\x00", False),
        ({"$lt": b"\xff"}, b"\xfe\xff", True),
        ({"$lt": b"b"}, "a", False),
        # lists element by element in flume order, a shorter prefix first
        ({"$gt": [1]}, [1, 0], True),
        ({"$gt": [1]}, [1], False),
        ({"$lt": [1, "a"]}, [1, 2], True),  # numbers before strings
        ({"$lt": [2]}, [1, "z", None], True),
        ({"$gte": [None], "$lt": [False]}, [None, {"x": 1}], True),
        ({"$gt": []}, "a", False),
        ({"$lt": [1]}, [], True),
    ],
)
def test_range_operators(rule: Any, value: Any, expected: bool) -> None:
    assert matches(rule, value) is expected


# --- $prefix ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("p", "value", "expected"),
    [
        ("ab", "abc", True),
        ("ab", "ab", True),
        ("ab", "a", False),
        ("ab", b"abc", False),
        ("", "", True),
        ("", "anything", True),
        ("", b"", False),
        ("", MISSING, False),
        (b"\x00", b"\x00\x01", True),
        (b"ab", "abc", False),
        (b"", b"", True),
        ([1, "a"], [1, "a", None], True),
        ([1, "a"], [1.0, "a"], True),
        ([1, "a"], [1], False),
        ([1, "a"], "1a", False),
        ([], [], True),
        ([], {}, False),
        ([[1]], [[1], 2], True),
        ([[1]], [[1, 2]], False),
    ],
)
def test_prefix(p: Any, value: Any, expected: bool) -> None:
    assert matches({"$prefix": p}, value) is expected


# --- $in ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "value", "expected"),
    [
        ([1, "a"], 1.0, True),
        ([1, "a"], "a", True),
        ([1, "a"], True, False),
        ([True], 1, False),
        ([False], 0, False),
        ([0], False, False),
        ([None], None, True),
        ([None], MISSING, False),
        ([NAN], NAN, True),
        ([[1, 2], {"a": 1}], [1, 2], True),
        ([[1, 2], {"a": 1}], {"a": 1.0}, True),
        ([[1, 2], {"a": 1}], (1, 2), True),
        ([[1, 2]], [2, 1], False),
        ([b"x"], b"x", True),
        ([b"x"], "x", False),
        ([], 1, False),
        (["x"], MISSING, False),
    ],
)
def test_in(options: Any, value: Any, expected: bool) -> None:
    assert matches({"$in": options}, value) is expected


# --- $is ----------------------------------------------------------------------------------------

KINDS: list[tuple[str, Any]] = [
    ("null", None),
    ("boolean", False),
    ("boolean", True),
    ("number", 0),
    ("number", -1.5),
    ("number", NAN),
    ("string", ""),
    ("bytes", b""),
    ("array", []),
    ("object", {}),
    ("undefined", MISSING),
]


@pytest.mark.parametrize(("name", "value"), KINDS)
def test_is_names_exactly_one_kind(name: str, value: Any) -> None:
    for other, _ in KINDS:
        assert matches({"$is": other}, value) is (other == name), (other, value)


# --- $truthy, $not, and several operators -------------------------------------------------------


@pytest.mark.parametrize("value", [1, -1, "x", b"x", [0], {"a": None}, True, NAN])
def test_truthy_values(value: Any) -> None:
    assert matches({"$truthy": True}, value)
    assert not matches({"$truthy": False}, value)


@pytest.mark.parametrize("value", [0, 0.0, "", b"", [], {}, False, None, MISSING])
def test_falsy_values(value: Any) -> None:
    assert not matches({"$truthy": True}, value)
    assert matches({"$truthy": False}, value)


def test_not_negates_its_rule() -> None:
    assert matches({"$not": 1}, 2)
    assert not matches({"$not": 1}, 1)
    assert matches({"$not": {"$gt": 5}}, 3)
    assert matches({"$not": {"$gt": 5}}, "x")
    assert matches({"$not": {"type": "post"}}, "string")
    assert not matches({"$not": {"$not": {"$is": "string"}}}, 1)
    assert matches({"a": {"$not": {"$in": [1, 2]}}}, {"a": 3})


def test_several_operators_are_anded() -> None:
    rule = {"$gte": 1, "$lt": 10, "$ne": 5, "$in": [1, 5, 7, 12], "$not": 7}
    assert [v for v in range(15) if matches(rule, v)] == [1]
    assert matches({"$is": "string", "$prefix": "a", "$ne": "ab"}, "abc")
    assert not matches({"$is": "string", "$prefix": "a", "$ne": "ab"}, "ab")


def test_filter_stage_keeps_matching_values_in_read_order() -> None:
    values = [{"n": i, "t": "a" if i % 2 else "b"} for i in range(6)]
    assert run([{"$filter": {"t": "a"}}], values) == [values[1], values[3], values[5]]
    assert run([{"$filter": {"t": "a"}}, {"$filter": {"n": {"$gt": 2}}}], values) == [
        values[3],
        values[5],
    ]


# --- differences from the JavaScript packages --------------------------------------------------


def test_difference_ranges_are_type_strict() -> None:
    # JS coerced: '10' > 5 was true.
    assert not matches({"$gt": 5}, "10")
    assert not matches({"$lt": "5"}, 1)
    assert not matches({"$gt": 0}, True)


def test_difference_equality_is_type_aware() -> None:
    assert matches(1, 1.0)
    assert matches({"$eq": 1.0}, 1)
    assert not matches(1, True)
    assert not matches({"$eq": True}, 1)
    assert not matches({"$in": [1]}, True)


def test_difference_dict_rule_needs_a_dict() -> None:
    # JS applied dict rules to strings too, so an encrypted (string) content matched.
    rule = {"value": {"content": {"type": {"$ne": "vote"}}}}
    assert not matches(rule, {"value": {"content": "c2VjcmV0LmJveA==.box"}})
    assert matches(rule, {"value": {"content": {"type": "post"}}})
    assert not matches({"length": 3}, "abc")


def test_difference_list_rule_needs_a_list_of_the_same_length() -> None:
    # JS matched longer lists and strings.
    assert not matches(["a", "b"], ["a", "b", "c"])
    assert not matches(["a", "b"], "ab")
    assert matches(["a", "b"], ["a", "b"])


def test_difference_array_prefix_matches_a_list_of_equal_length() -> None:
    # JS wanted a strictly longer list.
    assert matches({"$prefix": [1, 2]}, [1, 2])
    assert matches({"$prefix": [1, 2]}, [1, 2, 3])


def test_difference_is_names_python_types() -> None:
    # JS used typeof: null and arrays were "object".
    assert not matches({"$is": "object"}, None)
    assert not matches({"$is": "object"}, [])
    assert matches({"$is": "array"}, [])
    assert matches({"$is": "null"}, None)
    assert matches({"$is": "bytes"}, b"")
    assert matches({"$is": "undefined"}, MISSING)


def test_difference_not_negates_its_rule() -> None:
    # JS ignored $not's argument and negated the value itself.
    assert matches({"$not": "a"}, "b")
    assert not matches({"$not": "a"}, "a")
    assert matches({"$not": 0}, 1)


def test_difference_truthy_honours_its_argument() -> None:
    # JS ignored the argument: {$truthy: false} still selected truthy values.
    assert matches({"$truthy": False}, 0)
    assert not matches({"$truthy": False}, 1)
