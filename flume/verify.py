"""Check a flume directory: is the log intact, and does every stored view equal a rebuild?

    from flume.verify import verify

    report = verify("data")
    print("\\n".join(report.lines()))
    if not report.ok:
        ...  # report.problems lists what is wrong, one sentence each

What is checked:

1. **The log file's structure** (:meth:`LmdbLog.check_file <flume.logs.LmdbLog.check_file>`),
   first, before anything maps the file: reading a truncated LMDB file kills the reading
   process with SIGBUS.
2. **Every log entry** (:meth:`LmdbLog.check_entries <flume.logs.LmdbLog.check_entries>`), read
   in a child process (LMDB aborts or faults, rather than raising, on some kinds of damage, and
   the child contains that): keys are the dense seqs ``0..since``, and every value decodes.
3. **Every stored view that can be rebuilt here** — the Query views, whose definitions are
   stored, and any view passed in ``views=`` — is rebuilt in memory from the log up to the seq
   the stored view has reached, and its stored entries are compared with the rebuilt ones, byte
   for byte. Views defined by code (Reduce, Index) are listed as not checked unless given.

Everything is opened read-only, so a writer may run meanwhile: the stored views are read from
one consistent snapshot and compared with a rebuild up to that snapshot's ``since``.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from flume import fs
from flume.db import Flume
from flume.errors import DirectoryNotFoundError, FlumeError, FormatError, PermissionDeniedError
from flume.logs.base import BaseLog
from flume.logs.lmdb_log import LmdbLog
from flume.views.base import View
from flume.views.store import Family, MemoryStore, RocksStore

__all__ = ["LogReport", "VerifyReport", "ViewReport", "check_log", "check_views", "verify"]

# How many problems of one kind a report lists before it stops looking.
MAX_PROBLEMS = 10

@dataclass
class LogReport:
    """What :func:`check_log` found: ``entries`` read and decoded, ``since`` (the last seq,
    -1 when empty or unknown), the file's size, and ``problems`` (empty when intact)."""

    path: str
    entries: int = 0
    since: int = -1
    file_bytes: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class ViewReport:
    """One stored view: ``status`` is ``ok``, ``damaged`` or ``skipped`` (why in ``detail``);
    ``since`` is the seq the stored view had reached, ``entries`` how many stored entries were
    compared."""

    name: str
    kind: str
    status: str
    since: int = -1
    entries: int = 0
    detail: str = ""


@dataclass
class VerifyReport:
    """The result of :func:`verify`: ``ok`` when nothing is damaged; ``problems`` lists every
    damage found (the log's, then the views'), one sentence each."""

    path: str
    log: LogReport
    views: list[ViewReport] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form: ``ok``, ``path``, ``log``, ``views``, ``problems``."""
        log = asdict(self.log)
        del log["problems"]
        return {
            "ok": self.ok,
            "path": self.path,
            "log": log,
            "views": [asdict(v) for v in self.views],
            "problems": list(self.problems),
        }

    def lines(self) -> list[str]:
        """A readable report, one line per finding, ending with the verdict."""
        log = self.log
        out = []
        if log.ok:
            span = f"seqs 0..{log.since}" if log.since >= 0 else "empty"
            out.append(
                f"log: ok, {log.entries:,} entries ({span}), "
                f"{fs.human_size(log.file_bytes)} on disk"
            )
        else:
            out.extend(f"log: DAMAGED: {p}" for p in log.problems)
        for v in self.views:
            if v.status == "ok":
                out.append(
                    f"view {v.name} ({v.kind}): ok, {v.entries:,} stored entries equal a "
                    f"rebuild up to seq {v.since}"
                )
            elif v.status == "damaged":
                out.append(f"view {v.name} ({v.kind}): DAMAGED: {v.detail}")
            else:
                out.append(f"view {v.name} ({v.kind}): not checked: {v.detail}")
        if self.ok:
            out.append("verify: ok")
        else:
            n = len(self.problems)
            out.append(f"verify: DAMAGED ({n} problem{'s' if n != 1 else ''})")
        return out


def verify(
    path: str | os.PathLike[str], *, views: Mapping[str, View] | None = None
) -> VerifyReport:
    """Check the flume database in directory ``path`` (read-only; a writer may run meanwhile).

    Args:
        views: views defined by code to check as well, by the name they are stored under
            (fresh, unmounted instances, declared as the program that stores them declares
            them); stored Query views are always checked.

    Returns a :class:`VerifyReport`; it never raises for damage it finds, only lists it.

    Raises:
        DirectoryNotFoundError: ``path`` does not exist.
        FormatError: ``path`` is not a flume database directory.
        PermissionDeniedError: a file or directory of it may not be read (not damage).
    """
    directory = os.fspath(path)
    if not os.path.isdir(directory):
        if not os.path.exists(directory):
            raise DirectoryNotFoundError(f"{directory} does not exist")
        raise FormatError(f"{directory} is a file, not a flume database directory")
    if not os.path.isdir(os.path.join(directory, "log")):
        raise FormatError(f"{directory} is not a flume database (it has no log/ directory)")
    log = check_log(os.path.join(directory, "log"))
    report = VerifyReport(path=directory, log=log, problems=[f"log: {p}" for p in log.problems])
    if not log.ok:
        report.views.append(
            ViewReport("*", "all", "skipped", detail="the log is damaged; views were not compared")
        )
        return report
    report.views = check_views(directory, log.since, views=views)
    report.problems.extend(
        f"view {v.name}: {v.detail}" for v in report.views if v.status == "damaged"
    )
    return report


# -- the log -----------------------------------------------------------------------------------


def check_log(log_dir: str | os.PathLike[str]) -> LogReport:
    """Check the LMDB log in ``log_dir``: its file structure, then every entry (in a child
    process, which LMDB may kill on damaged pages without harming this one)."""
    log_dir = os.fspath(log_dir)
    found = LmdbLog.check_file(log_dir)
    report = LogReport(path=log_dir, file_bytes=found.size, problems=list(found.problems))
    if report.problems:
        return report
    result = _scan_in_child(log_dir)
    report.since = int(result.get("since", -1))
    report.entries = int(result.get("entries", 0))
    report.problems.extend(str(p) for p in result.get("problems", []))
    return report


def _scan_in_child(log_dir: str) -> dict[str, Any]:
    env = dict(os.environ)
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, flume.verify as v; v._child_main(sys.argv[1])",
            log_dir,
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if proc.returncode < 0:
        try:
            name = signal.Signals(-proc.returncode).name
        except ValueError:
            name = f"signal {-proc.returncode}"
        killed = f"reading the log killed the reading process ({name}): the file is damaged"
        return {"problems": [killed]}
    try:
        result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"problems": [f"reading the log failed (exit code {proc.returncode}): {tail}"]}
    return result


def _child_main(log_dir: str) -> None:
    """Entry point of the child process: check the log's entries, print the result as one
    JSON line."""
    print(json.dumps(LmdbLog.check_entries(log_dir, MAX_PROBLEMS)._asdict()), flush=True)


# -- the views ---------------------------------------------------------------------------------


class _Snapshot(BaseLog):
    """A read-only window on a log that ends at ``upto``: a view built on it stops there."""

    def __init__(self, log: LmdbLog, upto: int) -> None:
        super().__init__(readonly=True)
        self._log = log
        self.since.set(upto)

    def read_raw(self, start: int, end: int, reverse: bool, n: int) -> list[tuple[int, bytes]]:
        return self._log.read_raw(start, min(end, self.since.value), reverse, n)

    def _get_raw(self, seq: int) -> bytes | None:
        raw = self.read_raw(seq, seq, False, 1)
        return raw[0][1] if raw else None

    def _close_storage(self) -> None:
        self._log.close()


def check_views(
    directory: str | os.PathLike[str],
    log_since: int,
    *,
    views: Mapping[str, View] | None = None,
) -> list[ViewReport]:
    """Compare each stored view of the database in ``directory`` with a rebuild in memory.

    ``log_since`` is the log's last seq (a stored view may not be ahead of it). Query views
    are rebuilt from their stored definitions, views in ``views`` from the instances given.
    """
    from flume.views.registry import view_from_meta

    directory = os.fspath(directory)
    views_dir = os.path.join(directory, "views")
    problem = RocksStore.check_files(views_dir)
    if problem is not None:
        return [ViewReport("*", "all", "damaged", detail=problem)]
    if not RocksStore.exists(views_dir):
        return []
    try:
        store = RocksStore(views_dir, readonly=True, secondaries=os.path.join(directory, "readers"))
    except PermissionDeniedError:
        raise
    except FlumeError as e:
        return [ViewReport(
            "*", "all", "damaged", detail=f"the views database cannot be opened: {e}"
        )]
    reports: list[ViewReport] = []
    try:
        store.catch_up()
        metas = store.all_meta()
        given = dict(views or {})
        for name, meta in sorted(metas.items()):
            kind = str(meta.get("kind", "?"))
            since = int(meta.get("since", -1))
            view = given.pop(name, None)
            was_given = view is not None
            if view is None:
                view = view_from_meta(meta)
            if view is not None and view.fingerprint() != meta.get("fingerprint"):
                reports.append(ViewReport(
                    name, kind, "skipped", since,
                    detail="stored with another kind, version or definition than the view "
                    "given (it is rebuilt when that view is mounted)" if was_given else
                    "its data was stored by an older flume that did not record which "
                    "definition built it: the writer rebuilds it when it opens",
                ))
                continue
            if view is None:
                try:
                    n = sum(1 for _ in store.family(name).scan(b"", None))
                except FlumeError as e:
                    reports.append(ViewReport(
                        name, kind, "damaged", since,
                        detail=f"its stored entries cannot be read: {e}",
                    ))
                    continue
                reports.append(ViewReport(
                    name, kind, "skipped", since, n,
                    detail=f"its {n:,} stored entries read back; it is defined by code, so it "
                    "was not compared with a rebuild (pass it to flume.verify.verify(views=...))",
                ))
                continue
            if since > log_since:
                # A writer may have appended since the log was checked: the log only grows.
                log_since = max(log_since, _current_since(directory))
            if since > log_since:
                reports.append(ViewReport(
                    name, kind, "damaged", since,
                    detail=f"it has reached seq {since}, beyond the log's last seq {log_since}",
                ))
                continue
            reports.append(_check_one(directory, name, kind, since, view, store))
        for name in sorted(given):
            reports.append(ViewReport(
                name, given[name].kind, "skipped", detail="not stored in this database"
            ))
    finally:
        store.close()
    return reports


def _current_since(directory: str) -> int:
    log = LmdbLog(os.path.join(directory, "log"), readonly=True)
    try:
        return log.since.value
    finally:
        log.close()


def _check_one(
    directory: str, name: str, kind: str, since: int, view: View, store: RocksStore
) -> ViewReport:
    memory = MemoryStore()
    try:
        log = LmdbLog(os.path.join(directory, "log"), readonly=True)
        db = Flume(_Snapshot(log, since), store=memory)
        try:
            db.use(name, view)
            db.views[name].ready(timeout=None)
        finally:
            db.close()
    except FlumeError as e:
        return ViewReport(name, kind, "damaged", since, detail=f"rebuilding it failed: {e}")
    try:
        n, difference = _compare(store.family(name), memory.family(name))
    except FlumeError as e:
        return ViewReport(
            name, kind, "damaged", since, detail=f"its stored entries cannot be read: {e}"
        )
    if difference is not None:
        return ViewReport(name, kind, "damaged", since, n, detail=difference)
    return ViewReport(name, kind, "ok", since, n)


def _compare(stored: Family, rebuilt: Family) -> tuple[int, str | None]:
    """Walk both families in key order; return how many entries matched and the first
    difference, described, or None."""
    pairs: Iterator[tuple[Any, Any]] = itertools.zip_longest(
        stored.scan(b"", None), rebuilt.scan(b"", None)
    )
    n = 0
    for mine, theirs in pairs:
        if mine == theirs:
            n += 1
            continue
        where = f"after {n:,} equal entries"
        if theirs is None:
            return n, f"{where}, it stores an entry a rebuild does not have (key {_hex(mine[0])})"
        if mine is None:
            return n, f"{where}, it lacks an entry a rebuild has (key {_hex(theirs[0])})"
        if mine[0] == theirs[0]:
            return n, (
                f"{where}, the entry at key {_hex(mine[0])} holds another value than a rebuild's"
            )
        return n, (
            f"{where}, it stores key {_hex(mine[0])} where a rebuild has key {_hex(theirs[0])}"
        )
    return n, None


def _hex(key: bytes) -> str:
    text = bytes(key).hex()
    return text if len(text) <= 48 else text[:45] + "..."
