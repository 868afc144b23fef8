"""`flume demo`: a sample social feed appended to a fresh directory, three views built from
it, and real queries with their plans and timings: what flume is for, in one command."""

from __future__ import annotations

import datetime
import json
import os
import shlex
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import click

import flume
from flume import fs, sample
from flume.console import (
    BATCH,
    dir_size,
    fail,
    format_path_arg,
    open_db,
    progress,
    wait_for_views,
)
from flume.jsonlines import dumps

__all__ = ["DEMO_INDEXES", "explain_summary", "run_demo"]


#: The demo's Query view: latest-by-author and by-type-over-time indexes.
DEMO_INDEXES: dict[str, list[list[str]]] = {
    "author_ts": [["value", "author"], ["value", "timestamp"]],
    "type_ts": [["value", "content", "type"], ["value", "timestamp"]],
}


def _demo_content_type(message: Any) -> Any:
    """The Reduce view's map: a message's content type (None skips non-messages)."""
    try:
        return message["value"]["content"]["type"]
    except (KeyError, TypeError):
        return None


def _demo_count(acc: dict[str, int], content_type: Any) -> dict[str, int]:
    """The Reduce view's reducer: count messages by content type."""
    key = str(content_type)
    acc[key] = acc.get(key, 0) + 1
    return acc


def _demo_author_sequence(message: Any) -> Any:
    """The Index view's key: ``(author, sequence)``, so an author's messages are in order."""
    try:
        value = message["value"]
        return (value["author"], value["sequence"])
    except (KeyError, TypeError):
        return None


def _short(text: str, width: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _short_author(author: str) -> str:
    return author[:9] + "…" if len(author) > 10 else author


def _when(ts: Any) -> str:
    try:
        moment = datetime.datetime.fromtimestamp(ts / 1000, tz=datetime.UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return str(ts)
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def explain_summary(plan: dict[str, Any]) -> str:
    """A one-line reading of a Query view's ``explain()`` dict."""
    parts = []
    if plan.get("index"):
        parts.append(f"index {plan['index']}")
    else:
        parts.append("full log scan")
    constraints = plan.get("constraints")
    if constraints:
        parts.append("range " + " and ".join(str(c) for c in constraints))
    parts.append("covered (answered from the index keys alone)" if plan.get("covered")
                 else "values looked up in the log")
    if plan.get("sort"):
        parts.append(f"sort: {plan['sort']}")
    scores = plan.get("scores")
    if isinstance(scores, dict) and scores:
        parts.append("scores " + ", ".join(f"{k}={v}" for k, v in scores.items()))
    return "; ".join(parts)


class _Demo:
    """The steps of `flume demo`, printing as they go."""

    def __init__(self, directory: str, count: int, n_authors: int) -> None:
        self.directory = directory
        self.count = count
        self.n_authors = n_authors
        self.quoted = shlex.quote(directory)
        self.author = ""

    def abbreviate(self, text: str) -> str:
        """``text`` with the demo author's long id shortened, for display."""
        return text.replace(self.author, _short_author(self.author)) if self.author else text

    def say(self, text: str = "") -> None:
        click.echo(text)

    def timed(self, fn: Callable[[], Any]) -> tuple[Any, float]:
        started = time.perf_counter()
        result = fn()
        return result, (time.perf_counter() - started) * 1000

    def append(self, db: flume.Flume) -> None:

        first = next(sample.messages(1, authors=self.n_authors))
        existing = db.since.value + 1
        if existing:
            if db.get(0) != first:
                fail(f"{self.directory} already holds a flume log that is not the demo's; "
                     "give `flume demo` a new directory (or none, for a temporary one)")
            self.count = existing
            self.say(f"1. The log already holds the demo's {existing:,} messages: using them.")
            return
        self.say(f"1. Append {self.count:,} messages to the log (LMDB), {BATCH:,} per "
                 "transaction, each durable on return")
        started = time.monotonic()
        batch: list[Any] = []
        with progress(self.count, "   appending", sys.stdout) as bar:
            for message in sample.messages(self.count, authors=self.n_authors):
                batch.append(message)
                if len(batch) == BATCH:
                    db.append_many(batch)
                    bar.update(len(batch))
                    batch = []
            if batch:
                db.append_many(batch)
                bar.update(len(batch))
        took = time.monotonic() - started
        size = dir_size(os.path.join(self.directory, "log"))
        self.say(f"   {self.count:,} messages in {took:.1f} s ({self.count / took:,.0f} per s); "
                 f"the log is {fs.human_size(size)} on disk")

    def declare(self, db: flume.Flume) -> None:
        from flume.views import Index, Query, Reduce

        self.say()
        self.say("2. Declare three views; one indexer thread streams the log into them (RocksDB)")
        db.use("count_by_type", Reduce(_demo_count, initial={}, map=_demo_content_type))
        db.use("by_author", Index(_demo_author_sequence))
        db.use("query", Query(indexes={k: v for k, v in DEMO_INDEXES.items()}))
        self.say("   count_by_type  Reduce  messages counted by content type")
        self.say("   by_author      Index   key (value.author, value.sequence)")
        for i, (name, paths) in enumerate(DEMO_INDEXES.items()):
            lead = "   query          Query   " if i == 0 else " " * 26
            self.say(f"{lead}{name + ':':<10} {', '.join(format_path_arg(p) for p in paths)}")
        took = wait_for_views(db, label="   indexing", file=sys.stdout)
        self.say(f"   all three caught up with the log in {took:.1f} s")

    def show(
        self, letter: str, title: str, query: Any, answer: list[str], plan: str, ms: float
    ) -> None:
        self.say()
        self.say(f" {letter}. {title}")
        if query is not None:
            text = self.abbreviate(json.dumps(query, ensure_ascii=False))
            self.say(f"    query:   {_short(text, 120)}")
        for i, line in enumerate(answer):
            self.say(f"    {'answer:' if i == 0 else '':<8} {line}")
        self.say(f"    plan:    {self.abbreviate(plan)}")
        self.say(f"    time:    {ms:.1f} ms")

    def queries(self, db: flume.Flume) -> dict[str, Any]:

        author = self.author = sample.authors(self.n_authors)[0]
        view: Any = db.views["query"]  # a MountedView: read/explain are set at mount
        self.say()
        self.say("3. Queries: each answer, its plan (explain) and its time")

        latest = [{"$filter": {"value": {"author": author, "content": {"type": "post"}}}}]
        posts, ms = self.timed(lambda: list(view.read(latest, reverse=True, limit=5)))
        self.show(
            "a", f"The latest 5 posts by {_short_author(author)} (the busiest author): "
            "Query view, reverse=True, limit=5", latest,
            [
                f"{_when(m['value']['timestamp'])}  "
                f"{_short(m['value']['content'].get('text', ''), 60)}"
                for m in posts
            ] or ["(none)"],
            explain_summary(view.explain(latest)), ms,
        )

        votes = {"$filter": {"value": {"content": {"type": "vote"}}}}
        per_author = [
            votes,
            {"$reduce": {"author": ["value", "author"], "votes": {"$count": True}}},
            {"$sort": [{"$reverse": "votes"}]},
        ]
        groups, ms = self.timed(lambda: list(view.read(per_author, limit=5)))
        self.show(
            "b", "Votes per author, the top 5: a grouping $reduce over the votes, then $sort "
            "(limit=5)", per_author,
            [f"{_short_author(str(g.get('author')))}  {g.get('votes', 0):,} votes" for g in groups]
            or ["(none)"],
            explain_summary(view.explain(per_author)), ms,
        )

        count_votes = [votes, {"$reduce": {"$count": True}}]
        counted, ms = self.timed(lambda: list(view.read(count_votes)))
        n_votes = counted[0] if counted else 0
        self.show("c", "How many votes? A $count over the type_ts index", count_votes,
                  [f"{n_votes:,} votes"], explain_summary(view.explain(count_votes)), ms)

        count_by_type: Any = db.views["count_by_type"]
        counts, ms = self.timed(lambda: count_by_type.get())
        agree = counts.get("vote") == n_votes
        self.show(
            "d", "Messages by content type: the Reduce view's state (db.count_by_type.get())",
            None,
            [", ".join(f"{k} {v:,}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1]))],
            "no query: a Reduce view folds each new entry into its state as the log grows"
            + (f"; its {counts.get('vote', 0):,} votes agree with c." if agree else ""),
            ms,
        )

        def lookup() -> tuple[Any, list[Any]]:
            by_author: Any = db.views["by_author"]
            first_message = by_author.get((author, 1))
            newest = list(by_author.read(prefix=(author,), reverse=True, limit=1))
            return first_message, newest

        (first_message, newest), ms = self.timed(lookup)
        answer = [f"(author, 1) -> {_short(dumps(first_message['value']['content']), 70)}"]
        if newest:
            newest_key, newest_seq = newest[0].key[1], newest[0].seq
            answer.append(f"newest: sequence {newest_key:,}, seq {newest_seq:,} in the log")
        self.show(
            "e", f"Index lookups: {_short_author(author)}'s first message, and the newest "
            "(db.by_author.get(...), .read(prefix=..., reverse=True, limit=1))", None,
            answer, "no query: an Index view is a sorted key range; get() is one seek", ms,
        )
        return {"author": author, "latest": latest, "count_votes": count_votes,
                "per_author": per_author}

    def commands(self, queries: dict[str, Any]) -> None:
        d = self.quoted
        latest = shlex.quote(json.dumps(queries["latest"], ensure_ascii=False))
        count = shlex.quote(json.dumps(queries["count_votes"], ensure_ascii=False))
        per_author = shlex.quote(json.dumps(queries["per_author"], ensure_ascii=False))
        self.say()
        self.say("4. Query this directory from the command line (read-only commands work even "
                 "while a writer runs):")
        for line in (
            f"flume status {d}",
            f"flume query {d} {latest} --reverse --limit 5",
            f"flume query {d} {per_author} --limit 5",
            f"flume query {d} {count} --explain",
            f"flume stream {d} --reverse --limit 3",
            f"flume get {d} 0",
            f"flume index list {d}",
            f"flume index add {d} by_contact value.content.contact value.timestamp",
            f"flume export {d} > feed.jsonl",
            f"flume verify {d}",
        ):
            self.say(f"   {line}")


def run_demo(directory: str | None, count: int, n_authors: int) -> None:
    """`flume demo`: generate, append, index and query a sample feed (the `flume demo` command)."""
    started = time.monotonic()
    fresh = directory is None
    if directory is None:
        directory = tempfile.mkdtemp(prefix="flume-demo-")
    click.echo(f"flume demo: a social feed of {count:,} messages by {n_authors:,} authors")
    if fresh:
        click.echo(f"in {directory} (a fresh temporary directory, kept so that you can query it; "
                   "pass DIR to choose)")
    else:
        click.echo(f"in {directory}")
    click.echo()
    demo_run = _Demo(directory, count, n_authors)
    db = open_db(directory, write=True)
    try:
        demo_run.append(db)
        demo_run.declare(db)
        queries = demo_run.queries(db)
    finally:
        db.close()
    demo_run.commands(queries)
    click.echo()
    click.echo(f"demo done in {time.monotonic() - started:.1f} s")
