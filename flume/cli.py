"""The ``flume`` command (also ``python -m flume``): a thin command line over the library.

Values go in and out as JSON lines (one JSON value per line). Reads take the library's range
vocabulary (``--gt/--gte/--lt/--lte/--reverse/--limit/--live/--old/--no-old``). Read-only
commands (get, stream, query, index list, status, export, verify) open the directory with
``readonly=True``, so they work while another process writes to it; write commands (append,
import, index add/drop, rebuild, demo) take the writer lock and fail clearly when another
writer holds it. Every error is one line on stderr, ``flume: error: ...``, with a non-zero
exit code: 1 for a failed operation, 2 for a wrong command line.

JSON cannot hold everything flume stores: bytes are shown as ``{"$base64": "..."}`` and the
floats NaN, Infinity and -Infinity as ``{"$float": "NaN"}`` by the display commands (get,
stream, query), so that every line is standard JSON; ``export`` refuses them unless
``--base64-bytes`` / ``--tag-floats`` is given (and ``import`` with the same flag turns them
back into bytes and floats). Dict keys that are not strings are shown as strings, and refused
by ``export``.

Errors name command-line remedies (``--timeout``, ``--reverse``, ``flume status DIR``), not the
library's keyword arguments: :func:`cli_phrasing` rewrites the library's spellings.
"""

from __future__ import annotations

import binascii
import contextlib
import fcntl
import json
import os
import shlex
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import IO, Any, NoReturn, TypeVar

import click

import flume
from flume import codec, fs
from flume.console import (
    BATCH,
    CliError,
    cli_phrasing,
    dir_size,
    error_line,
    fail,
    file_size,
    forget_directories,
    format_path_arg,
    last_directory,
    open_db,
    parse_path_arg,
    progress,
    remember_directory,
    wait_for_views,
)
from flume.demo import run_demo
from flume.errors import FlumeError, NotFoundError, QueryError
from flume.jsonlines import BYTES_KEY, LineWriter, NotJson, dumps, dumps_exact, untag

__all__ = ["cli", "main"]

#: The name of the Query view the CLI uses when ``--view`` is not given.
DEFAULT_VIEW = "query"

F = TypeVar("F", bound=Callable[..., Any])


# -- running a command ----------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``flume`` command with ``argv`` (default: ``sys.argv[1:]``); return the exit
    code. Errors never show a traceback: one line on stderr, then a non-zero code (a command
    group given no command prints its help, with code 2, as click does)."""
    forget_directories()
    try:
        result = cli.main(args=list(argv) if argv is not None else None, prog_name="flume",
                          standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as e:
        e.show()
        return e.exit_code
    except click.UsageError as e:
        hint = f" (see '{e.ctx.command_path} --help')" if e.ctx is not None else ""
        error_line(e.format_message() + hint)
        return e.exit_code
    except click.ClickException as e:
        error_line(e.format_message())
        return e.exit_code
    except FlumeError as e:
        error_line(cli_phrasing(str(e), last_directory()))
        return 1
    except click.Abort:
        return 130
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`flume stream DIR | head`): stop quietly, as `cat` would.
        with contextlib.suppress(OSError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        return 141
    except OSError as e:
        error_line(str(e))
        return 1
    return result if isinstance(result, int) else 0


# -- opening -----------------------------------------------------------------------------------


def _query_views(db: flume.Flume) -> dict[str, flume.MountedView]:
    return {name: m for name, m in db.views.items() if m.view.kind == "query"}


class ScanView:
    """What `flume query` reads when DIR has no Query view: a Query view without indexes,
    whose every read is a full scan of the log (as ``Query(indexes={})`` is in the library).
    It is never mounted: it reads the log through the db's public API and stores nothing."""

    def __init__(self, db: flume.Flume) -> None:
        from flume.views import Query
        from flume.views.base import ViewContext
        from flume.views.store import MemoryFamily

        def scan_log(upto: int, reverse: bool) -> Iterator[tuple[int, Any]]:
            if upto < 0:
                return iter(())
            return iter(db.stream(lte=upto, reverse=reverse))

        self.view = Query(indexes={})
        self.view.open(ViewContext(
            name="(no Query view: full scan)", family=MemoryFamily(), readonly=True,
            since=db.since, deletes=lambda: db.log.deletes.value,
            get_values=lambda seqs: [db.get(s) for s in seqs],
            scan_log=scan_log, follow=lambda after: db.stream(gt=after, live=True),
        ))

    def read(self, query: Any, **options: Any) -> Any:
        """As a Query view's ``read``: every entry of the log runs through ``query``."""
        return self.view.read(query, **options)

    def explain(self, query: Any) -> dict[str, Any]:
        """As a Query view's ``explain``; ``view`` is None and ``scan`` says why."""
        plan = self.view.explain(query)
        return {**plan, "view": None,
                "note": "the directory has no Query view: every query is a full scan of the log"}


def query_view(db: flume.Flume, name: str | None, directory: str) -> Any:
    """The Query view ``name`` of ``db`` (default: ``query``, or the only Query view): a
    :class:`flume.MountedView` with ``read`` and ``explain`` (set per view at mount, hence
    ``Any`` to the type checker). With no name given and no Query view in ``db``, a
    :class:`ScanView` that answers by full scans."""
    views = _query_views(db)
    if name is None and not views:
        return ScanView(db)
    if name is None:
        if DEFAULT_VIEW in views or len(views) != 1:
            name = DEFAULT_VIEW
        else:
            name = next(iter(views))
    if name not in views:
        where = f"Query views there: {', '.join(sorted(views))}" if views else "it has none"
        fail(
            f"{directory} has no Query view named {name!r} ({where}); declare an index with "
            f"`flume index add {shlex.quote(directory)} NAME PATH...`"
        )
    return views[name]


def _indexes_of(view: flume.MountedView) -> dict[str, list[list[str]]]:
    definition = view.view.definition() or {}
    indexes = definition.get("indexes", {}) if isinstance(definition, dict) else {}
    return {str(k): [list(p) for p in v] for k, v in indexes.items()}


# -- progress ----------------------------------------------------------------------------------


# -- shared options ----------------------------------------------------------------------------

DIR = click.argument("directory", metavar="DIR", type=click.Path(file_okay=True, dir_okay=True))


def seq_range_options(f: F) -> F:
    """``--gt/--gte/--lt/--lte``: bounds on seqs, as in ``db.stream(gt=..., ...)``."""
    for name, text in reversed((
        ("--gt", "only seqs greater than this"),
        ("--gte", "only seqs greater than or equal to this"),
        ("--lt", "only seqs less than this"),
        ("--lte", "only seqs less than or equal to this"),
    )):
        f = click.option(name, type=int, default=None, metavar="SEQ", help=text)(f)
    return f


def read_options(f: F) -> F:
    """``--reverse --limit --live --old/--no-old``, as in the library's reads."""
    f = click.option("--old/--no-old", default=True, show_default=True,
                     help="with --live: also output what is already there (--no-old: only new "
                     "entries)")(f)
    f = click.option("--live", is_flag=True,
                     help="keep going: output new entries as they are appended, until Ctrl-C")(f)
    f = click.option("--limit", type=click.IntRange(min=0), default=None, metavar="N",
                     help="output at most N items (0 outputs nothing)")(f)
    f = click.option("--reverse", is_flag=True, help="newest first (descending order)")(f)
    return f


# -- the command group -------------------------------------------------------------------------


class _Ordered(click.Group):
    """A group that lists its commands in the order they are declared (demo first)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)


@click.group(cls=_Ordered,
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="flumedb", prog_name="flume", message="%(prog)s %(version)s")
def cli() -> None:
    """flume: an embedded database of one append-only log and views streamed from it.

    Start with `flume demo`, which builds a 100,000-message social feed with three views and
    queries it. Values go in and out as JSON lines. Read-only commands (get, stream, query,
    index list, status, export, verify) work while another process writes to the directory.
    """


# -- demo --------------------------------------------------------------------------------------


@cli.command(short_help="Build and query a sample social feed: start here.")
@click.argument("directory", metavar="[DIR]", required=False, type=click.Path())
@click.option("--n", "count", type=click.IntRange(min=1), default=100_000, show_default=True,
              help="how many messages to generate")
@click.option("--authors", type=click.IntRange(min=1), default=1000, show_default=True,
              help="how many authors write them")
def demo(directory: str | None, count: int, authors: int) -> None:
    """Build a sample social feed in DIR and query it: what flume is for, in one command.

    Generates COUNT deterministic social-feed messages (posts, votes, contacts, abouts, as in
    Secure Scuttlebutt), appends them with a progress bar, declares three views (a Reduce, an
    Index and a Query view), waits for them, runs a handful of queries, printing each answer,
    its plan (explain) and its time, then shows the commands to query DIR yourself. Without
    DIR it uses a fresh temporary directory (kept afterwards, so you can query it).
    """
    run_demo(directory, count, authors)


# -- append / import ---------------------------------------------------------------------------


class _Source:
    """JSON lines from a file or stdin, read twice: first checked whole, then appended.

    stdin is copied to a temporary file as it is checked, so it too is read twice from disk,
    in constant memory.
    """

    def __init__(self, path: str, base64_bytes: bool = False, tag_floats: bool = False,
                 tombstones: bool = False) -> None:
        self.path = path
        self.tombstones = tombstones  # a line DELETED_LINE is a deleted entry (import)
        self.label = "stdin" if path == "-" else path
        self.base64_bytes = base64_bytes
        self.tag_floats = tag_floats
        self._spool: IO[bytes] | None = None
        self.size = 0 if path == "-" else os.path.getsize(path)
        self.lines = 0
        self.values = 0

    def _parse(self, number: int, raw: bytes) -> Any:
        try:
            text = raw.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError as e:
            fail(f"{self.label} line {number}: not UTF-8 ({e.reason} at byte {e.start}); "
                 "nothing was appended")
        try:
            value = json.loads(text)
        except json.JSONDecodeError as e:
            fail(f"{self.label} line {number}: not valid JSON ({e.msg} at column {e.colno}); "
                 "nothing was appended")
        if self.tombstones and _is_tombstone(value):
            return flume.DELETED
        if self.base64_bytes or self.tag_floats:
            try:
                value = untag(value, self.base64_bytes, self.tag_floats)
            except binascii.Error as e:
                fail(f"{self.label} line {number}: a {BYTES_KEY!r} value is not base64 ({e}); "
                     "nothing was appended")
            except ValueError as e:
                fail(f"{self.label} line {number}: {e}; nothing was appended")
        return value

    def _raw_lines(self, progress: Any = None, first: bool = False) -> Iterator[tuple[int, bytes]]:
        if self.path == "-" and first:
            stream: IO[bytes] = sys.stdin.buffer
        elif self._spool is not None:
            self._spool.seek(0)
            stream = self._spool
        else:
            stream = open(self.path, "rb")  # noqa: SIM115 (closed below)
        try:
            for number, raw in enumerate(stream, 1):
                if progress is not None:
                    progress.update(len(raw))
                if raw.strip():
                    yield number, raw
        finally:
            if stream is not sys.stdin.buffer and stream is not self._spool:
                stream.close()

    def check(self) -> None:
        """Parse and encode every line; fail on the first bad one (naming its line)."""
        if self.path == "-":
            self._spool = tempfile.TemporaryFile()  # noqa: SIM115 (closed by close())
        with self._bar("checking") as bar:
            for number, raw in self._raw_lines(bar, first=True):
                if self._spool is not None:
                    self._spool.write(raw if raw.endswith(b"\n") else raw + b"\n")
                value = self._parse(number, raw)
                try:
                    codec.encode(None if value is flume.DELETED else value)
                except FlumeError as e:
                    fail(f"{self.label} line {number}: {e}; nothing was appended")
                self.values += 1

    def batches(self) -> Iterator[list[Any]]:
        """The values, in batches of :data:`BATCH`, parsed again (they were checked)."""
        batch: list[Any] = []
        with self._bar("appending") as bar:
            for number, raw in self._raw_lines(bar):
                batch.append(self._parse(number, raw))
                if len(batch) >= BATCH:
                    yield batch
                    batch = []
            if batch:
                yield batch

    @contextlib.contextmanager
    def _bar(self, label: str) -> Iterator[Any]:
        if self.path == "-" or self.size == 0:
            yield None
            return
        with progress(self.size, label) as bar:
            yield bar

    def close(self) -> None:
        if self._spool is not None:
            self._spool.close()


def _append_file(directory: str, source: _Source, *, only_if_empty: bool) -> tuple[int, int]:
    """Check the whole source, then open DIR for writing and append it in batches of
    :data:`BATCH`, waiting for the stored views; return (values, last seq).

    The check comes before the open, so a bad input leaves no trace, not even a new DIR.
    With ``only_if_empty`` (import) a DIR that already holds entries is refused, and a DIR
    that does not exist yet (or is an empty directory) is written aside and moved into place
    at the end: all or nothing. Otherwise an interrupt (Ctrl-C) or a failure while appending
    says on stderr how many values were appended and the last seq, read back from DIR.
    """
    verb = "imported" if only_if_empty else "appended"
    try:
        try:
            source.check()
        except (KeyboardInterrupt, click.Abort):
            click.echo(f"interrupted: nothing was {verb} (the input was still being checked)",
                       err=True)
            raise
        if only_if_empty and _is_new(directory):
            return _import_aside(directory, source)
        return _append_in_place(directory, source, only_if_empty)
    finally:
        source.close()


def _is_new(directory: str) -> bool:
    """Whether ``directory`` does not exist or is an empty directory."""
    if not os.path.lexists(directory):
        return True
    return os.path.isdir(directory) and not os.path.islink(directory) and not os.listdir(directory)


def _append_in_place(directory: str, source: _Source, only_if_empty: bool) -> tuple[int, int]:
    verb = "imported" if only_if_empty else "appended"
    db: flume.Flume | None = None
    first = -1
    appending = False
    try:
        try:
            db = open_db(directory, write=True)
            first = db.since.value
            if only_if_empty and first >= 0:
                fail(
                    f"{directory} already holds {first + 1:,} entries; import restores "
                    "an export into a new or empty directory (use `flume append` to add to a log)"
                )
            appending = True
            _append_batches(db, source)
            return source.values, db.since.value
        finally:
            if db is not None:
                db.close()
    except (KeyboardInterrupt, click.Abort):
        what = _appended(directory, first, source.values) if appending else f"nothing was {verb}"
        click.echo(f"interrupted: {what}", err=True)
        raise
    except (FlumeError, OSError) as e:
        if not appending:
            raise
        message = cli_phrasing(str(e), directory) if isinstance(e, FlumeError) else str(e)
        fail(f"{message}; {_appended(directory, first, source.values)}")


def _append_batches(db: flume.Flume, source: _Source) -> None:
    for batch in source.batches():
        deleted = [i for i, v in enumerate(batch) if v is flume.DELETED]
        if not deleted:
            db.append_many(batch)
            continue
        # A deleted entry of an export: appended as null and deleted, so that it keeps its seq.
        last = db.append_many([None if v is flume.DELETED else v for v in batch])
        first = last - len(batch) + 1
        db.delete_many([first + i for i in deleted])
    wait_for_views(db)


#: How ``export`` writes a deleted entry, and ``import`` reads one back (keeping its seq).
DELETED_LINE = {"$deleted": True}


def _is_tombstone(value: Any) -> bool:
    return (type(value) is dict and len(value) == 1
            and value.get("$deleted") is True)


def _appended(directory: str, first: int, total: int) -> str:
    """What an interrupted append wrote: counted from DIR itself (a commit that an interrupt
    cut short either happened whole or not at all), e.g. ``183,000 of the 300,000 values
    appended, last seq 182,999``."""
    try:
        with flume.open(directory, readonly=True) as db:
            last = db.since.value
    except FlumeError as e:
        return f"how many values were appended is unknown ({e}); see `flume status {directory}`"
    n = last - first
    if n == total:
        return (f"all {n:,} values appended, last seq {last:,}; the Query views catch up at the "
                "next write command")
    return f"{n:,} of the {total:,} values appended" + (f", last seq {last:,}" if last >= 0 else "")


def _import_aside(directory: str, source: _Source) -> tuple[int, int]:
    """Import into a temporary directory beside DIR, then rename it to DIR: an interrupted or
    failed import leaves DIR as it was (missing, or empty), so it can simply be run again."""
    target = os.path.abspath(directory)
    parent = os.path.dirname(target)
    os.makedirs(parent, exist_ok=True)
    prefix = f".{os.path.basename(target)}.importing-"
    fs.remove_abandoned(parent, prefix)
    aside, owner = _locked_aside(parent, prefix)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(aside, 0o777 & ~umask)  # as a directory flume.open creates, not mkdtemp's 0700
    state = "is as it was" if os.path.exists(target) else "was not created"
    unchanged = f"nothing was imported ({directory} {state})"
    moved = False
    try:
        db = open_db(aside, write=True)
        remember_directory(directory)
        try:
            _append_batches(db, source)
            last = db.since.value
        finally:
            db.close()
        try:
            # Replaces a missing or empty directory; fails if DIR was filled meanwhile.
            os.rename(aside, target)
        except OSError as e:
            fail(f"{directory} changed while importing ({e.strerror}); {unchanged}")
        moved = True
        _fsync_directory(parent)  # so the rename, and with it the import, survives a crash
        return source.values, last
    except (KeyboardInterrupt, click.Abort):
        click.echo(f"interrupted: {unchanged}; run the import again", err=True)
        raise
    except (FlumeError, OSError) as e:
        message = cli_phrasing(str(e), directory) if isinstance(e, FlumeError) else str(e)
        fail(f"{message}; {unchanged}")
    finally:
        if not moved:
            shutil.rmtree(aside, ignore_errors=True)
        os.close(owner)


def _locked_aside(parent: str, prefix: str) -> tuple[str, int]:
    """Create a new directory ``<parent>/<prefix>XXXX`` and take an flock on it, held until the
    returned descriptor is closed: it tells the next import that this one is alive (a killed
    import's directory has its lock free, and `flume.fs.remove_abandoned` removes it)."""
    while True:
        aside = tempfile.mkdtemp(prefix=prefix, dir=parent)
        try:
            fd = os.open(aside, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC | os.O_NOFOLLOW)
        except FileNotFoundError:
            continue  # another import removed it, just made, as abandoned
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            # Another import may have found it unlocked, just made, and removed it as abandoned.
            if os.stat(aside, follow_symlinks=False).st_ino == os.fstat(fd).st_ino:
                return aside, fd
        except OSError:
            pass  # that other import holds the lock while it removes the directory
        os.close(fd)


def _fsync_directory(path: str) -> None:
    """Flush the entries of directory ``path`` (a rename in it) to disk."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems cannot sync a directory; the import itself is complete
    finally:
        os.close(fd)


@cli.command(short_help="Append JSON lines from a file or stdin; print the last seq.")
@DIR
@click.argument("file", metavar="[FILE|-]", default="-",
                type=click.Path(exists=True, dir_okay=False, allow_dash=True))
def append(directory: str, file: str) -> None:
    """Append JSON lines from FILE (or stdin) to the log in DIR; print the last seq.

    Each non-blank line is one JSON value, appended as one entry. The whole input is checked
    first, so a bad line N is reported (`line N: ...`) with nothing written; then it is
    appended in transactions of 1,000 values. Creates DIR when missing. Before exiting, waits
    for the Query views stored in DIR to index the new entries, so later reads need no writer.
    """
    started = time.monotonic()
    n, last = _append_file(directory, _Source(file, base64_bytes=False), only_if_empty=False)
    took = time.monotonic() - started
    click.echo(f"appended {n:,} values in {took:.2f} s", err=True)
    click.echo(str(last))


@cli.command(name="import", short_help="Restore an export into a new or empty directory.")
@DIR
@click.argument(
    "file", metavar="FILE|-", type=click.Path(exists=True, dir_okay=False, allow_dash=True)
)
@click.option("--base64-bytes", is_flag=True,
              help='turn {"$base64": "..."} objects back into bytes (undoes export --base64-bytes)')
@click.option("--tag-floats", is_flag=True,
              help='turn {"$float": "NaN"} (or "Infinity", "-Infinity") objects back into floats '
              "(undoes export --tag-floats)")
def import_(directory: str, file: str, base64_bytes: bool, tag_floats: bool) -> None:
    """Restore an export (JSON lines, one value each) into a new or empty DIR.

    Every value gets the seq it had when exported from a whole log, so `flume export A >
    a.jsonl; flume import B a.jsonl` makes B's log equal A's (lossless for JSON data); a line
    {"$deleted": true} is a deleted entry, which keeps its seq. Like
    `append`, it checks the whole file first: a bad line writes nothing. Refuses a DIR that
    already holds entries (use `flume append` to add to a log).
    """
    source = _Source(file, base64_bytes=base64_bytes, tag_floats=tag_floats, tombstones=True)
    n, last = _append_file(directory, source, only_if_empty=True)
    click.echo(f"imported {n:,} values", err=True)
    click.echo(str(last))


# -- get / stream / export ---------------------------------------------------------------------


@cli.command(short_help="Print the value at a seq.")
@DIR
@click.argument("seq", type=int)
def get(directory: str, seq: int) -> None:
    """Print the value at SEQ (as one JSON line)."""
    db = open_db(directory, write=False)
    try:
        try:
            value = db.get(seq)
        except NotFoundError:
            last = db.since.value
            fail(f"seq {seq} is not in the log of {directory} "
                 + (f"(it holds seqs 0..{last})" if last >= 0 else "(it is empty)"))
        click.echo(dumps(value))
    finally:
        db.close()


def _stream_args(gt: int | None, gte: int | None, lt: int | None, lte: int | None,
                 reverse: bool, limit: int | None, live: bool, old: bool) -> dict[str, Any]:
    return {"gt": gt, "gte": gte, "lt": lt, "lte": lte, "reverse": reverse, "limit": limit,
            "live": live, "old": old}


@cli.command(short_help="Output log entries (a seq range, newest first, live...).")
@DIR
@seq_range_options
@read_options
@click.option("--values-only", is_flag=True,
              help='output bare values, not {"seq": N, "value": ...} objects')
def stream(directory: str, gt: int | None, gte: int | None, lt: int | None, lte: int | None,
           reverse: bool, limit: int | None, live: bool, old: bool, values_only: bool) -> None:
    """Output log entries as JSON lines: {"seq": N, "value": ...} (or bare values).

    Like `db.stream(...)`: in seq order (newest first with --reverse), bounded by
    --gt/--gte/--lt/--lte; --live goes on with new appends (from a writer in another process)
    until Ctrl-C.
    """
    db = open_db(directory, write=False)
    out = LineWriter(flush_each=live)
    try:
        entries = db.stream(**_stream_args(gt, gte, lt, lte, reverse, limit, live, old))
        with entries:
            if values_only:
                for e in entries:
                    out.line(dumps(e.value))
            else:
                for e in entries:
                    out.line(dumps({"seq": e.seq, "value": e.value}))
    finally:
        out.close()
        db.close()


@cli.command(short_help="Write the values of the log as JSON lines (for import).")
@DIR
@seq_range_options
@click.option("--base64-bytes", is_flag=True,
              help='write bytes as {"$base64": "..."} (import --base64-bytes reads them back); '
              "without it, a value holding bytes is an error")
@click.option("--tag-floats", is_flag=True,
              help='write NaN, Infinity and -Infinity as {"$float": "NaN"} (import --tag-floats '
              "reads them back); without it, a value holding one is an error (JSON has none)")
def export(directory: str, gt: int | None, gte: int | None, lt: int | None, lte: int | None,
           base64_bytes: bool, tag_floats: bool) -> None:
    """Write every value of the log as JSON lines, in seq order (for `flume import`).

    Lossless for JSON data: `flume import` of the output recreates the same log, deleted
    entries included (each is a line {"$deleted": true}, so later seqs stay where they were;
    a value that is that object itself is refused). A value JSON cannot hold exactly (bytes,
    NaN or an infinity, dict keys that are not strings) stops the export with an error naming
    its seq, unless --base64-bytes / --tag-floats covers it (then import with the same flags).
    """
    db = open_db(directory, write=False)
    out = LineWriter()
    try:
        with db.stream(gt=gt, gte=gte, lt=lt, lte=lte, tombstones=True) as entries:
            for seq, value in entries:
                if value is flume.DELETED:
                    out.line(json.dumps(DELETED_LINE))
                    continue
                if _is_tombstone(value):
                    fail(f"seq {seq} holds {json.dumps(value)}, which export writes for a deleted "
                         "entry (import would delete it); export cannot write this log")
                try:
                    out.line(dumps_exact(value, base64_bytes, tag_floats))
                except NotJson as e:
                    hint = (" (add --base64-bytes)" if e.what.startswith("bytes")
                            else " (add --tag-floats)" if e.what.startswith("the float") else "")
                    fail(f"seq {seq} holds {e.what}, which JSON cannot hold exactly{hint}; "
                         "export is lossless only for JSON data")
    finally:
        out.close()
        db.close()


# -- query -------------------------------------------------------------------------------------


def parse_query_arg(text: str) -> Any:
    """The QUERY argument: JSON text, or ``@FILE`` to read it from a file."""
    if text.startswith("@"):
        try:
            with open(text[1:], encoding="utf-8") as f:
                text = f.read()
        except OSError as e:
            fail(f"cannot read the query file {text[1:]}: {e.strerror}")
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        fail(f"QUERY is not valid JSON: {e.msg} at column {e.colno} (quote it for the shell: "
             "'[{\"$filter\": ...}]')")


def _query_error(e: QueryError) -> NoReturn:
    fail(f"malformed query at {e.path}: {cli_phrasing(e.reason)}")


@cli.command(short_help="Run a JSON map-filter-reduce query over a Query view.")
@DIR
@click.argument("query_text", metavar="QUERY")
@click.option("--explain", is_flag=True,
              help="print the plan (index, key range, covered, scores) instead of running it")
@click.option("--view", "view_name", default=None, metavar="NAME",
              help=f"the Query view to use (default: {DEFAULT_VIEW!r}, or the only one)")
@read_options
@click.option("--seqs", is_flag=True,
              help='output {"seq": N, "value": ...} objects (queries of $filter and $sort only)')
@click.option("--timeout", type=float, default=None, metavar="SECONDS",
              help="how long to wait for the view to catch up with the log (default 10; inf: "
              "forever)")
def query(directory: str, query_text: str, explain: bool, view_name: str | None, reverse: bool,
          limit: int | None, live: bool, old: bool, seqs: bool, timeout: float | None) -> None:
    """Run a map-filter-reduce QUERY (JSON) over a Query view; output JSON lines.

    QUERY is a list of stages, e.g. '[{"$filter": {"value": {"author": "@a"}}}]', or @FILE.
    The view picks the best index for the first $filter (see --explain). The view's
    definitions are stored in DIR, so no code is needed; `flume index add` declares them.
    A DIR without Query views answers every query by a full scan of the log.

    The query language, every operator with an example: docs/query.md in flume's source.
    """
    parsed = parse_query_arg(query_text)
    db = open_db(directory, write=False, timeout=timeout)
    out = LineWriter(flush_each=live)
    try:
        view = query_view(db, view_name, directory)
        try:
            if explain:
                click.echo(dumps(view.explain(parsed), indent=2))
                return
            items = view.read(parsed, reverse=reverse, limit=limit, live=live, old=old, seqs=seqs)
            with contextlib.closing(items):
                if seqs:
                    for seq, value in items:
                        out.line(dumps({"seq": seq, "value": value}))
                else:
                    for item in items:
                        out.line(dumps(item))
        except QueryError as e:
            _query_error(e)
    finally:
        out.close()
        db.close()


# -- index add / list / drop -------------------------------------------------------------------


def _query_view_to_change(
    db: flume.Flume, view_name: str
) -> tuple[flume.MountedView | None, dict[str, list[list[str]]], int]:
    """The Query view ``view_name`` an index command changes (None: it will be created), its
    indexes and its version; exits with an error when that name holds another kind of view."""
    existing = db.views.get(view_name)
    if existing is not None and existing.view.kind != "query":
        fail(f"view {view_name!r} is a {existing.view.kind} view, not a Query view")
    indexes = _indexes_of(existing) if existing is not None else {}
    version = existing.view.version if existing is not None else 1
    return existing, indexes, version


def _bitmaps_of(view: flume.MountedView | None) -> list[list[str]]:
    definition = view.view.definition() if view is not None else None
    bitmaps = definition.get("bitmaps", []) if isinstance(definition, dict) else []
    return [list(p) for p in bitmaps]


def _remount(
    db: flume.Flume,
    name: str,
    indexes: dict[str, list[list[str]]],
    version: int,
    bitmaps: list[list[str]] | None = None,
) -> None:
    """Replace the Query view ``name`` with one of ``indexes`` and ``bitmaps`` (default: the
    view's present bitmap fields); it is rebuilt from the log."""
    from flume.views import Query

    if bitmaps is None:
        bitmaps = _bitmaps_of(db.views.get(name))
    # Checks the definitions before anything changes.
    view = Query(indexes={k: v for k, v in indexes.items()}, version=version, bitmaps=bitmaps)
    # One atomic write replaces the stored definition and empties the view's data: a crash at
    # any moment leaves the old definition or the new one stored, never none.
    db.use(name, view)


@cli.group(cls=_Ordered, short_help="Add, list and drop the indexes of Query views.")
def index() -> None:
    """Declare, list and drop the indexes of Query views (stored in the database)."""


@index.command(name="add", short_help="Add an index over paths to a Query view, and build it.")
@DIR
@click.argument("name")
@click.argument("paths", nargs=-1, required=True, metavar="PATH...")
@click.option("--view", "view_name", default=DEFAULT_VIEW, show_default=True, metavar="VIEW",
              help="the Query view to add the index to (created when missing)")
def index_add(directory: str, name: str, paths: tuple[str, ...], view_name: str) -> None:
    """Add index NAME over PATHs (dotted: value.author) to a Query view, and build it.

    Example: flume index add DIR by_author value.author value.timestamp. The view is rebuilt
    from the log with its new definition (a progress bar shows it), then later `flume query`
    runs and every writer keep it current.
    """
    fields = [parse_path_arg(p) for p in paths]
    db = open_db(directory, write=True)
    try:
        existing, indexes, version = _query_view_to_change(db, view_name)
        if name in indexes:
            if indexes[name] == fields:
                click.echo(f"index {name} already exists in view {view_name!r}", err=True)
                return
            fail(f"view {view_name!r} already has an index {name!r} over "
                 f"{' '.join(format_path_arg(p) for p in indexes[name])}; drop it first")
        indexes[name] = fields
        _remount(db, view_name, indexes, version)
        took = wait_for_views(db, label=f"building {name}", names=[view_name])
        click.echo(
            f"added index {name} ({', '.join(format_path_arg(p) for p in fields)}) to view "
            f"{view_name!r}; built over {db.since.value + 1:,} entries in {took:.2f} s",
            err=True,
        )
    finally:
        db.close()


@index.command(name="bitmap", short_help="Add bitmap fields to a Query view, and build them.")
@DIR
@click.argument("paths", nargs=-1, required=True, metavar="PATH...")
@click.option("--view", "view_name", default=DEFAULT_VIEW, show_default=True, metavar="VIEW",
              help="the Query view to add the bitmap fields to (created when missing)")
def index_bitmap(directory: str, paths: tuple[str, ...], view_name: str) -> None:
    """Declare each PATH (dotted: value.content.type) a bitmap field of a Query view: every
    distinct value keeps a bitmap of the seqs holding it, and equality counts on such fields
    are answered from them. The view is rebuilt from the log with its new definition.

    Example: flume index bitmap DIR value.content.type value.author
    """
    fields = [parse_path_arg(p) for p in paths]
    db = open_db(directory, write=True)
    try:
        existing, indexes, version = _query_view_to_change(db, view_name)
        bitmaps = _bitmaps_of(existing)
        new = [f for f in fields if f not in bitmaps]
        if not new:
            click.echo(f"view {view_name!r} already has those bitmap fields", err=True)
            return
        for f in new:
            if new.count(f) > 1:
                fail(f"bitmap field {format_path_arg(f)} is given twice")
        _remount(db, view_name, indexes, version, bitmaps + new)
        took = wait_for_views(db, label="building bitmaps", names=[view_name])
        click.echo(
            f"added bitmap fields {', '.join(format_path_arg(p) for p in new)} to view "
            f"{view_name!r}; built over {db.since.value + 1:,} entries in {took:.2f} s",
            err=True,
        )
    finally:
        db.close()


@index.command(name="list", short_help="List the indexes of every Query view (JSON lines).")
@DIR
def index_list(directory: str) -> None:
    """List the indexes of every Query view as JSON lines: {"view", "index", "paths"}, and
    its bitmap fields: {"view", "bitmap"}."""
    db = open_db(directory, write=False)
    try:
        for view_name, view in sorted(_query_views(db).items()):
            for name, fields in _indexes_of(view).items():
                click.echo(dumps({"view": view_name, "index": name,
                                  "paths": [format_path_arg(p) for p in fields]}))
            for field in _bitmaps_of(view):
                click.echo(dumps({"view": view_name, "bitmap": format_path_arg(field)}))
    finally:
        db.close()


@index.command(name="drop", short_help="Drop an index from a Query view.")
@DIR
@click.argument("name")
@click.option("--view", "view_name", default=DEFAULT_VIEW, show_default=True, metavar="VIEW",
              help="the Query view to drop the index from")
def index_drop(directory: str, name: str, view_name: str) -> None:
    """Drop index NAME from a Query view (the view is rebuilt without it).

    Dropping a view's last index drops the view.
    """
    db = open_db(directory, write=True)
    try:
        view = query_view(db, view_name, directory)
        indexes = _indexes_of(view)
        if name not in indexes:
            fail(f"view {view_name!r} has no index {name!r} (indexes: "
                 f"{', '.join(indexes) or 'none'})")
        del indexes[name]
        if indexes or _bitmaps_of(view):
            _remount(db, view_name, indexes, view.view.version)
            wait_for_views(db, label="rebuilding", names=[view_name])
            click.echo(f"dropped index {name} from view {view_name!r}", err=True)
        else:
            db.drop(view_name)
            click.echo(f"dropped index {name}, the last of view {view_name!r}, and the view",
                       err=True)
    finally:
        db.close()


# -- status / rebuild / verify -----------------------------------------------------------------


def _stored_meta(db: flume.Flume) -> dict[str, dict[str, Any]]:
    """Every view stored in the database, mounted or not (views defined by code are stored but
    only mounted by the program that declares them)."""
    store = getattr(db, "_store", None)
    if store is None:
        return {}
    store.catch_up()
    metas: dict[str, dict[str, Any]] = store.all_meta()
    return metas


def status_report(db: flume.Flume, directory: str) -> dict[str, Any]:
    """The status of DIR as a dict: ``since``, ``entries``, sizes, and every view's
    ``kind/since/lag/state`` (``mounted`` False for views defined by code)."""
    status = db.status()
    since = status["since"]
    views: dict[str, Any] = {}
    for name, info in status["views"].items():
        views[name] = {**info, "mounted": True}
    for name, meta in sorted(_stored_meta(db).items()):
        if name in views:
            continue
        view_since = int(meta.get("since", -1))
        views[name] = {
            "kind": meta.get("kind"),
            "since": view_since,
            "lag": max(0, since - view_since),
            "state": "stored",
            "mounted": False,
        }
    return {
        "dir": directory,
        "since": since,
        "entries": since + 1,
        "deleted": status["deleted"],
        "reclaimable_bytes": db.log.reclaimable_bytes() if isinstance(db.log, flume.LmdbLog) else 0,
        "log_bytes": file_size(os.path.join(directory, "log", "data.mdb")),
        "views_bytes": dir_size(os.path.join(directory, "views")),
        "views": dict(sorted(views.items())),
    }


@cli.command(short_help="Show the log's size and last seq, and every view's progress.")
@DIR
@click.option("--json", "as_json", is_flag=True, help="print the status as one JSON object")
def status(directory: str, as_json: bool) -> None:
    """Show the log's size and last seq, and each view's since, lag and state.

    Views defined by code (Reduce, Index) are listed as `stored`: only the program that
    declares them mounts and updates them.
    """
    db = open_db(directory, write=False)
    try:
        report = status_report(db, directory)
    finally:
        db.close()
    if as_json:
        click.echo(json.dumps(report, ensure_ascii=False))
        return
    since = report["since"]
    span = f"seqs 0..{since}" if since >= 0 else "empty"
    click.echo(f"flume database at {directory}")
    log_size = fs.human_size(report["log_bytes"])
    click.echo(f"log:   {report['entries']:,} entries ({span}), {log_size} on disk")
    if report["deleted"]:
        click.echo(f"       {report['deleted']:,} deleted; `flume compact` would reclaim about "
                   f"{fs.human_size(report['reclaimable_bytes'])} and erase their bytes")
    click.echo(f"views: {len(report['views'])}, {fs.human_size(report['views_bytes'])} on disk")
    if report["views"]:
        width = max(len(n) for n in report["views"])
        click.echo(f"  {'name':<{width}}  {'kind':<6}  {'since':>9}  {'lag':>9}  state")
        for name, info in report["views"].items():
            state = info["state"]
            if not info["mounted"]:
                state = "stored (defined by code; updated by the program that declares it)"
            elif info.get("error"):
                state += f": {info['error']}"
            click.echo(f"  {name:<{width}}  {info['kind']!s:<6}  {info['since']:>9}  "
                       f"{info['lag']:>9}  {state}")


@cli.command(short_help="Delete values by seq, or those a query matches.")
@DIR
@click.argument("seqs", nargs=-1, type=int, metavar="[SEQ]...")
@click.option("--where", "where", default=None, metavar="QUERY",
              help="delete every value this JSON query's $filter stages match")
@click.option("--view", "view_name", default=None, metavar="NAME",
              help="answer --where with this Query view (default: a scan of the log)")
def delete(directory: str, seqs: tuple[int, ...], where: str | None,
           view_name: str | None) -> None:
    """Delete the values at SEQ... (or, with --where, those a query matches) from DIR: each
    seq keeps its place and reads as deleted, and the Query views forget them at once. Prints
    how many were deleted. Their bytes stay on disk until `flume compact DIR`.

    Views defined by code forget them when their program next declares them.
    """
    if not seqs and where is None:
        raise click.UsageError("give the seqs to delete, or --where QUERY")
    if seqs and where is not None:
        raise click.UsageError("give seqs or --where QUERY, not both")
    query = parse_query_arg(where) if where is not None else None
    db = open_db(directory, write=True)
    try:
        if query is not None:
            try:
                n = db.delete_where(query, view=view_name)
            except QueryError as e:
                _query_error(e)
        else:
            n = db.delete_many(list(seqs))
    finally:
        db.close()
    click.echo(n)


@cli.command(short_help="Erase deleted values' bytes from every file of DIR.")
@DIR
def compact(directory: str) -> None:
    """Rewrite the log and compact the views of DIR so that no file under it holds a deleted
    value's bytes any more (readers may go on meanwhile; appends wait for the log's copy).

    Views defined by code that missed a delete are wiped: their program rebuilds them when it
    next declares them.
    """
    db = open_db(directory, write=True)
    try:
        before = file_size(os.path.join(directory, "log", "data.mdb"))
        report = db.compact()
        after = file_size(os.path.join(directory, "log", "data.mdb"))
    finally:
        db.close()
    click.echo(f"compacted {directory}: log {fs.human_size(before)} -> {fs.human_size(after)}, "
               f"{report['erased']:,} deleted values erased from the journal, "
               f"{report['wiped']} views to rebuild")


@cli.command(short_help="Rebuild the Query views from the log.")
@DIR
def rebuild(directory: str) -> None:
    """Rebuild the Query views of DIR from the log (with a progress bar).

    Views are derived from the log only, so a rebuild gives them the exact same content.
    Views defined by code are rebuilt by the program that declares them (db.rebuild()).
    """
    db = open_db(directory, write=True)
    try:
        names = sorted(db.views)
        if not names:
            click.echo(f"{directory} has no Query views to rebuild", err=True)
            return
        failure: list[BaseException] = []

        def run() -> None:
            try:
                db.rebuild()
            except BaseException as e:  # noqa: BLE001 (re-raised by the main thread)
                failure.append(e)

        started = time.monotonic()
        worker = threading.Thread(target=run, name="flume-rebuild", daemon=True)
        worker.start()
        time.sleep(0.05)  # let it wipe the views before the progress bar reads them
        wait_for_views(db, label="rebuilding")
        worker.join()
        if failure:
            raise failure[0]
        took = time.monotonic() - started
        others = sorted(set(_stored_meta(db)) - set(names))
        entries = db.since.value + 1
        click.echo(f"rebuilt {', '.join(names)} over {entries:,} entries in {took:.2f} s",
                   err=True)
        if others:
            click.echo(f"not rebuilt (defined by code): {', '.join(others)}", err=True)
    finally:
        db.close()


@cli.command(short_help="Check the log's integrity and that Query views match a rebuild.")
@DIR
@click.option("--json", "as_json", is_flag=True, help="print the report as one JSON object")
def verify(directory: str, as_json: bool) -> None:
    """Check DIR: the log's integrity (every entry decodes, seqs are dense) and that each Query
    view equals a rebuild from the log. Exits 1 when anything is damaged.

    Read-only: it works while a writer runs.
    """
    from flume.verify import verify as run_verify

    if not os.path.exists(directory):
        fail(f"{directory} does not exist: there is no flume database there")
    report = run_verify(directory)
    if as_json:
        click.echo(json.dumps(report.to_dict(), ensure_ascii=False))
    else:
        for line in report.lines():
            click.echo(line)
    if not report.ok:
        n = len(report.problems)
        raise CliError(f"{directory} is damaged ({n} problem{'s' if n != 1 else ''}, listed above)")
