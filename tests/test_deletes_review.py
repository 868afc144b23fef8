"""Failing tests from a hostile review of deletes (each one a bug; see the report)."""

from __future__ import annotations

from pathlib import Path

import flume
from flume import DELETED


def test_reader_stream_begun_before_first_delete_never_yields_deleted(tmp_path: Path) -> None:
    """A reader's stream (tombstones=False) that spans the first delete ever must skip it,
    not yield ``flume.DELETED``: LogStream._shape filters tombstones only when the reader's
    ``log.deletes`` (refreshed when the stream was made) is >= 0."""
    path = tmp_path / "db"
    with flume.open(path) as db:
        db.append_many([{"a": i} for i in range(5000)])  # more than one CHUNK (2048)
        with flume.open(path, readonly=True) as reader:
            stream = reader.stream()
            assert next(stream).seq == 0
            db.delete_many([4000])  # the first delete of this log
            rest = list(stream)
            assert all(e.value is not DELETED for e in rest), [
                e for e in rest if e.value is DELETED
            ]
            assert 4000 not in [e.seq for e in rest]


def _files_holding(root: Path, needles: list[bytes]) -> dict[str, int]:
    found = {}
    for path in sorted(root.rglob("*")):
        if path.is_file():
            data = path.read_bytes()
            hits = sum(1 for n in needles if n in data)
            if hits:
                found[str(path.relative_to(root))] = hits
    return found


def test_compact_leaves_no_deleted_bytes_in_overflow_page_slack(tmp_path: Path) -> None:
    """Values of 2-4 KB take one LMDB overflow page each; LMDB writes such a page from a
    recycled dirty-page buffer without zeroing its tail, so the tail holds bytes of other
    values (here: small ones, later deleted). env.copy(compact=True) copies overflow pages
    whole, so compact() leaves the deleted values' bytes in log/data.mdb."""
    path = tmp_path / "db"
    values = []
    for i in range(1200):
        pad = "p" * 3000 if i % 2 else ""  # odd seqs: one overflow page each
        values.append({"s": f"SECRET{i:05d}-{i * 7919 % 100003:06d}", "pad": pad})
    deleted = [s for s in range(0, 1200, 2)]  # every small value
    with flume.open(path) as db:
        for start in range(0, 1200, 300):
            db.append_many(values[start : start + 300])
        db.delete_many(deleted)
        db.compact()
        assert [e.seq for e in db.stream()] == list(range(1, 1200, 2))
    needles = [values[s]["s"].encode() for s in deleted]
    assert _files_holding(path, needles) == {}
