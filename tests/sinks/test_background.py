"""OneBehind: calls in order on one daemon thread, the caller at most one call ahead."""

from __future__ import annotations

import threading

import pytest

from ikkuna.sinks.background import OneBehind


def test_calls_run_in_order_on_one_daemon_thread_that_is_not_the_callers():
    worker = OneBehind("test-worker")
    seen: list[tuple[int, threading.Thread]] = []
    for number in range(5):
        worker.submit(lambda n: seen.append((n, threading.current_thread())), number)
    worker.wait()
    assert [n for n, _ in seen] == list(range(5))
    threads = {thread for _, thread in seen}
    assert len(threads) == 1
    (thread,) = threads
    assert thread is not threading.current_thread() and thread.daemon
    worker.close()
    assert not thread.is_alive()


def test_submit_waits_for_the_call_under_way():
    worker = OneBehind("test-worker")
    release = threading.Event()
    worker.submit(release.wait)
    second = threading.Thread(target=worker.submit, args=(lambda: None,))
    second.start()
    second.join(timeout=0.5)
    assert second.is_alive()  # the first call has not ended
    release.set()
    second.join()
    worker.close()


def test_an_error_is_raised_once_by_the_next_wait_and_the_worker_goes_on():
    worker = OneBehind("test-worker")

    def fail() -> None:
        raise ValueError("commit failed")

    worker.submit(fail)
    with pytest.raises(ValueError, match="commit failed"):
        worker.wait()
    worker.wait()  # raised once
    done: list[int] = []
    worker.submit(done.append, 1)
    worker.close()
    assert done == [1]


def test_the_next_submit_raises_the_error_and_does_not_run_its_call():
    worker = OneBehind("test-worker")
    worker.submit(lambda: 1 / 0)
    ran: list[int] = []
    with pytest.raises(ZeroDivisionError):
        worker.submit(ran.append, 1)
    worker.close()
    assert ran == []


def test_close_stops_the_thread_and_a_later_submit_starts_another():
    worker = OneBehind("test-worker")
    threads: list[threading.Thread] = []
    worker.submit(lambda: threads.append(threading.current_thread()))
    worker.close()
    worker.submit(lambda: threads.append(threading.current_thread()))
    worker.close()
    assert len(threads) == 2 and threads[0] is not threads[1]
    assert not any(thread.is_alive() for thread in threads)
