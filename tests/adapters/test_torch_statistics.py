"""The torch adapter's statistics: zero-copy views on the CPU, reductions in torch elsewhere,
and no copy of an activation for the default metrics."""

from __future__ import annotations

import numpy as np
import pytest

import ikkuna
from ikkuna.core.arrays import Layout
from ikkuna.core.statistics import ROW_PARTIALS_RTOL, fired_units, moments
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


def assert_close_moments(found, expected, rtol):
    """Equal counts; sums of squares to ``rtol``; the sum to ``rtol`` of the magnitudes."""
    assert found.count == expected.count and found.zeros == expected.zeros
    assert found.sum_squares == pytest.approx(expected.sum_squares, rel=rtol)
    assert found.m2 == pytest.approx(expected.m2, rel=rtol)
    magnitudes = np.sqrt(expected.sum_squares * expected.count)
    assert found.total == pytest.approx(expected.total, rel=rtol, abs=rtol * magnitudes)


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "bfloat16"])
@pytest.mark.parametrize("shape", [(6, 5, 4, 4), (64, 32, 33, 3)], ids=["small", "rows"])  # rows: > _SMALLEST_FOR_TORCH
def test_reductions_in_torch_equal_the_statistics_of_the_values(torch, dtype, shape):
    from ikkuna.adapters.torch import (
        _SMALLEST_FOR_TORCH,
        tensor_fired_units,
        tensor_moments,
        tensor_to_numpy,
    )

    generator = torch.Generator().manual_seed(0)
    tensor = torch.relu(torch.randn(*shape, generator=generator) + 2).to(getattr(torch, dtype))
    assert (tensor.numel() >= _SMALLEST_FOR_TORCH) == (shape[0] == 64)  # "rows" sums in torch
    tensor[:, 3] = 0  # a dead channel
    values = tensor_to_numpy(tensor)
    native, expected = tensor_moments(tensor, NCHW), moments(values.astype(np.float64))
    # float64 stays exact; float32 and narrower are summed by rows in float32 (numpy takes
    # small CPU tensors it can view, in float64)
    rtol = 1e-12 if dtype == "float64" else ROW_PARTIALS_RTOL
    assert_close_moments(native, expected, rtol)
    assert tensor_fired_units(tensor, NCHW).tolist() == fired_units(values, 1).tolist()
    assert tensor_fired_units(tensor.reshape(-1), Layout()).tolist() == [True]
    assert tensor_fired_units(torch.zeros(0, 3), NCHW) is None
    assert tensor_moments(torch.zeros(0), Layout()).count == 0


@pytest.mark.parametrize("offset", [0.0, 50.0, -1e4])
def test_row_partials_stay_accurate_when_the_mean_dwarfs_the_spread(torch, offset, monkeypatch):
    """Uncentered row sums where the mean is small next to the spread; else the rows are
    centered on their own means, so no sum of squares cancels."""
    import ikkuna.adapters.torch as adapter
    from ikkuna.adapters.torch import tensor_moments

    centered = []
    original = adapter._row_partials
    monkeypatch.setattr(adapter, "_row_partials", lambda flat: centered.append(1) or original(flat))

    generator = torch.Generator().manual_seed(1)
    tensor = torch.randn(300_001, generator=generator) * 0.01 + offset  # a partial last row
    expected = moments(tensor.double().numpy())
    assert_close_moments(tensor_moments(tensor, Layout()), expected, ROW_PARTIALS_RTOL)
    assert tensor_moments(tensor, Layout()).std == pytest.approx(0.01, rel=0.01)
    assert bool(centered) == (offset != 0.0)


def summed_by_torch_with(torch, special: str):
    """Normal values, enough for torch's row sums, with a NaN or an infinity among them, or
    all scaled so that their float32 squares overflow or underflow, or all zero."""
    from ikkuna.adapters.torch import _SMALLEST_FOR_TORCH

    generator = torch.Generator().manual_seed(2)
    tensor = torch.randn(_SMALLEST_FOR_TORCH + 100, generator=generator)
    if special in ("nan", "inf"):
        tensor[5] = float(special)
    elif special in ("overflow", "vanishing"):
        tensor *= 1e30 if special == "overflow" else 1e-30
    elif special == "zeros":
        tensor.zero_()
    return tensor


@pytest.mark.parametrize("special", ["nan", "inf", "overflow", "vanishing"])
def test_values_the_float32_rows_cannot_hold_are_summed_exactly(torch, special):
    """NaN and infinities come out as numpy gives them; float32 overflow and underflow of
    the squares fall back to float64."""
    from ikkuna.adapters.torch import tensor_moments

    tensor = summed_by_torch_with(torch, special)
    found, expected = tensor_moments(tensor, Layout()), moments(tensor.double().numpy())
    if special in ("nan", "inf"):
        assert (np.isnan(found.total), np.isinf(found.total)) == (special == "nan", special == "inf")
        np.testing.assert_equal([found.total, found.sum_squares, found.m2],
                                [expected.total, expected.sum_squares, expected.m2])
    else:
        assert np.isfinite(found.norm) and found.norm > 0
        assert found.norm == pytest.approx(expected.norm, rel=1e-12)
        assert found.std == pytest.approx(expected.std, rel=1e-12)


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
    assert records[("activation_mean", "encoder.2", 2)] == pytest.approx(relu.astype(np.float64).mean(), rel=ROW_PARTIALS_RTOL)
    assert records[("activation_zero_fraction", "encoder.2", 2)] == np.mean(relu == 0)


def test_tensors_of_several_blocks_of_rows_are_summed_whole(torch):
    """More rows than one block of the centered pass (and a partial last row)."""
    from ikkuna.adapters.torch import _ROWS_PER_BLOCK, tensor_moments
    from ikkuna.core.statistics import ROW_LENGTH

    generator = torch.Generator().manual_seed(3)
    size = 2 * _ROWS_PER_BLOCK * ROW_LENGTH + 5 * ROW_LENGTH + 7
    tensor = torch.randn(size, generator=generator) * 3 + 1
    assert_close_moments(tensor_moments(tensor, Layout()), moments(tensor.double().numpy()),
                         ROW_PARTIALS_RTOL)


@pytest.mark.parametrize("dtype", ["uint8", "uint32", "int16", "bool", "complex64", "float16"])
def test_fired_units_of_any_dtype_torch_holds(torch, dtype):
    """amax/amin where torch has them, else ``x != 0``: unsigned, complex, bool tensors too."""
    from ikkuna.adapters.torch import tensor_fired_units, wrap

    tensor = torch.ones(70_000, 4).to(getattr(torch, dtype))
    tensor[:, 2] = 0
    expected = [True, True, False, True]
    assert tensor_fired_units(tensor, NCHW).tolist() == expected
    assert wrap(tensor, NCHW).statistic("fired_units").tolist() == expected


def test_complex_tensors_are_refused_as_numpy_refuses_them_not_cut_to_their_real_part(torch):
    from ikkuna.adapters.torch import tensor_moments

    for size in (10, 300_000):  # numpy's path and the rows' path
        with pytest.raises(TypeError):
            tensor_moments(torch.ones(size, dtype=torch.complex64) * 1j, Layout())


@pytest.mark.parametrize("layout_name", ["nchw", "channels_last memory", "ncl", "ncdhw", "nc"])
def test_fired_units_reduced_by_rows_equal_numpy(torch, layout_name):
    """Contiguous tensors with values after the channel axis reduce each (sample, channel)
    row first; others reduce over all other axes at once: both equal numpy's answer, with a
    NaN firing, -0.0 not, and a channel whose largest value is 0 firing by its one negative
    value (its smallest, read only for channels that did not fire by their largest)."""
    from ikkuna.adapters.torch import tensor_fired_units, tensor_to_numpy

    shapes = {"nchw": (6, 5, 7, 3), "channels_last memory": (6, 5, 7, 3), "ncl": (4, 6, 9),
              "ncdhw": (2, 5, 3, 4, 2), "nc": (9, 6)}
    generator = torch.Generator().manual_seed(4)
    tensor = torch.randn(*shapes[layout_name], generator=generator)
    tensor[tensor < 1.0] = 0.0
    tensor[:, 1] = -0.0
    tensor[:, 2] = 0.0
    tensor[-1, 2].view(-1)[0] = float("nan")
    tensor[:, 3] = 0.0
    tensor[0, 3].view(-1)[-1] = -2.0
    if layout_name == "channels_last memory":
        tensor = tensor.to(memory_format=torch.channels_last)
        assert not tensor.is_contiguous()
    expected = fired_units(tensor_to_numpy(tensor), 1)
    assert expected.tolist()[1:4] == [False, True, True]
    assert tensor_fired_units(tensor, NCHW).tolist() == expected.tolist()


@pytest.mark.parametrize("zeroed", [0, 1, 5], ids=["all fire", "one idle", "most idle"])
def test_fired_units_read_smallest_values_only_for_channels_whose_largest_are_zero(
        torch, monkeypatch, zeroed):
    """A ReLU's live channels need no second pass; one idle channel is read alone, and where
    most channels are idle the whole tensor is read instead of a copy of most of it."""
    from ikkuna.adapters.torch import tensor_fired_units, tensor_to_numpy

    generator = torch.Generator().manual_seed(5)
    tensor = torch.relu(torch.randn(4, 6, 5, 5, generator=generator)) + 0.5
    tensor[:, :zeroed] = 0.0
    if zeroed:
        tensor[1, 0, 2, 3] = -1.0  # fires by its smallest value only
    read = []
    amin = torch.Tensor.amin
    monkeypatch.setattr(torch.Tensor, "amin",
                        lambda self, *a, **k: (read.append(self.shape[1]), amin(self, *a, **k))[1])
    expected = fired_units(tensor_to_numpy(tensor), 1)
    assert tensor_fired_units(tensor, NCHW).tolist() == expected.tolist()
    assert expected.tolist() == ([True] * 6 if zeroed < 2 else [True] + [False] * 4 + [True])
    assert read == {0: [], 1: [1], 5: [6]}[zeroed]


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "bfloat16", "int32"])
@pytest.mark.parametrize("size", [1000, 300_001], ids=["numpy", "rows"])  # rows: in torch
def test_sum_of_squares_in_torch_equals_the_values_and_their_moments(torch, dtype, size):
    from ikkuna.adapters.torch import tensor_moments, tensor_sum_of_squares, tensor_to_numpy

    generator = torch.Generator().manual_seed(3)
    tensor = (torch.randn(size, generator=generator) * 4).to(getattr(torch, dtype)).reshape(-1, 1)
    values = tensor_to_numpy(tensor).astype(np.float64)
    found = tensor_sum_of_squares(tensor, Layout())
    exact = dtype in ("float64", "int32") or size < 300_000 and dtype != "bfloat16"
    rtol = 1e-12 if exact else ROW_PARTIALS_RTOL
    assert isinstance(found, float)
    assert found == pytest.approx(float(np.dot(values.ravel(), values.ravel())), rel=rtol)
    assert found == pytest.approx(tensor_moments(tensor, Layout()).sum_squares, rel=rtol)


def test_sum_of_squares_in_torch_of_any_layout_and_dtype_equals_the_dense_values(torch):
    from ikkuna.adapters.torch import tensor_sum_of_squares

    generator = torch.Generator().manual_seed(4)
    large = torch.randn(700, 600, generator=generator)  # summed by torch's rows
    cases = {
        "empty": torch.zeros(0, 3),
        "0-d": torch.tensor(-3.0),
        "strided": large[:, ::2],
        "transposed": large.t(),
        "expanded": torch.randn(1, 600, generator=generator).expand(700, 600),
        "bool": large > 0,
        "int8": (large * 10).to(torch.int8),
        "sparse": torch.randn(300, 400, generator=generator).relu().to_sparse(),
    }
    for name, tensor in cases.items():
        dense = (tensor.to_dense() if tensor.is_sparse else tensor).double()
        expected = float((dense * dense).sum())
        assert tensor_sum_of_squares(tensor, Layout()) == pytest.approx(
            expected, rel=ROW_PARTIALS_RTOL), name


def test_an_all_zero_tensor_is_known_without_a_float64_copy(torch, monkeypatch):
    from ikkuna.adapters.torch import _SMALLEST_FOR_TORCH, tensor_sum_of_squares

    monkeypatch.setattr(torch.linalg, "vecdot", lambda *args: pytest.fail("summed in float64"))
    assert tensor_sum_of_squares(torch.zeros(_SMALLEST_FOR_TORCH + 5), Layout()) == 0.0
    tiny = torch.full((_SMALLEST_FOR_TORCH + 5,), 1e-30)  # squares underflow: not all zero
    monkeypatch.undo()
    assert tensor_sum_of_squares(tiny, Layout()) == pytest.approx(tiny.double().square().sum().item())


@pytest.mark.parametrize("special", ["nan", "inf", "overflow", "vanishing", "zeros"])
def test_sums_of_squares_the_float32_rows_cannot_hold_are_summed_exactly(torch, special):
    from ikkuna.adapters.torch import tensor_sum_of_squares

    tensor = summed_by_torch_with(torch, special)
    values = tensor.double()
    expected = float(torch.dot(values, values))
    found = tensor_sum_of_squares(tensor, Layout())
    if special in ("nan", "inf"):
        np.testing.assert_equal(found, expected)
    else:
        assert found == pytest.approx(expected, rel=1e-12) and ((found > 0) == (special != "zeros"))


def test_complex_tensors_have_no_sum_of_squares_as_they_have_no_moments(torch):
    from ikkuna.adapters.torch import tensor_sum_of_squares

    for size in (10, 300_000):
        with pytest.raises(TypeError):
            tensor_sum_of_squares(torch.ones(size, dtype=torch.complex64) * 1j, Layout())


def test_default_metrics_read_sums_of_squares_of_parameters_and_moments_of_outputs(
        torch, monkeypatch):
    """The norms need one pass over a parameter, not its moments' sums and zero count; each
    array's statistic is computed once, however many metrics read it."""
    import ikkuna.adapters.torch as adapter
    from ikkuna.core import kinds as K
    from ikkuna.core.monitor import Monitor
    from ikkuna.core.statistics import FIRED_UNITS, MOMENTS, SUM_SQUARES

    torch.manual_seed(0)
    model = small_cnn(torch)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    inputs, labels = image_batch(torch, 0)
    emitting: list[str] = []
    emitted: list[str] = []
    original_emit = Monitor.emit

    def emit(self, kind, **kwargs):
        if kwargs.get("array") is not None:
            emitted.append(kind)
        emitting.append(kind)
        try:
            return original_emit(self, kind, **kwargs)
        finally:
            emitting.pop()

    monkeypatch.setattr(Monitor, "emit", emit)
    reduced: dict[str, list[str]] = {MOMENTS: [], SUM_SQUARES: [], FIRED_UNITS: []}
    for name, kinds in reduced.items():
        original = adapter.REDUCERS[name]
        monkeypatch.setitem(adapter.REDUCERS, name, lambda tensor, layout, original=original,
                            kinds=kinds: kinds.append(emitting[-1]) or original(tensor, layout))
    sink = MemorySink()
    with ikkuna.attach(model, optimizer=optimizer, sinks=[sink]) as monitor:
        for _ in range(2):
            train_step(torch, model, optimizer, inputs, labels, monitor)
    parameter_kinds = (K.WEIGHTS, K.GRADIENTS, K.UPDATES)
    assert sorted(reduced[MOMENTS]) == sorted(k for k in emitted if k == K.ACTIVATIONS)
    assert sorted(reduced[SUM_SQUARES]) == sorted(k for k in emitted if k in parameter_kinds)
    assert len(reduced[SUM_SQUARES]) == 2 * 3 * len(list(model.parameters()))
    weight = model.head.weight.detach().double()
    records = {(r.metric, r.layer, r.param, r.step): r.value for r in sink.records}
    norm = records[("weight_norm", "head", "weight", 1)]
    assert norm == pytest.approx(float(weight.norm()), rel=1e-12)
