"""The machine fails: a full disk, read-only media, missing permissions.

Black-box: a real small filesystem (tmpfs) filled while appending and while indexing, a real
read-only remount, real files with their permission bits removed. Every failure must be a
``FlumeError`` that names the problem, nothing is changed by a failed call, nothing stays stuck
(the writer lock is always released, views resume once space is back), and a permission problem
never triggers a recovery action (moving views aside, rebuilding, "the log was lost").

Mounting needs root. Permission bits do not apply to root, so the permission tests run their
flume code in a child process without the capabilities that bypass them (``setpriv``); a
non-root user runs them directly. Whatever the machine lacks is skipped with its reason.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import flume
from flume.errors import DiskFullError, FlumeError, PermissionDeniedError, ReadOnlyError
from flume.verify import verify
from flume.views import Index, Query, Reduce

CHILD_TIMEOUT = 120.0
ROOT = os.geteuid() == 0


def value(i: int) -> dict[str, Any]:
    return {"i": i, "author": f"@{i % 7}", "ts": i, "pad": "x" * 200}


def _run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, check=False)


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A fresh 6 MB tmpfs, always unmounted afterwards."""
    with _tmpfs(tmp_path / "mnt", "6m") as mnt:
        yield mnt


@contextlib.contextmanager
def _tmpfs(where: Path, size: str) -> Iterator[Path]:
    if not ROOT:
        pytest.skip("mounting a small filesystem needs root")
    where.mkdir()
    done = _run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)])
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield where
    finally:
        _run(["mount", "-o", "remount,rw", str(where)])
        if _run(["umount", str(where)]).returncode != 0:
            _run(["umount", "-l", str(where)])


def _fill(path: Path, leave: int) -> None:
    """Fill the filesystem of ``path`` with a ballast file until ``leave`` bytes are free."""
    with open(path, "wb") as f:
        chunk = b"\0" * 65536
        while True:
            st = os.statvfs(path)
            free = st.f_bavail * st.f_frsize
            if free <= leave:
                break
            try:
                f.write(chunk[: min(len(chunk), free - leave)])
                f.flush()
            except OSError as e:
                assert e.errno == errno.ENOSPC
                break


def _wait_for(predicate: Any, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


# -- a full disk -------------------------------------------------------------------------------


def test_append_on_a_full_disk_is_a_disk_full_error_that_changes_nothing(small_fs: Path) -> None:
    directory = small_fs / "db"
    db = flume.open(directory)
    db.append_many([value(i) for i in range(100)])
    _fill(small_fs / "ballast", leave=64 << 10)
    seq = db.since.value
    error = None
    for start in range(100, 100_000, 100):
        try:
            seq = db.append_many([value(i) for i in range(start, start + 100)])
        except FlumeError as e:
            error = e
            break
    assert isinstance(error, DiskFullError), repr(error)
    assert isinstance(error, OSError) and error.errno == errno.ENOSPC
    assert "disk" in str(error) and "full" in str(error)
    assert db.since.value == seq  # the failed batch wrote nothing
    # Space is back: appends go on, the log holds exactly what was acknowledged.
    os.remove(small_fs / "ballast")
    last = db.append({"after": True})
    assert last == seq + 1
    db.close()
    with flume.open(directory, readonly=True) as reader:
        assert reader.since.value == last
        assert reader.get(last) == {"after": True}


def test_views_stopped_by_a_full_disk_wait_and_resume_by_themselves(small_fs: Path) -> None:
    directory = small_fs / "db"

    def declare(db: flume.Flume) -> None:
        db.use("count", Reduce(lambda acc, v: acc + 1, initial=0))
        db.use("by_author", Index(lambda v: (v["author"], v["ts"])))

    with flume.open(directory) as db:
        declare(db)  # stored while there is space
    n = 20_000
    with flume.open(directory) as db:
        db.append_many([{"i": i, "author": f"@{i % 7}", "ts": i} for i in range(n)])
    # Room to open, not to index 20,000 entries.
    _fill(small_fs / "ballast", leave=160 << 10)
    db = flume.open(directory)
    declare(db)
    # The index cannot fit: it waits for space (it does not fail for good).
    _wait_for(lambda: db.status()["views"]["by_author"]["state"] != "indexing")
    status = db.status()["views"]["by_author"]
    assert status["state"] == "waiting: disk full", status
    assert "full" in status["error"] and "version=" not in status["error"]
    with pytest.raises(DiskFullError) as e:
        db.by_author.read(timeout=5)
    assert "resumes by itself" in str(e.value)
    # Space is back: the views resume by themselves, from where they were, and are exact.
    os.remove(small_fs / "ballast")
    assert db.count.get(timeout=60) == n
    entries = list(db.by_author.read(prefix="@3", timeout=60))
    assert [entry.value["i"] for entry in entries] == list(range(3, n, 7))
    assert db.status()["views"]["by_author"]["state"] == "ready"
    db.close()
    assert verify(directory, views={
        "count": Reduce(lambda acc, v: acc + 1, initial=0),
        "by_author": Index(lambda v: (v["author"], v["ts"])),
    }).ok


def test_close_on_a_full_disk_releases_the_writer_lock(small_fs: Path) -> None:
    directory = small_fs / "db"
    db = flume.open(directory)
    db.use("by_author", Index(lambda v: (v["author"], v["ts"])))
    _fill(small_fs / "ballast", leave=256 << 10)
    try:
        for start in range(0, 100_000, 200):
            db.append_many([value(i) for i in range(start, start + 200)])
    except DiskFullError:
        pass
    time.sleep(0.2)
    try:
        db.close()
    except FlumeError as e:  # allowed, if it names the disk
        assert isinstance(e, DiskFullError), repr(e)
    assert db.closed
    # The lock is free at once, in this process and in another, even before space is freed
    # (opening may still need space: then that is what the open says).
    code = textwrap.dedent(
        """
        import flume, sys
        try:
            flume.open(sys.argv[1]).close()
            print("ok")
        except flume.FlumeError as e:
            print(type(e).__name__)
        """
    )
    for _ in range(2):
        done = _run([sys.executable, "-c", code, str(directory)])
        assert done.stdout.strip() in ("ok", "DiskFullError"), done.stdout + done.stderr
        try:
            flume.open(directory).close()
        except DiskFullError:
            pass
    os.remove(small_fs / "ballast")
    with flume.open(directory) as again:
        again.use("by_author", Index(lambda v: (v["author"], v["ts"])))
        total = again.since.value + 1
        assert len(list(again.by_author.read(timeout=60))) == total


def test_cli_append_on_a_full_disk_says_so_in_one_line(small_fs: Path, tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps(value(i)) + "\n" for i in range(30_000)))
    done = _run([sys.executable, "-m", "flume", "append", str(small_fs / "db"), str(source)])
    assert done.returncode != 0
    assert "Traceback" not in done.stderr, done.stderr
    assert "full" in done.stderr, done.stderr
    # The lock was released: the database opens, and holds a whole prefix of the input.
    with flume.open(small_fs / "db", readonly=True) as db:
        n = db.since.value + 1
        assert 0 < n < 30_000
        assert db.get(n - 1) == value(n - 1)


# -- read-only media ---------------------------------------------------------------------------


@pytest.fixture(params=["remount", "bind"])
def readonly_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Path, int]]:
    """A database with a Query view on a filesystem then remounted read-only, or seen
    through a read-only bind mount (a backup mount of a live filesystem)."""
    with _tmpfs(tmp_path / "mnt", "16m") as mnt:
        directory = mnt / "db"
        with flume.open(directory) as db:
            db.use("q", Query(indexes={"aut": [["author"], ["ts"]]}))
            last = db.append_many([value(i) for i in range(500)])
            db.q.read([], limit=1)
        if request.param == "remount":
            done = _run(["mount", "-o", "remount,ro", str(mnt)])
            if done.returncode != 0:
                pytest.skip(f"cannot remount read-only here: {done.stderr.strip()}")
            yield directory, last
            return
        view = tmp_path / "ro"
        view.mkdir()
        done = _run(["mount", "--bind", "-o", "ro", str(mnt), str(view)])
        if done.returncode != 0:
            pytest.skip(f"cannot bind-mount read-only here: {done.stderr.strip()}")
        try:
            if not os.statvfs(view).f_flag & os.ST_RDONLY:
                _run(["mount", "-o", "remount,bind,ro", str(view)])
            yield view / "db", last
        finally:
            if _run(["umount", str(view)]).returncode != 0:
                _run(["umount", "-l", str(view)])


def test_a_database_on_read_only_media_opens_readonly(
    readonly_db: tuple[Path, int], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory, last = readonly_db
    before = sorted(os.listdir(directory))
    private_tmp = tmp_path / "tmp"
    private_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(private_tmp))
    with flume.open(directory, readonly=True) as db:
        assert db.since.value == last
        assert db.get(3) == value(3)
        rows = list(db.q.read([{"$filter": {"author": "@2"}}], timeout=10))
        assert [r["i"] for r in rows] == list(range(2, 500, 7))
        assert db.status()["views"]["q"]["state"] == "ready"
    assert sorted(os.listdir(directory)) == before
    assert os.listdir(private_tmp) == []  # its private directory is gone


def test_a_database_on_read_only_media_verifies_ok(readonly_db: tuple[Path, int]) -> None:
    directory, _ = readonly_db
    report = verify(directory)
    assert report.ok, report.lines()
    assert [v.status for v in report.views] == ["ok"]
    done = _run([sys.executable, "-m", "flume", "verify", str(directory)])
    assert done.returncode == 0, done.stdout + done.stderr
    assert "verify: ok" in done.stdout


def test_the_writer_open_on_read_only_media_says_open_it_readonly(
    readonly_db: tuple[Path, int],
) -> None:
    directory, _ = readonly_db
    with pytest.raises(ReadOnlyError) as e:
        flume.open(directory)
    assert "read-only" in str(e.value) and "readonly=True" in str(e.value)
    with pytest.raises(ReadOnlyError):
        flume.open(directory / "new")


# -- permissions -------------------------------------------------------------------------------

_CHILD = textwrap.dedent(
    """
    import json, os, sys, warnings
    warnings.simplefilter("error")
    import flume
    out = {}
    for mode in ("writer", "reader"):
        try:
            flume.open(sys.argv[1], readonly=mode == "reader").close()
            out[mode] = ["ok", ""]
        except BaseException as e:
            out[mode] = [type(e).__name__, str(e)]
    try:
        from flume.verify import verify
        out["verify"] = ["ok" if verify(sys.argv[1]).ok else "DAMAGED", ""]
    except BaseException as e:
        out["verify"] = [type(e).__name__, str(e)]
    print(json.dumps(out))
    """
)


def _unprivileged(*args: str) -> dict[str, list[str]]:
    """Run ``_CHILD`` where permission bits apply: as this user, or as root without the
    capabilities that bypass them."""
    cmd = [sys.executable, "-c", _CHILD, *args]
    if ROOT:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv: cannot drop the capabilities that "
                        "bypass permission bits")
        cmd = [setpriv, "--bounding-set", "-dac_override,-dac_read_search", *cmd]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=CHILD_TIMEOUT, check=False)
    assert done.returncode == 0, done.stderr
    result: dict[str, list[str]] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@pytest.fixture
def db_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "db"
    with flume.open(directory) as db:
        db.use("q", Query(indexes={"aut": [["author"], ["ts"]]}))
        db.append_many([value(i) for i in range(200)])
        db.q.read([], limit=1)
    return directory


# target, whether a reader still opens (readers never touch writer.lock)
PERMISSION_CASES = [
    ("views", False),
    ("views/CURRENT", False),
    ("log", False),
    ("log/data.mdb", False),
    ("writer.lock", True),
]


@pytest.mark.parametrize(("target", "reader_opens"), PERMISSION_CASES)
def test_a_permission_problem_is_reported_as_such_and_changes_nothing(
    db_dir: Path, target: str, reader_opens: bool
) -> None:
    path = db_dir / target
    before = sorted(os.listdir(db_dir))
    mode = path.stat().st_mode
    path.chmod(0)
    try:
        out = _unprivileged(str(db_dir))
    finally:
        path.chmod(mode)
    kind, message = out["writer"]
    assert kind == "PermissionDeniedError", out
    assert "ermission" in message and str(db_dir) in message
    for word in ("lost", "damaged", "moved", "rebuil"):
        assert word not in message, message
    if reader_opens:
        assert out["reader"] == ["ok", ""]
    else:
        assert out["reader"][0] == "PermissionDeniedError", out
    if target != "writer.lock":
        assert out["verify"][0] == "PermissionDeniedError", out
    # No recovery action: nothing moved aside, nothing rebuilt; the database is as it was.
    assert sorted(n for n in os.listdir(db_dir) if n != "readers") == sorted(
        n for n in before if n != "readers"
    )
    with flume.open(db_dir, readonly=True) as db:
        assert db.since.value == 199
        assert len(list(db.q.read([{"$filter": {"author": "@1"}}]))) == len(range(1, 200, 7))


def test_permission_denied_error_is_a_permission_error() -> None:
    e = PermissionDeniedError("x: permission denied", "x")
    assert isinstance(e, FlumeError) and isinstance(e, PermissionError)
    assert e.errno == errno.EACCES and e.filename == "x" and str(e) == "x: permission denied"


def test_a_reader_that_may_not_create_readers_uses_a_private_directory(
    db_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    private_tmp = tmp_path / "tmp"
    private_tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(private_tmp))  # the child's
    db_dir.chmod(0o555)
    try:
        out = _unprivileged(str(db_dir))
    finally:
        db_dir.chmod(0o755)
    assert out == {"writer": ["ok", ""], "reader": ["ok", ""], "verify": ["ok", ""]}, out
    assert "readers" not in os.listdir(db_dir)
    assert os.listdir(private_tmp) == []  # removed on close
