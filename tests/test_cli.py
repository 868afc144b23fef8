"""The `flume` command, driven for real: every test runs `python -m flume ...` in a subprocess.

One small demo directory (`flume demo DIR --n 2000`) is built once per module and only read
afterwards; tests that write make their own directories.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest

import flume
from flume import sample
from flume.cli import cli, main

DEMO_N = 2000
RUN_TIMEOUT = 60


def run(*args: Any, input: str | None = None, env: dict[str, str] | None = None,
        timeout: float = RUN_TIMEOUT) -> subprocess.CompletedProcess[str]:
    """Run `python -m flume ARGS...`; return the finished process (never raises on exit code)."""
    env = {**(os.environ if env is None else env), "PYTHONFAULTHANDLER": "1"}  # crashes explain
    return subprocess.run(
        [sys.executable, "-m", "flume", *map(str, args)],
        input=input, capture_output=True, text=True, timeout=timeout, env=env, check=False,
    )


def ok(*args: Any, input: str | None = None) -> str:
    """Run and assert success; return stdout."""
    proc = run(*args, input=input)
    assert proc.returncode == 0, f"flume {args} failed ({proc.returncode}): {proc.stderr}"
    assert "Traceback" not in proc.stderr
    return proc.stdout


def error(*args: Any, input: str | None = None, code: int = 1) -> str:
    """Run and assert it fails with one `flume: error:` line on stderr; return that line."""
    proc = run(*args, input=input)
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("flume: error: "), lines[0]
    return lines[0]


def inproc(capsys: pytest.CaptureFixture[str], *args: Any) -> tuple[int, str, str]:
    """Run the command in this process (for cheap checks of messages; the subprocess tests
    cover the real command): ``(exit code, stdout, stderr)``."""
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def inproc_error(capsys: pytest.CaptureFixture[str], *args: Any, code: int = 1) -> str:
    """Run in this process, assert one `flume: error:` line and ``code``; return the line."""
    got, _, err = inproc(capsys, *args)
    assert got == code, (got, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("flume: error: "), err
    return lines[0]


def jsonl(text: str) -> list[Any]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def write_jsonl(path: Path, values: list[Any]) -> Path:
    path.write_text("".join(json.dumps(v) + "\n" for v in values), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A directory made by `flume demo DIR --n 2000`, and the demo's output."""
    directory = tmp_path_factory.mktemp("demo") / "feed"
    out = ok("demo", directory, "--n", DEMO_N)
    return directory, out


@pytest.fixture(scope="module")
def messages() -> list[dict[str, Any]]:
    return list(sample.messages(DEMO_N))


# -- demo ----------------------------------------------------------------------------------------


def test_demo_prints_every_section(demo: tuple[Path, str], messages: list[dict[str, Any]]) -> None:
    directory, out = demo
    votes = sum(1 for m in messages if m["value"]["content"]["type"] == "vote")
    for section in (
        f"a social feed of {DEMO_N:,} messages by 1,000 authors",
        f"1. Append {DEMO_N:,} messages",
        "2. Declare three views",
        "all three caught up with the log",
        "3. Queries",
        " a. The latest 5 posts by",
        " b. Votes per author",
        " c. How many votes?",
        " d. Messages by content type",
        " e. Index lookups",
        "4. Query this directory from the command line",
        f"flume status {directory}",
        f"flume verify {directory}",
        "demo done in",
    ):
        assert section in out, section
    assert out.count("plan:") == 5 and out.count("time:") == 5
    assert "index author_ts" in out and "index type_ts" in out
    assert "covered (answered from the index keys alone)" in out
    assert f"{votes:,} votes" in out


def test_demo_without_dir_uses_a_fresh_temporary_directory(tmp_path: Path) -> None:
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    proc = run("demo", "--n", 200, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "a fresh temporary directory" in proc.stdout
    made = [p for p in tmp_path.iterdir() if p.name.startswith("flume-demo-")]
    assert len(made) == 1 and (made[0] / "log").is_dir()
    assert str(made[0]) in proc.stdout


def test_demo_again_reuses_the_log(demo: tuple[Path, str]) -> None:
    directory, _ = demo
    out = ok("demo", directory, "--n", DEMO_N)
    assert f"already holds the demo's {DEMO_N:,} messages" in out
    assert jsonl(ok("status", directory, "--json"))[0]["since"] == DEMO_N - 1


def test_demo_refuses_a_directory_of_other_data(tmp_path: Path) -> None:
    ok("append", tmp_path / "db", input='{"not": "a message"}\n')
    assert "not the demo's" in error("demo", tmp_path / "db", "--n", 100)


# -- append, get, stream ---------------------------------------------------------------------------


def test_append_from_a_file_then_get_and_stream(tmp_path: Path) -> None:
    values = [{"n": i, "text": "héllo ✨", "tags": ["a", None, True, 1.5]} for i in range(2500)]
    source = write_jsonl(tmp_path / "in.jsonl", values)
    with source.open("a") as f:
        f.write("\n   \n")  # blank lines are skipped
    directory = tmp_path / "db"
    assert ok("append", directory, source).strip() == "2499"
    assert json.loads(ok("get", directory, 7)) == values[7]
    entries = jsonl(ok("stream", directory))
    assert entries == [{"seq": i, "value": v} for i, v in enumerate(values)]
    assert jsonl(ok("stream", directory, "--values-only", "--gt", 10, "--lte", 12)) == values[11:13]
    assert [e["seq"] for e in jsonl(ok("stream", directory, "--reverse", "--limit", 3))] == [
        2499, 2498, 2497]
    assert ok("stream", directory, "--limit", 0) == ""
    # A second file continues the seqs.
    assert ok("append", directory, write_jsonl(tmp_path / "more.jsonl", [1, "two"])).strip() == "2501"


def test_append_from_stdin(tmp_path: Path) -> None:
    assert ok("append", tmp_path / "db", "-", input='{"a": 1}\n[1, 2]\n"s"\nnull\n').strip() == "3"
    assert ok("append", tmp_path / "db", input="4.5\n").strip() == "4"  # FILE defaults to -
    assert jsonl(ok("stream", tmp_path / "db", "--values-only")) == [{"a": 1}, [1, 2], "s", None, 4.5]


def test_bad_json_line_is_named_and_nothing_is_written(tmp_path: Path) -> None:
    directory = tmp_path / "db"
    ok("append", directory, input='{"first": true}\n')
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"a": 1}\n{"a": 2}\n\n{"a": 3\n{"a": 4}\n', encoding="utf-8")
    line = error("append", directory, bad)
    assert "line 4" in line and "not valid JSON" in line and "nothing was appended" in line
    assert jsonl(ok("stream", directory, "--values-only")) == [{"first": True}]
    # The same from stdin, and into a new directory: not even the directory is created.
    assert "stdin line 2" in error("append", tmp_path / "new", input='1\n{"x": \n')
    assert not (tmp_path / "new").exists()


def test_unstorable_value_is_named_by_line(tmp_path: Path) -> None:
    line = error("append", tmp_path / "db", input="1\n2\n123456789012345678901234567890\n")
    assert "stdin line 3" in line and "cannot store" in line
    assert not (tmp_path / "db").exists()


def test_get_a_missing_seq(demo: tuple[Path, str]) -> None:
    directory, _ = demo
    line = error("get", directory, DEMO_N + 5)
    assert f"seq {DEMO_N + 5} is not in the log" in line and f"0..{DEMO_N - 1}" in line


def test_stream_rejects_an_inverted_range(demo: tuple[Path, str]) -> None:
    directory, _ = demo
    assert "inverted range" in error("stream", directory, "--gt", 9, "--lt", 3)


def test_stream_into_a_closed_pipe_is_quiet(demo: tuple[Path, str]) -> None:
    directory, _ = demo
    proc = subprocess.Popen([sys.executable, "-m", "flume", "stream", directory],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    assert json.loads(proc.stdout.readline())["seq"] == 0
    proc.stdout.close()
    proc.wait(timeout=RUN_TIMEOUT)
    assert proc.stderr.read() == b""
    proc.stderr.close()


# -- query -----------------------------------------------------------------------------------------


def test_query_answers_match_the_data(demo: tuple[Path, str], messages: list[dict[str, Any]]) -> None:
    directory, _ = demo
    author = sample.authors(1000)[0]
    posts = [m for m in messages
             if m["value"]["author"] == author and m["value"]["content"]["type"] == "post"]
    latest = json.dumps([{"$filter": {"value": {"author": author, "content": {"type": "post"}}}}])
    assert jsonl(ok("query", directory, latest, "--reverse", "--limit", 2)) == posts[::-1][:2]

    votes = sum(1 for m in messages if m["value"]["content"]["type"] == "vote")
    count = json.dumps([{"$filter": {"value": {"content": {"type": "vote"}}}},
                        {"$reduce": {"$count": True}}])
    assert jsonl(ok("query", directory, count)) == [votes]

    with_seqs = jsonl(ok("query", directory, '{"value": {"sequence": 1}}', "--seqs", "--limit", 3))
    assert [e["value"] for e in with_seqs] == [messages[e["seq"]] for e in with_seqs]
    assert all(e["value"]["value"]["sequence"] == 1 for e in with_seqs)


def test_query_explain(demo: tuple[Path, str]) -> None:
    directory, _ = demo
    count = '[{"$filter": {"value": {"content": {"type": "vote"}}}}, {"$reduce": {"$count": true}}]'
    plan = json.loads(ok("query", directory, count, "--explain"))
    assert plan["index"] == "type_ts" and plan["covered"] is True and plan["scan"] is False
    assert plan["scores"]["type_ts"] > plan["scores"]["author_ts"]
    scan = json.loads(ok("query", directory, '{"key": {"$prefix": "%"}}', "--explain"))
    assert scan["index"] is None and scan["scan"] is True


def test_query_from_a_file(demo: tuple[Path, str], tmp_path: Path) -> None:
    directory, _ = demo
    (tmp_path / "q.json").write_text('[{"$filter": {"value": {"sequence": 2}}}]')
    assert len(jsonl(ok("query", directory, f"@{tmp_path / 'q.json'}", "--limit", 4))) == 4


def test_malformed_query_names_its_position(demo: tuple[Path, str]) -> None:
    directory, _ = demo
    line = error("query", directory, '[{"$filter": {"value": {"timestamp": {"$gt": "a", "$lt": 5}}}}]')
    assert "malformed query at query[0].$filter.value.timestamp" in line
    line = error("query", directory, '[{"$filter": {}}, {"$frobnicate": 1}]')
    assert "query[1]" in line


def test_query_that_is_not_json(demo: tuple[Path, str], capsys: pytest.CaptureFixture[str]) -> None:
    directory, _ = demo
    line = inproc_error(capsys, "query", directory, "[{'$filter': 1}]")
    assert "QUERY is not valid JSON" in line and "column 3" in line


def test_query_without_a_query_view_scans_the_log(tmp_path: Path) -> None:
    """As the library does with Query(indexes={}): every query is answered by a full scan."""
    ok("append", tmp_path / "db", input='1\n{"a": 2}\n{"a": 3}\n')
    out = ok("query", tmp_path / "db", '[{"$filter": {"a": {"$gt": 2}}}]')
    assert [json.loads(line) for line in out.splitlines()] == [{"a": 3}]
    out = ok("query", tmp_path / "db", '{"$reduce": {"$count": true}}')
    assert json.loads(out) == 3
    out = ok("query", tmp_path / "db", "[]", "--reverse", "--limit", "1", "--seqs")
    assert json.loads(out) == {"seq": 2, "value": {"a": 3}}
    plan = json.loads(ok("query", tmp_path / "db", "{}", "--explain"))
    assert plan["view"] is None and plan["index"] is None and plan["scan"]
    assert "full scan" in plan["note"]
    line = error("query", tmp_path / "db", "{}", "--view", "query")
    assert "no Query view named 'query'" in line and "flume index add" in line


# -- status, export, import --------------------------------------------------------------------------


def test_status(demo: tuple[Path, str]) -> None:
    directory, _ = demo
    report = json.loads(ok("status", directory, "--json"))
    assert report["since"] == DEMO_N - 1 and report["entries"] == DEMO_N
    assert report["log_bytes"] > 100_000 and report["views_bytes"] > 0
    assert report["views"]["query"] == {"kind": "query", "since": DEMO_N - 1, "lag": 0,
                                        "state": "ready", "mounted": True}
    assert report["views"]["count_by_type"]["mounted"] is False
    assert report["views"]["by_author"]["kind"] == "index"
    text = ok("status", directory)
    assert f"{DEMO_N:,} entries (seqs 0..{DEMO_N - 1})" in text
    assert "query" in text and "ready" in text and "defined by code" in text


def test_export_import_round_trip(tmp_path: Path) -> None:
    values: list[Any] = [
        {"unicode": "日本 🌊 café", "nested": {"list": [1, [2, [3]], {"x": None}]}},
        [True, False, None, 0, -1, 2**63 - 1, -(2**63), 1.5, 1e300, -0.0],
        "a string", 42, 3.25, None, {}, [],
    ]
    a, b = tmp_path / "a", tmp_path / "b"
    ok("append", a, write_jsonl(tmp_path / "in.jsonl", values))
    exported = ok("export", a)
    assert jsonl(exported) == values
    (tmp_path / "out.jsonl").write_text(exported, encoding="utf-8")
    assert ok("import", b, tmp_path / "out.jsonl").strip() == str(len(values) - 1)
    assert ok("export", b) == exported
    assert ok("stream", b) == ok("stream", a)
    assert jsonl(ok("export", a, "--gte", 2, "--lt", 4)) == values[2:4]
    # import restores into an empty directory only
    assert "already holds" in error("import", b, tmp_path / "out.jsonl")


def test_export_of_bytes(tmp_path: Path) -> None:
    directory = tmp_path / "db"
    with flume.open(directory) as db:
        db.append({"name": "blob"})
        db.append({"data": b"\x00\xffbin", "list": [b"x"]})
    line = error("export", directory)
    assert "seq 1 holds bytes" in line and "--base64-bytes" in line
    exported = ok("export", directory, "--base64-bytes")
    assert jsonl(exported)[1] == {"data": {"$base64": "AP9iaW4="}, "list": [{"$base64": "eA=="}]}
    # get/stream show bytes the same way
    assert json.loads(ok("get", directory, 1))["data"] == {"$base64": "AP9iaW4="}
    (tmp_path / "out.jsonl").write_text(exported, encoding="utf-8")
    ok("import", tmp_path / "copy", tmp_path / "out.jsonl", "--base64-bytes")
    with flume.open(tmp_path / "copy", readonly=True) as db:
        assert db.get(1) == {"data": b"\x00\xffbin", "list": [b"x"]}


# -- indexes ---------------------------------------------------------------------------------------


def test_index_add_list_drop(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    directory = tmp_path / "db"
    values: list[dict[str, Any]] = [
        {"value": {"author": f"@{i % 3}", "ts": i, "type": "post" if i % 2 else "vote"}}
        for i in range(50)
    ]
    ok("append", directory, write_jsonl(tmp_path / "in.jsonl", values))
    proc = run("index", "add", directory, "by_author", "value.author", "value.ts")
    assert proc.returncode == 0 and "added index by_author" in proc.stderr
    ok("index", "add", directory, "by_type", '["value", "type"]')
    assert jsonl(ok("index", "list", directory)) == [
        {"view": "query", "index": "by_author", "paths": ["value.author", "value.ts"]},
        {"view": "query", "index": "by_type", "paths": ["value.type"]},
    ]
    query = '{"value": {"author": "@1", "ts": {"$gte": 10}}}'
    assert json.loads(ok("query", directory, query, "--explain"))["index"] == "by_author"
    expected = [v for v in values if v["value"]["author"] == "@1" and v["value"]["ts"] >= 10]
    assert jsonl(ok("query", directory, query)) == expected
    # the same index again is fine; another definition under that name is not
    assert "already exists" in run("index", "add", directory, "by_type", "value.type").stderr
    assert "drop it first" in error("index", "add", directory, "by_type", "value.ts")
    assert "empty step" in inproc_error(capsys, "index", "add", directory, "bad", "value..ts")
    # another view
    ok("index", "add", directory, "by_ts", "value.ts", "--view", "other")
    assert {"view": "other", "index": "by_ts", "paths": ["value.ts"]} in jsonl(
        ok("index", "list", directory))
    # drop
    ok("index", "drop", directory, "by_author")
    assert [i["index"] for i in jsonl(ok("index", "list", directory))] == ["by_ts", "by_type"]
    assert json.loads(ok("query", directory, query, "--view", "query", "--explain"))["index"] is None
    assert jsonl(ok("query", directory, query)) == expected
    assert "no index 'nope'" in error("index", "drop", directory, "nope")
    ok("index", "drop", directory, "by_type")  # the last index: the view goes
    assert "no Query view named 'query'" in error("query", directory, query, "--view", "query")
    assert jsonl(ok("query", directory, query)) == expected  # the only view left is used


def test_index_on_a_new_directory_then_append(tmp_path: Path) -> None:
    directory = tmp_path / "db"
    ok("index", "add", directory, "by_a", "a")
    assert jsonl(ok("index", "list", directory)) == [{"view": "query", "index": "by_a", "paths": ["a"]}]
    ok("append", directory, input='{"a": 2}\n{"a": 1}\n{"b": 1}\n')
    assert jsonl(ok("query", directory, '{"a": {"$gte": 0}}')) == [{"a": 1}, {"a": 2}]


def test_rebuild(tmp_path: Path) -> None:
    directory = tmp_path / "db"
    ok("append", directory, write_jsonl(tmp_path / "in.jsonl", [{"k": i % 7} for i in range(300)]))
    ok("index", "add", directory, "by_k", "k")
    before = ok("query", directory, '{"k": 3}')
    proc = run("rebuild", directory)
    assert proc.returncode == 0 and "rebuilt query over 300 entries" in proc.stderr
    assert ok("query", directory, '{"k": 3}') == before
    assert "verify: ok" in ok("verify", directory)


# -- verify ----------------------------------------------------------------------------------------


def test_verify_a_good_database(demo: tuple[Path, str]) -> None:
    directory, _ = demo
    out = ok("verify", directory)
    assert f"log: ok, {DEMO_N:,} entries" in out
    assert "view query (query): ok" in out and "verify: ok" in out
    assert "view count_by_type (reduce): not checked" in out
    report = json.loads(ok("verify", directory, "--json"))
    assert report["ok"] is True and report["log"]["entries"] == DEMO_N


def _copy_feed(tmp_path: Path, n: int = 500) -> Path:
    directory = tmp_path / "db"
    ok("append", directory, write_jsonl(tmp_path / "in.jsonl", list(sample.messages(n))))
    ok("index", "add", directory, "by_author", "value.author")
    return directory


def test_verify_a_truncated_log(tmp_path: Path) -> None:
    directory = _copy_feed(tmp_path)
    data = directory / "log" / "data.mdb"
    os.truncate(data, data.stat().st_size // 2)
    proc = run("verify", directory)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "log: DAMAGED" in proc.stdout and "truncated" in proc.stdout
    assert proc.stderr.startswith("flume: error:") and "damaged" in proc.stderr


def test_verify_an_overwritten_value(tmp_path: Path) -> None:
    directory = tmp_path / "db"
    marker = "MARKER-" + "x" * 40
    ok("append", directory, input="".join(
        json.dumps({"i": i, "text": marker if i == 123 else "plain"}) + "\n" for i in range(300)))
    data = directory / "log" / "data.mdb"
    raw = bytearray(data.read_bytes())
    at = raw.find(marker.encode())
    assert at > 0
    while at >= 0:  # every copy, old pages included: the string becomes invalid UTF-8
        raw[at: at + 8] = b"\xff" * 8
        at = raw.find(marker.encode())
    data.write_bytes(bytes(raw))
    proc = run("verify", directory)
    assert proc.returncode == 1, proc.stdout
    assert "the value at seq 123 does not decode" in proc.stdout


def test_verify_a_damaged_page(tmp_path: Path) -> None:
    directory = _copy_feed(tmp_path)
    data = directory / "log" / "data.mdb"
    with data.open("r+b") as f:  # garbage over a page header in the middle of the file
        f.seek((data.stat().st_size // 2) // 4096 * 4096)
        f.write(b"\xff" * 64)
    proc = run("verify", directory)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "log: DAMAGED" in proc.stdout


def test_verify_a_view_that_differs_from_a_rebuild(tmp_path: Path) -> None:
    directory = _copy_feed(tmp_path, 100)
    with flume.open(directory) as db:  # slip a stray entry into the Query view's keyspace
        store = db._store
        batch = store.batch()
        batch.put("query", b"\x00\xff stray", b"")
        store.write(batch)
    proc = run("verify", directory)
    assert proc.returncode == 1
    assert "view query (query): DAMAGED" in proc.stdout and "stores an entry a rebuild" in proc.stdout


# -- errors: missing and locked directories --------------------------------------------------------


READ_COMMANDS: list[list[str]] = [
    ["get", "{dir}", "0"],
    ["stream", "{dir}"],
    ["query", "{dir}", "{{}}"],
    ["index", "list", "{dir}"],
    ["status", "{dir}"],
    ["export", "{dir}"],
    ["verify", "{dir}"],
]


def _fill(command: list[str], directory: Path) -> list[str]:
    return [part.format(dir=directory) for part in command]


def test_read_commands_on_a_missing_directory(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nothing-here"
    assert "does not exist" in error(*_fill(READ_COMMANDS[0], missing))
    for command in READ_COMMANDS[1:]:  # the same path in this process, for speed
        line = inproc_error(capsys, *_fill(command, missing))
        assert "does not exist" in line, command
    assert not missing.exists()


WRITER = """
import sys, time, flume
from flume import sample
db = flume.open(sys.argv[1])
print("ready", flush=True)
for message in sample.messages(100_000, seed=7):
    db.append(message)
    time.sleep(0.005)
"""


@pytest.fixture
def running_writer(tmp_path: Path) -> Iterator[Path]:
    """A directory with a Query view, and a process that holds it open for writing and
    appends to it while the test runs."""
    directory = _copy_feed(tmp_path, 300)
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(directory)],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        yield directory
    finally:
        proc.kill()  # by its pid; the kernel drops its lock
        proc.wait(timeout=RUN_TIMEOUT)
        if proc.stdout is not None:
            proc.stdout.close()


def test_locked_directory_write_commands_fail_read_commands_work(
    running_writer: Path, tmp_path: Path
) -> None:
    directory = running_writer
    source = write_jsonl(tmp_path / "more.jsonl", [1, 2])
    writes: list[list[Any]] = [
        ["append", directory, source], ["import", directory, source],
        ["index", "add", directory, "x", "value.x"], ["index", "drop", directory, "by_author"],
        ["rebuild", directory], ["demo", directory, "--n", "10"],
    ]
    for command in writes:
        line = error(*command)
        assert "is open for writing by process" in line and "only one writer" in line, command
    for read in READ_COMMANDS:
        ok(*_fill(read, directory))
    # The reader sees the writer's appends, and the writer keeps the stored Query view current.
    first = json.loads(ok("status", directory, "--json"))
    time.sleep(0.3)
    later = json.loads(ok("status", directory, "--json"))
    assert later["since"] > first["since"] >= 300
    assert later["views"]["query"]["kind"] == "query"
    author = next(sample.messages(1, seed=7))["value"]["author"]
    found = jsonl(ok("query", directory, json.dumps({"value": {"author": author}})))
    assert any(m["value"]["author"] == author for m in found)


def test_live_stream_follows_another_process(tmp_path: Path) -> None:
    directory = tmp_path / "db"
    ok("append", directory, input="0\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "flume", "stream", str(directory), "--live", "--no-old"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        time.sleep(0.5)  # let it start reading before the appends
        ok("append", directory, input="1\n2\n")
        assert proc.stdout is not None
        assert json.loads(proc.stdout.readline()) == {"seq": 1, "value": 1}
        assert json.loads(proc.stdout.readline()) == {"seq": 2, "value": 2}
        proc.send_signal(signal.SIGINT)  # Ctrl-C ends it quietly
        proc.wait(timeout=RUN_TIMEOUT)
        assert proc.returncode == 130
        assert proc.stderr is not None and "Traceback" not in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()


# -- the command line itself -----------------------------------------------------------------------


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    for name, command in group.commands.items():
        yield (*prefix, name), command
        if isinstance(command, click.Group):
            yield from _commands(command, (*prefix, name))


def test_every_command_and_option_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    commands = list(_commands(cli))
    names = {" ".join(path) for path, _ in commands}
    assert {"demo", "append", "get", "stream", "query", "index", "index add", "index list",
            "index drop", "status", "rebuild", "export", "import", "verify"} <= names
    for path, command in commands:
        assert command.help and len(command.help) > 30, path
        assert command.get_short_help_str(), path
        for param in command.params:
            if isinstance(param, click.Option):
                assert param.help, (path, param.name)
    top = ok("--help")
    for name in ("demo", "append", "query", "index", "verify"):
        assert name in top
    for path, _ in commands:
        code, out, _ = inproc(capsys, *path, "--help")
        assert code == 0 and out.startswith(f"Usage: flume {' '.join(path)} "), path
    assert "--gt" in inproc(capsys, "stream", "--help")[1]


def test_usage_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert "Missing argument 'DIR'" in error("stream", code=2)
    assert "No such command" in inproc_error(capsys, "frobnicate", code=2)
    assert "--limit" in inproc_error(capsys, "stream", tmp_path, "--limit", "-1", code=2)


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = inproc(capsys, "--version")
    assert code == 0 and out.startswith("flume ")
