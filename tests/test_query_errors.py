"""Malformed queries: one test per error kind of QUERY.md, each asserting the exact position."""

from __future__ import annotations

from typing import Any

import pytest

import flume
from flume.errors import QueryError
from flume.query import parse_query


def error_path(query: Any) -> str:
    with pytest.raises(QueryError) as e:
        parse_query(query)
    assert isinstance(e.value, ValueError)
    assert isinstance(e.value, flume.QueryError)
    assert str(e.value).startswith(e.value.path + ": ")
    return e.value.path


def test_error_path_example_of_the_spec() -> None:
    query = [{"$map": True}, {"$filter": {"value": {"ts": {"$gt": None}}}}]
    assert error_path(query) == "query[1].$filter.value.ts.$gt"


def test_error_unknown_stage() -> None:
    assert error_path([{"$filter": {}}, {"$group": "a"}]) == "query[1].$group"
    assert error_path({"$filterx": {}}) == "query.$filterx"


def test_error_stage_not_a_one_key_dict() -> None:
    assert error_path([{"$filter": {}, "$map": "a"}]) == "query[0]"
    assert error_path([{}]) == "query[0]"
    assert error_path([["$filter", {}]]) == "query[0]"
    assert error_path({"$filter": {}, "$map": "a"}) == "query"


def test_error_not_a_query() -> None:
    assert error_path("[]") == "query"
    assert error_path(5) == "query"


def test_error_unknown_operator() -> None:
    assert error_path([{"$filter": {"value": {"ts": {"$gtx": 1}}}}]) == (
        "query[0].$filter.value.ts.$gtx"
    )
    assert error_path([{"$filter": {"$not": {"$regex": "a"}}}]) == "query[0].$filter.$not.$regex"
    assert error_path([{"$filter": [1, {"$bad": 2}]}]) == "query[0].$filter[1].$bad"


def test_error_dict_mixing_operators_and_plain_keys() -> None:
    assert error_path([{"$filter": {"ts": {"$gt": 1, "x": 2}}}]) == "query[0].$filter.ts"
    assert error_path({"a": 1, "$eq": 2}) == "query"
    assert error_path([{"$map": {"a": True, "$in": [1]}}]) == "query[0].$map"
    assert error_path([{"$reduce": {"n": {"$count": True}, "$sum": "x"}}]) == "query[0].$reduce"


def test_error_operator_key_inside_a_map_projection() -> None:
    assert error_path([{"$map": {"out": {"$type": "x"}}}]) == "query[0].$map.out.$type"
    assert error_path([{"$map": {"$in": [1, 2]}}]) == "query[0].$map.$in"


def test_error_map_path_step_holding_an_operator() -> None:
    assert error_path([{"$map": ["a", {"$type": True}]}]) == "query[0].$map[1].$type"
    assert error_path([{"$map": ["a", ["b", {"x": 1}]]}]) == "query[0].$map[1][1]"


def test_error_map_rule_of_a_wrong_kind() -> None:
    assert error_path([{"$map": False}]) == "query[0].$map"
    assert error_path([{"$map": None}]) == "query[0].$map"
    assert error_path([{"$map": {"x": 1.5}}]) == "query[0].$map.x"


def test_error_range_bounds_not_of_one_kind() -> None:
    assert error_path([{"$filter": {"ts": {"$gt": 1, "$lt": "z"}}}]) == "query[0].$filter.ts.$lt"
    assert error_path({"ts": {"$gte": b"a", "$lte": [1]}}) == "query.ts.$lte"


@pytest.mark.parametrize("bound", [None, True, {"a": 1}])
def test_error_range_bound_of_no_ordered_kind(bound: Any) -> None:
    assert error_path({"$filter": {"ts": {"$gt": bound}}}) == "query.$filter.ts.$gt"


def test_error_truthy_argument_not_a_bool() -> None:
    assert error_path([{"$filter": {"a": {"$truthy": 1}}}]) == "query[0].$filter.a.$truthy"
    assert error_path({"a": {"$truthy": "yes"}}) == "query.a.$truthy"


def test_error_unknown_reducer() -> None:
    assert error_path([{"$reduce": {"$avg": "x"}}]) == "query[0].$reduce.$avg"
    assert error_path([{"$reduce": {"a": {"$avg": "x"}}}]) == "query[0].$reduce.a.$avg"
    assert error_path([{"$reduce": {"a": {"b": {"$median": 1}}}}]) == "query[0].$reduce.a.b.$median"


def test_error_two_reducers_in_one_dict() -> None:
    assert error_path([{"$reduce": {"$min": "x", "$max": "x"}}]) == "query[0].$reduce"
    assert error_path([{"$reduce": {"r": {"$min": "x", "$max": "x"}}}]) == "query[0].$reduce.r"


def test_error_reduce_rule_of_a_wrong_kind() -> None:
    assert error_path([{"$reduce": "x"}]) == "query[0].$reduce"
    assert error_path([{"$reduce": {"$sum": False}}]) == "query[0].$reduce.$sum"
    assert error_path([{"$reduce": {"$sum": {"$count": True}}}]) == "query[0].$reduce.$sum.$count"


def test_error_empty_sort() -> None:
    assert error_path([{"$filter": {}}, {"$sort": []}]) == "query[1].$sort"


def test_error_sort_not_a_list_or_bad_element() -> None:
    assert error_path([{"$sort": "ts"}]) == "query[0].$sort"
    assert error_path([{"$sort": ["a", {"$up": "b"}]}]) == "query[0].$sort[1].$up"
    assert error_path([{"$sort": [{"$reverse": None}]}]) == "query[0].$sort[0].$reverse"
    assert error_path([{"$sort": [{"$reverse": "a", "b": 1}]}]) == "query[0].$sort[0].b"


def test_error_operator_arguments() -> None:
    assert error_path({"a": {"$in": 1}}) == "query.a.$in"
    assert error_path({"a": {"$in": [1, {2}]}}) == "query.a.$in[1]"
    assert error_path({"a": {"$is": "int"}}) == "query.a.$is"
    assert error_path({"a": {"$prefix": 1}}) == "query.a.$prefix"
    assert error_path({"a": {"$eq": object()}}) == "query.a.$eq"
    assert error_path({"a": {"$ne": [1, {"b": {3}}]}}) == "query.a.$ne[1].b"


def test_error_unstorable_literal() -> None:
    assert error_path([{"$filter": {"a": {1, 2}}}]) == "query[0].$filter.a"


def test_error_positions_quote_odd_keys() -> None:
    assert error_path({"a.b": {"$gt": None}}) == 'query["a.b"].$gt'
    assert error_path({"": {"$gt": None}}) == 'query[""].$gt'
