"""Kills at exact points: SIGKILL a command at its Nth call of each durable syscall, for every N,
and check every stored definition and view afterwards (issue 11, "lost stored data").

strace's fault injection delivers the signal on entering the syscall (``-e inject=write:
signal=KILL:when=N``), so the command dies with everything before that call done and nothing
after. strace counts calls per syscall and per thread; a clean traced run of the command gives
the largest count of each syscall in any thread, and every N up to it is a kill point (the first
thread to reach its Nth call dies there, with the process).

The commands, each on a copy of one database holding two stored Query views, a Reduce view
defined by code, and some values:

- ``flume index add DIR by_zy z.y --view q``
- ``flume rebuild DIR``
- a script declaring the Reduce view with a new version (``db.use("cnt", Reduce(...,
  version=2))``)
- a script calling ``db.rebuild()``
- a script deleting values by seq and by a query (the Reduce view declared with ``unreduce``,
  so it forgets them in place; the check declares it without, so deletes it missed rebuild it)

After each kill the directory is opened for writing, as a program that declares its views would
(which must finish or redo anything the command left half done, with no manual step), and:

- every Query view stored before the command is mounted with its definition unchanged (after
  ``index add``: unchanged, or with the new index added), and still stored so (a readonly open
  sees the same definitions);
- every view answers exactly as the same view built in memory from the same values;
- ``flume.verify`` finds nothing damaged.

The default suite kills at every write to a write-ahead log and an evenly spread sample of the
other points; ``-m slow`` kills at every one.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import flume
from flume import Flume, MemoryLog
from flume.verify import verify
from flume.views import Query, Reduce

STRACE = shutil.which("strace") or "/usr/bin/strace"
pytestmark = pytest.mark.skipif(not os.path.exists(STRACE), reason="needs strace")

# Every syscall by which RocksDB and LMDB make something durable or visible on disk.
SYSCALLS = ("write", "pwrite64", "fsync", "fdatasync", "rename", "unlink", "ftruncate")
COMMAND_TIMEOUT = 60.0
READ_TIMEOUT = 60.0
# Kill points per scenario in the default suite besides every write to a write-ahead log:
# this many of the others, spread evenly.
SAMPLE = 5

DEFINITIONS: dict[str, dict[str, list[list[str]]]] = {
    "q": {"by_a": [["a"]], "by_ab": [["a"], ["b"]]},
    "q2": {"by_b": [["b"]], "by_cz": [["c"], ["z", "b"]]},
}
NEW_INDEX = ("by_zy", [["z", "y"]])
VALUES: list[Any] = [
    {"a": i % 7, "b": f"s{i % 13}", "c": [i % 3, None] if i % 5 else i * 0.5,
     "z": {"y": i % 4, "b": {"q": i}} if i % 2 else {"b": i, "y": "v"}}
    for i in range(300)
]

SCRIPT_HEAD = """
import sys
import flume
from flume.views import Reduce

def count(acc, v):
    return acc + 1

def uncount(acc, v):
    return acc - 1

db = flume.open(sys.argv[1])
"""
SCENARIOS: dict[str, tuple[list[str], int]] = {
    # name: (the command after the python interpreter, the Reduce version a program then declares)
    "index-add": (["-m", "flume", "index", "add", "{dir}", NEW_INDEX[0], "z.y", "--view", "q"], 1),
    "cli-rebuild": (["-m", "flume", "rebuild", "{dir}"], 1),
    "version-change": (
        ["-c", SCRIPT_HEAD + "db.use('cnt', Reduce(count, initial=0, version=2))\n"
         "db.cnt.ready()\ndb.close()\n", "{dir}"],
        2,
    ),
    "db-rebuild": (
        ["-c", SCRIPT_HEAD + "db.use('cnt', Reduce(count, initial=0, version=1))\n"
         "db.rebuild()\ndb.close()\n", "{dir}"],
        1,
    ),
    "delete": (
        ["-c", SCRIPT_HEAD + "db.use('cnt', Reduce(count, initial=0, version=1, unreduce=uncount))\n"
         "db.delete_many(range(0, 300, 7))\n"
         "db.delete_where([{'$filter': {'a': 3}}], view='q')\ndb.close()\n", "{dir}"],
        1,
    ),
}
# What the log may hold after each command: all of it, or (delete) what each delete left.
_FIRST_DELETE = set(range(0, 300, 7))
_SECOND_DELETE = {i for i, v in enumerate(VALUES) if v["a"] == 3}
LENGTHS: dict[str, set[int]] = {
    "delete": {300, 300 - len(_FIRST_DELETE), 300 - len(_FIRST_DELETE | _SECOND_DELETE)},
}


def count(acc: int, _: Any) -> int:
    return acc + 1


def ordered(definition: Any) -> str:
    """A definition as order-sensitive text (index order decides key prefixes)."""
    return json.dumps(definition)


def command(scenario: str, directory: Path) -> list[str]:
    args, _ = SCENARIOS[scenario]
    return [sys.executable, *[a.replace("{dir}", str(directory)) for a in args]]


def environment() -> dict[str, str]:
    # No .pyc writes: the syscalls counted are the command's own, the same on every run.
    return {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("kill-base") / "db"
    with flume.open(directory) as db:
        for name, indexes in DEFINITIONS.items():
            db.use(name, Query(indexes))
        db.use("cnt", Reduce(count, initial=0, version=1))
        db.append_many(VALUES[:200])
        for v in VALUES[200:]:
            db.append(v)
        for view in db.views.values():
            view.ready(timeout=READ_TIMEOUT)
    return directory


Point = tuple[str, int, "str | None", str]
"""A kill point: ``(syscall, N, file, what)``: die on entering the Nth call of ``syscall`` in
one thread, counting only calls on ``file`` (relative to the directory) when it is not None;
``what`` names the file the call touched in a clean run."""


def _target(directory: Path, args: str) -> str:
    first = args.split(",", 1)[0]
    target = first.split("<", 1)[1].rsplit(">", 1)[0] if "<" in first else first.strip('"')
    prefix = str(directory) + os.sep
    return target.removeprefix(prefix)


def _is_log(what: str) -> bool:
    """A write-ahead log: RocksDB's ``views/NNNNNN.log``, LMDB's ``log/data.mdb``."""
    return (what.startswith("views" + os.sep) and what.endswith(".log")) or what.endswith("data.mdb")


def kill_points(scenario: str, base: Path, work: Path) -> list[Point]:
    """Every kill point of a command, from a clean traced run of it: ``(syscall, N)`` for every
    N up to the most calls of that syscall one thread makes (strace counts per thread, so the
    first thread to reach N dies there), then ``(write, N)`` counting only the writes to each
    write-ahead log file, so that every commit of every thread is a kill point."""
    directory = work / "count"
    shutil.copytree(base, directory)
    trace = work / "trace.txt"
    subprocess.run(
        [STRACE, "-f", "-qq", "-y", "-o", str(trace), "-e", f"trace={','.join(SYSCALLS)}",
         *command(scenario, directory)],
        check=True, timeout=COMMAND_TIMEOUT, env=environment(), capture_output=True,
    )
    calls: Counter[tuple[str, str]] = Counter()
    log_writes: Counter[tuple[str, str]] = Counter()
    first: dict[tuple[str, int], str] = {}
    for line in trace.read_text().splitlines():
        tid, _, rest = line.partition(" ")
        name, _, args = rest.lstrip().partition("(")
        if name not in SYSCALLS:
            continue
        calls[(tid, name)] += 1
        what = _target(directory, args)
        first.setdefault((name, calls[(tid, name)]), what)
        if name == "write" and _is_log(what):
            log_writes[(tid, what)] += 1
    shutil.rmtree(directory)
    points: list[Point] = []
    for name in SYSCALLS:
        most = max((c for (_, nm), c in calls.items() if nm == name), default=0)
        points.extend((name, n, None, first[(name, n)]) for n in range(1, most + 1))
    for path in sorted({p for _, p in log_writes}):
        most = max(c for (_, p), c in log_writes.items() if p == path)
        points.extend(("write", n, path, path) for n in range(1, most + 1))
    return points


def sample(points: list[Point], k: int) -> list[Point]:
    """Every write to a write-ahead log, and ``k`` of the other points spread evenly."""
    logs = [p for p in points if p[2] is not None]
    rest = [p for p in points if p[2] is None]
    if len(rest) > k:
        rest = [rest[round(i * (len(rest) - 1) / max(1, k - 1))] for i in range(k)]
    return rest + logs


def killed_run(scenario: str, directory: Path, point: Point) -> bool:
    """Run the command, SIGKILLed at ``point``; return whether it died so (False: no thread
    made that many calls this time, and it ran to the end)."""
    syscall, n, path, _ = point
    only = ["-P", str(directory / path)] if path is not None else []
    result = subprocess.run(
        [STRACE, "-f", "-qq", "-o", os.devnull, *only, "-e", f"trace={syscall}",
         "-e", f"inject={syscall}:signal=KILL:when={n}", *command(scenario, directory)],
        check=False, timeout=COMMAND_TIMEOUT, env=environment(), capture_output=True,
    )
    return result.returncode != 0


def expected_definitions(scenario: str) -> dict[str, list[str]]:
    """Each stored Query view's acceptable definitions after the command (any prefix of it)."""
    allowed = {name: [ordered({"indexes": idx})] for name, idx in DEFINITIONS.items()}
    if scenario == "index-add":
        grown = {**DEFINITIONS["q"], NEW_INDEX[0]: NEW_INDEX[1]}
        allowed["q"].append(ordered({"indexes": grown}))
    return allowed


def queries_of(indexes: dict[str, list[list[str]]]) -> Iterator[tuple[Any, bool]]:
    """Queries that read every index whole (a sort by its paths), a range, and a count."""
    yield None, False
    for paths in indexes.values():
        yield [{"$sort": paths}], False
        yield [{"$sort": paths}], True
        yield [{"$filter": {paths[0][0]: {"$gte": 1}}}, {"$reduce": {"$count": True}}], False


def check(scenario: str, directory: Path) -> list[str]:
    """Open as the declaring program would, and list what is lost or wrong."""
    problems: list[str] = []
    allowed = expected_definitions(scenario)
    version = SCENARIOS[scenario][1]
    db = flume.open(directory, timeout=READ_TIMEOUT)
    try:
        db.use("cnt", Reduce(count, initial=0, version=version))
        for view in db.views.values():
            view.ready(timeout=READ_TIMEOUT)
        values = [e.value for e in db.stream()]
        if len(values) not in LENGTHS.get(scenario, {len(VALUES)}):
            problems.append(f"the log holds {len(values)} values, not {len(VALUES)}")
        if db.cnt.get(timeout=READ_TIMEOUT) != len(values):
            problems.append(f"cnt.get() is {db.cnt.get()}, not {len(values)}")
        for name, options in allowed.items():
            if name not in db.views:
                problems.append(f"the Query view {name!r} is no longer stored")
                continue
            definition = ordered(db.views[name].view.definition())
            if definition not in options:
                problems.append(f"{name!r} is stored as {definition}, not as {options[0]}")
                continue
            indexes = db.views[name].view.definition()["indexes"]
            memory = Flume(MemoryLog())
            memory.append_many(values)
            memory.use(name, Query(indexes))
            for query, reverse in queries_of(indexes):
                got = list(db.views[name].read(query, reverse=reverse, timeout=READ_TIMEOUT))
                want = list(memory.views[name].read(query, reverse=reverse, timeout=READ_TIMEOUT))
                if json.dumps(got, default=repr) != json.dumps(want, default=repr):
                    problems.append(f"{name}.read({query}, reverse={reverse}) differs from a rebuild")
            memory.close()
        status = db.status()
        for name, info in status["views"].items():
            if info["state"] != "ready":
                problems.append(f"view {name!r} is {info['state']}: {info}")
    finally:
        db.close()
    reader = flume.open(directory, readonly=True)
    try:
        for name, options in allowed.items():
            view = reader.views.get(name)
            if view is None:
                problems.append(f"after a writer reopened, {name!r} is not stored")
            elif ordered(view.view.definition()) not in options:
                problems.append(f"after a writer reopened, {name!r} is stored as {ordered(view.view.definition())}")
    finally:
        reader.close()
    report = verify(directory)
    if not report.ok:
        problems.append(f"verify: {report.problems}")
    return problems


def run_scenario(scenario: str, base: Path, work: Path, k: int | None) -> None:
    points = kill_points(scenario, base, work)
    assert points, "the command made none of the syscalls"
    chosen = points if k is None else sample(points, k)
    failures: list[str] = []
    for i, point in enumerate(chosen):
        syscall, n, path, what = point
        directory = work / f"point-{i}"
        shutil.copytree(base, directory)
        died = killed_run(scenario, directory, point)
        problems = check(scenario, directory)
        if problems:
            counted = f"of {path} " if path is not None else ""
            failures.append(
                f"{syscall} #{n} {counted}({what}; {'killed' if died else 'not reached'}): "
                + "; ".join(problems)
            )
        shutil.rmtree(directory)
    assert not failures, (
        f"{scenario}: {len(failures)} of {len(chosen)} kill points lost or damaged stored views:\n"
        + "\n".join(failures)
    )


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_kill_points_sampled(scenario: str, base: Path, tmp_path: Path) -> None:
    run_scenario(scenario, base, tmp_path, SAMPLE)


@pytest.mark.slow
@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_kill_points_every(scenario: str, base: Path, tmp_path: Path) -> None:
    run_scenario(scenario, base, tmp_path, None)


def test_uninterrupted_runs_pass_the_check(base: Path, tmp_path: Path) -> None:
    """The check itself: each command run to its end leaves a directory that passes it."""
    for scenario in SCENARIOS:
        directory = tmp_path / scenario
        shutil.copytree(base, directory)
        subprocess.run(command(scenario, directory), check=True, timeout=COMMAND_TIMEOUT,
                       env=environment(), capture_output=True)
        assert check(scenario, directory) == [], scenario
