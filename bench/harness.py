"""``python -m bench``: run the workloads, print the table and the targets, save JSON and PNG."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import time
from contextlib import ExitStack
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench import baselines, flume_workloads
from bench.chart import draw
from bench.common import OK, PHASES, READ_PHASES, Config, Data, Row, System, prepare
from bench.machine import describe
from bench.ratios import evaluate

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def parse_args(argv: list[str] | None) -> tuple[Config, argparse.Namespace]:
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description="flume against raw LMDB, raw RocksDB and sqlite3 on the same SSB-shaped data.",
    )
    p.add_argument(
        "--n", type=int, default=1_000_000, help="messages in the log (default 1,000,000)"
    )
    p.add_argument(
        "--single", type=int, default=2000, help="single durable appends (default 2,000)"
    )
    p.add_argument("--queries", type=int, default=2000, help="latest-10 queries (default 2,000)")
    p.add_argument("--gets", type=int, default=100_000, help="random gets (default 100,000)")
    p.add_argument("--count-repeats", type=int, default=5, help="counts timed, median kept (5)")
    p.add_argument(
        "--repeat", type=int, default=1, help="rounds of the read workloads, best kept (1)"
    )
    p.add_argument(
        "--codec",
        choices=("msgpack", "ormsgpack"),
        default="ormsgpack",
        help="msgpack library of the raw LMDB/RocksDB baselines (default ormsgpack)",
    )
    p.add_argument("--threads", type=int, default=8, help="threads of the concurrent appends (8)")
    p.add_argument("--authors", type=int, default=1000, help="distinct authors (default 1,000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the data and the read plans (0)")
    p.add_argument(
        "--tmp", default=None, help="where the fresh databases go (default: system temp)"
    )
    p.add_argument("--keep", action="store_true", help="keep the databases afterwards")
    p.add_argument(
        "--timeout", type=float, default=1800.0, help="seconds to wait for a view (1800)"
    )
    p.add_argument(
        "--only",
        choices=("all", "baselines", "flume"),
        default="all",
        help="run only the baselines or only flume (default all)",
    )
    p.add_argument("--out", type=Path, default=RESULTS_DIR, help="directory of the JSON and PNG")
    p.add_argument("--no-save", action="store_true", help="print only; write no files")
    p.add_argument("--no-chart", action="store_true", help="write the JSON but no PNG")
    a = p.parse_args(argv)
    for name in ("n", "single", "queries", "gets", "count_repeats", "repeat", "threads", "authors"):
        if getattr(a, name) < (0 if name in ("n", "gets") else 1):
            p.error(f"--{name.replace('_', '-')} is too small: {getattr(a, name)}")
    if a.single > a.n and a.n:
        a.single = a.n
    cfg = Config(
        n=a.n,
        single=a.single,
        queries=a.queries,
        gets=a.gets if a.n else 0,
        count_repeats=a.count_repeats,
        repeat=a.repeat,
        codec=a.codec,
        threads=a.threads,
        authors=a.authors,
        seed=a.seed,
        tmp=a.tmp,
        keep=a.keep,
        timeout=a.timeout,
    )
    return cfg, a


def run(cfg: Config, only: str = "all") -> dict[str, Any]:
    """Prepare the data, run the chosen systems phase by phase; return the report (JSON-able).

    In each phase of :data:`~bench.common.PHASES` every system runs its workload of that
    phase, one after the other, so that the rows a target compares are measured close together
    in time. Read phases run ``cfg.repeat`` rounds and keep each row's best round.
    """
    started = dt.datetime.now(dt.UTC)
    load_start = _loadavg()
    cpu0 = _cpu_seconds()
    t0 = time.perf_counter()
    data = prepare(cfg)
    timings: dict[str, float] = {"prepare": time.perf_counter() - t0}
    produced: list[Row] = []
    with ExitStack() as stack:
        systems: list[System] = []
        if only in ("all", "baselines"):
            systems += baselines.systems(cfg, data, stack)
        if only in ("all", "flume"):
            systems.append(flume_workloads.Flume(cfg, data, stack))
        for system in systems:
            timings[system.name] = 0.0
        for phase in PHASES:
            rounds = cfg.repeat if phase in READ_PHASES else 1
            for _ in range(rounds):
                for system in systems:
                    workload = system.phases.get(phase)
                    if workload is None:
                        continue
                    t1 = time.perf_counter()
                    produced += workload()
                    timings[system.name] += time.perf_counter() - t1
        t1 = time.perf_counter()
    timings["cleanup"] = time.perf_counter() - t1
    base = [timings[k] for k in ("lmdb", "rocksdb", "sqlite") if k in timings]
    if base:
        timings["baselines"] = sum(base)
    timings["total"] = time.perf_counter() - t0
    timings["cpu"] = _cpu_seconds() - cpu0  # well below "total" when other work shares the CPUs
    order = {s: i for i, s in enumerate(("lmdb", "rocksdb", "sqlite", "flume"))}
    rows = sorted(best_rows(produced), key=lambda r: order.get(r.system, len(order)))
    return {
        "started": started.isoformat(timespec="seconds"),
        "config": asdict(cfg),
        "data": _data_summary(data, cfg),
        "machine": describe(),
        "flume_available": flume_workloads.AVAILABLE,
        "flume_unavailable_reason": flume_workloads.REASON,
        "rows": [r.to_json() for r in rows],
        "targets": evaluate(rows),
        "timings": timings,
        "loadavg": {"start": load_start, "end": _loadavg()},
    }


def best_rows(rows: list[Row]) -> list[Row]:
    """One row per id, in order of first appearance: the best round of a repeated workload.

    Best is the highest rate (units per second) or the lowest time or size; a round that
    failed wins over any that passed, so that a wrong answer is never hidden.
    """
    groups: dict[str, list[Row]] = {}
    for r in rows:
        groups.setdefault(r.id, []).append(r)
    out = []
    for group in groups.values():
        failed = [r for r in group if r.status != OK]
        if failed:
            best = failed[0]
        else:
            higher = group[0].unit.endswith("/s")
            best = (max if higher else min)(group, key=lambda r: r.value or 0.0)
        if len(group) > 1:
            best.detail["rounds"] = [r.value for r in group]
        out.append(best)
    return out


def _cpu_seconds() -> float:
    """CPU time (user + system) of this process and its finished children so far."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _loadavg() -> list[float] | None:
    """The 1, 5 and 15 minute load averages: other work on the machine skews every number."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def _data_summary(data: Data, cfg: Config) -> dict[str, Any]:
    return {
        "messages": cfg.n,
        "authors": cfg.authors,
        "mean_msgpack_bytes": round(data.mean_msgpack_bytes, 1),
        "generate_seconds": data.generate_seconds,
        "generate_rate": cfg.n / data.generate_seconds if data.generate_seconds else None,
        "vote_count": data.vote_count,
    }


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def format_report(report: dict[str, Any]) -> str:
    """The human-readable tables of a report."""
    m, d, c = report["machine"], report["data"], report["config"]
    lines = [
        f"flume benchmark: n={c['n']:,} messages, {c['authors']} authors, seed {c['seed']}, "
        f"baselines encode with {c.get('codec', 'msgpack')}; "
        f"mean {d['mean_msgpack_bytes']:.0f} B as msgpack; generated in "
        f"{d['generate_seconds']:.1f} s ({_fmt(d['generate_rate'])} msg/s)",
        f"machine: {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB, {m['os']}, "
        f"Python {m['python']}, sqlite {m['versions']['sqlite']}",
        "",
        f"{'system':<8} {'workload':<44} {'value':>12} {'unit':<9} {'time s':>8}  note",
        "-" * 100,
    ]
    for r in report["rows"]:
        value = _fmt(r["value"]) if r["status"] == OK else r["status"]
        seconds = f"{r['seconds']:.2f}" if r["seconds"] is not None else ""
        note = r["note"]
        if r["status"] != OK and len(note) > 60:
            note = note[:57] + "..."
        label = r["workload"][:44]
        lines.append(
            f"{r['system']:<8} {label:<44} {value:>12} {r['unit']:<9} {seconds:>8}  {note}"
        )
    lines += ["", f"{'target':<52} {'measured':>10} {'target':>10}  verdict", "-" * 84]
    for t in report["targets"]:
        unit = "x" if t["unit"] == "x" else f" {t['unit']}"
        measured = "-" if t["value"] is None else f"{_fmt(t['value'])}{unit}"
        bound = "" if t["target"] is None else f"{t['op']} {t['target']:g}"
        lines.append(f"{t['label']:<52} {measured:>10} {bound:>10}  {t['verdict']}")
    tm = report["timings"]
    walls = ", ".join(f"{k} {v:.1f} s" for k, v in tm.items() if k != "cpu")
    lines += ["", f"wall time: {walls}"]
    if "cpu" in tm:
        lines.append(f"CPU time of the run (with the catch-up child): {tm['cpu']:.1f} s")
    load = report["loadavg"]["start"]
    if load:
        lines.append(f"load average at start: {load[0]:.2f} (1 min), {load[1]:.2f} (5 min)")
        if load[0] > 0.5:
            lines.append("  the machine was busy with other work: the numbers are noisy")
    if not report["flume_available"]:
        lines.append(f"flume rows: {report['flume_unavailable_reason']}")
    return "\n".join(lines)


def save(report: dict[str, Any], out: Path, chart: bool) -> list[Path]:
    """Write ``<out>/<UTC time>-n<N>.json`` (and ``.png``); return the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.fromisoformat(report["started"]).strftime("%Y%m%d-%H%M%S")
    stem = out / f"{stamp}-n{report['config']['n']}"
    written = [stem.with_suffix(".json")]
    if chart:
        png = stem.with_suffix(".png")
        title = (
            f"flume vs raw engines, n={report['config']['n']:,} "
            f"({report['machine']['cpu']}, {report['machine']['cores']} cores)"
        )
        why_not = draw(report["targets"], png, title)
        report["chart"] = png.name if why_not is None else None
        if why_not is None:
            written.append(png)
        else:
            report["chart_missing"] = why_not
    written[0].write_text(json.dumps(report, indent=2, default=str) + "\n")
    return written


def main(argv: list[str] | None = None) -> int:
    cfg, args = parse_args(argv)
    report = run(cfg, args.only)
    print(format_report(report))
    if not args.no_save:
        for path in save(report, args.out, chart=not args.no_chart):
            print(f"wrote {path}")
        if report.get("chart_missing"):
            print(f"no chart: {report['chart_missing']}")
    return 0
