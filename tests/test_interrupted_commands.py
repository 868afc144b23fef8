"""Commands interrupted half way (Ctrl-C, kill -9) while they build or rebuild views: the
stored definitions survive, and the next command that opens the directory for writing
finishes the work, with no manual step."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import flume
from flume.views import Query

N = 60_000


def flume_cmd(*args: Any) -> list[str]:
    return [sys.executable, "-m", "flume", *map(str, args)]


def run(*args: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(flume_cmd(*args), capture_output=True, text=True, timeout=120, check=False)


def make_db(path: Path) -> list[dict[str, Any]]:
    values = [{"a": i % 13, "b": f"x{i % 101}", "i": i} for i in range(N)]
    with flume.open(path, sync=False) as db:
        db.use("query", Query(indexes={"ia": [["a"], ["i"]]}))
        db.append_many(values)
        db.query.ready()
    return values


def interrupt_when_indexing(proc: subprocess.Popen[str], path: Path, sig: int) -> None:
    """Send ``sig`` once the command has stored its new definition and started building.

    Polled through a reader in this process, every few milliseconds: a `flume status`
    subprocess per poll takes longer than a small rebuild does."""
    deadline = time.monotonic() + 60
    with flume.open(path, readonly=True) as reader:
        while time.monotonic() < deadline:
            query = reader.status()["views"].get("query", {})
            if query.get("state") == "indexing" and 0 <= query.get("since", -1) < N - 1:
                proc.send_signal(sig)
                return
            if proc.poll() is not None:
                pytest.fail(f"the command ended before it could be interrupted: {proc.stderr}")
            time.sleep(0.002)
    pytest.fail("the command never started indexing")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
def test_an_interrupted_index_add_is_finished_by_the_next_write_command(
    tmp_path: Path, sig: int
) -> None:
    values = make_db(tmp_path)
    proc = subprocess.Popen(
        flume_cmd("index", "add", tmp_path, "ib", "b", "i"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    interrupt_when_indexing(proc, tmp_path, sig)
    proc.wait(30)
    assert proc.returncode != 0
    # The new definition is stored (both indexes), and the view reads as behind.
    listed = [json.loads(line) for line in run("index", "list", tmp_path).stdout.splitlines()]
    assert [(x["view"], x["index"]) for x in listed] == [("query", "ia"), ("query", "ib")]
    # Any write command resumes the build; here an append of one more value.
    appended = subprocess.run(
        flume_cmd("append", tmp_path), input='{"a": 1, "b": "x7", "i": -1}\n',
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert appended.returncode == 0, appended.stderr
    values.append({"a": 1, "b": "x7", "i": -1})
    status = json.loads(run("status", tmp_path, "--json").stdout)
    assert status["views"]["query"]["state"] == "ready"
    got = run("query", tmp_path, '{"$filter": {"b": "x7"}}', "--explain")
    assert json.loads(got.stdout)["index"] == "ib"
    got = run("query", tmp_path, '{"$filter": {"b": "x7"}}')
    answer = [json.loads(line) for line in got.stdout.splitlines()]
    want = sorted((v for v in values if v["b"] == "x7"), key=lambda v: v["i"])
    assert answer == want


def test_a_rebuild_killed_half_way_resumes_on_the_next_open(tmp_path: Path) -> None:
    values = make_db(tmp_path)
    proc = subprocess.Popen(flume_cmd("rebuild", tmp_path), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    interrupt_when_indexing(proc, tmp_path, signal.SIGKILL)
    proc.wait(30)
    with flume.open(tmp_path) as db:
        assert sorted(db.views) == ["query"]
        got = list(db.query.read({"$filter": {"a": 5}}))
        assert got == [v for v in values if v["a"] == 5]
    assert os.path.isdir(tmp_path / "views")
