"""The probe in PyTorch: values against independent computations, non-interference, detach."""

from __future__ import annotations

import numpy as np
import pytest

import ikkuna
from ikkuna.core.probe import ProbeSession
from ikkuna.metrics.probing import (
    GradientNoiseScale,
    GradientSignalToNoise,
    HessianTopEigenvalue,
    HessianTrace,
    SvccaSimilarity,
    svcca,
)
from tests.adapters.recording import recorder
from tests.probe.expectations import assert_noise_metrics_match

SAMPLES, FEATURES, HIDDEN, CLASSES = 16, 4, 6, 3


def mlp(torch, *, dropout: float = 0.0, norm: bool = False):
    nn = torch.nn
    layers = [nn.Linear(FEATURES, HIDDEN)]
    if norm:
        layers.append(nn.BatchNorm1d(HIDDEN))
    layers += [nn.Tanh(), nn.Dropout(dropout), nn.Linear(HIDDEN, CLASSES)]
    return nn.Sequential(*layers)


def probe_batch(torch):
    generator = torch.Generator().manual_seed(7)
    inputs = torch.randn(SAMPLES, FEATURES, generator=generator)
    targets = torch.randint(0, CLASSES, (SAMPLES,), generator=generator)
    return ikkuna.Probe(inputs, targets, torch.nn.functional.cross_entropy)


def train(torch, model, steps: int, monitor_options: dict | None = None):
    """SGD on fixed random batches; returns (losses, monitor or None)."""
    torch.manual_seed(1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    monitor = None
    if monitor_options is not None:
        monitor = ikkuna.attach(model, optimizer=optimizer, **monitor_options)
    losses = []
    for _ in range(steps):
        x = torch.randn(8, FEATURES)
        y = torch.randint(0, CLASSES, (8,))
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses, monitor


def flat_parameters(torch, model):
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def exact_hessian(torch, model, probe) -> np.ndarray:
    """The Hessian of the probe loss over all parameters (eval mode, float64), by
    torch.autograd.functional.hessian of a functional call."""
    names = [name for name, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]
    sizes = [p.numel() for p in model.parameters()]
    inputs = probe.inputs.double()

    def loss_of(flat):
        pieces = dict(zip(names, (t.reshape(s) for t, s in zip(flat.split(sizes), shapes))))
        return probe.loss(torch.func.functional_call(model, pieces, (inputs,)), probe.targets)

    model.eval()
    try:
        return torch.autograd.functional.hessian(loss_of, flat_parameters(torch, model).double()).numpy()
    finally:
        model.train()


def per_sample_gradients(torch, model, probe) -> np.ndarray:
    """(samples, size) gradients of the probe loss by torch.func.vmap(grad), eval mode."""
    names = [name for name, _ in model.named_parameters()]
    params = {n: p.detach() for n, p in model.named_parameters()}
    model.eval()

    def loss_of(parameters, x, y):
        outputs = torch.func.functional_call(model, parameters, (x[None],))
        return probe.loss(outputs, y[None])

    try:
        grads = torch.func.vmap(torch.func.grad(loss_of), in_dims=(None, 0, 0))(
            params, probe.inputs, probe.targets)
    finally:
        model.train()
    return np.concatenate([grads[n].reshape(SAMPLES, -1).numpy() for n in names], axis=1)


def test_hessian_vector_products_equal_the_exact_hessian_after_the_update(torch):
    model, probe = mlp(torch), probe_batch(torch)
    sessions = []

    class Capture(ikkuna.Metric):
        name, needs, requires = "capture_session", ("probe",), frozenset({"hessian_vector_product"})

        def compute(self, group):
            size = group.probe.size
            vectors = np.random.default_rng(0).standard_normal((3, size))
            sessions.append((vectors, group.probe.hessian_vector_product(vectors),
                             group.probe.hessian_vector_product(vectors[0])))

    _, monitor = train(torch, model, 2, {"metrics": [Capture()], "probe": probe})
    monitor.detach()
    hessian = exact_hessian(torch, model, probe)  # the weights after the last update
    vectors, products, single = sessions[-1]
    np.testing.assert_allclose(products, vectors @ hessian.T, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(single, products[0])


def test_curvature_metrics_agree_with_the_exact_hessian(torch):
    model, probe = mlp(torch), probe_batch(torch)
    metrics = [HessianTopEigenvalue(every=1, iterations=200, tolerance=1e-7),
               HessianTrace(every=1, samples=5, seed=3)]
    _, monitor = train(torch, model, 3, {"metrics": metrics, "probe": probe})
    monitor.detach()
    hessian = exact_hessian(torch, model, probe)
    eigenvalues = np.linalg.eigvalsh(hessian)
    top = eigenvalues[np.argmax(np.abs(eigenvalues))]
    assert monitor.series("hessian_top_eigenvalue").values[-1] == pytest.approx(top, rel=1e-3)
    signs = np.random.default_rng(3).integers(0, 2, size=(5, hessian.shape[0])) * 2.0 - 1.0
    hutchinson = np.mean(np.einsum("ij,jk,ik->i", signs, hessian, signs))
    assert monitor.series("hessian_trace").values[-1] == pytest.approx(hutchinson, rel=1e-4)


def test_gradient_noise_scale_and_snr_agree_with_explicit_per_sample_gradients(torch):
    model, probe = mlp(torch), probe_batch(torch)
    metrics = [GradientNoiseScale(every=1, microbatches=4), GradientSignalToNoise(every=1)]
    _, monitor = train(torch, model, 2, {"metrics": metrics, "probe": probe})
    monitor.detach()
    gradients = per_sample_gradients(torch, model, probe).astype(np.float64)
    # layer "0"'s weight (out, in) comes first, flattened
    assert_noise_metrics_match(monitor, gradients, 4, first=("0", "weight", FEATURES * HIDDEN))


def test_svcca_compares_a_layers_probe_outputs_with_its_previous_run(torch):
    model, probe = mlp(torch), probe_batch(torch)
    seen = []

    def outputs_after_step(module, args, output):
        if not module.training:
            seen.append(output.detach().numpy().copy())

    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    monitor = ikkuna.attach(model, optimizer=optimizer, probe=probe,
                            metrics=[SvccaSimilarity(every=2, layers="2")])
    handle = model[2].register_forward_hook(outputs_after_step)  # the Tanh, seen by the probe
    for _ in range(5):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(torch.randn(8, FEATURES) * 3),
                                          torch.randint(0, CLASSES, (8,))).backward()
        optimizer.step()
    handle.remove()
    monitor.detach()
    series = monitor.series("svcca_similarity", "2")
    assert list(series.steps) == [2, 4]
    assert len(seen) == 3  # steps 0, 2, 4
    expected = [svcca(seen[0], seen[1]), svcca(seen[1], seen[2])]
    np.testing.assert_allclose(series.values, expected, rtol=1e-6)


def snapshot(torch, model):
    return {name: value.detach().clone() for name, value in model.state_dict().items()}


@pytest.mark.parametrize("probe_every", [1, 2])
def test_the_probe_does_not_change_training_bitwise(torch, probe_every):
    every_metric = [SvccaSimilarity(every=probe_every), GradientNoiseScale(every=probe_every),
                    GradientSignalToNoise(every=probe_every),
                    HessianTopEigenvalue(every=probe_every, iterations=3),
                    HessianTrace(every=probe_every, samples=2)]
    torch.manual_seed(0)
    plain = mlp(torch, dropout=0.3, norm=True)
    torch.manual_seed(0)
    probed = mlp(torch, dropout=0.3, norm=True)
    plain_losses, _ = train(torch, plain, 5)
    plain_rng = torch.get_rng_state()
    plain_grads = [p.grad.clone() for p in plain.parameters()]
    probed_losses, monitor = train(torch, probed, 5, {"metrics": every_metric,
                                                      "probe": probe_batch(torch)})
    assert torch.equal(torch.get_rng_state(), plain_rng)
    monitor.detach()
    assert monitor.problems == []
    assert probed_losses == plain_losses
    for (name, value), other in zip(snapshot(torch, plain).items(), snapshot(torch, probed).values()):
        assert torch.equal(value, other), name  # weights and BatchNorm running statistics
    for grad, parameter in zip(plain_grads, probed.parameters()):
        assert torch.equal(parameter.grad, grad)
    assert probed.training and all(m.training for m in probed.modules())


def test_probe_passes_are_not_recorded_as_training_passes(torch):
    model = mlp(torch)
    activations = recorder("activations")
    probe_metrics = [SvccaSimilarity(every=1), HessianTrace(every=1, samples=2)]
    _, monitor = train(torch, model, 3, {"metrics": [activations, *probe_metrics],
                                         "probe": probe_batch(torch)})
    monitor.detach()
    assert activations.steps("0") == [0, 1, 2]
    assert all(s.values.shape[0] == 8 for s in activations.seen)  # training batches only


def test_detach_removes_every_probe_hook_and_the_probe_stops(torch):
    model, probe = mlp(torch), probe_batch(torch)
    hooks_before = [(len(m._forward_hooks), len(m._forward_pre_hooks)) for m in model.modules()]
    _, monitor = train(torch, model, 2, {"metrics": [SvccaSimilarity(every=1)], "probe": probe})
    monitor.detach()
    assert [(len(m._forward_hooks), len(m._forward_pre_hooks)) for m in model.modules()] == hooks_before
    count = len(monitor.series("svcca_similarity", "0").steps)
    train(torch, model, 2)
    assert len(monitor.series("svcca_similarity", "0").steps) == count


def test_probe_inputs_given_as_numpy_are_converted_to_the_models_dtype(torch):
    model = mlp(torch)
    probe = probe_batch(torch)
    numpy_probe = ikkuna.Probe(probe.inputs.numpy().astype(np.float64), probe.targets.numpy(),
                               probe.loss)
    _, monitor = train(torch, model, 1, {"metrics": [HessianTrace(every=1, samples=2)],
                                         "probe": numpy_probe})
    monitor.detach()
    assert monitor.problems == []
    assert np.isfinite(monitor.series("hessian_trace").values[0])


def test_a_failing_loss_disables_the_probe_metric_with_a_warning_and_training_goes_on(torch):
    model = mlp(torch)
    probe = ikkuna.Probe(torch.randn(4, FEATURES), torch.zeros(4), lambda o, t: 1 / 0)
    with pytest.warns(RuntimeWarning, match="ZeroDivisionError"):
        losses, monitor = train(torch, model, 3, {"metrics": [GradientNoiseScale(every=1, microbatches=2)],
                                                  "probe": probe})
    monitor.detach()
    assert len(losses) == 3
    assert [p.source for p in monitor.problems] == ["metric:gradient_noise_scale"]


def test_session_caches_gradients_of_a_step(torch):
    model, probe = mlp(torch), probe_batch(torch)
    adapter = ikkuna.attach(model, metrics=[]).adapter
    session = ProbeSession(adapter, probe, 0)
    assert session.gradients(4) is session.gradients(4)
    assert session.flat_gradients(4).shape == (4, session.size)
    assert session.size == sum(p.numel() for p in model.parameters())
