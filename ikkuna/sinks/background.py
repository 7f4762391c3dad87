"""A call repeated on a worker thread of its own: every so often, and at once when asked."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class Periodic:
    """Calls ``work()`` on a daemon thread every ``interval`` seconds, and at once when asked.

    The store commits its pending rows this way (``ikkuna.sinks.store``): a training step only
    adds its rows. :meth:`poke` starts the thread (with ``interval`` 0 it asks for a call now,
    without waiting for it, and the thread calls only when asked), :meth:`run_now` asks for a
    call and waits for it, :meth:`close` makes a last call and stops the thread. An error of
    ``work`` is raised once, by the next of these (the first error, where several came). A
    daemon thread never keeps the interpreter from exiting, and the ``atexit`` detach still
    finds it running; where no thread can be started (interpreter shutdown), the calls run on
    the caller's thread. Not for use in a forked child (the store never calls it there).
    """

    def __init__(self, name: str, work: Callable[[], None], interval: float) -> None:
        self._name = name
        self._work = work
        self._interval = interval
        self._changed = threading.Condition()  # its lock is reentrant: _call takes it again
        self._asked = 0  # calls asked for with run_now/close/poke, counted
        self._done = 0  # the count the last call answered
        self._stopping = False
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None

    def poke(self) -> None:
        """Make sure the thread runs (and with ``interval`` 0, ask for a call now)."""
        with self._changed:
            self._raise_error()
            if self._interval <= 0:
                self._asked += 1
                self._changed.notify_all()
            self._start()

    def run_now(self, timeout: float | None = None) -> bool:
        """Call ``work`` now (on the thread) and return True once that call has ended; False
        where ``timeout`` seconds passed first (the call goes on; its error, if any, is raised
        by a later call of these methods)."""
        with self._changed:
            self._asked += 1
            asked = self._asked
            self._changed.notify_all()
            deadline = None if timeout is None else time.monotonic() + timeout
            while self._done < asked:
                if not self._start():
                    self._call_here()
                    break
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._changed.wait(left)
            self._raise_error()
            return True

    def close(self) -> None:
        """One last call, then stop the thread (a later :meth:`poke` starts another)."""
        with self._changed:
            thread = self._thread
            if thread is None:  # nothing was ever poked: the last call needs no thread
                self._call_here()
                self._raise_error()
                return
            self._stopping = True
            self._asked += 1
            self._changed.notify_all()
        thread.join()
        with self._changed:
            self._raise_error()

    def _start(self) -> bool:
        """Start the thread if none runs (the condition held); False where none can start."""
        if self._thread is None:
            thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
            try:
                thread.start()
            except RuntimeError:  # "can't create new thread at interpreter shutdown"
                return False
            self._thread = thread
        return True

    def _call_here(self) -> None:
        """Call ``work`` on the caller's thread (the condition held)."""
        asked = self._asked
        self._call()
        self._done = max(self._done, asked)

    def _call(self) -> None:
        """Call ``work``, keeping its error for the callers (the first, where several came)."""
        try:
            self._work()
        except BaseException as error:  # noqa: BLE001 - raised to the caller, once
            with self._changed:
                if self._error is None:
                    self._error = error

    def _raise_error(self) -> None:
        error, self._error = self._error, None
        if error is not None:
            raise error

    def _loop(self) -> None:
        while True:
            with self._changed:
                timed = self._interval > 0
                deadline = time.monotonic() + self._interval
                while self._asked == self._done and not self._stopping:
                    left = deadline - time.monotonic()
                    if timed and left <= 0:
                        break
                    self._changed.wait(left if timed else None)
                asked, stopping = self._asked, self._stopping
            self._call()
            with self._changed:
                self._done = max(self._done, asked)
                if stopping and self._thread is threading.current_thread():
                    self._thread, self._stopping = None, False
                self._changed.notify_all()
            if stopping:
                return
