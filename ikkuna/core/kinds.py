"""The closed set of event kinds the adapters produce (DESIGN.md section 3)."""

from __future__ import annotations

ACTIVATIONS = "activations"
OUTPUT_GRADIENTS = "output_gradients"
GRADIENTS = "gradients"
WEIGHTS = "weights"
UPDATES = "updates"
STEP_STARTED = "step_started"
STEP_FINISHED = "step_finished"
EPOCH_STARTED = "epoch_started"
EPOCH_FINISHED = "epoch_finished"
LOSS = "loss"
INPUTS = "inputs"
OUTPUTS = "outputs"
LABELS = "labels"
#: The optimizer's learning rate of the step (a value, no array), from adapters whose
#: optimizer exposes it (the ``learning_rate`` capability).
LEARNING_RATE = "learning_rate"

#: A layer's output on the fixed probe batch, in inference mode, after the optimizer step
#: (adapter capability ``probe_activations``; needs ``attach(probe=...)``).
PROBE_ACTIVATIONS = "probe_activations"
#: One parameter's per-sample gradients of the probe loss, ``(samples, *shape)``, after the
#: optimizer step (adapter capability ``probe_gradients``).
PROBE_GRADIENTS = "probe_gradients"
#: The probe itself, once per probed step: ``group.probe`` is a :class:`ikkuna.ProbeSession`
#: (gradients on micro-batches, Hessian-vector products); the event has no array.
PROBE = "probe"

#: Kinds produced once per layer (per call of the layer).
LAYER_KINDS = frozenset({ACTIVATIONS, OUTPUT_GRADIENTS, PROBE_ACTIVATIONS})
#: Kinds produced once per (layer, parameter).
PARAMETER_KINDS = frozenset({GRADIENTS, WEIGHTS, UPDATES, PROBE_GRADIENTS})
#: Kinds that concern the whole run, not a layer.
RUN_KINDS = frozenset(
    {STEP_STARTED, STEP_FINISHED, EPOCH_STARTED, EPOCH_FINISHED, LOSS, INPUTS, OUTPUTS, LABELS,
     LEARNING_RATE, PROBE}
)
#: Kinds computed on the probe batch by extra passes after the optimizer step.
PROBE_KINDS = frozenset({PROBE_ACTIVATIONS, PROBE_GRADIENTS, PROBE})
#: Kinds without an array; metrics cannot need them.
MARKER_KINDS = frozenset({STEP_STARTED, STEP_FINISHED, EPOCH_STARTED, EPOCH_FINISHED})
#: Kinds whose events may arrive several times in one step (a layer called twice,
#: gradient accumulation); their arrays are joined along the batch axis.
BATCHED_KINDS = frozenset({ACTIVATIONS, OUTPUT_GRADIENTS, INPUTS, OUTPUTS, LABELS})

EVENT_KINDS = LAYER_KINDS | PARAMETER_KINDS | RUN_KINDS
#: Kinds a metric may list in ``needs``.
MEASURABLE_KINDS = EVENT_KINDS - MARKER_KINDS


def scope_of(kind: str) -> str:
    """Return ``"layer"``, ``"parameter"`` or ``"run"``: what one event of ``kind`` is about."""
    if kind in LAYER_KINDS:
        return "layer"
    if kind in PARAMETER_KINDS:
        return "parameter"
    if kind in RUN_KINDS:
        return "run"
    raise ValueError(f"unknown event kind {kind!r}; known kinds: {', '.join(sorted(EVENT_KINDS))}")
