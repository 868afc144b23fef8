"""Counts answered by bitmap indexes, beside the key-scan count and sqlite3 with expression
indexes: ``python -m bench.bitmap_counts --n 100000``.

Standalone until its rows join the main harness. It loads ``flume.sample.messages(n)`` into a
flume database with one Query view holding the bench's ``type_ts`` index and bitmap fields on
``value.content.type`` and ``value.author`` (a second view holds the index alone, for the
key-scan count), and into sqlite3 with one expression index per field; then prints the median
of each count (the votes, and the votes of one author: two fields), checked against the data.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import flume
from flume.sample import messages
from flume.views import Query

TYPE_TS = {"type_ts": [["value", "content", "type"], ["value", "timestamp"]]}
BITMAPS = [["value", "content", "type"], ["value", "author"]]
_TYPE = "json_extract(value, '$.value.content.type')"
_AUTHOR = "json_extract(value, '$.value.author')"


def _median_ms(run: Callable[[], Any], rounds: int) -> tuple[float, Any]:
    times = []
    answer = None
    for _ in range(rounds):
        t0 = time.perf_counter()
        answer = run()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000, answer


def main() -> None:
    """Run the counts and print one line per row."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="how many messages")
    parser.add_argument("--rounds", type=int, default=21, help="rounds of each count")
    args = parser.parse_args()
    msgs = list(messages(args.n, seed=0))
    author = msgs[0]["value"]["author"]
    votes = sum(1 for m in msgs if m["value"]["content"].get("type") == "vote")
    votes_of = sum(
        1
        for m in msgs
        if m["value"]["content"].get("type") == "vote" and m["value"]["author"] == author
    )
    count = {"$reduce": {"$count": True}}
    q_votes = [{"$filter": {"value": {"content": {"type": "vote"}}}}, count]
    q_two = [{"$filter": {"value": {"content": {"type": "vote"}, "author": author}}}, count]
    rows: list[tuple[str, float, Any, int]] = []
    with tempfile.TemporaryDirectory() as tmp:
        with flume.open(str(Path(tmp) / "flume")) as db:
            db.use("bitmaps", Query(indexes=TYPE_TS, bitmaps=BITMAPS))
            db.use("keys", Query(indexes=TYPE_TS))
            for i in range(0, args.n, 10_000):
                db.append_many(msgs[i : i + 10_000])
            db.bitmaps.ready(timeout=None)
            db.keys.ready(timeout=None)
            for name, view, query, expected, rounds in [
                ("flume.count_votes_bitmap", db.bitmaps, q_votes, votes, args.rounds),
                ("flume.count_type_author_bitmap", db.bitmaps, q_two, votes_of, args.rounds),
                ("flume.count_votes_keys", db.keys, q_votes, votes, 5),
            ]:
                ms, answer = _median_ms(lambda v=view, q=query: list(v.read(q)), rounds)
                rows.append((name, ms, answer, expected))
        con = sqlite3.connect(str(Path(tmp) / "sqlite.db"))
        con.execute("CREATE TABLE log (id INTEGER PRIMARY KEY, value TEXT NOT NULL)")
        con.executemany("INSERT INTO log (value) VALUES (?)", ((json.dumps(m),) for m in msgs))
        con.execute(f"CREATE INDEX log_type ON log ({_TYPE})")
        con.execute(f"CREATE INDEX log_author ON log ({_AUTHOR})")
        con.commit()
        one = f"SELECT count(*) FROM log WHERE {_TYPE} = ?"
        both = f"SELECT count(*) FROM log WHERE {_TYPE} = ? AND {_AUTHOR} = ?"
        for name, sql, params, expected in [
            ("sqlite.count_votes", one, ("vote",), votes),
            ("sqlite.count_type_author", both, ("vote", author), votes_of),
        ]:
            ms, answer = _median_ms(lambda s=sql, p=params: [con.execute(s, p).fetchone()[0]], 5)
            rows.append((name, ms, answer, expected))
        con.close()
    for name, ms, answer, expected in rows:
        status = "ok" if answer == [expected] else f"WRONG: {answer!r}, expected {expected}"
        print(f"{name:34} {ms:10.3f} ms  {status}")


if __name__ == "__main__":
    main()
