"""A call repeated on a worker thread of its own: every so often, and at once when asked."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable


class Periodic:
    """Calls ``work()`` on a daemon thread every ``interval`` seconds, and at once when asked.

    The store commits its pending rows this way (``ikkuna.sinks.store``): a training step only
    adds its rows. :meth:`poke` starts the thread (with ``interval`` 0 it also asks for a call
    now, without waiting for it), :meth:`run_now` asks for a call and waits for it, :meth:`close`
    makes a last call and stops the thread. An error of ``work`` is raised once, by the next of
    these. A daemon thread never keeps the interpreter from exiting, and the ``atexit`` detach
    still finds it running; in a forked child the parent's thread does not exist: the child
    starts afresh.
    """

    def __init__(self, name: str, work: Callable[[], None], interval: float) -> None:
        self._name = name
        self._work = work
        self._interval = interval
        self._reset()

    def _reset(self) -> None:
        self._pid = os.getpid()
        self._changed = threading.Condition()
        self._asked = 0  # calls asked for with run_now/close/poke, counted
        self._done = 0  # the count the last call answered
        self._stopping = False
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None

    def poke(self) -> None:
        """Make sure the thread runs (and with ``interval`` 0, ask for a call now)."""
        with self._started():
            self._raise_error()
            if self._interval <= 0:
                self._asked += 1
                self._changed.notify_all()

    def run_now(self) -> None:
        """Call ``work`` on the thread now and wait until that call has ended."""
        with self._started():
            self._asked += 1
            asked = self._asked
            self._changed.notify_all()
            while self._done < asked:
                self._changed.wait()
            self._raise_error()

    def close(self) -> None:
        """One last call, then stop the thread (a later :meth:`poke` starts another)."""
        with self._started():
            self._stopping = True
            self._asked += 1
            self._changed.notify_all()
            thread = self._thread
        assert thread is not None
        thread.join()
        with self._changed:
            self._thread, self._stopping = None, False
            self._raise_error()

    def _started(self) -> threading.Condition:
        """The condition, held by the caller, with the thread running."""
        if os.getpid() != self._pid:
            self._reset()
        with self._changed:
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
                self._thread.start()
        return self._changed

    def _raise_error(self) -> None:
        error, self._error = self._error, None
        if error is not None:
            raise error

    def _loop(self) -> None:
        while True:
            with self._changed:
                deadline = time.monotonic() + self._interval
                while self._asked == self._done and not self._stopping:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._changed.wait(left)
                asked, stopping = self._asked, self._stopping
            try:
                self._work()
            except BaseException as error:  # noqa: BLE001 - raised to the caller, once
                with self._changed:
                    self._error = error
            with self._changed:
                self._done = asked
                self._changed.notify_all()
            if stopping:
                return
