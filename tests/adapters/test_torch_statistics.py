"""The torch adapter's statistics: zero-copy views on the CPU, reductions in torch elsewhere,
and no copy of an activation for the default metrics."""

from __future__ import annotations

import numpy as np
import pytest

import ikkuna
from ikkuna.core.arrays import Layout
from ikkuna.core.statistics import fired_units, moments
from ikkuna.testing import MemorySink
from tests.adapters.torch_models import image_batch, small_cnn, train_step

NCHW = Layout(batch_axis=0, channel_axis=1)


def test_a_cpu_tensor_is_viewed_without_a_copy(torch):
    from ikkuna.adapters.torch import tensor_view

    tensor = torch.zeros(3, 4)
    view = tensor_view(tensor)
    tensor[1, 2] = 7.0
    assert view[1, 2] == 7.0
    assert tensor_view(tensor.to(torch.bfloat16)) is None
    assert tensor_view(torch.zeros(2, 2).to_sparse()) is None


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "bfloat16"])
def test_reductions_in_torch_equal_the_statistics_of_the_values(torch, dtype):
    from ikkuna.adapters.torch import tensor_fired_units, tensor_moments, tensor_to_numpy

    generator = torch.Generator().manual_seed(0)
    tensor = torch.relu(torch.randn(6, 5, 4, 4, generator=generator) + 2).to(getattr(torch, dtype))
    tensor[:, 3] = 0  # a dead channel
    values = tensor_to_numpy(tensor)
    native, expected = tensor_moments(tensor, NCHW), moments(values)
    assert native.count == expected.count and native.zeros == expected.zeros
    assert native.mean == pytest.approx(expected.mean, rel=1e-12)
    assert native.std == pytest.approx(expected.std, rel=1e-9)
    assert native.norm == pytest.approx(expected.norm, rel=1e-12)
    assert tensor_fired_units(tensor, NCHW).tolist() == fired_units(values, 1).tolist()
    assert tensor_fired_units(tensor.reshape(-1), Layout()).tolist() == [True]
    assert tensor_fired_units(torch.zeros(0, 3), NCHW) is None
    assert tensor_moments(torch.zeros(0), Layout()).count == 0


def test_default_metrics_copy_parameters_only_never_activations(torch, monkeypatch):
    import ikkuna.adapters.torch as adapter

    converted: list[tuple[int, ...]] = []
    original = adapter.tensor_to_numpy

    def counting(tensor):
        converted.append(tuple(tensor.shape))
        return original(tensor)

    monkeypatch.setattr(adapter, "tensor_to_numpy", counting)
    torch.manual_seed(0)
    model = small_cnn(torch)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    inputs, labels = image_batch(torch, 0)
    outputs: dict[str, np.ndarray] = {}
    model.encoder[2].register_forward_hook(lambda m, a, out: outputs.update(relu=out.detach().numpy().copy()))
    sink = MemorySink()
    with ikkuna.attach(model, optimizer=optimizer, sinks=[sink]) as monitor:
        for _ in range(3):
            train_step(torch, model, optimizer, inputs, labels, monitor)
    records = {(r.metric, r.layer, r.step): r.value for r in sink.records}
    parameter_shapes = {tuple(p.shape) for p in model.parameters()}
    assert converted and set(converted) <= parameter_shapes  # distance_from_init reads weights
    relu = outputs["relu"]
    assert records[("activation_mean", "encoder.2", 2)] == pytest.approx(relu.astype(np.float64).mean(), rel=1e-12)
    assert records[("activation_zero_fraction", "encoder.2", 2)] == np.mean(relu == 0)
