"""The probe in PyTorch: layer outputs, micro-batch gradients and Hessian-vector products of a
fixed batch, mixed into :class:`ikkuna.adapters.torch.TorchAdapter`.

Every pass runs with the whole model in eval mode (restored per module afterwards), inside
``torch.random.fork_rng`` (training's random streams are untouched) and with
``torch.autograd.grad`` (no ``.grad`` is written). The adapter's own hooks ignore these passes:
they record only while the model is in training mode.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from ikkuna.core.arrays import Array
from ikkuna.core.layers import LayerInfo
from ikkuna.core.probe import (
    HESSIAN_VECTOR_PRODUCT,
    PROBE_ACTIVATIONS,
    PROBE_GRADIENTS,
    Probe,
    ProbeParameter,
    ProbeSession,
    map_leaves,
)

PROBE_CAPABILITIES = frozenset({PROBE_ACTIVATIONS, PROBE_GRADIENTS, HESSIAN_VECTOR_PRODUCT})


class TorchProbe:
    """Probe methods of the torch adapter (``self.model``, ``self._modules``, ``layers()``)."""

    model: Any
    _modules: dict[str, Any]

    # -- what the probe sees ------------------------------------------------------------------

    def _probe_entries(self, session: ProbeSession) -> list[tuple[ProbeParameter, Any]]:
        """(parameter, tensor) of every trainable parameter, each once (tied weights)."""
        if "torch_entries" not in session.cache:
            from ikkuna.adapters.torch import parameter_layout

            entries, seen = [], set()
            for info in self.layers():
                module = self._modules[info.name]
                for name, parameter in module.named_parameters(recurse=False):
                    if parameter.requires_grad and id(parameter) not in seen:
                        seen.add(id(parameter))
                        layout = parameter_layout(module, name, parameter)
                        entries.append((ProbeParameter(info, info.params[name],
                                                       tuple(parameter.shape), layout), parameter))
            session.cache["torch_entries"] = entries
        return session.cache["torch_entries"]

    def probe_parameters(self, session: ProbeSession) -> list[ProbeParameter]:
        return [entry for entry, _ in self._probe_entries(session)]

    def _probe_batch(self, session: ProbeSession) -> Probe:
        """The probe with its arrays as tensors on the model's device (floating numpy arrays
        in the dtype of the model's floating parameters)."""
        if "torch_batch" not in session.cache:
            probe = session.probe
            session.cache["torch_batch"] = Probe(self._to_tensors(probe.inputs),
                                                 self._to_tensors(probe.targets), probe.loss)
        return session.cache["torch_batch"]

    def _to_tensors(self, value: Any) -> Any:
        import torch

        parameter = next((p for p in self.model.parameters() if p.is_floating_point()), None)
        device = parameter.device if parameter is not None else None

        def to_tensor(leaf: Any) -> Any:
            if isinstance(leaf, torch.Tensor):
                return leaf.to(device=device)
            array = np.asarray(leaf)
            dtype = parameter.dtype if parameter is not None and array.dtype.kind == "f" else None
            return torch.as_tensor(array, device=device, dtype=dtype)

        return map_leaves(to_tensor, value)

    @contextmanager
    def _probe_mode(self) -> Iterator[None]:
        """Eval mode and a forked random state for the probe's passes; both restored after."""
        import torch

        modes = [(module, module.training) for module in self.model.modules()]
        devices = sorted({p.device.index or 0 for p in self.model.parameters()
                          if p.device.type == "cuda"})
        try:
            with torch.random.fork_rng(devices=devices):
                self.model.eval()
                yield
        finally:
            for module, training in modes:
                module.training = training

    # -- the passes ---------------------------------------------------------------------------

    def probe_activations(self, session: ProbeSession,
                          layers: list[LayerInfo]) -> list[tuple[LayerInfo, Array]]:
        import torch

        from ikkuna.adapters.torch import _first_tensor, activation_layout, tensor_to_numpy

        found: dict[str, tuple[LayerInfo, Array]] = {}
        handles = []

        def watch(layer: LayerInfo) -> Any:
            def hook(module: Any, args: Any, output: Any) -> None:
                tensor = _first_tensor(output)
                if tensor is not None and layer.name not in found:  # copied now: in-place ops
                    found[layer.name] = (layer, Array.from_numpy(
                        tensor_to_numpy(tensor), activation_layout(module, tensor.ndim)))
            return hook

        for layer in layers:
            handles.append(self._modules[layer.name].register_forward_hook(watch(layer)))
        try:
            with self._probe_mode(), torch.no_grad():
                self.model(self._probe_batch(session).inputs)
        finally:
            for handle in handles:
                handle.remove()
        return [found[layer.name] for layer in layers if layer.name in found]

    def probe_gradients(self, session: ProbeSession, groups: int) -> list[np.ndarray]:
        import torch

        from ikkuna.adapters.torch import tensor_to_numpy

        entries = self._probe_entries(session)
        params = [tensor for _, tensor in entries]
        batch = self._probe_batch(session)
        found: list[list[np.ndarray]] = [[] for _ in entries]
        with self._probe_mode(), torch.enable_grad():
            for inputs, targets in batch.split(groups):
                loss = batch.compute_loss(self.model(inputs), targets)
                grads = torch.autograd.grad(loss, params, allow_unused=True)
                for index, (grad, parameter) in enumerate(zip(grads, params)):
                    found[index].append(tensor_to_numpy(grad) if grad is not None else
                                        np.zeros(tuple(parameter.shape), np.float32))
        return [np.stack(values) for values in found]

    def probe_hessian_vector_product(self, session: ProbeSession, vectors: np.ndarray) -> np.ndarray:
        import torch

        entries = self._probe_entries(session)
        params = [tensor for _, tensor in entries]
        if "torch_gradient_graph" not in session.cache:
            batch = self._probe_batch(session)
            with self._probe_mode(), torch.enable_grad():
                loss = batch.compute_loss(self.model(batch.inputs), batch.targets)
                grads = torch.autograd.grad(loss, params, create_graph=True, allow_unused=True)
            session.cache["torch_gradient_graph"] = [
                (index, grad) for index, grad in enumerate(grads)
                if grad is not None and grad.requires_grad
            ]
        differentiable = session.cache["torch_gradient_graph"]
        sizes = [entry.size for entry, _ in entries]
        offsets = np.cumsum([0, *sizes])
        results = np.zeros_like(vectors, dtype=np.float64)
        if not differentiable:
            return results  # the loss is linear in every parameter
        with torch.enable_grad():
            for row, vector in enumerate(vectors):
                pieces = [
                    torch.as_tensor(vector[offsets[i]:offsets[i + 1]].reshape(params[i].shape),
                                    dtype=params[i].dtype, device=params[i].device)
                    for i, _ in differentiable
                ]
                products = torch.autograd.grad([g for _, g in differentiable], params,
                                               grad_outputs=pieces, retain_graph=True,
                                               allow_unused=True)
                for index, product in enumerate(products):
                    if product is not None:
                        results[row, offsets[index]:offsets[index + 1]] = (
                            product.detach().to("cpu", torch.float64).reshape(-1).numpy())
        return results
