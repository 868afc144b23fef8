"""Run docs/tutorial.md, so that it never goes stale.

In document order, in one fresh directory:

- each ```python block is executed, all in one namespace (as if typed into one session);
- each ```console block is run line by line: a line starting with ``$ `` is a shell command
  (``flume`` is this interpreter's ``python -m flume``), the lines up to the next command are
  its expected output (stdout and stderr together), where ``...`` matches any text; a command
  whose expected output holds ``flume: error:`` must fail, every other one must succeed;
- ```sh blocks are shown to the reader but not run (installing, the full-size demo).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

TUTORIAL = Path(__file__).resolve().parent.parent / "docs" / "tutorial.md"
FENCE = re.compile(r"^```([\w-]*)[^\n]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
RUN_TIMEOUT = 120


@dataclass
class Block:
    lang: str
    code: str
    line: int  # of the opening fence, 1-based


def blocks(text: str) -> list[Block]:
    """The fenced code blocks of a markdown text, in order."""
    return [
        Block(m.group(1), m.group(2), text.count("\n", 0, m.start()) + 1)
        for m in FENCE.finditer(text)
    ]


def commands(block: Block) -> list[tuple[str, str, int]]:
    """``(command, expected output, line)`` for each ``$ `` line of a console block."""
    out: list[tuple[str, str, int]] = []
    for offset, line in enumerate(block.code.splitlines(), start=block.line + 1):
        if line.startswith("$ "):
            out.append((line[2:], "", offset))
        elif out:
            command, expected, at = out[-1]
            out[-1] = (command, expected + line + "\n", at)
        elif line.strip():
            raise AssertionError(f"{TUTORIAL}:{offset}: output before any `$ ` command")
    return out


def matches(expected: str, actual: str) -> bool:
    """Whether ``actual`` is ``expected`` with each ``...`` standing for any text."""
    pattern = ".*?".join(re.escape(part) for part in expected.strip().split("..."))
    return re.fullmatch(pattern, actual.strip(), re.DOTALL) is not None


def normalise(output: str) -> str:
    return "\n".join(line.rstrip() for line in output.strip().splitlines())


@pytest.fixture
def shell_env(tmp_path: Path) -> dict[str, str]:
    """An environment whose ``flume`` runs this interpreter's ``python -m flume``."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "flume"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m flume "$@"\n')
    shim.chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}


def test_the_tutorial_has_examples_of_each_kind() -> None:
    kinds = {b.lang for b in blocks(TUTORIAL.read_text(encoding="utf-8"))}
    assert {"python", "console"} <= kinds


def test_tutorial_runs(tmp_path: Path, shell_env: dict[str, str],
                       monkeypatch: pytest.MonkeyPatch) -> None:
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("PATH", shell_env["PATH"])  # python blocks that run `flume` find it too
    namespace: dict[str, object] = {"__name__": "__tutorial__"}
    ran = 0
    try:
        for block in blocks(TUTORIAL.read_text(encoding="utf-8")):
            if block.lang == "python":
                # Padded so that tracebacks give the line numbers of the tutorial itself.
                code = compile("\n" * block.line + block.code, str(TUTORIAL), "exec")
                exec(code, namespace)  # noqa: S102 - running the documentation is the point
                ran += 1
            elif block.lang == "console":
                for command, expected, line in commands(block):
                    proc = subprocess.run(
                        ["bash", "-c", command], cwd=work, env=shell_env, text=True,
                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=RUN_TIMEOUT,
                        check=False,
                    )
                    actual = normalise(proc.stdout)
                    where = f"{TUTORIAL}:{line}: $ {command}"
                    assert matches(normalise(expected), actual), (
                        f"{where}\n--- expected ---\n{expected}--- got ---\n{actual}"
                    )
                    should_fail = "flume: error:" in expected
                    assert (proc.returncode != 0) == should_fail, (
                        f"{where}: exit code {proc.returncode}\n{actual}"
                    )
                    ran += 1
    finally:
        db = namespace.get("db")
        close = getattr(db, "close", None)
        if callable(close):
            close()
    assert ran > 20
