"""The sample-data generator: deterministic, SSB-shaped, with the promised mix and sizes."""

from __future__ import annotations

import base64
import itertools
import random
import re
from collections import Counter
from typing import Any

import msgpack
import pytest

from flume import sample

N = 20_000


@pytest.fixture(scope="module")
def msgs() -> list[dict[str, Any]]:
    return list(sample.messages(N))


KEY_RE = re.compile(r"^%[A-Za-z0-9+/]{43}=\.sha256$")
AUTHOR_RE = re.compile(r"^@[A-Za-z0-9+/]{43}=\.ed25519$")


def test_deterministic_for_a_seed() -> None:
    a = list(sample.messages(2000, seed=7))
    b = list(sample.messages(2000, seed=7))
    assert a == b
    assert msgpack.packb(a) == msgpack.packb(b)
    assert a != list(sample.messages(2000, seed=8))


def test_prefix_of_a_longer_run() -> None:
    assert list(sample.messages(500, seed=3)) == list(sample.messages(1500, seed=3))[:500]


def test_no_global_random_state_used_or_changed() -> None:
    random.seed(1)
    before = random.getstate()
    first = list(sample.messages(300))
    assert random.getstate() == before
    random.seed(99)
    random.random()
    assert list(sample.messages(300)) == first


def test_shape(msgs: list[dict[str, Any]]) -> None:
    ids = set(sample.authors(1000))
    for m in msgs:
        assert set(m) == {"key", "value"}
        assert KEY_RE.match(m["key"]), m["key"]
        assert len(base64.b64decode(m["key"][1:-7], validate=True)) == 32
        v = m["value"]
        assert set(v) == {"author", "sequence", "timestamp", "content"}
        assert v["author"] in ids and AUTHOR_RE.match(v["author"])
        assert type(v["sequence"]) is int and v["sequence"] >= 1
        assert isinstance(v["timestamp"], int | float)
        c = v["content"]
        t = c["type"]
        if t == "post":
            assert isinstance(c["text"], str) and c["text"]
            assert set(c) <= {"type", "text", "root", "branch", "mentions"}
            assert ("root" in c) == ("branch" in c)
            for mention in c.get("mentions", []):
                assert mention["link"] in ids and isinstance(mention["name"], str)
        elif t == "vote":
            assert set(c) == {"type", "vote"}
            assert set(c["vote"]) == {"link", "value", "expression"}
            assert c["vote"]["value"] == 1 and c["vote"]["expression"] == "Like"
        elif t == "contact":
            assert set(c) == {"type", "contact", "following"}
            assert c["contact"] in ids and c["contact"] != v["author"]
            assert isinstance(c["following"], bool)
        elif t == "about":
            assert set(c) == {"type", "about", "name"}
            assert c["about"] in ids and isinstance(c["name"], str) and c["name"]
        else:
            pytest.fail(f"unknown type {t!r}")


def test_keys_unique_and_links_point_back(msgs: list[dict[str, Any]]) -> None:
    seen: dict[str, str] = {}
    for m in msgs:
        c = m["value"]["content"]
        links = [c["vote"]["link"]] if c["type"] == "vote" else []
        links += [c[k] for k in ("root", "branch") if k in c]
        for link in links:
            assert seen.get(link) == "post", "links point to earlier posts"
        assert m["key"] not in seen
        seen[m["key"]] = c["type"]
    assert len(seen) == N


def test_type_mix(msgs: list[dict[str, Any]]) -> None:
    counts = Counter(m["value"]["content"]["type"] for m in msgs)
    shares = {t: n / N for t, n in counts.items()}
    assert set(shares) == {"post", "vote", "contact", "about"}
    for t, expected in {"post": 0.45, "vote": 0.35, "contact": 0.12, "about": 0.08}.items():
        assert abs(shares[t] - expected) < 0.02, (t, shares[t])
    replies = sum(1 for m in msgs if "root" in m["value"]["content"])
    assert 0.2 < replies / counts["post"] < 0.5


def test_mean_size_as_msgpack(msgs: list[dict[str, Any]]) -> None:
    sizes = [len(msgpack.packb(m)) for m in msgs]
    mean = sum(sizes) / len(sizes)
    assert 300 <= mean <= 400, mean
    assert min(sizes) < 300 < max(sizes), "sizes vary"
    texts = [m["value"]["content"].get("text") for m in msgs[:2000]]
    text_lengths = {len(t) for t in texts if t is not None}
    assert len(text_lengths) > 100, "post texts vary in length"


def test_timestamps_strictly_increasing(msgs: list[dict[str, Any]]) -> None:
    ts = [m["value"]["timestamp"] for m in msgs]
    assert ts[0] > sample.START_TIMESTAMP - 1
    assert all(a < b for a, b in itertools.pairwise(ts))


def test_per_author_sequences_consecutive_from_1(msgs: list[dict[str, Any]]) -> None:
    last: dict[str, int] = {}
    for m in msgs:
        a, s = m["value"]["author"], m["value"]["sequence"]
        assert s == last.get(a, 0) + 1
        last[a] = s
    counts = sorted(last.values(), reverse=True)
    assert len(counts) > 900, "nearly every author writes"
    assert counts[0] > 5 * counts[len(counts) // 2], "a few authors write much more"


def test_authors() -> None:
    ids = sample.authors(1000, seed=5)
    assert len(ids) == len(set(ids)) == 1000
    assert all(AUTHOR_RE.match(a) for a in ids)
    assert ids == sample.authors(1000, seed=5)
    assert ids != sample.authors(1000, seed=6)
    assert sample.authors() == sample.authors(1000, 0)
    used = {m["value"]["author"] for m in sample.messages(3000, authors=10, seed=5)}
    assert used == set(sample.authors(10, seed=5))


def test_small_and_edge_arguments() -> None:
    assert list(sample.messages(0)) == []
    one_author = list(sample.messages(50, authors=1))
    assert [m["value"]["sequence"] for m in one_author] == list(range(1, 51))
    two = list(sample.messages(500, authors=2))
    assert all(
        m["value"]["content"]["contact"] != m["value"]["author"]
        for m in two
        if m["value"]["content"]["type"] == "contact"
    )


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"n": -1}, ValueError),
        ({"n": 1.5}, TypeError),
        ({"n": True}, TypeError),
        ({"n": 1, "authors": 0}, ValueError),
        ({"n": 1, "seed": "x"}, TypeError),
    ],
)
def test_bad_arguments_raise_at_call(kwargs: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        sample.messages(**kwargs)
