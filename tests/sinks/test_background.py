"""Periodic: a call repeated on a daemon thread of its own, every so often and when asked."""

from __future__ import annotations

import threading
import time

import pytest

from ikkuna.sinks.background import Periodic

NEVER = 3600.0  # an interval no test waits for


def until(condition, seconds: float = 30.0) -> bool:
    """Poll ``condition`` until it holds or ``seconds`` pass (a bound, not a timing)."""
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.005)
    return bool(condition())


def test_run_now_calls_on_a_daemon_thread_of_its_own_and_waits_for_the_call():
    threads: list[threading.Thread] = []
    periodic = Periodic("test-periodic", lambda: threads.append(threading.current_thread()), NEVER)
    periodic.run_now()
    assert len(threads) == 1  # run_now returned after the call
    (thread,) = threads
    assert thread is not threading.current_thread() and thread.daemon
    periodic.close()
    assert len(threads) == 2  # close makes a last call
    assert not thread.is_alive()


def test_the_work_is_called_every_interval_without_being_asked():
    calls: list[float] = []
    periodic = Periodic("test-periodic", lambda: calls.append(time.monotonic()), 0.02)
    periodic.poke()
    assert until(lambda: len(calls) >= 3)
    periodic.close()


def test_poke_starts_the_thread_and_with_interval_0_asks_for_a_call_without_waiting():
    release, entered = threading.Event(), threading.Event()

    def work() -> None:
        entered.set()
        release.wait()

    periodic = Periodic("test-periodic", work, 0)
    periodic.poke()  # returns although the call it asked for blocks
    assert entered.wait(30)
    release.set()
    periodic.close()


def test_an_error_is_raised_once_by_the_next_call_and_the_thread_goes_on():
    failures = [ValueError("commit failed")]
    calls: list[int] = []

    def work() -> None:
        calls.append(1)
        if failures:
            raise failures.pop()

    periodic = Periodic("test-periodic", work, NEVER)
    with pytest.raises(ValueError, match="commit failed"):
        periodic.run_now()
    periodic.poke()  # raised once
    periodic.run_now()
    assert len(calls) == 2
    periodic.close()


def test_poke_raises_the_error_of_a_call_it_did_not_wait_for():
    failures = [ZeroDivisionError("commit failed")]

    def work() -> None:
        if failures:
            raise failures.pop()

    periodic = Periodic("test-periodic", work, 0)
    periodic.poke()  # asks for the call, which fails on the thread
    raised: list[BaseException] = []

    def poke_raises() -> bool:
        try:
            periodic.poke()
        except ZeroDivisionError as error:
            raised.append(error)
        return bool(raised)

    assert until(poke_raises)
    assert str(raised[0]) == "commit failed"
    periodic.close()  # raised once: not again


def test_close_stops_the_thread_and_a_later_poke_starts_another():
    threads: list[threading.Thread] = []
    periodic = Periodic("test-periodic", lambda: threads.append(threading.current_thread()), NEVER)
    periodic.poke()
    periodic.close()
    periodic.poke()
    periodic.close()
    assert len(threads) == 2 and threads[0] is not threads[1]
    assert not any(thread.is_alive() for thread in threads)


def test_with_interval_0_the_thread_calls_only_when_asked():
    calls: list[int] = []
    periodic = Periodic("test-periodic", lambda: calls.append(1), 0)
    periodic.poke()
    periodic.run_now()
    asked = len(calls)
    assert 1 <= asked <= 2  # the poke's call and run_now's, or one call serving both
    time.sleep(0.1)  # a thread that called unasked would call thousands of times meanwhile
    assert len(calls) == asked
    periodic.close()


def test_close_without_a_thread_makes_the_last_call_on_the_callers_thread():
    threads: list[threading.Thread] = []
    periodic = Periodic("test-periodic", lambda: threads.append(threading.current_thread()), NEVER)
    periodic.close()
    assert threads == [threading.current_thread()]


def test_run_now_with_a_timeout_returns_false_while_the_call_goes_on():
    release = threading.Event()
    calls = []

    def work() -> None:
        calls.append(1)
        release.wait(30)

    periodic = Periodic("test-periodic", work, NEVER)
    assert periodic.run_now(timeout=0.05) is False  # the call has not ended
    release.set()
    assert periodic.run_now(timeout=30) is True
    assert len(calls) == 2
    periodic.close()
