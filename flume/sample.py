"""Deterministic sample data: a social feed shaped like Secure Scuttlebutt (SSB).

Used by the benchmark (``python -m bench``), the ``flume demo`` command and tests that want
realistic values. Pure standard library; every call builds its own ``random.Random(seed)``, so
the same arguments always give the same messages, on any machine and in any process, and no
global random state is read or changed.

Each message is a dict::

    {
      "key": "%<44 chars of base64>.sha256",          # unique id of the message
      "value": {
        "author": "@<44 chars of base64>.ed25519",    # one of ``authors(authors, seed)``
        "sequence": 1, 2, 3, ...                      # per author, consecutive from 1
        "timestamp": 1577836800000, ...               # int ms, strictly increasing in log order
        "content": {"type": ..., ...},
      },
    }

Content types come in a skewed mix, roughly 45% ``post``, 35% ``vote``, 12% ``contact`` and
8% ``about``:

- ``post``: ``{"type": "post", "text": str}`` with text of varying length (exponentially
  distributed, a few words to a few kilobytes); about a third are replies that also have
  ``"root"`` and ``"branch"`` (keys of earlier posts); some have ``"mentions"``, a list of
  ``{"link": author, "name": str}``.
- ``vote``: ``{"type": "vote", "vote": {"link": key of an earlier post, "value": 1,
  "expression": "Like"}}``.
- ``contact``: ``{"type": "contact", "contact": another author, "following": bool}``.
- ``about``: ``{"type": "about", "about": author (mostly oneself), "name": str}``.

Authors are skewed too: a few write much more than most, as in a real feed (author ``i`` of
``n`` is picked with weight about ``-log((i + 0.5) / n)``: the first writes ~0.8% of the
messages of 1,000 authors, the median one ~0.07%). Links to earlier messages point into
a window of the most recent posts, so memory stays constant however many messages are made.

Encoded with msgpack, a message averages about 350 bytes (see ``tests/test_sample.py``).
Generation runs at a few hundred thousand messages per second on one core.
"""

from __future__ import annotations

import functools
import random
from binascii import b2a_base64
from collections.abc import Iterator
from math import log
from typing import Any

__all__ = ["START_TIMESTAMP", "authors", "messages"]

#: Timestamp of the first message: 2020-01-01T00:00:00Z in milliseconds.
START_TIMESTAMP = 1_577_836_800_000

# Shares of the content types, as cumulative thresholds on one uniform draw.
_POST_UNDER = 0.45
_VOTE_UNDER = 0.80
_CONTACT_UNDER = 0.92  # the rest is "about"

_REPLY_SHARE = 0.35  # posts that have root/branch links
_MENTION_SHARE = 0.15  # posts that mention one or two authors
_FOLLOW_SHARE = 0.85  # contact messages that follow (others unfollow)
_SELF_ABOUT_SHARE = 0.8  # about messages that name oneself
_MEAN_TEXT_CHARS = 240.0  # mean of the exponential text length
_MIN_TEXT_CHARS = 3
_MAX_TEXT_CHARS = 4000
_MEAN_GAP_MS = 2000.0  # mean time between two messages of the log
_RECENT_POSTS = 4096  # how far back links reach, in posts
_KEY_BLOCK = 1024  # message keys made per call of the random generator
_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

_WORDS = (
    "the a an and or but of to in on at for with from by about into over after before "
    "i you we they it this that these those my your our their here there now then "
    "is are was were be been being have has had do does did can could will would should "
    "just really very quite more most less some any every all no not yes maybe "
    "hello thanks welcome great nice cool good bad new old first last next little big "
    "sea boat sail wind wave shore island harbor tide current reef anchor mast rope "
    "network peer feed log message gossip replicate offline local first protocol pub room "
    "friend follow block invite key signature hash append stream index view query "
    "garden bread coffee music guitar book paper walk mountain river forest rain sun snow "
    "today tomorrow yesterday morning evening night week month year weekend "
    "think know feel like love want need try make build write read share learn teach "
    "code bug fix release test patch merge branch commit review deploy server laptop "
    "#scuttlebutt #solarpunk #p2p #offline #music #gardening #books #sailing #art #dev "
    "café naïve über façade jalapeño smörgåsbord 日本 東京 ありがとう 🌊 ⛵ 🌱 ✨ 🎶"
).split()

_FIRST_NAMES = (
    "ada alan alice bob carol dave erin frank grace heidi ivan judy ken lena mallory "
    "nina oscar peggy quinn rosa sam trent uma victor wendy xena yuri zoe noor ravi mei "
    "sven ana joão zoë björn"
).split()


def authors(n: int = 1000, seed: int = 0) -> list[str]:
    """The ids of the ``n`` authors that :func:`messages` with the same ``seed`` writes as.

    Ids look like SSB feed ids, ``"@" + base64(32 bytes) + ".ed25519"``, all distinct; the
    list is in the order the generator indexes authors (its first entries write the most).
    """
    _check_count("n", n, minimum=1)
    _check_seed(seed)
    return _make_authors(random.Random(seed), n)


def messages(n: int, *, authors: int = 1000, seed: int = 0) -> Iterator[dict[str, Any]]:
    """Yield ``n`` SSB-shaped messages (see the module docstring), the same ones for a seed.

    Args:
        n: how many messages to yield (0 yields none).
        authors: how many distinct authors write them (ids as :func:`authors` lists them).
        seed: the seed of the generator's own ``random.Random``.

    Raises:
        TypeError, ValueError: an argument of the wrong type or out of range, raised at the
            call, before any message is made.
    """
    _check_count("n", n, minimum=0)
    _check_count("authors", authors, minimum=1)
    _check_seed(seed)
    return _generate(n, authors, seed)


def _generate(n: int, n_authors: int, seed: int) -> Iterator[dict[str, Any]]:
    rng = random.Random(seed)
    ids = _make_authors(rng, n_authors)
    names = [_make_name(rng) for _ in range(n_authors)]
    corpus, starts = _corpus()
    n_starts = len(starts)
    corpus_len = len(corpus)

    rand = rng.random
    bits = rng.getrandbits
    heads, tails = _key_tables()
    block = ""  # base64 of _KEY_BLOCK * 30 random bytes: the first 40 chars of that many keys
    offset = _KEY_BLOCK * 40
    fa = float(n_authors)

    sequences = [0] * n_authors
    recent: list[str] = [""] * _RECENT_POSTS  # ring buffer of the latest post keys
    n_posts = 0
    ts = START_TIMESTAMP

    for _ in range(n):
        a = int(fa * rand() * rand()) if n_authors > 1 else 0  # skewed towards low indexes
        seq = sequences[a] + 1
        sequences[a] = seq
        ts += 1 + int(-_MEAN_GAP_MS * log(1.0 - rand()))  # exponential gaps
        # key = "%" + base64(32 random bytes) + ".sha256", built from a block of 30-byte heads
        # (base64 of 30 bytes is exactly 40 chars, so heads encode together) and a 2-byte tail.
        if offset == _KEY_BLOCK * 40:
            raw = bits(_KEY_BLOCK * 240).to_bytes(_KEY_BLOCK * 30, "big")
            block = b2a_base64(raw, newline=False).decode()
            offset = 0
        tail = bits(16)
        key = "%" + block[offset : offset + 40] + heads[tail >> 4] + tails[tail & 15]
        offset += 40

        r = rand()
        content: dict[str, Any]
        if r < _POST_UNDER or (r < _VOTE_UNDER and n_posts == 0):
            length = _MIN_TEXT_CHARS + int(-_MEAN_TEXT_CHARS * log(1.0 - rand()))
            if length > _MAX_TEXT_CHARS:
                length = _MAX_TEXT_CHARS
            start = starts[int(rand() * n_starts)]
            if start + length > corpus_len:
                start = 0
            content = {"type": "post", "text": corpus[start : start + length]}
            if n_posts and rand() < _REPLY_SHARE:
                window = n_posts if n_posts < _RECENT_POSTS else _RECENT_POSTS
                content["root"] = recent[(n_posts - 1 - int(rand() * window)) % _RECENT_POSTS]
                content["branch"] = recent[(n_posts - 1 - int(rand() * window)) % _RECENT_POSTS]
            if rand() < _MENTION_SHARE:
                m = int(fa * rand())
                mentions = [{"link": ids[m], "name": names[m]}]
                if rand() < 0.3:
                    m = int(fa * rand())
                    mentions.append({"link": ids[m], "name": names[m]})
                content["mentions"] = mentions
            recent[n_posts % _RECENT_POSTS] = key
            n_posts += 1
        elif r < _VOTE_UNDER:
            window = n_posts if n_posts < _RECENT_POSTS else _RECENT_POSTS
            link = recent[(n_posts - 1 - int(rand() * window)) % _RECENT_POSTS]
            vote = {"link": link, "value": 1, "expression": "Like"}
            content = {"type": "vote", "vote": vote}
        elif r < _CONTACT_UNDER:
            other = int(fa * rand() * rand())
            if other == a and n_authors > 1:
                other = (other + 1) % n_authors
            following = rand() < _FOLLOW_SHARE
            content = {"type": "contact", "contact": ids[other], "following": following}
        else:
            about = a if rand() < _SELF_ABOUT_SHARE else int(fa * rand())
            content = {"type": "about", "about": ids[about], "name": names[about]}

        yield {
            "key": key,
            "value": {"author": ids[a], "sequence": seq, "timestamp": ts, "content": content},
        }


def _make_authors(rng: random.Random, n: int) -> list[str]:
    out: list[str] = []
    seen: set[str] = set()
    while len(out) < n:
        raw = rng.getrandbits(256).to_bytes(32, "big")
        author = "@" + b2a_base64(raw, newline=False).decode() + ".ed25519"
        if author not in seen:  # 2**-256 odds, but ids must be distinct
            seen.add(author)
            out.append(author)
    return out


def _make_name(rng: random.Random) -> str:
    name = _FIRST_NAMES[int(rng.random() * len(_FIRST_NAMES))]
    if rng.random() < 0.5:
        name += str(int(rng.random() * 100))
    return name


@functools.cache
def _key_tables() -> tuple[list[str], list[str]]:
    """Base64 of the last 2 bytes of a 32-byte hash, + ".sha256": ``heads[x >> 4] + tails[x & 15]``.

    Two bytes ``x`` encode as 3 chars and a pad: 6 + 6 bits of ``x >> 4``, then the last 4
    bits shifted left by 2 (standard base64 of a 32-byte value ends ``<c><c><c>=``).
    """
    heads = [_B64[h >> 6] + _B64[h & 63] for h in range(4096)]
    tails = [_B64[t << 2] + "=.sha256" for t in range(16)]
    return heads, tails


@functools.cache
def _corpus() -> tuple[str, list[int]]:
    """A fixed text of random words to slice post texts from, and its word start offsets."""
    rng = random.Random(0x5EED)
    words = [_WORDS[int(rng.random() * len(_WORDS))] for _ in range(40_000)]
    parts: list[str] = []
    starts: list[int] = []
    pos = 0
    for i, word in enumerate(words):
        if i and rng.random() < 0.08:  # end a sentence now and then
            parts.append(". ")
            pos += 2
            word = word[:1].upper() + word[1:]
        elif i:
            parts.append(" ")
            pos += 1
        starts.append(pos)
        parts.append(word)
        pos += len(word)
    text = "".join(parts)
    # Keep only starts far enough from the end for the longest text.
    limit = len(text) - _MAX_TEXT_CHARS
    return text, [s for s in starts if s <= limit]


def _check_count(name: str, value: object, *, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, not {value}")


def _check_seed(seed: object) -> None:
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, not {type(seed).__name__}")
