"""How the monitor treats its sinks: which one is the store, and what happens to one that fails."""

from __future__ import annotations

import warnings

import pytest

import ikkuna
from ikkuna.core.sink import Sink


def _train(torch, steps: int = 3, **attach):
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with ikkuna.attach(model, optimizer=optimizer, metrics=["weight_norm"], **attach) as monitor:
        for _ in range(steps):
            loss = model(torch.ones(2, 3)).pow(2).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            monitor.log(loss=loss)
    return monitor


def test_the_store_is_found_whatever_the_order_of_the_sinks(torch, tmp_path):
    monitor = _train(torch, sinks=["jsonl", "csv", "store"], store=tmp_path, run="ordered")
    assert monitor.store_path == tmp_path
    assert monitor.series("loss").steps.tolist() == [0, 1, 2]


class FailsInWrite(Sink):
    name = "fails_in_write"

    def __init__(self) -> None:
        self.closed = 0

    def write(self, records) -> None:
        raise OSError("disk full")

    def close(self) -> None:
        self.closed += 1


def test_a_sink_that_raises_is_disabled_once_and_closed_so_its_files_are_released(torch, tmp_path):
    failing = FailsInWrite()
    with pytest.warns(RuntimeWarning, match="fails_in_write.*disk full") as caught:
        monitor = _train(torch, sinks=[failing, "store"], store=tmp_path)
    assert len([w for w in caught if "fails_in_write" in str(w.message)]) == 1
    assert failing.closed == 1  # closed when it was disabled, not again at detach
    assert monitor.series("loss").steps.tolist() == [0, 1, 2]  # the store kept every step
    assert [p.source for p in monitor.problems] == ["sink:fails_in_write"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        monitor.detach()  # idempotent, nothing more to close


def test_sinks_takes_one_sink_class_as_well_as_a_list(torch, tmp_path):
    from ikkuna.sinks.store import StoreSink

    monitor = _train(torch, sinks=StoreSink, store=tmp_path, run="one-class")
    assert monitor.store_path == tmp_path and monitor.run == "one-class"


def test_a_plugin_sink_that_is_not_a_sink_class_is_refused_by_name():
    from ikkuna.core.attach import resolve_sinks
    from ikkuna.core.plugins import Provided

    class Plugins:
        def sinks(self):
            return {"odd": Provided("odd", object, "odd-plugin")}

    with pytest.raises(TypeError, match="sink 'odd' of plugin 'odd-plugin' is not an ikkuna.Sink"):
        resolve_sinks(["odd"], Plugins(), None)
