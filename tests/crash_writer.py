"""The writer process of the kill test (tests/test_crash.py), and the views both sides declare.

    python tests/crash_writer.py DIR SEED SYNC MODE

opens the flume database in DIR (``sync`` = SYNC, ``1`` or ``0``) with a Reduce, two Index and a
Query view, then appends forever (single appends and batches of every size; ``MODE=rebuild``
also rebuilds the views often) until it is killed. It reports on stdout, one line each, flushed
at once:

    opening                         about to call flume.open
    ready <since>                   open, views declared
    T <op> <start> <n>              about to append op <op>: n values, seqs start..start+n-1
    A <op> <start> <last> <crc>...  the append returned (acknowledged); crc32 of each stored value
    R / r                           a rebuild starts / returned

Each value records its op, its position in the op and the op's size, so the checker can see
from the log alone whether a batch was cut.
"""

from __future__ import annotations

import random
import sys
import zlib
from typing import Any

import flume
from flume import codec
from flume.views import Index, Query, Reduce

AUTHORS = [f"@{i}" for i in range(8)]
TYPES = ["post", "vote", "about", "contact"]
TAGS = ["a", "b", "c", "d", "e"]
QUERY_INDEXES = {"aut": [["author"], ["ts"]], "typ": [["type"], ["ts"]]}


def _count(acc: list[int], value: dict[str, Any]) -> list[int]:
    acc[0] += 1
    acc[1] += value["n"]
    acc[2] = (acc[2] * 31 + value["ts"]) % 1_000_000_007
    return acc


def make_views() -> dict[str, Any]:
    """Fresh instances of the views, declared the same way by the writer and the checker."""
    return {
        "count": Reduce(_count, initial=[0, 0, 0]),
        "by_author": Index(lambda v: (v["author"], v["ts"])),
        "by_tag": Index(lambda v: v["tags"] or None),
        "q": Query(indexes=QUERY_INDEXES),
    }


def fold(values: list[Any]) -> list[int]:
    """What the ``count`` view holds after ``values``, computed directly."""
    acc = [0, 0, 0]
    for v in values:
        acc = _count(acc, v)
    return acc


def crc(raw: bytes) -> str:
    return format(zlib.crc32(raw), "08x")


def make_value(rng: random.Random, op: int, k: int, of: int) -> dict[str, Any]:
    return {
        "author": rng.choice(AUTHORS),
        "ts": rng.randrange(1000),
        "type": rng.choice(TYPES),
        "n": rng.randrange(-1000, 1000),
        "tags": rng.sample(TAGS, rng.randrange(3)),
        "op": op,
        "k": k,
        "of": of,
        "pad": rng.randbytes(rng.choice([0, 0, 16, 300, 2000])),
    }


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def main(directory: str, seed: int, sync: bool, mode: str) -> None:
    rng = random.Random(seed)
    say("opening")
    db = flume.open(directory, sync=sync)
    for name, view in make_views().items():
        db.use(name, view)
    say(f"ready {db.since.value}")
    rebuild_p = 0.25 if mode == "rebuild" else 0.02
    # The op ids of this process start after those already in the log.
    op = db.get(db.since.value)["op"] + 1 if db.since.value >= 0 else 0
    while True:
        r = rng.random()
        if r < rebuild_p:
            say("R")
            db.rebuild()
            say("r")
            continue
        if r < rebuild_p + 0.05:
            # A read: waits for the views, so the indexer and the appends interleave.
            rng.choice([lambda: db.count.get(), lambda: next(db.q.read({"author": "@1"}), None)])()
            continue
        shape = rng.random()
        n = 1 if shape < 0.45 else rng.randrange(2, 65) if shape < 0.93 else rng.randrange(200, 600)
        values = [make_value(rng, op, k, n) for k in range(n)]
        start = db.since.value + 1
        say(f"T {op} {start} {n}")
        if n == 1 and rng.random() < 0.8:
            last = db.append(values[0])
        else:
            last = db.append_many(values)
        crcs = " ".join(crc(codec.encode(v)) for v in values)
        say(f"A {op} {last - n + 1} {last} {crcs}")
        op += 1


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1", sys.argv[4])
