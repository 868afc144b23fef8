"""flume against the original JavaScript flumedb: the same three views catching up on the same log.

``python -m bench.vs_flumedb --n 1000000`` (``--help`` for the options). See the section
"flume against JavaScript flumedb" in ``bench/README.md``.

1. Prepare (untimed): ``node bench/js/generate.js`` writes the data set, ``n`` signed SSB
   messages ``{key, value, timestamp}`` as JSON lines, in a temp dir (the recipe of the SSB
   project's flumedb benchmark, ssbc/bench-ssb, seeded; see that script).
2. flumedb: ``npm ci`` in ``bench/js`` if ``node_modules`` is missing; ``flumedb_bench.js
   append`` writes the messages to a flumelog-offset log (timed, reported, not compared);
   then ``flumedb_bench.js catchup``, in a fresh node process, opens the log, mounts the three
   views and times them until every view's ``since`` is the log's.
3. flume: ``flume.open`` a fresh directory, ``append_many`` the same messages 1,000 at a
   time (timed, reported, not compared); then, in a fresh interpreter, open it, ``use`` the
   three views of ``bench.flume_workloads.use_views`` and time them until each is ``ready()``.
4. Check that both agree: the Reduce's count by type, and the keys of the latest 10 messages
   (by timestamp) of a few authors from the Query view.

With ``--repeat K`` the catch-ups run K times, alternating the two systems, each time from no
views (the view files are deleted in between); best and median are reported.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import machine
from bench.common import BATCH

ROOT = Path(__file__).resolve().parents[1]
JS = ROOT / "bench" / "js"
#: Authors whose latest 10 messages both systems must agree on.
CHECK_AUTHORS = 5
#: The JavaScript packages whose versions the results record (as package-lock.json pins them).
JS_PACKAGES = (
    "flumedb",
    "flumelog-offset",
    "flumeview-reduce",
    "flumeview-level",
    "flumeview-query",
    "flumecodec",
    "level",
    "leveldown",
    "ssb-validate",
    "ssb-keys",
)


def _run(cmd: list[str], *, cwd: Path, timeout: float, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-20:])
        raise RuntimeError(f"{' '.join(cmd[:3])} ... exited {proc.returncode}:\n{tail}")
    return proc.stdout


def _last_json(out: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def npm_ci(timeout: float) -> bool:
    """Install the pinned JavaScript packages if they are not there; True if it ran."""
    if (JS / "node_modules").is_dir():
        return False
    print("npm ci in bench/js ...", flush=True)
    _run(["npm", "ci", "--no-audit", "--no-fund"], cwd=JS, timeout=timeout)
    return True


def js_versions() -> dict[str, str | None]:
    try:
        lock = json.loads((JS / "package-lock.json").read_text())
    except (OSError, ValueError):
        return {}
    pkgs = lock.get("packages", {})
    return {p: pkgs.get(f"node_modules/{p}", {}).get("version") for p in JS_PACKAGES}


def node_version() -> str | None:
    try:
        return subprocess.run(
            ["node", "--version"], capture_output=True, text=True, timeout=30
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


# ------------------------------------------------------------------ flume side


def flume_append(data: Path, path: Path) -> dict[str, Any]:
    """Append every message of the JSON lines file to a new flume db, 1,000 at a time.

    Returns the time, the count, and the authors seen (sorted), for picking the check authors.
    """
    import flume

    authors: set[str] = set()
    n = 0
    seconds = 0.0
    with flume.open(str(path)) as db, data.open("rb") as f:
        batch: list[Any] = []
        for line in f:
            msg = json.loads(line)
            authors.add(msg["value"]["author"])
            batch.append(msg)
            if len(batch) == BATCH:
                t0 = time.perf_counter()
                db.append_many(batch)
                seconds += time.perf_counter() - t0
                n += len(batch)
                batch = []
        if batch:
            t0 = time.perf_counter()
            db.append_many(batch)
            seconds += time.perf_counter() - t0
            n += len(batch)
    return {"n": n, "seconds": seconds, "authors": sorted(authors)}


def flume_catchup_child(path: str, authors: list[str], timeout: float) -> dict[str, Any]:
    """In this (fresh) process: open ``path``, mount the three views, wait until all are
    ready; then answer the checks."""
    from bench.flume_workloads import LATEST10_QUERY, _key_of, caught_up

    with caught_up(path, timeout) as (db, seconds):
        counts = db.by_type.get()
        latest = {
            a: [_key_of(x) for x in db.query.read(LATEST10_QUERY(a), reverse=True, limit=10)]
            for a in authors
        }
        t1 = time.perf_counter()
    return {
        "seconds": seconds,
        "close_seconds": time.perf_counter() - t1,
        "count_by_type": counts,
        "latest10": latest,
    }


def flume_catchup(path: Path, authors: list[str], timeout: float) -> dict[str, Any]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    out = _run(
        [sys.executable, "-m", "bench.vs_flumedb", "--child", str(path), str(timeout), *authors],
        cwd=ROOT,
        env=env,
        timeout=timeout + 120,
    )
    return _last_json(out)


def drop_flume_views(path: Path) -> None:
    shutil.rmtree(path / "views", ignore_errors=True)


# ------------------------------------------------------------------ flumedb side


def js_append(data: Path, path: Path, timeout: float) -> dict[str, Any]:
    out = _run(
        ["node", "flumedb_bench.js", "append", str(data), str(path)], cwd=JS, timeout=timeout
    )
    return _last_json(out)


def js_catchup(path: Path, authors: list[str], timeout: float) -> dict[str, Any]:
    out = _run(
        ["node", "flumedb_bench.js", "catchup", str(path), *authors], cwd=JS, timeout=timeout
    )
    return _last_json(out)


def drop_js_views(path: Path) -> None:
    for p in path.iterdir():
        if p.name != "log.offset":
            shutil.rmtree(p) if p.is_dir() else p.unlink()


# ------------------------------------------------------------------ the run


def _median(xs: list[float]) -> float:
    s = sorted(xs)
    m = len(s) // 2
    return s[m] if len(s) % 2 else (s[m - 1] + s[m]) / 2


def _loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def _du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def run(args: argparse.Namespace) -> dict[str, Any]:
    timeout = args.timeout
    load_start = _loadavg()
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    npm_ci(timeout)
    tmp = Path(tempfile.mkdtemp(prefix="flume-vs-flumedb-", dir=args.tmp))
    try:
        data = tmp / "messages.jsonl"
        print(f"generating {args.n:,} messages (seed {args.seed}) ...", flush=True)
        gen = _last_json(
            _run(
                ["node", "generate.js", str(args.n), str(data), str(args.seed)],
                cwd=JS,
                timeout=timeout,
            )
        )
        print(
            f"  {gen['n']:,} messages, {gen['mean_bytes']:.0f} bytes each on average "
            f"(compact JSON), types {gen['types']}, {gen['seconds']:.1f} s",
            flush=True,
        )

        js_dir, fl_dir = tmp / "flumedb", tmp / "flume"
        print("appending to flumedb (flumelog-offset) ...", flush=True)
        js_app = js_append(data, js_dir, timeout)
        print(f"  {js_app['seconds']:.1f} s", flush=True)
        print("appending to flume ...", flush=True)
        fl_app = flume_append(data, fl_dir)
        print(f"  {fl_app['seconds']:.1f} s", flush=True)
        data.unlink()  # not needed any more: both logs hold it

        rng = random.Random(args.seed + 1)
        authors = rng.sample(fl_app.pop("authors"), CHECK_AUTHORS)

        runs: list[dict[str, Any]] = []
        problems: list[str] = []
        for i in range(args.repeat):
            order = ("flumedb", "flume") if i % 2 == 0 else ("flume", "flumedb")
            one: dict[str, Any] = {}
            for system in order:
                if system == "flumedb":
                    drop_js_views(js_dir)
                    one["flumedb"] = js_catchup(js_dir, authors, timeout)
                else:
                    drop_flume_views(fl_dir)
                    one["flume"] = flume_catchup(fl_dir, authors, timeout)
                print(
                    f"round {i + 1}: {system} catch-up {one[system]['seconds']:.2f} s",
                    flush=True,
                )
            problems += [f"round {i + 1}: {p}" for p in check(one["flumedb"], one["flume"])]
            runs.append(one)

        js_s = [r["flumedb"]["seconds"] for r in runs]
        fl_s = [r["flume"]["seconds"] for r in runs]
        last = runs[-1]
        report: dict[str, Any] = {
            "benchmark": "vs_flumedb",
            "n": args.n,
            "seed": args.seed,
            "started": started,
            "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "data": {k: gen[k] for k in ("n", "seed", "bytes", "mean_bytes", "types")},
            "append": {"flumedb": js_app, "flume": fl_app},
            "catchup": {
                "flumedb": {"runs": js_s, "best": min(js_s), "median": _median(js_s)},
                "flume": {"runs": fl_s, "best": min(fl_s), "median": _median(fl_s)},
                "ratio_best": min(js_s) / min(fl_s),
                "ratio_median": _median(js_s) / _median(fl_s),
            },
            "ready_at_flumedb": [r["flumedb"].get("ready_at") for r in runs],
            "peak_rss_mb_flumedb": [r["flumedb"].get("peak_rss_bytes", 0) / 1e6 for r in runs],
            "disk_mb": {
                "flumedb": _du(js_dir) / 1e6,
                "flumedb_log": (js_dir / "log.offset").stat().st_size / 1e6,
                "flume": _du(fl_dir) / 1e6,
                "flume_log": _du(fl_dir / "log") / 1e6 if (fl_dir / "log").exists() else None,
            },
            "checks": {
                "authors": authors,
                "count_by_type": last["flume"]["count_by_type"],
                "problems": problems,
                "ok": not problems,
            },
            "loadavg": {"start": load_start, "end": _loadavg()},
            "machine": {
                **machine.describe(),
                "node": node_version(),
                "js_packages": js_versions(),
            },
        }
        return report
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def check(js: dict[str, Any], fl: dict[str, Any]) -> list[str]:
    problems = []
    if js["count_by_type"] != fl["count_by_type"]:
        problems.append(f"count by type differs: {js['count_by_type']} vs {fl['count_by_type']}")
    for a, keys in js["latest10"].items():
        if len(keys) != 10 and len(keys) != len(fl["latest10"].get(a, [])):
            problems.append(f"latest 10 of {a}: flumedb gave {len(keys)}")
        if fl["latest10"].get(a) != keys:
            problems.append(f"latest 10 of {a} differ")
    return problems


def print_report(r: dict[str, Any]) -> None:
    c = r["catchup"]
    print()
    print(f"3-view catch-up of {r['n']:,} messages ({r['data']['mean_bytes']:.0f} bytes avg)")
    for system in ("flumedb", "flume"):
        runs = ", ".join(f"{s:.2f}" for s in c[system]["runs"])
        print(
            f"  {system:8} best {c[system]['best']:7.2f} s  median {c[system]['median']:7.2f} s"
            f"  (runs: {runs})"
        )
    print(f"  flume is {c['ratio_best']:.2f}x faster (best), {c['ratio_median']:.2f}x (median)")
    print(f"  answers agree: {r['checks']['ok']}")
    for p in r["checks"]["problems"]:
        print(f"    {p}")
    print(f"  loadavg start {r['loadavg']['start']}, end {r['loadavg']['end']}")


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench.vs_flumedb", description=__doc__.split("\n")[0]
    )
    p.add_argument("--n", type=int, default=1_000_000, help="messages (default 1,000,000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the data set (default 0)")
    p.add_argument("--repeat", type=int, default=1, help="catch-up rounds (default 1)")
    p.add_argument("--timeout", type=float, default=3600.0, help="per step, seconds")
    p.add_argument("--tmp", default=None, help="where the temp dir goes (default system temp)")
    p.add_argument("--keep", action="store_true", help="keep the temp dir")
    p.add_argument("--save", action="store_true", help="write the JSON to --out")
    p.add_argument("--out", default=str(ROOT / "bench" / "results"), help="results directory")
    return p.parse_args(argv)


def main(argv: list[str]) -> int:
    if argv and argv[0] == "--child":
        path, timeout, authors = argv[1], float(argv[2]), argv[3:]
        print(json.dumps(flume_catchup_child(path, authors, timeout)))
        return 0
    args = parse(argv)
    report = run(args)
    print_report(report)
    if args.save:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        name = time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + f"-vs-flumedb-n{args.n}.json"
        (out / name).write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {out / name}")
    return 0 if report["checks"]["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
