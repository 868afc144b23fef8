"""What the command line shares: its one-line errors and their CLI phrasing, opening a
directory for a command, progress bars while views catch up, sizes, and the PATH argument
syntax (``value.author``). Used by :mod:`flume.cli` and :mod:`flume.demo`; nothing here is
part of the library's API.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import sys
import time
from collections.abc import Iterable, Sequence
from typing import IO, Any, NoReturn, Self

import click

import flume
from flume.errors import DirectoryNotFoundError, LockedError

#: Values appended per ``append_many`` transaction by ``append`` and ``import``.
BATCH = 1000


#: How often progress bars poll the views while waiting for them.
PROGRESS_POLL_SECONDS = 0.05


class CliError(click.ClickException):
    """A failed command: printed as ``flume: error: <message>``, exit code 1."""

    exit_code = 1


def fail(message: str) -> NoReturn:
    """Stop the command with ``flume: error: <message>`` on stderr and exit code 1."""
    raise CliError(message)


def error_line(message: str) -> None:
    text = " ".join(message.split())  # one line, whatever the message held
    click.echo(f"flume: error: {text}", err=True)


#: The directory of the running command, for remedies that name it (set by :func:`open_db`).
_directory: list[str] = []


def remember_directory(directory: str) -> None:
    """Note the directory the running command works on, for :func:`cli_phrasing`."""
    _directory.append(directory)


def last_directory() -> str | None:
    """The directory the running command works on, if it said (see :func:`remember_directory`)."""
    return _directory[-1] if _directory else None


def forget_directories() -> None:
    """A new command starts: it has named no directory yet."""
    _directory.clear()


# The library's remedies spelled for the command line, in order (longer spellings first).
_PHRASES: tuple[tuple[str, str], ...] = (
    (r"Pass a larger timeout=, or check db\.status\(\)",
     "Pass a larger --timeout SECONDS, or check `flume status {dir}`"),
    (r"\btimeout must be None or a number", "--timeout must be a number"),
    (r"\blimit must be None or an int", "--limit must be an int"),
    (r"use reverse=False with live=True", "drop --reverse when you give --live"),
    (r"use reverse=True to read backwards", "use --reverse to read backwards"),
    (r"fix the view's function and declare it with a new version= to rebuild it",
     ("rebuild it with `flume rebuild {dir}` (a view defined by code: fix its function and "
      "declare it with a new version)")),
    (r"read db\.since for the last one", "`flume status {dir}` shows the last one"),
    (r"db\.status\(\)", "`flume status {dir}`"),
    (r"db\.rebuild\(\)", "`flume rebuild {dir}`"),
    (r"\bseqs=True\b", "--seqs"),
    (r"\breverse=True\b", "--reverse"),
    (r"\blive=True\b", "--live"),
    (r"\b(gte|gt|lte|lt|limit|timeout)=(?=[\s,;:.)]|$)", r"--\1"),
)


def cli_phrasing(message: str, directory: str | None = None) -> str:
    """``message`` (a library error's) with its Python remedies (``timeout=``,
    ``reverse=True``, ``db.status()``...) spelled as the CLI's options and commands."""
    where = shlex.quote(directory) if directory else "DIR"
    for pattern, replacement in _PHRASES:
        spelled = replacement.replace("{dir}", where.replace("\\", "\\\\"))
        message = re.sub(pattern, spelled, message)
    return message


def open_db(directory: str, *, write: bool, timeout: float | None = None) -> flume.Flume:
    """Open ``directory`` for a command: read-only commands with ``readonly=True`` (they never
    create it); write commands take the writer lock (creating the directory when missing).

    Raises (as one-line CLI errors): a missing directory, a directory locked by a writer.
    """
    remember_directory(directory)
    try:
        if write:
            return flume.open(directory)
        if timeout is None:
            return flume.open(directory, readonly=True)
        return flume.open(directory, readonly=True, timeout=timeout)
    except DirectoryNotFoundError:
        fail(
            f"{directory} does not exist: there is no flume database there (create one with "
            f"`flume append {shlex.quote(directory)} FILE` or "
            f"`flume demo {shlex.quote(directory)}`)"
        )
    except LockedError as e:
        first = str(e).split(";")[0]
        fail(
            f"{first}; only one writer at a time: stop it first, or use read-only commands "
            "(get, stream, query, status, export, verify, index list), which work alongside it"
        )


class _NoBar:
    """A progress bar that shows nothing (output that is not a terminal)."""

    def __init__(self, length: int) -> None:
        self.length = length

    def update(self, n: int) -> None:
        pass

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def progress(length: int, label: str, file: IO[str] | None = None) -> Any:
    """A click progress bar on ``file`` (default stderr), or nothing when that is not a
    terminal (so that piped and captured output holds no bars)."""
    out = file if file is not None else sys.stderr
    if not out.isatty():
        return _NoBar(max(length, 1))
    return click.progressbar(
        length=max(length, 1),
        label=label,
        file=out,  # type: ignore[arg-type]
        show_pos=True,
        width=30,
    )


def wait_for_views(
    db: flume.Flume, label: str = "indexing", file: IO[str] | None = None,
    names: Iterable[str] | None = None,
) -> float:
    """Block until the mounted views (or those ``names``) have caught up with the log,
    showing a progress bar when that takes a while; return the seconds it took.

    Raises:
        ViewError: a view stopped on an entry.
    """
    started = time.monotonic()
    wanted = set(db.views) if names is None else set(names)

    def state() -> tuple[int, int]:
        status = db.status()
        target = status["since"] + 1
        done = total = 0
        for name, info in status["views"].items():
            if name not in wanted:
                continue
            if info["state"] == "failed":
                db.views[name].ready()  # raises the view's error
            total += target
            done += min(target, info["since"] + 1)
        return done, total

    done, total = state()
    if done >= total:
        return time.monotonic() - started
    # Short waits need no bar; long ones get one.
    deadline = time.monotonic() + 0.3
    while done < total and time.monotonic() < deadline:
        time.sleep(0.02)
        done, total = state()
    if done < total:
        with progress(total, label, file) as bar:
            shown = 0
            while True:
                bar.update(done - shown)
                shown = done
                if done >= total:
                    break
                time.sleep(PROGRESS_POLL_SECONDS)
                done, total = state()
                if total != bar.length:
                    bar.length = max(total, 1)
    for name in wanted:
        db.views[name].ready()
    return time.monotonic() - started


def parse_path_arg(text: str) -> list[str]:
    """``value.author`` -> ``["value", "author"]``; a JSON list (``'["a.b", "c"]'``) for keys
    holding dots."""
    if text.startswith("["):
        try:
            path = json.loads(text)
        except json.JSONDecodeError as e:
            fail(f"path {text!r} is not a JSON list: {e.msg}")
        if not isinstance(path, list) or not path or not all(isinstance(s, str) for s in path):
            fail(f"path {text!r}: a JSON path is a non-empty list of strings")
        return path
    steps = text.split(".")
    if not text or any(not s for s in steps):
        fail(f"path {text!r} has an empty step; write paths like value.author")
    return steps


def format_path_arg(path: Sequence[str]) -> str:
    """``["value", "author"]`` -> ``value.author`` (a JSON list when a key holds a dot): a
    PATH argument that :func:`parse_path_arg` reads back. Not ``query.paths.format_path``,
    which writes a position in a value for people (``value[0].x``) and is not read back."""
    if all(s and "." not in s and not s.startswith("[") for s in path):
        return ".".join(path)
    return json.dumps(list(path), ensure_ascii=False)


def file_size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def dir_size(path: str) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.path.getsize(os.path.join(root, name))
    return total
