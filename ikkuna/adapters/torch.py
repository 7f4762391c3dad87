"""PyTorch adapter: module forward hooks, tensor hooks and optimizer step hooks to events.

torch is imported on first use, never when ikkuna is imported.
"""

from __future__ import annotations

import sys
import weakref
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import numpy as np

from ikkuna.adapters.base import Adapter
from ikkuna.adapters.torch_probe import PROBE_CAPABILITIES, TorchProbe
from ikkuna.core import kinds as K
from ikkuna.core.arrays import Array, Layout
from ikkuna.core.layers import LayerInfo, activation_name
from ikkuna.core.ranks import Distribution
from ikkuna.core.statistics import (
    FIRED_UNITS,
    MOMENTS,
    ROW_LENGTH,
    SUM_SQUARES,
    Moments,
    moments,
    moments_of_row_sums,
    moments_of_rows,
    sum_of_row_squares,
    sum_of_squares,
)

ROOT_LAYER_NAME = "model"
#: Seconds a rank waits for the others to gather a step's records (``ranks="mean"/"max"``).
GATHER_TIMEOUT_S = 120
_IMAGE_NDIMS = (4, 5)  # NCHW / NCDHW: channels on axis 1 in torch


def _torch() -> Any:
    try:
        import torch
    except ImportError as error:  # pragma: no cover - only without torch
        raise ImportError("the PyTorch adapter needs torch: pip install 'ikkuna[torch]'") from error
    return torch


def tensor_to_numpy(tensor: Any) -> np.ndarray:
    """A host copy of ``tensor`` as numpy; bfloat16 (which numpy lacks) becomes float32."""
    torch = _torch()
    tensor = _dense(tensor)
    dtype = torch.float32 if tensor.dtype == torch.bfloat16 else tensor.dtype
    return tensor.to(device="cpu", dtype=dtype, copy=True).numpy()


def tensor_view(tensor: Any) -> np.ndarray | None:
    """A numpy view sharing a CPU tensor's memory (no copy); None where there is none (another
    device, sparse, bfloat16, a lazily conjugated or negated view)."""
    torch = _torch()
    if tensor.device.type != "cpu" or tensor.layout != torch.strided or tensor.dtype == torch.bfloat16:
        return None
    try:
        return tensor.detach().numpy()
    except (RuntimeError, TypeError):
        return None


def _dense(tensor: Any) -> Any:
    """``tensor`` detached, and dense (sparse gradients: ``Embedding(sparse=True)``)."""
    tensor = tensor.detach()
    return tensor.to_dense() if tensor.layout != _torch().strided else tensor


def tensor_moments(tensor: Any, layout: Layout) -> Moments:
    """:class:`Moments` computed by torch on the tensor's own device, one transfer of per-row
    partials, combined in float64 on the host (float32 rows for float32 and narrower floats):
    first each row's sum and sum of squares (:func:`ikkuna.core.statistics.moments_of_row_sums`,
    one pass each); where the mean is large next to the spread, each row centered on its
    mean (:func:`ikkuna.core.statistics.moments_of_rows`); where neither can be trusted
    (non-finite values, vanishing magnitudes), exactly in float64. A small CPU tensor goes to
    numpy (:func:`moments` on a view): torch's per-call cost is larger than the whole sum
    there."""
    torch = _torch()
    flat = _dense(tensor).reshape(-1)
    count = flat.numel()
    if count == 0:
        return Moments(0, 0.0, 0.0, 0.0, 0)
    host = _summed_by_numpy(flat)
    if host is not None:
        return moments(host)
    exact = flat.dtype == torch.float64 or not flat.is_floating_point()
    work = flat.to(torch.float64) if exact else flat.to(torch.float32)
    zeros = _zero_count(flat)
    if not exact:
        found = moments_of_row_sums(*_row_sums(work), count, zeros)
        if found is not None:
            return found
    partial = moments_of_rows(*_row_partials(work), count, zeros)
    return partial if partial is not None else _exact_moments(flat, zeros)


def _summed_by_numpy(flat: Any) -> np.ndarray | None:
    """The values numpy sums instead of torch: a complex tensor's (a copy; numpy's sums refuse
    it, as they did before torch summed rows) and a small CPU tensor's (a view: torch's
    per-call cost is larger than the whole sum there); None for the others."""
    if flat.is_complex():
        return tensor_to_numpy(flat)
    return tensor_view(flat) if flat.numel() < _SMALLEST_FOR_TORCH else None


#: Fewer values than this on the CPU are summed by numpy, which is faster there.
_SMALLEST_FOR_TORCH = 1 << 17
#: Rows per block of the centered pass: its temporary holds at most this many rows.
_ROWS_PER_BLOCK = 512


#: Values per row of torch's uncentered row sums: torch's cascade sums keep repeated values'
#: rounding errors within about 3e-6 at this length, and shorter rows are slower in torch.
_SUM_ROW_LENGTH = 256


def _row_sums(flat: Any) -> np.ndarray:
    """Each row's sum and sum of squares (the partials of
    :func:`ikkuna.core.statistics.moments_of_row_sums`), one pass each without a temporary, as
    a ``(2, rows)`` float64 numpy array."""
    torch = _torch()
    matrix, rest = _rows_of_sums(flat)
    sums = torch.cat([matrix.sum(dim=1), rest.sum(dim=1)])
    partials = torch.stack([sums, _row_norms(matrix, rest)]).cpu().numpy().astype(np.float64)
    np.square(partials[1], out=partials[1])
    return partials


def _rows_of_sums(flat: Any) -> tuple[Any, Any]:
    """A vector as whole rows of :data:`_SUM_ROW_LENGTH` values and one row of what is left
    (torch's rows; numpy's are ``ikkuna.core.statistics.SUM_ROW_LENGTH`` long)."""
    rows = flat.numel() // _SUM_ROW_LENGTH
    return (flat[: rows * _SUM_ROW_LENGTH].view(rows, _SUM_ROW_LENGTH),
            flat[rows * _SUM_ROW_LENGTH:].unsqueeze(0))


def _row_norms(matrix: Any, rest: Any) -> Any:
    """Each row's L2 norm (rows, then the rest's), in the rows' dtype."""
    torch = _torch()
    norm = torch.linalg.vector_norm
    return torch.cat([norm(matrix, dim=1), norm(rest, dim=1)])


def tensor_sum_of_squares(tensor: Any, layout: Layout) -> float:
    """``sum(x^2)`` (:data:`ikkuna.core.statistics.SUM_SQUARES`) computed by torch on the
    tensor's device, as :func:`tensor_moments` gives its ``sum_squares`` but in one pass: a
    float32 (or narrower float) tensor by float32 rows, one norm per row crossing to the host
    and the rows' squares added in float64 (within ``ROW_PARTIALS_RTOL``), unless that sum
    is not finite or its squares could have underflowed; float64 and integer tensors in
    float64. Small CPU tensors and complex ones go to numpy, as in :func:`tensor_moments`."""
    torch = _torch()
    flat = _dense(tensor).reshape(-1)
    count = flat.numel()
    if count == 0:
        return 0.0
    host = _summed_by_numpy(flat)
    if host is not None:
        return sum_of_squares(host)
    if flat.is_floating_point() and flat.dtype != torch.float64:
        rows = _row_norms(*_rows_of_sums(flat.to(torch.float32)))
        norms = rows.cpu().numpy().astype(np.float64)
        found = sum_of_row_squares(np.square(norms, out=norms), count)
        if found is not None:
            return found
        if not norms.any() and _all_zero(flat):
            return 0.0  # a frozen parameter's update: no float64 copy
    values = flat.to(torch.float64)
    return float(torch.linalg.vecdot(values, values).item())


def _all_zero(flat: Any) -> bool:
    """Whether every value is zero: its largest and smallest are (two fast reductions;
    torch's comparisons to zero are several times slower)."""
    return bool(flat.amax() == 0) and bool(flat.amin() == 0)


def _row_partials(flat: Any) -> np.ndarray:
    """Each row's mean, sum of deviations from it and their sum of squares (the partials of
    :func:`ikkuna.core.statistics.moments_of_rows`), as a ``(3, rows)`` numpy array."""
    torch = _torch()
    rows = flat.numel() // ROW_LENGTH
    parts = []
    if rows:
        matrix = flat[: rows * ROW_LENGTH].view(rows, ROW_LENGTH)
        means = matrix.sum(dim=1) / ROW_LENGTH
        residuals, squares = torch.empty_like(means), torch.empty_like(means)
        for start in range(0, rows, _ROWS_PER_BLOCK):
            block = slice(start, start + _ROWS_PER_BLOCK)
            deviations = matrix[block] - means[block].unsqueeze(1)
            torch.sum(deviations, dim=1, out=residuals[block])
            torch.sum(deviations.square_(), dim=1, out=squares[block])
        parts.append(torch.stack([means, residuals, squares]))
    rest = flat[rows * ROW_LENGTH:]
    if rest.numel():
        mean = rest.mean()
        deviations = rest - mean
        parts.append(torch.stack([mean, deviations.sum(), deviations.square_().sum()]).unsqueeze(1))
    return torch.cat(parts, dim=1).cpu().numpy()


def _zero_count(flat: Any) -> int:
    """Entries equal to zero (a numpy count on a CPU view: torch's is several times slower)."""
    view = tensor_view(flat)
    if view is not None:
        return int(np.count_nonzero(view == 0))
    return int((flat == 0).sum().item())


def _exact_moments(flat: Any, zeros: int) -> Moments:
    """:class:`Moments` in float64 with two passes (four scalars cross to the host)."""
    torch = _torch()
    count = flat.numel()
    values = flat.to(torch.float64)
    total = values.sum()
    sums = torch.stack([total, values.square().sum(),
                        (values - total / count).square().sum()]).cpu().tolist()
    return Moments(count, sums[0], sums[1], sums[2], zeros)


#: Integer dtypes with ``amax``/``amin`` on every device (unsigned ones beyond uint8 lack them).
_SIGNED_INTEGERS = frozenset(f"torch.int{bits}" for bits in (8, 16, 32, 64))


def tensor_fired_units(tensor: Any, layout: Layout) -> np.ndarray | None:
    """:func:`ikkuna.core.statistics.fired_units` computed by torch on the tensor's device: a
    channel fired where its largest or smallest value is not zero (NaN, as ``x != 0``, counts
    as fired), reduced in place, without moving channels."""
    tensor = _dense(tensor)
    if tensor.numel() == 0:
        return None
    if tensor.ndim < 2 or layout.channel_axis is None:
        return np.array([bool(tensor.ne(0).any().item())])
    axis = layout.channel_axis % tensor.ndim
    others = tuple(a for a in range(tensor.ndim) if a != axis)
    if not ((tensor.is_floating_point() and tensor.dtype.itemsize > 1)
            or str(tensor.dtype) in _SIGNED_INTEGERS):
        return tensor.ne(0).any(dim=others).cpu().numpy()  # complex, unsigned, float8: no amax
    after = int(np.prod(tensor.shape[axis + 1:], dtype=np.int64))
    if after > 1 and tensor.is_contiguous():
        # NCHW: reduce each (sample, channel) row of contiguous values first, twice as fast
        tensor, axis = tensor.view(-1, tensor.shape[axis], after), 1

        def fired_by(extreme: str, values: Any) -> Any:
            return getattr(values, extreme)(dim=2).ne(0).any(dim=0)
    else:
        def fired_by(extreme: str, values: Any) -> Any:
            return getattr(values, extreme)(dim=others).ne(0)

    fired = fired_by("amax", tensor).cpu().numpy()
    idle = np.flatnonzero(~fired)
    # only channels whose largest value is 0 need their smallest (a live ReLU's never do);
    # where most are idle (zero gradients, dead layers), the whole tensor, not a copy of most
    if 2 * idle.size > fired.size:
        fired |= fired_by("amin", tensor).cpu().numpy()
    elif idle.size:
        selected = tensor.index_select(axis, _torch().as_tensor(idle, device=tensor.device))
        fired[idle] = fired_by("amin", selected).cpu().numpy()
    return fired


#: Statistics computed by torch itself, on any device: only small vectors (or one bool per
#: channel) cross to the host. On the CPU too, torch's threaded reductions are several times
#: faster than numpy's on a view (small tensors go to numpy inside :func:`tensor_moments`).
REDUCERS = {MOMENTS: tensor_moments, FIRED_UNITS: tensor_fired_units,
            SUM_SQUARES: tensor_sum_of_squares}


def wrap(tensor: Any, layout: Layout) -> Array:
    return Array(tensor, tensor_to_numpy, shape=tuple(tensor.shape),
                 dtype=str(tensor.dtype).removeprefix("torch."), layout=layout,
                 view=tensor_view, reducers=REDUCERS)


def layer_kind(module: Any) -> str:
    nn = _torch().nn
    if isinstance(module, nn.Linear):
        return "dense"
    if isinstance(module, nn.Conv2d):
        return "conv2d"
    norms = (nn.modules.batchnorm._BatchNorm, nn.LayerNorm, nn.GroupNorm,
             nn.modules.instancenorm._InstanceNorm, getattr(nn, "RMSNorm", nn.LayerNorm))
    if isinstance(module, norms):
        return "norm"
    if isinstance(module, (nn.Embedding, nn.EmbeddingBag)):
        return "embedding"
    return "other"


def layer_activation(module: Any) -> str | None:
    """The neutral name of the activation a torch module is (``nn.Tanh`` -> ``"tanh"``), from
    the first class of ``torch.nn.modules.activation`` among its bases; a ``Hardtanh`` with
    other bounds than (-1, 1) is None."""
    nn = _torch().nn
    if isinstance(module, nn.Hardtanh) and not isinstance(module, nn.ReLU6) and (
        (module.min_val, module.max_val) != (-1.0, 1.0)
    ):
        return None
    for cls in type(module).__mro__:
        if cls.__module__ == "torch.nn.modules.activation":
            return activation_name(cls.__name__)
    return None


def parameter_layout(module: Any, name: str, parameter: Any) -> Layout:
    """Where the output and input axes of a torch parameter are."""
    nn = _torch().nn
    if parameter.ndim == 0:
        return Layout()
    if parameter.ndim == 1:
        return Layout(out_axis=0)
    if name == "weight" and isinstance(
        module, (nn.Embedding, nn.EmbeddingBag, nn.modules.conv._ConvTransposeNd)
    ):
        return Layout(out_axis=1, in_axis=0)  # (num, dim) and (in, out/groups, *kernel)
    return Layout(out_axis=0, in_axis=1)  # Linear (out, in), Conv (out, in/groups, *kernel)


def activation_layout(module: Any, ndim: int) -> Layout:
    """Batch on axis 0; channels on axis 1 for images and 1-d convs, else last."""
    nn = _torch().nn
    if ndim == 0:
        return Layout()
    if ndim == 1:
        return Layout(batch_axis=0)
    channels_first = ndim in _IMAGE_NDIMS or (
        ndim == 3 and isinstance(module, (nn.Conv1d, nn.BatchNorm1d, nn.MaxPool1d, nn.AvgPool1d))
    )
    return Layout(batch_axis=0, channel_axis=1 if channels_first else -1)


def unwrap_parallel(model: Any) -> Any:
    """The module inside ``DistributedDataParallel`` or ``DataParallel`` (its layers keep
    their own names, without ``module.``); any other module as it is."""
    parallel = _torch().nn.parallel
    wrappers = (parallel.DistributedDataParallel, parallel.DataParallel)
    return model.module if isinstance(model, wrappers) else model


def _in_backward() -> bool:
    """Whether autograd is running a backward pass (activation checkpointing re-runs forwards)."""
    current = getattr(_torch()._C, "_current_graph_task_id", None)
    return current is not None and current() != -1


def _learning_rate(optimizer: Any) -> float | None:
    """The first parameter group's ``lr`` (a float or a one-element tensor), if it has one.

    Reading it changes nothing: torch optimizers read ``lr`` from the group at each step.
    """
    groups = optimizer.param_groups
    value = groups[0].get("lr") if groups else None
    return None if value is None else float(value)


def _first_tensor(value: Any) -> Any:
    torch = _torch()
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, (tuple, list)):
        return next((v for v in value if isinstance(v, torch.Tensor)), None)
    if isinstance(value, dict):
        return next((v for v in value.values() if isinstance(v, torch.Tensor)), None)
    return None


class TorchAdapter(TorchProbe, Adapter):
    """Monitors a ``torch.nn.Module`` trained with a ``torch.optim.Optimizer``."""

    framework = "torch"
    accepted = "torch.nn.Module"
    #: ``learning_rate``: the first parameter group's ``lr`` of the optimizer that steps;
    #: the probe's capabilities (see ``torch_probe``), run at the optimizer step's end.
    capabilities = frozenset({"learning_rate"}) | PROBE_CAPABILITIES

    def __init__(self, model: Any, optimizer: Any = None) -> None:
        super().__init__(unwrap_parallel(model), optimizer)
        torch = _torch()
        if optimizer is not None and not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(
                "optimizer= for a torch model must be a torch.optim.Optimizer or None, got "
                f"{type(optimizer).__module__}.{type(optimizer).__qualname__}"
            )
        self._handles: list[Any] = []
        self._tensor_handles: list[Any] = []
        self._modules: dict[str, Any] = {}
        self._params: list[tuple[LayerInfo, str, Any, Layout]] = []
        self._before_step: dict[int, Any] = {}
        self._buffers: dict[int, Any] = {}  # per parameter: its value before the step, reused
        self._stepping: list[tuple[LayerInfo, str, Any, Layout]] = []
        self._trains_model: weakref.WeakKeyDictionary[Any, bool] = weakref.WeakKeyDictionary()
        self._model_parameters: set[int] = set()
        self._lr_step: int | None = None

    @classmethod
    def accepts(cls, model: Any) -> bool:
        torch = sys.modules.get("torch")
        return torch is not None and isinstance(model, torch.nn.Module)

    def versions(self) -> dict[str, str]:
        return {"torch": str(_torch().__version__)}

    def distribution(self) -> Distribution | None:
        """The rank in ``torch.distributed``'s default group, if one with several ranks is
        initialized. Records are gathered over a gloo group of their own (made at the first
        gather, which every rank reaches at the same step), with a timeout."""
        dist = _torch().distributed
        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
            return None
        group: list[Any] = []

        def gather(payload: Any) -> list[Any]:
            if not group:
                group.append(dist.new_group(backend="gloo",
                                            timeout=timedelta(seconds=GATHER_TIMEOUT_S)))
            found: list[Any] = [None] * dist.get_world_size()
            dist.all_gather_object(found, payload, group=group[0])
            return found

        def close() -> None:
            # a subgroup left alive when the user destroys the default group aborts the process
            if group and dist.is_initialized():
                dist.destroy_process_group(group.pop())

        return Distribution(dist.get_rank(), dist.get_world_size(), gather, close)

    def as_array(self, value: Any, layout: Layout) -> Array:
        if isinstance(value, _torch().Tensor):
            return wrap(value, layout)
        return Array.from_numpy(value, layout)

    def layers(self) -> list[LayerInfo]:
        named = list(self.model.named_modules())
        root_name = ROOT_LAYER_NAME
        while root_name in {name for name, _ in named}:
            root_name += "_"  # a child is called "model": the root's own name must differ
        found = []
        for name, module in named:
            own = [n for n, _ in module.named_parameters(recurse=False)]
            if next(module.children(), None) is not None and not own:
                continue  # a container: its children are the layers
            roles = {n: n for n in own}
            found.append(LayerInfo(name or root_name, layer_kind(module), self.framework, roles,
                                   activation=layer_activation(module)))
            self._modules[name or root_name] = module
        return found

    # -- installing ---------------------------------------------------------------------------

    def install(self, monitor: Any, layers: list[LayerInfo], kinds: frozenset[str]) -> None:
        self.monitor = monitor
        self._model_parameters = {id(p) for p in self.model.parameters()}
        self._handles.append(self.model.register_forward_pre_hook(self._on_model_forward))
        if K.INPUTS in kinds or K.OUTPUTS in kinds:
            self._handles.append(
                self.model.register_forward_hook(self._on_model_output, with_kwargs=True)
            )
        if K.ACTIVATIONS in kinds or K.OUTPUT_GRADIENTS in kinds:
            for layer in layers:
                module = self._modules[layer.name]
                self._handles.append(module.register_forward_hook(self._layer_output_hook(layer)))
        for layer in layers:
            module = self._modules[layer.name]
            for name, parameter in module.named_parameters(recurse=False):
                layout = parameter_layout(module, name, parameter)
                self._params.append((layer, layer.params[name], parameter, layout))
        self._install_optimizer_hooks()

    def _install_optimizer_hooks(self) -> None:
        if self.optimizer is not None:
            self._handles.append(self.optimizer.register_step_pre_hook(self._on_step_start))
            self._handles.append(self.optimizer.register_step_post_hook(self._on_step_end))
        else:
            import torch.optim.optimizer as optim  # torch.optim deletes its `optimizer` attribute
            self._handles.append(optim.register_optimizer_step_pre_hook(self._on_step_start))
            self._handles.append(optim.register_optimizer_step_post_hook(self._on_step_end))

    def remove(self) -> None:
        for handle in self._handles + self._tensor_handles:
            handle.remove()
        self._handles.clear()
        self._tensor_handles.clear()
        self._params.clear()
        self._before_step.clear()
        self._buffers.clear()

    # -- hooks --------------------------------------------------------------------------------

    def _training(self) -> bool:
        """A training pass: the model (not each layer: a frozen BatchNorm counts) is in train
        mode and autograd records."""
        return self.model.training and _torch().is_grad_enabled()

    def _on_model_forward(self, module: Any, args: Any) -> None:
        if self._training():
            self.monitor.training_pass_started()

    def _on_model_output(self, module: Any, args: Any, kwargs: Any, output: Any) -> None:
        if not self._training():
            return
        inputs = args if _first_tensor(args) is not None else kwargs
        for kind, value in ((K.INPUTS, inputs), (K.OUTPUTS, output)):
            tensor = _first_tensor(value)
            if tensor is not None and self.monitor.recording(kind):
                self.monitor.emit(kind, array=wrap(tensor, activation_layout(module, tensor.ndim)))

    def _layer_output_hook(self, layer: LayerInfo) -> Callable[..., None]:
        monitor = self.monitor

        def on_output(module: Any, args: Any, output: Any) -> None:
            if monitor.between_steps and self._training():
                monitor.training_pass_started()  # the model's own forward may not be called
            activations = monitor.recording(K.ACTIVATIONS)
            gradients = monitor.recording(K.OUTPUT_GRADIENTS)
            if not (activations or gradients) or not self._training() or _in_backward():
                return  # cheapest checks first: this runs for every layer on every pass
            tensor = _first_tensor(output)
            if tensor is None:
                return
            layout = activation_layout(module, tensor.ndim)
            if activations:
                monitor.emit(K.ACTIVATIONS, layer=layer, array=wrap(tensor, layout))
            if gradients and tensor.requires_grad:

                def on_gradient(gradient: Any) -> None:
                    monitor.emit(K.OUTPUT_GRADIENTS, layer=layer, array=wrap(gradient, layout))

                self._tensor_handles.append(tensor.register_hook(on_gradient))

        return on_output

    def _is_ours(self, optimizer: Any) -> bool:
        if optimizer is self.optimizer:
            return True
        known = self._trains_model.get(optimizer)
        if known is None:
            known = any(
                id(p) in self._model_parameters
                for group in optimizer.param_groups
                for p in group["params"]
            )
            self._trains_model[optimizer] = known
        return known

    def _params_of(self, optimizer: Any) -> list[tuple[LayerInfo, str, Any, Layout]]:
        """The watched parameters ``optimizer`` updates (it may train only part of the model)."""
        if optimizer is self.optimizer:
            return self._params
        stepped = {id(p) for group in optimizer.param_groups for p in group["params"]}
        return [entry for entry in self._params if id(entry[2]) in stepped]

    def _on_step_start(self, optimizer: Any, args: Any, kwargs: Any) -> Any:
        if not self._is_ours(optimizer):
            return None
        monitor = self.monitor
        monitor.optimizer_step_started(optimizer)
        for handle in self._tensor_handles:  # backward is over: those hooks have fired
            handle.remove()
        self._tensor_handles.clear()
        monitor.emit(K.STEP_STARTED)
        if monitor.recording(K.LEARNING_RATE) and self._lr_step != monitor.step:
            self._lr_step = monitor.step  # several optimizers in one step: the first one's
            learning_rate = _learning_rate(optimizer)
            if learning_rate is not None:
                monitor.emit(K.LEARNING_RATE, value=learning_rate)
        params = self._params_of(optimizer)
        self._stepping = params
        if monitor.recording(K.UPDATES):
            self._before_step = self._copy_before_step(params)
        # torch hands the hook step()'s args with the optimizer itself first
        closure = kwargs.get("closure", args[1] if len(args) > 1 else None)
        if closure is None:
            self._emit_gradients(params)
            return None
        # LBFGS and friends compute the gradients inside step(): report them after the
        # closure's first evaluation, at the point where the step starts from.
        wrapped = self._closure_reporting_gradients(closure, params)
        if "closure" in kwargs:
            return args, {**kwargs, "closure": wrapped}
        return (args[0], wrapped, *args[2:]), kwargs

    def _copy_before_step(self, params: list[tuple[LayerInfo, str, Any, Layout]]) -> dict[int, Any]:
        """Each trained parameter's value before the step, in a buffer kept from step to step
        (the update is then computed into it, so no tensor is allocated per step)."""
        torch = _torch()
        before = {}
        with torch.no_grad():
            for _, _, parameter, _ in params:
                if not parameter.requires_grad:
                    continue
                buffer = self._buffers.get(id(parameter))
                if (buffer is None or buffer.shape != parameter.shape or buffer.dtype != parameter.dtype
                        or buffer.device != parameter.device):
                    buffer = self._buffers[id(parameter)] = torch.empty_like(parameter.detach())
                buffer.copy_(parameter.detach())
                before[id(parameter)] = buffer
        return before

    def _closure_reporting_gradients(self, closure: Callable[[], Any], params: list) -> Callable[[], Any]:
        pending = [True]

        def reporting_closure() -> Any:
            loss = closure()
            if pending:
                pending.clear()
                self._emit_gradients(params)
            return loss

        return reporting_closure

    def _emit_gradients(self, params: list[tuple[LayerInfo, str, Any, Layout]]) -> None:
        monitor = self.monitor
        if monitor.recording(K.GRADIENTS):
            for layer, role, parameter, layout in params:
                if parameter.grad is not None:
                    monitor.emit(K.GRADIENTS, layer=layer, param=role,
                                 array=wrap(parameter.grad, layout))

    def _on_step_end(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        if not self._is_ours(optimizer):
            return
        monitor = self.monitor
        params = self._stepping
        if monitor.recording(K.WEIGHTS):
            for layer, role, parameter, layout in params:
                monitor.emit(K.WEIGHTS, layer=layer, param=role, array=wrap(parameter, layout))
        if self._before_step and monitor.recording(K.UPDATES):
            for layer, role, parameter, layout in params:
                before = self._before_step.get(id(parameter))
                if before is not None:
                    update = _torch().sub(parameter.detach(), before, out=before)
                    monitor.emit(K.UPDATES, layer=layer, param=role, array=wrap(update, layout))
        self._before_step = {}
        self._stepping = []
        monitor.emit(K.STEP_FINISHED)
        monitor.optimizer_step_finished()
