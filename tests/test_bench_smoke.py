"""The benchmark harness runs end to end at a tiny size, and its baselines give right answers."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # `bench` is a top-level folder, not an installed package

from bench import baselines, flume_workloads, harness  # noqa: E402
from bench.chart import draw  # noqa: E402
from bench.common import ERROR, NOT_AVAILABLE, OK, Config, Row  # noqa: E402
from bench.ratios import TARGETS, evaluate  # noqa: E402
from flume import sample  # noqa: E402

pytestmark = pytest.mark.timeout(60)


def tiny(tmp_path: Path) -> Config:
    return Config(n=1500, single=20, queries=30, gets=200, count_repeats=2, tmp=str(tmp_path))


def test_baselines_measure_and_agree(tmp_path: Path) -> None:
    report = harness.run(tiny(tmp_path), only="baselines")
    by_id = {r["id"]: r for r in report["rows"]}
    expected = {
        "lmdb.batched_put", "lmdb.scan", "lmdb.get", "lmdb.disk", "lmdb.single_put",
        "rocksdb.implied_work", "rocksdb.latest10", "rocksdb.count_votes", "rocksdb.disk",
        "sqlite.batched_insert", "sqlite.scan", "sqlite.index_build", "sqlite.latest10",
        "sqlite.count_votes", "sqlite.disk", "sqlite.single_insert", "sqlite.analyze",
        "sqlite.count_type_author", "sqlite.type_author_index",
        "sqlite.count_type_author_composite",
    }  # fmt: skip
    assert set(by_id) == expected
    for r in report["rows"]:
        assert r["status"] == OK, (r["id"], r["note"])  # includes the answer checks
        assert r["value"] is not None and r["value"] > 0, r["id"]
    assert {"lmdb", "rocksdb", "sqlite", "baselines", "total"} <= set(report["timings"])
    assert list(tmp_path.iterdir()) == [], "every fresh directory is removed"
    # sqlite answers the indexed reads from its expression indexes, with no sort step.
    plans = by_id["sqlite.latest10"]["detail"]["plan"]
    assert "log_author_ts" in plans and "TEMP B-TREE" not in plans
    assert "log_type_ts" in by_id["sqlite.count_votes"]["detail"]["plan"]
    # The two-field count: on an index of one field, then on the index made for it.
    assert "log_type_author" not in by_id["sqlite.count_type_author"]["detail"]["plan"]
    assert "log_type_author" in by_id["sqlite.count_type_author_composite"]["detail"]["plan"]


def test_read_phases_repeat_and_keep_the_best(tmp_path: Path) -> None:
    cfg = replace(tiny(tmp_path), n=300, single=3, repeat=2, codec="ormsgpack")
    report = harness.run(cfg, only="baselines")
    by_id = {r["id"]: r for r in report["rows"]}
    assert {r["status"] for r in report["rows"]} == {OK}
    rounds = by_id["lmdb.scan"]["detail"]["rounds"]
    assert len(rounds) == 2 and by_id["lmdb.scan"]["value"] == max(rounds)
    rounds = by_id["sqlite.latest10"]["detail"]["rounds"]
    assert len(rounds) == 2 and by_id["sqlite.latest10"]["value"] == min(rounds)
    assert "rounds" not in by_id["lmdb.batched_put"]["detail"]


def test_flume_rows_never_crash_the_harness(tmp_path: Path) -> None:
    report = harness.run(tiny(tmp_path), only="flume")
    rows = report["rows"]
    assert [r["id"] for r in rows] == [rid for rid, _, _ in flume_workloads.ROWS]
    if not flume_workloads.CORE:
        assert all(r["status"] == NOT_AVAILABLE and r["note"] for r in rows)
    for r in rows:
        assert r["status"] in (OK, NOT_AVAILABLE, ERROR), r
        assert (r["value"] is not None) == (r["status"] == OK), r
    assert list(tmp_path.iterdir()) == [], "every fresh directory is removed"


def test_both_codecs_write_the_same_bytes() -> None:
    for m in sample.messages(500, seed=4):
        packb, unpackb = baselines.CODECS["ormsgpack"]
        data = baselines.CODECS["msgpack"][0](m)
        assert packb(m) == data and unpackb(data) == m


def test_targets_evaluate_to_na_when_rows_are_missing() -> None:
    verdicts = evaluate([])
    assert [t["id"] for t in verdicts] == [t.id for t in TARGETS]
    assert all(t["verdict"] == "n/a" and t["value"] is None for t in verdicts)


def test_command_writes_json_and_chart(tmp_path: Path) -> None:
    out = tmp_path / "results"
    proc = subprocess.run(
        [
            sys.executable, "-m", "bench", "--n", "300", "--single", "5", "--queries", "5",
            "--gets", "50", "--count-repeats", "1", "--only", "baselines",
            "--tmp", str(tmp_path), "--out", str(out), "--no-chart",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "append, 1000/txn, durable" in proc.stdout
    (path,) = out.glob("*.json")
    report = json.loads(path.read_text())
    assert report["config"]["n"] == 300
    assert {"cpu", "cores", "memory_gb", "os", "python", "versions"} <= set(report["machine"])
    assert report["machine"]["versions"]["sqlite"]
    assert report["machine"]["versions"]["lmdb"]
    assert {r["status"] for r in report["rows"]} == {OK}
    assert list(out.glob("*.png")) == []  # --no-chart


def test_chart(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    targets = evaluate([])
    targets[0].update(value=0.9, verdict="pass")
    targets[1].update(value=2.0, verdict="FAIL")
    targets[-1].update(value=0.5, verdict="info")
    png = tmp_path / "chart.png"
    assert draw(targets, png, "smoke") is None
    assert png.read_bytes().startswith(b"\x89PNG") and png.stat().st_size > 1000


def test_report_formats_unavailable_rows() -> None:
    report = {
        "machine": {"cpu": "x", "cores": 2, "memory_gb": 1, "os": "y", "python": "3",
                    "versions": {"sqlite": "3"}},
        "data": {"mean_msgpack_bytes": 350.0, "generate_seconds": 1.0, "generate_rate": 1.0},
        "config": {"n": 1, "authors": 1, "seed": 0},
        "rows": [
            Row(rid, "flume", label, unit, status=NOT_AVAILABLE, note="not yet").to_json()
            for rid, label, unit in flume_workloads.ROWS
        ],
        "targets": evaluate([]),
        "timings": {"total": 1.0},
        "loadavg": {"start": None, "end": None},
        "flume_available": False,
        "flume_unavailable_reason": "not yet",
    }  # fmt: skip
    text = harness.format_report(report)
    assert "not available" in text and "n/a" in text
