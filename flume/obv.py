"""Obv: an observable value, the way flume tells waiting readers that a log or view moved on."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

from flume.errors import FlumeTimeoutError
from flume.ranges import check_timeout

T = TypeVar("T")


class Obv(Generic[T]):
    """A value that changes over time, and that threads can wait on.

    ``value`` is the current value; ``set()`` changes it and calls every subscriber;
    ``wait_for(n)`` blocks until the value is at least ``n``. Thread-safe: subscribers are called
    in the thread that calls ``set()``, outside the internal lock, in subscription order.
    """

    def __init__(self, value: T) -> None:
        self._value = value
        self._cond = threading.Condition(threading.Lock())
        self._subscribers: list[Callable[[T], object]] = []
        self._generation = 0

    @property
    def value(self) -> T:
        """The current value (never blocks)."""
        return self._value

    def set(self, value: T) -> None:
        """Change the value, wake every waiter and call every subscriber with the new value."""
        with self._cond:
            self._value = value
            self._generation += 1
            subscribers = list(self._subscribers)
            self._cond.notify_all()
        for fn in subscribers:
            fn(value)

    def subscribe(self, fn: Callable[[T], object]) -> Callable[[], None]:
        """Call ``fn(value)`` now with the current value, then on every change.

        Returns a function that unsubscribes (calling it twice is harmless).
        """
        with self._cond:
            self._subscribers.append(fn)
            current = self._value
        fn(current)

        def unsubscribe() -> None:
            with self._cond:
                if fn in self._subscribers:
                    self._subscribers.remove(fn)

        return unsubscribe

    def wait_for(self, n: T, timeout: float | None = None) -> T:
        """Block until the value is at least ``n``; return it.

        Blocks on: the next ``set()`` that reaches ``n``.

        Raises:
            FlumeTimeoutError: ``timeout`` seconds passed first (None or ``math.inf``: never).
            InvalidTypeError / InvalidArgumentError: ``timeout`` is not None or a number >= 0.
        """
        timeout = check_timeout(timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._value >= n:  # type: ignore[operator]
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise FlumeTimeoutError(
                        f"waited {timeout} s for the value to reach {n!r}; it is "
                        f"{self._value!r}. Wait longer, or check what is supposed to advance it"
                    )
                self._cond.wait(remaining)
            return self._value

    @property
    def generation(self) -> int:
        """A counter bumped by every ``set()`` and ``wake()``; pass it to ``wait_change``."""
        return self._generation

    def wait_change(self, generation: int, timeout: float | None) -> bool:
        """Block until ``generation`` is out of date (a ``set()`` or ``wake()`` since it was
        read), at most ``timeout`` seconds; return whether it is.

        Live streams read ``generation`` before checking for new entries, so a change that
        lands between the check and the wait is never missed.
        """
        with self._cond:
            self._cond.wait_for(lambda: self._generation != generation, timeout)
            return self._generation != generation

    def wake(self) -> None:
        """Wake every thread blocked in ``wait_change`` without changing the value."""
        with self._cond:
            self._generation += 1
            self._cond.notify_all()
