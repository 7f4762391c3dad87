"""One call at a time on a worker thread, the caller at most one call ahead (the store's commits)."""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable
from typing import Any


class OneBehind:
    """Runs submitted calls in order on a daemon thread of its own, one at a time.

    :meth:`submit` first waits for the previous call to end (and raises its error there), so at
    most one call is under way while the caller goes on; :meth:`wait` waits for it; :meth:`close`
    waits and stops the thread. A daemon thread, started on the first call: it never keeps the
    interpreter from exiting, and the ``atexit`` detach still finds it running. In a forked
    child the parent's thread does not exist: the child starts afresh.
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._reset()

    def _reset(self) -> None:
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._calls: queue.SimpleQueue[tuple[Callable[..., Any], tuple[Any, ...]] | None] = (
            queue.SimpleQueue())
        self._idle = threading.Event()
        self._idle.set()
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None

    def submit(self, call: Callable[..., Any], *args: Any) -> None:
        """Run ``call(*args)`` on the thread, once the previous call has ended; raises the
        previous call's error instead, if it raised (``call`` is then not run)."""
        self._after_fork()
        with self._lock:
            self._wait()
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name=self._name, daemon=True)
                self._thread.start()
            self._idle.clear()
            self._calls.put((call, args))

    def wait(self) -> None:
        """Return once the call under way (if any) has ended; raise its error, once."""
        self._after_fork()
        with self._lock:
            self._wait()

    def close(self) -> None:
        """:meth:`wait`, then stop the thread (a later :meth:`submit` starts another)."""
        self._after_fork()
        with self._lock:
            try:
                self._wait()
            finally:
                if self._thread is not None:
                    self._calls.put(None)
                    self._thread.join()
                    self._thread = None

    def _wait(self) -> None:
        self._idle.wait()
        error, self._error = self._error, None
        if error is not None:
            raise error

    def _work(self) -> None:
        while (item := self._calls.get()) is not None:
            call, args = item
            try:
                call(*args)
            except BaseException as error:  # noqa: BLE001 - handed to the caller by _wait
                self._error = error
            finally:
                self._idle.set()

    def _after_fork(self) -> None:
        if os.getpid() != self._pid:
            self._reset()
