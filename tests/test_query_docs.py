"""Run every example of docs/query.md, so that the reference never goes stale.

The ```json block holds the examples' log (one value a line). Each ```query block holds
``query:`` (JSON), optionally ``options:`` (JSON: reverse, limit, seqs) and either ``result:``
(the JSON list of items the read yields) or ``error:`` (the start of the QueryError's message).
Each runs against a real database, through a Query view with indexes and through one without
(a full scan): the scan must give the result shown, the index the same items (in the index's
order, unless the query ends with $sort or a grouping $reduce).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import flume
from flume.entry import Entry
from flume.views import Query

DOC = Path(__file__).resolve().parent.parent / "docs" / "query.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
WAIT = 10.0
INDEXES = {
    "author_ts": [["author"], ["ts"]],
    "type": [["type"]],
    "ts": [["ts"]],
    "text": [["text"]],
    "tags": [["tags"]],
    "name": [["name"]],
}


def _blocks(kind: str) -> list[tuple[int, str]]:
    text = DOC.read_text(encoding="utf-8")
    return [(text.count("\n", 0, m.start()) + 1, m.group(2))
            for m in FENCE.finditer(text) if m.group(1) == kind]


def _example(code: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in code.splitlines():
        key, _, value = line.partition(":")
        assert key in ("query", "options", "result", "error") and key not in fields, line
        fields[key] = value.strip()
    assert "query" in fields and ("result" in fields) != ("error" in fields), code
    return fields


EXAMPLES = [(line, _example(code)) for line, code in _blocks("query")]


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[flume.Flume]:
    [(_, data)] = _blocks("json")
    with flume.open(tmp_path_factory.mktemp("docs") / "db") as database:
        database.append_many(json.loads(line) for line in data.splitlines())
        database.use("indexed", Query(indexes=INDEXES))
        database.use("scan", Query(indexes={}))
        yield database


def _plain(item: Any) -> Any:
    return {"seq": item.seq, "value": item.value} if isinstance(item, Entry) else item


def _multiset(items: list[Any]) -> list[str]:
    return sorted(json.dumps(item, sort_keys=True) for item in items)


def test_the_reference_has_examples() -> None:
    assert len(EXAMPLES) >= 40
    assert sum("error" in e for _, e in EXAMPLES) >= 3


@pytest.mark.parametrize("example", [e for _, e in EXAMPLES],
                         ids=[f"docs/query.md:{line}" for line, _ in EXAMPLES])
def test_an_example(db: flume.Flume, example: dict[str, str]) -> None:
    query = json.loads(example["query"])
    options = json.loads(example.get("options", "{}"))
    for name in ("indexed", "scan"):
        view: Any = db.views[name]
        if "error" in example:
            with pytest.raises(flume.QueryError) as caught:
                list(view.read(query, timeout=WAIT, **options))
            assert str(caught.value).startswith(example["error"]), str(caught.value)
        else:
            got = [_plain(item) for item in view.read(query, timeout=WAIT, **options)]
            expected = json.loads(example["result"])
            if name == "indexed" and not options.get("limit"):
                got, expected = _multiset(got), _multiset(expected)
            assert got == expected, (name, view.explain(query))


def test_the_indexed_view_uses_its_indexes(db: flume.Flume) -> None:
    """The examples exercise index reads, not only scans."""
    view: Any = db.views["indexed"]
    used = {view.explain(json.loads(e["query"]))["index"] for _, e in EXAMPLES if "result" in e}
    assert {"author_ts", "type", "ts"} <= used
