"""The indexer: one background thread that keeps every writable view up to date.

It reads each batch of new log entries once, decodes it once, hands it to every view that is
behind, and commits each view's changes together with its new ``since`` in one write. It knows
views and their store, not logs: the database gives it a function that reads decoded entries.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from flume.entry import DELETED
from flume.errors import DiskFullError, ViewError
from flume.mounts import Mount
from flume.views.base import FamilyBatch, ViewFunctionError
from flume.views.store import Store

# Views stopped by a full disk retry after this long, doubling up to the maximum.
SPACE_RETRY_FIRST_SECONDS = 0.1
SPACE_RETRY_MAX_SECONDS = 5.0

# A view indexes in batches of at most about this long (between MIN_CHUNK and MAX_CHUNK
# entries), so that a view catching up holds back the others, answering read-your-writes, by
# at most one such batch; MAX_CHUNK bounds the memory of one batch's decoded entries.
BATCH_SECONDS = 0.02
MIN_CHUNK = 16
MAX_CHUNK = 2048
# Views at most this many entries apart are indexed together, from one read.
GROUP_SPAN = 64
# Views catching up at most about this long (at the lowest group's last measured pace) ahead of
# the lowest group wait for it to join them, so that they share one read and decoding from
# then on. Until its pace is measured, CONVOY_STEPS of its batches.
CONVOY_SECONDS = 0.25
CONVOY_STEPS = 8

# read(start, end, n): up to n decoded entries (seq, value) from seq start to end, in order
# (dense: a deleted entry's value is DELETED).
ReadEntries = Callable[[int, int, int], list[tuple[int, Any]]]


class Indexer:
    """The thread that indexes the views of ``mounted`` (the database's mount table, which it
    reads under ``lock``) from the log up to ``last()``, writing to ``store``.

    ``meta(mount, since)`` is the record stored beside a view's data, in the same write.
    The thread starts on :meth:`start` and sleeps until :meth:`wake`.
    """

    def __init__(
        self,
        *,
        mounted: Mapping[str, Mount],
        lock: threading.RLock,
        store: Store,
        read: ReadEntries,
        last: Callable[[], int],
        meta: Callable[[Mount, int], dict[str, Any]],
    ) -> None:
        self._mounted = mounted
        self._lock = lock
        self._store = store
        self._read = read
        self._last = last
        self._meta = meta
        self._wakeup = threading.Condition(threading.Lock())
        self._pending = False
        self._closing = False
        self._thread: threading.Thread | None = None
        self._turn = 0  # which group behind the leaders is served next
        self._space_timer: threading.Timer | None = None
        self._space_backoff = SPACE_RETRY_FIRST_SECONDS

    def start(self) -> None:
        """Start the thread, once (later calls do nothing)."""
        with self._wakeup:
            if self._thread is not None or self._closing:
                return
            self._thread = threading.Thread(target=self._run, name="flume-indexer", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Have the thread look for work (new entries, a new or rebuilt view). Never blocks."""
        with self._wakeup:
            self._pending = True
            self._wakeup.notify()

    def stop(self) -> None:
        """Stop the thread after its current batch (which commits) and wait for it.

        Blocks on: the batch being indexed.
        """
        with self._wakeup:
            self._closing = True
            self._wakeup.notify()
            timer, self._space_timer = self._space_timer, None
        if timer is not None:
            timer.cancel()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def retry_after_disk_full(self) -> None:
        """Clear the views stopped by a full disk and wake the thread to try them again."""
        with self._lock:
            with self._wakeup:
                self._space_timer = None
                if self._closing:
                    return
            for mount in self._mounted.values():
                if isinstance(mount.error, DiskFullError):
                    mount.error = None
        self.wake()

    def _run(self) -> None:
        while True:
            with self._wakeup:
                while not self._pending and not self._closing:
                    self._wakeup.wait()
                self._pending = False
            if self._closing:
                return
            try:
                while not self._closing and self._step():
                    # Let a thread waiting for the lock (use(), drop(), rebuild()) have it now:
                    # a lock released and taken again at once is rarely handed over.
                    time.sleep(0)
            except BaseException as e:
                # Not a view's function (that fails its view alone): stop every view with the
                # error, rather than leave their readers waiting for an indexer that is gone.
                for m in list(self._mounted.values()):
                    self.fail(m, m.since.value + 1, e, "the indexer stopped")
                return

    def _step(self) -> bool:
        """Index one batch for the views nearest the log's end, then one batch for one other
        group of views (a different one each step); return whether there was work.

        Views at (nearly) the same place form a group that shares one read and its decoding.
        Serving the leaders first each step means a view catching up on a long log (newly
        declared, or rebuilt) holds back read-your-writes on the others by at most one batch
        of its own work (about BATCH_SECONDS), and taking the other groups in turn means no
        view waits long for a slower one behind or ahead of it.

        Views catching up a little ahead of the lowest group (views declared one after the
        other on a long log: within about CONVOY_SECONDS of its work) wait for it instead: it reads
        up to exactly where they are, so they merge into one group and the rest of the log is
        read and decoded once for all of them, not once per view. A view that has reached the
        log's end since it was mounted or rebuilt never waits.
        """
        with self._lock:
            target = self._last()
            behind = sorted(
                (m for m in self._mounted.values() if m.error is None and m.since.value < target),
                key=lambda m: m.since.value,
                reverse=True,
            )
            if not behind:
                return False
            groups: list[list[Mount]] = []
            for m in behind:
                if groups and groups[-1][0].since.value - m.since.value <= GROUP_SPAN:
                    groups[-1].append(m)
                else:
                    groups.append([m])
            lowest = groups[-1]
            bottom = lowest[0].since.value
            rates = [m.rate for m in lowest]
            reach = (
                CONVOY_STEPS * min(m.chunk for m in lowest)
                if None in rates
                else int(CONVOY_SECONDS * min(r for r in rates if r is not None))
            )
            # The rate times the views' work alone, not the read and decoding: bounded.
            reach = min(reach, CONVOY_STEPS * MAX_CHUNK)
            # A view that has reached the log's end never waits (it has only a burst of new
            # appends to index, and its reads must not wait for another view's catch-up).
            waiting = [
                g for g in groups[:-1]
                if not any(m.reached_end for m in g) and g[-1].since.value - bottom <= reach
            ]
            active = [g for g in groups if all(g is not w for w in waiting)]
            # The lowest group stops where the nearest waiting group is, to merge with it.
            stop = waiting[-1][-1].since.value if waiting else target

            def end(group: list[Mount]) -> int:
                return stop if group is lowest else target

            self._index_group(active[0], end(active[0]))
            others = active[1:]
            if others and not self._closing:
                self._turn = (self._turn + 1) % len(others)
                group = others[self._turn]
                self._index_group(group, end(group))
            return True

    def _index_group(self, views: list[Mount], target: int) -> None:
        """Read one batch after the lowest ``since`` of ``views`` (views within GROUP_SPAN of
        each other) and apply it to each; each view's batch size adapts to the time its last
        batch took."""
        views = [m for m in views if m.error is None]
        if not views:
            return
        start = min(m.since.value for m in views) + 1
        try:
            span = max(m.since.value for m in views) + 1 - start
            entries = self._read(start, target, span + min(m.chunk for m in views))
        except Exception as e:
            for m in views:
                self.fail(m, start, e, "the log could not be read")
            return
        for m in views:
            if self._closing:
                return
            offset = m.since.value + 1 - start
            todo = entries[offset:] if offset > 0 else entries
            if not todo:
                continue
            began = time.monotonic()
            self._apply(m, todo)
            took = time.monotonic() - began
            m.rate = len(todo) / max(took, 1e-6)
            if took > BATCH_SECONDS and m.chunk > MIN_CHUNK:
                m.chunk = max(MIN_CHUNK, m.chunk // 2)
            elif took < BATCH_SECONDS / 4 and len(todo) >= m.chunk:
                m.chunk = min(MAX_CHUNK, m.chunk * 2)

    def _apply(self, mount: Mount, entries: list[tuple[int, Any]]) -> None:
        """Apply ``entries`` (read from the log, a deleted one's value DELETED: views never
        see those) to ``mount`` and commit it with its new ``since``, the last of them."""
        try:
            batch = self._store.batch()
        except DiskFullError as e:
            self._wait_for_space(mount, e)
            return
        last = entries[-1][0]
        values = [entry for entry in entries if entry[1] is not DELETED]
        family_batch = FamilyBatch(batch, mount.name, last, mount.deletes)
        try:
            if values:
                mount.view.apply(values, family_batch)
            else:
                mount.view.advance(family_batch)
        except ViewFunctionError as e:
            self.fail(mount, e.seq, e.cause, e.what)
            return
        except BaseException as e:  # SystemExit too: it would end the indexer thread
            mount.view.rollback()
            self.fail(mount, entries[0][0], e, "the view raised")
            return
        batch.put_meta(mount.name, self._meta(mount, last))
        try:
            self._store.write(batch)
        except DiskFullError as e:
            mount.view.rollback()
            self._wait_for_space(mount, e)
            return
        except Exception as e:
            mount.view.rollback()
            self.fail(mount, entries[0][0], e, "its batch could not be written")
            return
        mount.view.commit()
        if last >= self._last():
            mount.reached_end = True
        mount.since.set(last)
        self._space_backoff = SPACE_RETRY_FIRST_SECONDS

    def fail(self, mount: Mount, seq: int, cause: BaseException, what: str) -> None:
        """Stop ``mount`` with a ViewError naming ``seq``, ``what`` went wrong and ``cause``;
        its readers raise it, the other views go on."""
        mount.error = ViewError(
            f"view {mount.name!r} stopped at seq {seq}: {what}: {type(cause).__name__}: "
            f"{cause}. The log and the other views go on; fix the view's function and declare "
            "it with a new version= to rebuild it",
            view=mount.name,
            seq=seq,
            cause=cause,
        )
        mount.since.wake()

    def _wait_for_space(self, mount: Mount, cause: DiskFullError) -> None:
        """Stop ``mount`` until a retry: its reads raise a DiskFullError meanwhile (rather
        than wait with no end in sight), its ``since`` stays where it was, and a timer clears
        the error and wakes the thread after a backoff."""
        mount.error = DiskFullError(
            f"view {mount.name!r} is waiting at seq {mount.since.value}: {cause}. It "
            "resumes by itself once space is freed (nothing is lost)",
            cause.filename,
        )
        mount.error.__cause__ = cause
        mount.since.wake()
        with self._wakeup:
            if self._closing or self._space_timer is not None:
                return
            delay = self._space_backoff
            self._space_backoff = min(delay * 2, SPACE_RETRY_MAX_SECONDS)
            timer = self._space_timer = threading.Timer(delay, self.retry_after_disk_full)
        timer.daemon = True
        timer.start()
