"""The `flume` command on odd input and under Ctrl-C, driven for real in subprocesses.

- a group without a command prints click's help;
- a seq beyond any log is "not in the log", not an OverflowError;
- NaN and the infinities are shown as standard JSON and round-trip through export/import;
- errors name command-line remedies, not the library's keyword arguments;
- SIGINT at random moments of `append` and `import`: the message's counts match the log, the
  database verifies, and an import into a new directory is all or nothing.
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import flume
from flume.console import cli_phrasing
from flume.views import Query, Reduce

RUN_TIMEOUT = 60
WAIT = 10.0


def run(*args: Any, input: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flume", *map(str, args)],
        input=input, capture_output=True, text=True, timeout=RUN_TIMEOUT, check=False,
    )


def ok(*args: Any, input: str | None = None) -> str:
    proc = run(*args, input=input)
    assert proc.returncode == 0, (args, proc.stderr)
    assert "Traceback" not in proc.stderr
    return proc.stdout


def error(*args: Any, input: str | None = None) -> str:
    proc = run(*args, input=input)
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("flume: error: "), proc.stderr
    return lines[0]


def strict_json(line: str) -> Any:
    """``json.loads`` that refuses the non-standard NaN/Infinity literals."""
    def refuse(name: str) -> Any:
        raise AssertionError(f"non-standard JSON {name} in {line!r}")
    return json.loads(line, parse_constant=refuse)


# -- help -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("args", [(), ("index",)])
def test_a_group_without_a_command_prints_its_help(args: tuple[str, ...]) -> None:
    proc = run(*args)
    assert proc.returncode == 2
    text = proc.stdout + proc.stderr
    assert "flume: error" not in text
    assert text.startswith("Usage: flume")
    assert "Commands:" in text and len(text.splitlines()) > 5


# -- seqs ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("seq", ["99999999999999999999999", "18446744073709551616", "-5"])
def test_get_of_a_seq_beyond_any_log(tmp_path: Path, seq: str) -> None:
    ok("append", tmp_path / "db", input="1\n")
    line = error("get", tmp_path / "db", "--", seq)
    assert f"seq {seq} is not in the log" in line


# -- NaN and the infinities ----------------------------------------------------------------------


SPECIAL = "1\nNaN\n-Infinity\n[Infinity, 2.5]\n{\"x\": NaN}\n"


def test_non_finite_floats_are_shown_as_standard_json(tmp_path: Path) -> None:
    db = tmp_path / "db"
    ok("append", db, input=SPECIAL)
    values = [strict_json(line)["value"] for line in ok("stream", db).splitlines()]
    assert values == [1, {"$float": "NaN"}, {"$float": "-Infinity"},
                      [{"$float": "Infinity"}, 2.5], {"x": {"$float": "NaN"}}]
    assert strict_json(ok("get", db, "2")) == {"$float": "-Infinity"}
    out = ok("query", db, '{"$map": "x"}')
    assert [strict_json(line) for line in out.splitlines()] == [{"$float": "NaN"}]


def test_export_refuses_non_finite_floats_without_the_flag(tmp_path: Path) -> None:
    ok("append", tmp_path / "db", input=SPECIAL)
    line = error("export", tmp_path / "db")
    assert "seq 1" in line and "NaN" in line and "--tag-floats" in line


def test_non_finite_floats_round_trip_through_export_and_import(tmp_path: Path) -> None:
    ok("append", tmp_path / "a", input=SPECIAL)
    exported = ok("export", tmp_path / "a", "--tag-floats")
    for line in exported.splitlines():
        strict_json(line)
    (tmp_path / "a.jsonl").write_text(exported)
    ok("import", tmp_path / "b", tmp_path / "a.jsonl", "--tag-floats")
    with flume.open(tmp_path / "a", readonly=True) as a, flume.open(tmp_path / "b", readonly=True) as b:
        assert repr(list(a.stream())) == repr(list(b.stream()))
        assert math.isnan(b.get(1)) and b.get(2) == -math.inf


def test_export_refuses_a_dict_that_would_read_back_as_a_tag(tmp_path: Path) -> None:
    ok("append", tmp_path / "db", input='{"$float": "NaN"}\n')
    assert strict_json(ok("export", tmp_path / "db")) == {"$float": "NaN"}  # no flag: plain
    line = error("export", tmp_path / "db", "--tag-floats")
    assert "seq 0" in line and "reads back as a tagged value" in line


def test_import_refuses_a_bad_float_tag(tmp_path: Path) -> None:
    line = error("import", tmp_path / "db", "-", "--tag-floats", input='{"$float": "nan"}\n')
    assert "line 1" in line and "NaN, Infinity, -Infinity" in line
    assert not (tmp_path / "db").exists()


# -- remedies -----------------------------------------------------------------------------------

# A Python spelling in a message: a keyword argument (`timeout=`, `reverse=True`) or a call of
# the library (`db.status()`).
PYTHON_SPELLING = re.compile(r"\b[a-z_]+=(?!=)|\bdb\.\w+|\w\(\)")


def _library_errors(tmp_path: Path) -> list[flume.FlumeError]:
    """Real errors of the library whose messages hold Python remedies."""
    errors: list[flume.FlumeError] = []

    def catch(fn: Any) -> None:
        try:
            fn()
        except flume.FlumeError as e:
            errors.append(e)
        else:
            raise AssertionError("no error")

    def fail(_acc: Any, _value: Any) -> Any:
        raise ValueError("boom")

    with flume.open(tmp_path / "lib") as db:
        db.append(1)
        v: Any = db
        db.use("broken", Reduce(fail, initial=0))
        db.use("q", Query(indexes={"a": ["a"]}))
        catch(lambda: v.broken.get(timeout=WAIT))
        catch(lambda: db.get(5))
        catch(lambda: db.stream(gt=5, lt=2))
        catch(lambda: db.stream(gt=1, gte=2))
        catch(lambda: db.stream(reverse=True, live=True))
        catch(lambda: v.q.read({"$map": "a"}, seqs=True))
        catch(lambda: v.q.read(None, timeout=float("nan")))
        catch(lambda: v.q.read(None, limit=-1))
    with flume.open(tmp_path / "lib", readonly=True, timeout=0.05) as reader:
        reader.use("count", Reduce(lambda acc, _v: acc + 1, initial=0))
        catch(lambda: reader.count.get())
    return errors


def test_library_remedies_are_spelled_for_the_command_line(tmp_path: Path) -> None:
    errors = _library_errors(tmp_path)
    assert len(errors) == 9
    assert any(PYTHON_SPELLING.search(str(e)) for e in errors)  # what the CLI must rewrite
    for e in errors:
        phrased = cli_phrasing(str(e), "my dir")
        assert not PYTHON_SPELLING.search(phrased), (str(e), phrased)
    timeout = cli_phrasing(str(errors[-1]), "my dir")
    assert "--timeout" in timeout and "`flume status 'my dir'`" in timeout
    assert "`flume rebuild 'my dir'`" in cli_phrasing(str(errors[0]), "my dir")


@pytest.mark.parametrize(("args", "remedy"), [
    (("stream", "{db}", "--gt", "5", "--lt", "2"), "--reverse"),
    (("stream", "{db}", "--gt", "1", "--gte", "2"), "--gt and --gte"),
    (("stream", "{db}", "--reverse", "--live"), "--reverse"),
    (("query", "{db}", "[]", "--timeout", "nan"), "--timeout"),
    (("query", "{db}", "[]", "--timeout", "-1"), "--timeout"),
    (("query", "{db}", '{"$map": "a"}', "--seqs"), "--seqs"),
])
def test_cli_errors_name_cli_remedies(tmp_path: Path, args: tuple[str, ...], remedy: str) -> None:
    db = tmp_path / "db"
    ok("append", db, input='{"a": 1}\n')
    line = error(*(str(db) if a == "{db}" else a for a in args))
    assert remedy in line
    assert not PYTHON_SPELLING.search(line.replace(str(db), "DIR")), line


def test_query_timeout_inf_waits_like_none(tmp_path: Path) -> None:
    ok("append", tmp_path / "db", input='{"a": 1}\n')
    assert strict_json(ok("query", tmp_path / "db", "[]", "--timeout", "inf")) == {"a": 1}


# -- Ctrl-C ---------------------------------------------------------------------------------------

LINES = 200_000
ROUNDS = 6
INTERRUPTED = re.compile(
    r"interrupted: (?:all )?([\d,]+) (?:of the ([\d,]+) )?values appended(?:, last seq ([\d,]+))?"
)


@pytest.fixture(scope="module")
def big_input(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("input") / "values.jsonl"
    with path.open("w") as f:
        for i in range(LINES):
            f.write(json.dumps({"i": i, "text": "x" * 40}) + "\n")
    return path


def _interrupt(args: list[str], delay: float) -> subprocess.CompletedProcess[str]:
    proc = subprocess.Popen([sys.executable, "-m", "flume", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=RUN_TIMEOUT)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _before_flume_started(proc: subprocess.CompletedProcess[str]) -> bool:
    """A signal while Python itself starts (or imports flume) gets Python's own answer, a
    traceback: the command has not begun, nothing was written."""
    return "KeyboardInterrupt" in proc.stderr and "interrupted:" not in proc.stderr


def _log_of(path: Path) -> list[Any]:
    with flume.open(path, readonly=True) as db:
        return list(db.stream(values=False))


def _number(text: str) -> int:
    return int(text.replace(",", ""))


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_ctrl_c_during_append_says_what_was_written(tmp_path: Path, big_input: Path,
                                                    round_: int) -> None:
    delay = random.Random(round_).uniform(0.3, 2.5)
    db = tmp_path / "db"
    proc = _interrupt(["append", str(db), str(big_input)], delay)
    if _before_flume_started(proc):
        assert not db.exists()
        return
    assert "Traceback" not in proc.stderr, proc.stderr
    if proc.stdout.strip() == str(LINES - 1):  # it finished first (the signal came on exit)
        assert _log_of(db) == list(range(LINES))
        return
    assert proc.returncode == 130, (delay, proc.returncode, proc.stderr)
    if "nothing was appended" in proc.stderr:
        assert not db.exists() or _log_of(db) == []
        return
    found = INTERRUPTED.search(proc.stderr)
    assert found, (delay, proc.stderr)
    n = _number(found.group(1))
    last = _number(found.group(3)) if found.group(3) else -1  # none when nothing was appended
    if found.group(2):
        assert _number(found.group(2)) == LINES
    assert n == last + 1
    assert _log_of(db) == list(range(n))  # a prefix of the input, in order
    ok("verify", db)
    with flume.open(db, readonly=True) as reader:
        assert reader.get(last)["i"] == last


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_ctrl_c_during_import_into_a_new_dir_leaves_nothing(tmp_path: Path, big_input: Path,
                                                             round_: int) -> None:
    delay = random.Random(100 + round_).uniform(0.3, 2.5)
    target = tmp_path / "restored"
    proc = _interrupt(["import", str(target), str(big_input)], delay)
    if _before_flume_started(proc):
        assert not target.exists()
        return
    assert "Traceback" not in proc.stderr, proc.stderr
    assert [p.name for p in tmp_path.iterdir() if ".importing-" in p.name] == []
    if proc.stdout.strip() == str(LINES - 1):
        assert _log_of(target) == list(range(LINES))
        return
    assert proc.returncode == 130, (delay, proc.returncode, proc.stderr)
    assert "interrupted: nothing was imported" in proc.stderr
    assert not target.exists()
    ok("import", target, big_input)  # simply run it again
    assert _log_of(target) == list(range(LINES))
    ok("verify", target)


def test_import_into_an_empty_directory_is_written_aside(tmp_path: Path) -> None:
    target = tmp_path / "empty"
    target.mkdir()
    ok("import", target, "-", input="1\n2\n")
    assert _log_of(target) == [0, 1]
    assert oct(target.stat().st_mode & 0o777) == oct(0o777 & ~_umask())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
