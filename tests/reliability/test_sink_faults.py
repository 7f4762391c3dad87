"""Sinks that the operating system stops from writing: a disk that fills up mid-run, and a
directory made read-only. Training goes on, each failing sink is reported once, and the store
keeps every record.

The faults are real ones, made the same way whether the tests run as root or not: the disk
fills because the sinks' open files are swapped (``dup2``) for ``/dev/full``, whose every write
fails with ``ENOSPC``; a read-only directory refuses a user who is not root, so as root the
sinks open their files under the ``nobody`` user's effective id (``seteuid``).
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import tempfile
import warnings
from pathlib import Path

import pytest

import ikkuna
from ikkuna.sinks.files import CsvSink, JsonlSink, read_jsonl
from ikkuna.sinks.tensorboard import TensorBoardSink

pytestmark = pytest.mark.framework

STEPS = 6
NOBODY = 65534


def open_descriptors(under: Path) -> list[int]:
    """This process's file descriptors open on a file at or under ``under``."""
    found = []
    for name in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{name}")
        except OSError:  # the descriptor listdir itself used, closed since
            continue
        if target == str(under) or target.startswith(f"{under}/"):
            found.append(int(name))
    return found


def fill_the_disk_under(directory: Path) -> int:
    """Make every later write to the files open under ``directory`` fail with ENOSPC, as on a
    full disk: each of their descriptors now refers to ``/dev/full``. Returns how many."""
    descriptors = open_descriptors(directory)
    full = os.open("/dev/full", os.O_WRONLY)
    try:
        for descriptor in descriptors:
            os.dup2(full, descriptor)
    finally:
        os.close(full)
    return len(descriptors)


def mlp(torch):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    return model, torch.optim.SGD(model.parameters(), lr=0.1)


def train(torch, model, optimizer, monitor, steps, before_step=None):
    inputs = torch.randn(5, 4)
    for step in range(steps):
        if before_step is not None:
            before_step(step)
        optimizer.zero_grad()
        loss = model(inputs).pow(2).mean()
        loss.backward()
        optimizer.step()
        monitor.log(loss=loss.detach())


def test_sinks_whose_disk_fills_mid_run_are_each_reported_once_and_the_store_keeps_every_record(
        torch, tmp_path):
    model, optimizer = mlp(torch)
    files = tmp_path / "full-disk"
    sinks = [JsonlSink(files), CsvSink(files), TensorBoardSink(files / "tensorboard"), "store"]
    failing = {"jsonl", "csv", "tensorboard"}
    filled = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with ikkuna.attach(model, optimizer=optimizer, sinks=sinks, store=tmp_path / "store",
                           run="full") as monitor:
            # a step's records are written when the next one begins: steps 0 and 1 reach the
            # files, then the disk is full before step 2's are written
            train(torch, model, optimizer, monitor, STEPS,
                  lambda step: step == 3 and filled.append(fill_the_disk_under(files)))
    assert filled == [3]  # the three files' descriptors now write to /dev/full
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    for name in failing:  # one warning each, naming the sink and the operating system's error
        about = [m for m in messages if f"sink {name!r}" in m]
        assert len(about) == 1, messages
        assert "No space left on device" in about[0]
    assert sorted(p.source for p in monitor.problems) == sorted(f"sink:{n}" for n in failing)
    assert {p.step for p in monitor.problems} == {2}
    assert open_descriptors(files) == []  # each failing sink was closed, its file released
    with ikkuna.open_run("full", store=tmp_path / "store") as run:
        assert run.series("loss").steps.tolist() == list(range(STEPS))
        assert run.series("weight_norm", "0", "weight").steps.tolist() == list(range(STEPS))
        assert sorted(p["source"] for p in run.problems()) == sorted(f"sink:{n}" for n in failing)
    # what was written before the disk filled reads back whole
    assert {r.step for r in read_jsonl(files / "full.jsonl")} == {0, 1}


@pytest.fixture
def shared_directory():
    """A directory anyone may write to (the ``nobody`` user included), removed afterwards."""
    directory = Path(tempfile.mkdtemp(prefix="ikkuna-read-only-"))
    directory.chmod(0o777)
    yield directory
    for inner in directory.rglob("*"):
        if inner.is_dir():
            inner.chmod(0o777)
    shutil.rmtree(directory)


@contextlib.contextmanager
def not_root():
    """Act as a user that a read-only directory refuses: as root, as ``nobody`` (effective
    ids only, restored on leaving); otherwise as this user."""
    if os.geteuid() != 0:
        yield
        return
    os.setegid(NOBODY)
    os.seteuid(NOBODY)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)


def test_a_read_only_directory_keeps_open_files_and_a_run_opening_there_is_reported_once(
        torch, shared_directory):
    files, store = shared_directory / "files", shared_directory / "store"
    for directory in (files, store):
        directory.mkdir(mode=0o777)
        directory.chmod(0o777)
    model, optimizer = mlp(torch)
    with not_root(), warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing goes wrong yet
        first = ikkuna.attach(model, optimizer=optimizer, sinks=[JsonlSink(files), "store"],
                              store=store, run="first")
    with first:  # read-only mid-run: the file is open, so every record still reaches it
        train(torch, model, optimizer, first, STEPS,
              lambda step: step == 2 and files.chmod(stat.S_IRUSR | stat.S_IXUSR))
    assert not first.problems
    assert {r.step for r in read_jsonl(files / "first.jsonl")} == set(range(STEPS))

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with not_root():
            second = ikkuna.attach(model, optimizer=optimizer, sinks=[JsonlSink(files), "store"],
                                   store=store, run="second")
        with second:
            train(torch, model, optimizer, second, STEPS)
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(messages) == 1 and "sink 'jsonl' raised PermissionError" in messages[0], messages
    assert [(p.source, p.step) for p in second.problems] == [("sink:jsonl", 0)]
    assert not (files / "second.jsonl").exists()
    with pytest.raises(PermissionError) as refused, not_root():
        (files / "probe").touch()
    assert refused.value.errno == errno.EACCES  # the directory really is read-only to that user
    with ikkuna.open_run("second", store=store) as run:
        assert run.series("loss").steps.tolist() == list(range(STEPS))
        assert run.series("activation_mean", "0").steps.tolist() == list(range(STEPS))
        assert [p["source"] for p in run.problems()] == ["sink:jsonl"]
