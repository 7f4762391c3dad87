"""torch: every training dtype, empty and scalar parameters, parameter-free layers, tensor
lifetimes and memory over a long run."""

from __future__ import annotations

import gc
import math
import weakref

import pytest

import ikkuna
from ikkuna.testing import MemorySink
from tests.kept import rss_mib

pytestmark = pytest.mark.framework


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
def test_every_training_dtype_records_every_default_metric(torch, dtype):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Flatten(),
                                torch.nn.Linear(8, 2)).to(getattr(torch, dtype))
    model.register_parameter("scale", torch.nn.Parameter(torch.tensor(1.0, dtype=getattr(torch, dtype))))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    inputs = torch.randn(6, 4).to(getattr(torch, dtype))
    sink = MemorySink()
    with ikkuna.attach(model, optimizer=optimizer, sinks=[sink]) as monitor:
        for _ in range(3):
            optimizer.zero_grad()
            (model(inputs).float().pow(2).mean() * model.scale.float()).backward()
            optimizer.step()
    assert not monitor.problems
    names = {r.metric for r in sink.records}
    assert {"weight_norm", "gradient_norm", "update_norm", "activation_mean", "activation_std",
            "saturated_fraction", "distance_from_init"} <= names
    assert all(math.isfinite(r.value) for r in sink.records if isinstance(r.value, float))
    assert {r.param for r in sink.records if r.layer == "model"} >= {"scale"}  # a scalar parameter
    assert {r.layer for r in sink.records if r.metric == "activation_mean"} >= {"1", "2"}  # no parameters


@pytest.mark.filterwarnings("ignore:Initializing zero-element tensors:UserWarning")
def test_zero_size_batches_and_parameters_record_no_garbage(torch):
    model = torch.nn.Sequential(torch.nn.Linear(3, 0), torch.nn.Flatten())
    model.add_module("head", torch.nn.Linear(0, 2))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    sink = MemorySink()
    with ikkuna.attach(model, optimizer=optimizer, sinks=[sink]) as monitor:
        for batch in (4, 0):
            optimizer.zero_grad()
            model(torch.randn(batch, 3)).sum().backward()
            optimizer.step()
    assert not monitor.problems
    means = [r for r in sink.records if r.metric == "activation_mean"]
    assert all(math.isfinite(r.value) for r in means)  # empty outputs record nothing
    norms = {(r.layer, r.param, r.step): r.value for r in sink.records if r.metric == "weight_norm"}
    assert norms[("0", "weight", 0)] == 0.0  # a (0, 3) weight has norm 0


def test_no_tensor_of_a_step_is_kept_alive_by_ikkuna(torch):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    outputs: list[weakref.ref] = []
    for layer in model:
        layer.register_forward_hook(lambda m, a, out: outputs.append(weakref.ref(out)))
    with ikkuna.attach(model, optimizer=optimizer, metrics="full", sinks=[MemorySink()]):
        for _ in range(3):
            optimizer.zero_grad()
            model(torch.randn(5, 4)).pow(2).mean().backward()
            optimizer.step()
        gc.collect()
        assert outputs and all(ref() is None for ref in outputs)


def test_memory_does_not_grow_over_5000_steps_with_the_default_metrics(torch, tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    inputs, labels = torch.randn(32, 8), torch.randint(0, 3, (32,))
    measured = {}
    with ikkuna.attach(model, optimizer=optimizer, store=tmp_path) as monitor:
        for step in range(5000):
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(inputs), labels)
            loss.backward()
            optimizer.step()
            monitor.log(loss=loss.detach())
            if step in (1000, 4999):
                gc.collect()
                measured[step] = rss_mib()
    assert measured[4999] - measured[1000] < 8.0, measured  # MiB over 4,000 steps
    with ikkuna.open_run(monitor.run, store=tmp_path) as run:
        assert len(run.series("loss")) == 5000
