"""Damaged files: every case gets a clear error naming the file and what to do, or, where the
data is derivable (the views), a rebuild from the log; the log is never overwritten; and
``flume.verify`` reports the damage.

Opens of a damaged log run in a child process: LMDB can kill the process that reads a damaged
file (SIGBUS past the end of a truncated file, an assertion on a zeroed page), and a test must
report that rather than die of it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import lmdb
import pytest

import flume
from flume import codec
from flume.errors import CorruptionError, FormatError
from flume.verify import verify
from flume.views import Index, Query, Reduce
from flume.views.store import RocksStore

N = 3000
PAGE = 4096
CHILD_TIMEOUT = 120.0


def value(i: int) -> dict[str, Any]:
    return {"i": i, "author": f"@{i % 7}", "ts": i, "s": f"MARKER-{i:05d}", "pad": "x" * 100}


VALUES = [value(i) for i in range(N)]


def make_views(**versions: int) -> dict[str, Any]:
    return {
        "count": Reduce(lambda acc, v: acc + 1, initial=0, version=versions.get("count", 1)),
        "by_author": Index(lambda v: (v["author"], v["ts"]), version=versions.get("by_author", 1)),
        "q": Query(indexes={"aut": [["author"], ["ts"]]}),
    }


def mount(db: flume.Flume, **versions: int) -> flume.Flume:
    for name, view in make_views(**versions).items():
        db.use(name, view)
    return db


def check_answers(db: flume.Flume, values: list[Any] = VALUES) -> None:
    """The views answer what the log holds."""
    assert db.count.get(timeout=60) == len(values)
    assert [(e.key, e.seq) for e in db.by_author.read()] == sorted(
        ((v["author"], v["ts"]), s) for s, v in enumerate(values)
    )
    assert [e.seq for e in db.q.read({"author": "@3"}, seqs=True)] == [
        s for s, v in enumerate(values) if v["author"] == "@3"
    ]


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database of N values with three views, closed (so its views are in SST files)."""
    path = tmp_path_factory.mktemp("pristine") / "db"
    with flume.open(path) as db:
        mount(db)
        for i in range(0, N, 500):
            db.append_many(VALUES[i : i + 500])
        check_answers(db)
    assert list((path / "views").glob("*.sst")), "closing the views database flushed nothing"
    return path


@pytest.fixture
def db_dir(pristine: Path, tmp_path: Path) -> Path:
    path = tmp_path / "db"
    shutil.copytree(pristine, path)
    return path


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else "missing"


def tree(path: Path) -> dict[str, str]:
    """File name -> digest for every file under ``path`` that holds data (not RocksDB's LOG
    files, LMDB's lock.mdb reader table or flume's writer.lock, which record who opened it)."""
    return {
        str(p.relative_to(path)): digest(p)
        for p in sorted(path.rglob("*"))
        if p.is_file() and not p.name.startswith("LOG") and p.name not in ("lock.mdb", "writer.lock")
    }


OPEN_CHILD = """
import json, sys, warnings
import flume
from flume.views import Index, Query, Reduce
out = {}
try:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        db = flume.open(sys.argv[1], readonly=sys.argv[2] == "1")
    out["warnings"] = [str(w.message) for w in caught]
    out["since"] = db.since.value
    steps = [
        ("get", lambda: db.get(1234)["i"]),
        ("stream", lambda: sum(1 for _ in db.stream())),
    ]
    if sys.argv[2] != "1":
        # A new view, so that it indexes the whole log (the stored ones are up to date).
        db.use("fresh", Reduce(lambda acc, v: acc + 1, initial=0))
        steps.append(("count", lambda: db.fresh.get(timeout=60)))
    for name, step in steps:
        try:
            out[name] = step()
        except Exception as e:
            out[name + "_error"] = [type(e).__name__, str(e), type(e.__cause__).__name__]
    db.close()
except Exception as e:
    out["error"] = [type(e).__name__, str(e)]
print(json.dumps(out))
"""


def open_in_child(path: Path, readonly: bool = False) -> dict[str, Any]:
    """Open ``path`` in a child process, read a little; what happened, or the signal it died of."""
    proc = subprocess.run(
        [sys.executable, "-c", OPEN_CHILD, str(path), "1" if readonly else "0"],
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT,
    )
    if proc.returncode < 0:
        return {"signal": -proc.returncode, "stderr": proc.stderr[-500:]}
    assert proc.returncode == 0, proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def assert_refused(result: dict[str, Any], kind: type[Exception], *words: str) -> str:
    assert "error" in result, f"the open did not fail: {result}"
    name, message = result["error"]
    assert name == kind.__name__, result
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"
    return str(message)


# -- the log -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "size",
    [
        pytest.param(lambda n: n // 2, id="half"),
        pytest.param(lambda n: n - 1, id="one-byte-short"),
        pytest.param(lambda n: n - PAGE, id="one-page-short"),
        pytest.param(lambda n: PAGE + 100, id="inside-the-second-meta-page"),
        pytest.param(lambda n: 3 * PAGE, id="meta-pages-only"),
    ],
)
@pytest.mark.parametrize("readonly", [False, True], ids=["writer", "reader"])
def test_a_truncated_log_is_refused_and_left_alone(db_dir: Path, size: Any, readonly: bool) -> None:
    data = db_dir / "log" / "data.mdb"
    os.truncate(data, size(data.stat().st_size))
    before = tree(db_dir)
    result = open_in_child(db_dir, readonly)
    assert "signal" not in result, f"opening a truncated log killed the process: {result}"
    assert_refused(result, CorruptionError, str(data.resolve()), "truncated", "restore")
    assert tree(db_dir) == before, "a refused open changed the directory"
    report = verify(db_dir)
    assert not report.ok and "truncated" in report.problems[0]


@pytest.mark.parametrize("how", ["empty", "missing"])
def test_a_lost_log_next_to_views_is_refused(db_dir: Path, how: str) -> None:
    """A log truncated to nothing (or deleted) must not pass for a new database: that would
    wipe the views and start counting seqs from 0 again."""
    data = db_dir / "log" / "data.mdb"
    if how == "empty":
        os.truncate(data, 0)
    else:
        data.unlink()
    before = tree(db_dir)
    with pytest.raises(CorruptionError) as info:
        flume.open(db_dir)
    message = str(info.value)
    assert str(data) in message and how in message and "Restore" in message
    assert tree(db_dir) == before


def _meta_page_magic(data: Path, page: int) -> None:
    with open(data, "r+b") as f:
        f.seek(page * PAGE + 16)
        f.write(b"\x00\x11\x22\x33")


@pytest.mark.parametrize("pages", [[0], [1], [0, 1]], ids=["meta-0", "meta-1", "both-metas"])
def test_a_damaged_meta_page_is_refused(db_dir: Path, pages: list[int]) -> None:
    data = db_dir / "log" / "data.mdb"
    for page in pages:
        _meta_page_magic(data, page)
    before = tree(db_dir)
    result = open_in_child(db_dir)
    assert_refused(result, CorruptionError, "data.mdb", "not a valid LMDB file", "restore")
    assert tree(db_dir) == before
    assert not verify(db_dir).ok


def _damage_value(data: Path, seq: int) -> None:
    """Make the stored value at ``seq`` undecodable: its str header becomes msgpack's one
    never-used byte, 0xc1."""
    raw = bytearray(data.read_bytes())
    pos = raw.find(f"MARKER-{seq:05d}".encode())
    assert pos > 0 and raw.find(f"MARKER-{seq:05d}".encode(), pos + 1) == -1
    assert raw[pos - 1] == 0xA0 | len(f"MARKER-{seq:05d}")
    raw[pos - 1] = 0xC1
    data.write_bytes(bytes(raw))


def test_a_value_that_does_not_decode_names_the_log_and_the_seq(db_dir: Path) -> None:
    data = db_dir / "log" / "data.mdb"
    _damage_value(data, 1234)
    result = open_in_child(db_dir)
    assert "error" not in result, "the open itself reads no values"
    log_dir = str(db_dir / "log")
    for step in ("get", "stream"):
        name, message, _ = result[f"{step}_error"]
        assert name == "CorruptionError" and log_dir in message and "seq 1234" in message
        assert "restore" in message
    # A view stops at the damage with a ViewError whose cause names the file.
    name, message, cause = result["count_error"]
    assert (name, cause) == ("ViewError", "CorruptionError") and "seq 1234" in message
    report = verify(db_dir)
    assert not report.ok and "seq 1234" in report.problems[0]
    # The rest of the log still reads; nothing was written.
    with flume.open(db_dir, readonly=True) as db:
        assert db.get(1233) == VALUES[1233] and db.get(1235) == VALUES[1235]


def _page_of(data: Path, seq: int) -> int:
    return data.read_bytes().find(f"MARKER-{seq:05d}".encode()) // PAGE


def test_a_garbage_page_in_the_log_raises_corruption_error(db_dir: Path) -> None:
    data = db_dir / "log" / "data.mdb"
    page = _page_of(data, 1234)
    with open(data, "r+b") as f:
        f.seek(page * PAGE)
        f.write(b"\xff" * PAGE)
    before = digest(data)
    result = open_in_child(db_dir)
    assert "signal" not in result, result
    for step in ("get", "stream"):
        name, message, _ = result[f"{step}_error"]
        assert name == "CorruptionError" and str(db_dir / "log") in message and "restore" in message
    assert result["count_error"][2] == "CorruptionError"
    report = verify(db_dir)
    assert not report.ok
    assert digest(data) == before, "the damaged log was written to"


def test_a_zeroed_page_in_the_log_is_contained_by_verify(db_dir: Path) -> None:
    """Some damage makes LMDB abort the reading process (an assertion in mdb.c): flume cannot
    turn that into an exception, but verify reads the log in a child process and reports it."""
    data = db_dir / "log" / "data.mdb"
    page = _page_of(data, 1234)
    with open(data, "r+b") as f:
        f.seek(page * PAGE)
        f.write(b"\x00" * PAGE)
    result = open_in_child(db_dir)
    if "signal" not in result:
        assert result.get("stream_error", [""])[0] == "CorruptionError", result
    report = verify(db_dir)
    assert not report.ok and report.problems


def _rewrite_format(data_dir: Path, record: bytes) -> None:
    env = lmdb.open(str(data_dir), max_dbs=2)
    with env.begin(write=True) as txn:
        meta = env.open_db(b"meta", txn=txn)
        txn.put(b"format", record, db=meta)
    env.close()


@pytest.mark.parametrize(
    "record, words",
    [
        (codec.encode({"name": "flume-log", "version": 3}), ["version 3", "nothing was changed"]),
        (codec.encode({"name": "flume-log", "version": 0}), ["version 0", "nothing was changed"]),
        (codec.encode({"name": "flume-log", "version": "1"}), ["version '1'"]),
        (codec.encode({"name": "other-log", "version": 1}), ["no flume format record"]),
        (b"\xc1\xc1 not msgpack", ["no flume format record"]),
    ],
    ids=["future", "older", "wrong-type", "wrong-name", "garbage"],
)
@pytest.mark.parametrize("readonly", [False, True], ids=["writer", "reader"])
def test_a_wrong_format_version_is_refused_and_never_overwritten(
    db_dir: Path, record: bytes, words: list[str], readonly: bool
) -> None:
    _rewrite_format(db_dir / "log", record)
    before = tree(db_dir)
    with pytest.raises(FormatError) as info:
        flume.open(db_dir, readonly=readonly)
    for word in [str(db_dir / "log"), *words]:
        assert word in str(info.value)
    assert tree(db_dir) == before
    report = verify(db_dir)
    assert not report.ok and any(words[0] in p for p in report.problems)


# -- not a flume database ----------------------------------------------------------------------


def test_a_directory_of_other_files_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "photos"
    path.mkdir()
    (path / "cat.jpg").write_bytes(b"\xff\xd8 a cat")
    (path / "notes").mkdir()
    before = tree(path)
    for readonly in (False, True):
        with pytest.raises(FormatError, match="is not a flume database"):
            flume.open(path, readonly=readonly)
    with pytest.raises(FormatError, match="not a flume database"):
        verify(path)
    assert tree(path) == before and sorted(os.listdir(path)) == ["cat.jpg", "notes"]


def test_a_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "file"
    path.write_text("hello")
    with pytest.raises(FormatError, match="is a file"):
        flume.open(path)
    assert path.read_text() == "hello"


def test_a_log_directory_holding_random_bytes_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "db"
    (path / "log").mkdir(parents=True)
    data = path / "log" / "data.mdb"
    data.write_bytes(os.urandom(64 * 1024))
    before = tree(path)
    result = open_in_child(path)
    assert "signal" not in result, result
    assert_refused(result, CorruptionError, str(data.resolve()), "not a valid LMDB file")
    assert tree(path) == before


def test_an_lmdb_env_of_another_program_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "db"
    (path / "log").mkdir(parents=True)
    env = lmdb.open(str(path / "log"))
    with env.begin(write=True) as txn:
        txn.put(b"user:1", b"alice")
    env.close()
    before = tree(path)
    for readonly in (False, True):
        with pytest.raises(FormatError, match="no flume log|not a flume log"):
            flume.open(path, readonly=readonly)
    assert tree(path) == before


# -- the views ---------------------------------------------------------------------------------


def test_a_missing_views_directory_is_rebuilt_silently(db_dir: Path) -> None:
    shutil.rmtree(db_dir / "views")
    log_before = digest(db_dir / "log" / "data.mdb")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with flume.open(db_dir) as db:
            mount(db)
            check_answers(db)
    assert digest(db_dir / "log" / "data.mdb") == log_before
    assert verify(db_dir).ok


def _largest_sst(views: Path) -> Path:
    return max(views.glob("*.sst"), key=lambda p: p.stat().st_size)


def _manifest(views: Path) -> Path:
    return views / (views / "CURRENT").read_text().strip()


def _overwrite(path: Path, offset: int, data: bytes) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data)


VIEWS_DAMAGE = {
    "CURRENT-deleted": lambda v: (v / "CURRENT").unlink(),
    "CURRENT-deleted-and-no-wal": lambda v: [p.unlink() for p in [v / "CURRENT", *v.glob("*.log")]],
    "CURRENT-garbage": lambda v: (v / "CURRENT").write_text("MANIFEST-999999\n"),
    "MANIFEST-deleted": lambda v: _manifest(v).unlink(),
    "MANIFEST-truncated": lambda v: os.truncate(_manifest(v), 40),
    "MANIFEST-emptied": lambda v: os.truncate(_manifest(v), 0),
    "MANIFEST-corrupted": lambda v: _overwrite(_manifest(v), 20, b"\xff" * 200),
    "SST-truncated": lambda v: os.truncate(_largest_sst(v), 1000),
    "SST-footer-corrupted": lambda v: _overwrite(
        _largest_sst(v), _largest_sst(v).stat().st_size - 30, b"\xff" * 30
    ),
    "SST-deleted": lambda v: _largest_sst(v).unlink(),
}


@pytest.mark.parametrize("damage", sorted(VIEWS_DAMAGE))
def test_a_damaged_views_database_is_moved_aside_and_rebuilt(db_dir: Path, damage: str) -> None:
    views = db_dir / "views"
    VIEWS_DAMAGE[damage](views)
    damaged = tree(views)
    log_before = digest(db_dir / "log" / "data.mdb")
    # verify sees it first (unless RocksDB's reader silently tolerates it: a secondary
    # instance skips table files it cannot open, so verify finds those by comparison).
    assert not verify(db_dir).ok
    # A reader cannot repair it: a clear error naming the directory, or no views yet.
    try:
        with flume.open(db_dir, readonly=True) as reader:
            assert reader.get(5) == VALUES[5]
    except CorruptionError as e:
        assert str(views) in str(e) and "opening the database for writing" in str(e)
    # The writer moves it aside, says so, and rebuilds every view from the log.
    with pytest.warns(RuntimeWarning, match="moved to") as caught:
        db = flume.open(db_dir)
    with db:
        message = str(caught[0].message)
        assert str(views) in message and "rebuilt from the log" in message
        mount(db)
        check_answers(db)
    asides = [p for p in db_dir.iterdir() if p.name.startswith("views.damaged-")]
    assert len(asides) == 1 and str(asides[0]) in message
    # Nothing of the user's was deleted: the damaged files are all there, unchanged.
    kept = tree(asides[0])
    assert {k: kept.get(k) for k in damaged} == damaged
    assert digest(db_dir / "log" / "data.mdb") == log_before
    assert verify(db_dir, views={k: v for k, v in make_views().items() if k != "q"}).ok
    # The next open is a normal one.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with flume.open(db_dir) as db:
            mount(db)
            check_answers(db)


def test_a_corrupt_block_in_a_views_file_is_an_error_never_a_wrong_answer(db_dir: Path) -> None:
    """RocksDB checks a data block's checksum only when it reads it: the open succeeds, and a
    read of that block raises CorruptionError naming the views directory and what to do."""
    views = db_dir / "views"
    sst = _largest_sst(views)
    _overwrite(sst, sst.stat().st_size // 4, b"\xff" * 256)
    failures = []
    with flume.open(db_dir) as db:
        for name, view in make_views().items():
            try:
                db.use(name, view)
            except CorruptionError as e:  # Reduce reads its state when mounted
                failures.append(str(e))
                continue
            try:
                if name == "count":
                    assert db.count.get() == N
                elif name == "by_author":
                    assert len(list(db.by_author.read())) == N
                else:
                    assert len(list(db.q.read({"author": "@3"}))) == len(VALUES[3::7])
            except CorruptionError as e:
                failures.append(str(e))
    assert failures, "no read met the damaged block"
    for message in failures:
        assert str(views) in message and "move" in message and "rebuild" in message
    assert not verify(db_dir).ok
    # Doing what the error says rebuilds the views.
    views.rename(db_dir / "views.old")
    with flume.open(db_dir) as db:
        mount(db)
        check_answers(db)


def _stored_meta(db_dir: Path, name: str) -> dict[str, Any]:
    store = RocksStore(db_dir / "views")
    try:
        meta = store.read_meta(name)
        assert meta is not None
        return meta
    finally:
        store.close()


def _put_meta(db_dir: Path, name: str, meta: dict[str, Any]) -> None:
    store = RocksStore(db_dir / "views")
    try:
        batch = store.batch()
        batch.put_meta(name, meta)
        store.write(batch)
    finally:
        store.close()


def test_a_view_of_an_older_version_is_rebuilt(db_dir: Path) -> None:
    """A view declared with a new version (or a Query with new indexes) is wiped and rebuilt
    on open; one whose stored record says an older version is too."""
    assert _stored_meta(db_dir, "by_author")["version"] == 1
    with flume.open(db_dir) as db:
        db.use("count", Reduce(lambda acc, v: acc + 2, initial=0, version=2))
        db.use("by_author", Index(lambda v: v["author"], version=2))
        db.use("q", Query(indexes={"ts": [["ts"]]}))
        assert db.count.get() == 2 * N
        assert [(e.key, e.seq) for e in db.by_author.read(limit=3)] == [("@0", 0), ("@0", 7), ("@0", 14)]
        assert db.q.explain({"ts": {"$gte": 10}})["index"] == "ts"
        assert [v["i"] for v in db.q.read({"ts": {"$gte": N - 2}})] == [N - 2, N - 1]
    assert _stored_meta(db_dir, "by_author")["version"] == 2
    # Back to version 1, and a record that claims an older version than the code's.
    meta = _stored_meta(db_dir, "count")
    _put_meta(db_dir, "count", {**meta, "version": 0})
    with flume.open(db_dir) as db:
        mount(db)
        check_answers(db)


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda m: {**m, "since": N + 100}, id="ahead-of-the-log"),
        pytest.param(lambda m: {**m, "kind": "index"}, id="another-kind"),
        pytest.param(lambda m: {**m, "definition": {"indexes": {"x": [["x"]]}}}, id="another-definition"),
        pytest.param(lambda m: {k: v for k, v in m.items() if k != "version"}, id="no-version"),
    ],
)
def test_a_view_whose_stored_record_does_not_match_is_rebuilt(db_dir: Path, change: Any) -> None:
    for name in ("count", "by_author"):
        _put_meta(db_dir, name, change(_stored_meta(db_dir, name)))
    with flume.open(db_dir) as db:
        mount(db)
        check_answers(db)
        assert all(v["since"] == N - 1 for v in db.status()["views"].values())


@pytest.mark.parametrize(
    "definition",
    [{"indexes": "not a dict of paths"}, {"indexes": {"a": [[1, 2]]}}, {"indexes": {"a": []}}],
)
def test_a_stored_query_definition_that_cannot_be_read_is_skipped_with_a_warning(
    db_dir: Path, definition: Any
) -> None:
    """A stored Query definition this flume cannot read (a newer release's, or damaged) must
    not make the directory unopenable: that view is not mounted, with a warning naming it, and
    declaring it again rebuilds it."""
    meta = _stored_meta(db_dir, "q")
    _put_meta(db_dir, "q", {**meta, "definition": definition})
    with pytest.warns(RuntimeWarning, match="stored view 'q' was not mounted"):
        db = flume.open(db_dir)
    with db:
        assert "q" not in db.views
        mount(db)
        check_answers(db)


def test_a_view_family_without_its_record_is_wiped_and_rebuilt(db_dir: Path) -> None:
    """What a crash between a wipe's steps could leave: data with no meta record."""
    store = RocksStore(db_dir / "views")
    try:
        batch = store.batch()
        batch.wb.delete(b"by_author", store._handle("__flume_meta__"))
        batch.put("by_author", b"\xff" * 12, b"junk")
        store.write(batch)
    finally:
        store.close()
    with flume.open(db_dir) as db:
        mount(db)
        check_answers(db)
