"""The built-in diagnosis rules (a plugin like any other: see ``ikkuna_findings``).

Each rule is a function ``rule(history) -> Iterable[Finding]`` over the recorded series. A rule
skips silently when the series it reads are absent. "Sustained" means a median over the last
:data:`WINDOW` recorded values (at least :data:`MIN_POINTS` of them), so one spike never makes
a finding. Windows count recorded values, not steps (with ``every=10``, 50 values are 500 steps).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

from ikkuna.core.hookspecs import hookimpl
from ikkuna.doctor.finding import Finding
from ikkuna.doctor.history import History, Key

#: Values a "sustained" condition is judged on (the most recent ones) ...
WINDOW = 50
#: ... and how many of them a rule needs before it says anything.
MIN_POINTS = 20

#: Learning rate: the median ||update|| / ||weight|| of a layer's weight over the window.
#: Healthy training sits near 1e-3; above LEARNING_RATE_HIGH_RATIO in any layer, each step
#: replaces a tenth of the weight (too high); below LEARNING_RATE_LOW_RATIO in every layer,
#: ten thousand steps change the weights by less than a tenth (too low).
LEARNING_RATE_HIGH_RATIO = 1e-1
#: Too high is judged on a running median over this many values: short, because a rate far too
#: high blows the weights up within a few steps, after which their ratio falls again.
LEARNING_RATE_HIGH_POINTS = 10
LEARNING_RATE_LOW_RATIO = 1e-5

#: Vanishing: a layer's relative gradient (||gradient|| / ||weight||, median over the window)
#: below VANISHING_RATIO times the largest relative gradient of a later layer; or every layer's
#: gradient norm below VANISHING_ABSOLUTE while the loss is above LOSS_NEAR_ZERO.
VANISHING_RATIO = 1e-3
VANISHING_ABSOLUTE = 1e-8
LOSS_NEAR_ZERO = 1e-3

#: Exploding: the global gradient norm's median over the last GROWTH_POINTS values is
#: EXPLODING_GROWTH times its median over the first ones; or a layer's relative gradient
#: (median over the window) is above EXPLODING_RELATIVE (one step of lr 0.1 would move the
#: weight by its own size).
EXPLODING_GROWTH = 1e3
EXPLODING_RELATIVE = 10.0
GROWTH_POINTS = 10

#: Dead units: ``dead_unit_fraction`` (median of its last DEAD_POINTS values) at or above
#: DEAD_FRACTION; without that series, ``activation_zero_fraction`` (median over the window)
#: at or above ZERO_FRACTION_DEAD: the layer outputs zero for (almost) every input.
DEAD_FRACTION = 0.5
DEAD_POINTS = 3
ZERO_FRACTION_DEAD = 0.99

#: Saturation: ``saturated_fraction`` (median over the window, at least SPARSE_MIN_POINTS
#: values) at or above SATURATED_FRACTION: most outputs sit at the activation's bounds, where
#: its gradient is about zero.
SATURATED_FRACTION = 0.5
SPARSE_MIN_POINTS = 5

#: Loss diverging: the loss's running median (over LOSS_SMOOTHING values) ends up
#: DIVERGENCE_FACTOR times above its lowest point (the lowest running median, or the median of
#: the first LOSS_START_POINTS values) and above where it started; or it becomes non-finite. Loss flat: over at least FLAT_MIN_POINTS values, the median of the last
#: tenth is not FLAT_MIN_DECREASE (relative) below the median of the first tenth.
DIVERGENCE_FACTOR = 3.0
LOSS_SMOOTHING = 20
LOSS_MIN_POINTS = 20
LOSS_START_POINTS = 5
FLAT_MIN_POINTS = 100
FLAT_MIN_DECREASE = 0.01

#: Weights that do not change: ``update_norm`` exactly 0 for the last FROZEN_POINTS values while
#: the gradient is not zero and other layers' weights change.
FROZEN_POINTS = 20

#: Activation scale with depth: the median ``activation_std`` of the last layer over that of
#: the first (in model order) beyond DEPTH_SCALE_FACTOR or below its inverse.
DEPTH_SCALE_FACTOR = 1e3

#: Order in which a step computes the kinds (for the origin of a NaN).
STEP_ORDER = ("inputs", "activations", "outputs", "loss", "labels", "output_gradients",
              "gradients", "updates", "weights")


# -- helpers -------------------------------------------------------------------------------------


def recent(history: History, metric: str, key: Key, minimum: int = MIN_POINTS,
           size: int = WINDOW) -> tuple[np.ndarray, np.ndarray] | None:
    """(steps, values) of the last ``size`` finite values of a series; None if fewer than
    ``minimum`` (or no series)."""
    if key not in history.keys(metric):
        return None
    series = history.series(metric, *key)
    steps, values = series.steps[-size:], series.values[-size:]
    good = np.isfinite(values)
    if int(good.sum()) < minimum:
        return None
    return steps[good], values[good]


def _label(metric: str, key: Key) -> str:
    layer, param = key
    where = ".".join(part for part in (layer, param) if part)
    return f"{metric} {where}" if where else metric


def _weights(history: History, metric: str) -> list[Key]:
    """Keys of ``metric`` for the weight (not bias) of every layer that is not a norm layer."""
    keys = []
    for key in history.keys(metric):
        layer = history.layer(key[0])
        if key[0] is None or key[1] == "bias" or (layer is not None and layer.kind == "norm"):
            continue
        keys.append(key)
    return keys


def _span(steps: Iterable[np.ndarray]) -> tuple[int, int]:
    found = [s for s in steps if len(s)]
    return (int(min(s[0] for s in found)), int(max(s[-1] for s in found))) if found else (0, 0)


def _layers(keys: Iterable[Key]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(key[0] for key in keys if key[0] is not None))


# -- rules ---------------------------------------------------------------------------------------


def nan_or_inf(history: History) -> Iterator[Finding]:
    """The first non-finite value of the run: its step, then the layer where it appeared.

    Within a step, kinds are ordered as the step computes them (activations in model order,
    the loss, gradients, updates, weights). ``+inf`` in a ``*_ratio`` series means a zero
    denominator, not an overflow, and is not counted.
    """
    first: tuple | None = None
    bad_at: dict[str, float] = {}
    last_bad = 0
    for metric in history.metrics():
        kinds = ("loss",) if metric == "loss" else history.kinds(metric)
        phase = max((STEP_ORDER.index(k) for k in kinds if k in STEP_ORDER), default=len(STEP_ORDER))
        for key in history.keys(metric):
            series = history.series(metric, *key)
            bad = ~np.isfinite(series.values)
            if metric.endswith("_ratio"):
                bad &= ~(series.values == np.inf)
            if not bad.any():
                continue
            index = int(np.argmax(bad))
            step, value = int(series.steps[index]), float(series.values[index])
            last_bad = max(last_bad, int(series.steps[bad][-1]))
            # a run-level series derived from the layers' (global_gradient_norm) comes after them
            position = history.position(key[0]) if key[0] is not None else len(history.layers())
            candidate = (step, phase, position, key[1] or "", metric, key, value)
            bad_at[f"{_label(metric, key)} @ {step}"] = value
            if first is None or candidate[:4] < first[:4]:
                first = candidate
    if first is None:
        return
    step, phase, _, _, metric, key, value = first
    layer = key[0]
    kind = STEP_ORDER[phase] if phase < len(STEP_ORDER) else "values"
    where = f"layer {layer!r}" if layer else "the run"
    evidence = {f"{_label(metric, key)} @ {step}": value}
    evidence.update(dict(sorted(
        ((label, v) for label, v in bad_at.items() if label.endswith(f"@ {step}")),
        key=lambda item: item[0])[:4]))
    yield Finding(
        rule="nan_or_inf",
        severity="error",
        message=f"{metric} of {where} is {value} at step {step}: the first non-finite value of "
                f"the run (in the {kind} of that step)",
        hint=_NAN_HINTS.get(kind, _NAN_HINTS["other"]).format(where=where, step=step),
        layers=(layer,) if layer else (),
        steps=(step, max(step, last_bad)),
        evidence=evidence,
    )


_NAN_HINTS = {
    "activations": "{where} computes a non-finite output at step {step} from finite inputs: look "
                   "for a division by zero, log or sqrt of a non-positive value or an overflow "
                   "(exp, float16) in it; guard it with an epsilon or clamp",
    "loss": "the loss is non-finite while the layers' outputs are finite: check the loss "
            "function (log of 0, a softmax computed by hand, labels out of range)",
    "output_gradients": "gradients became non-finite in the backward pass: look for operations "
                        "with an infinite derivative (sqrt at 0, log near 0), or lower the "
                        "learning rate and clip gradients",
    "gradients": "gradients became non-finite before the weights did: look for operations with "
                 "an infinite derivative (sqrt at 0, log near 0), or lower the learning rate "
                 "and clip gradients",
    "updates": "the optimizer step made the weights non-finite: lower the learning rate, clip "
               "gradients, and check the optimizer's epsilon",
    "weights": "the optimizer step made the weights non-finite: lower the learning rate, clip "
               "gradients, and check the optimizer's epsilon",
    "other": "a logged value became non-finite at step {step}: check how it is computed",
}


def loss_diverging(history: History) -> Iterator[Finding]:
    """The loss rises far above its best running median, or becomes non-finite."""
    if not history.has("loss"):
        return
    series = history.series("loss")
    finite = np.isfinite(series.values)
    if not finite.all() and finite.any() and finite[0]:
        index = int(np.argmax(~finite))
        yield Finding(
            "loss_diverging", "error",
            f"the loss became {series.values[index]} at step {series.steps[index]}",
            "lower the learning rate (try 10x lower) or clip gradients; see nan_or_inf for "
            "where the first non-finite value appeared",
            steps=(int(series.steps[index]), int(series.steps[-1])),
            evidence={"loss before": float(series.values[finite][:index][-1]),
                      "loss": float(series.values[index])},
        )
        return
    steps, values = series.steps[finite], series.values[finite]
    if values.size < LOSS_MIN_POINTS:
        return
    width = max(5, min(LOSS_SMOOTHING, values.size // 5))
    running = np.median(np.lib.stride_tricks.sliding_window_view(values, width), axis=1)
    start = float(np.median(values[:LOSS_START_POINTS]))
    best = int(np.argmin(running))
    lowest, at = (float(running[best]), int(steps[best + width - 1]))
    if start <= lowest:
        lowest, at = start, int(steps[0])
    now = float(running[-1])
    if now > DIVERGENCE_FACTOR * lowest and now > start and lowest > 0:
        yield Finding(
            "loss_diverging", "error",
            f"the loss rose from {lowest:.3g} (step {at}) to {now:.3g} (running median over "
            f"{width} steps): training is diverging",
            "lower the learning rate (try 10x lower), add warm-up or clip gradients",
            steps=(at, int(steps[-1])),
            evidence={"loss start": start, "loss lowest": lowest, "loss now": now},
        )


def loss_flat(history: History) -> Iterator[Finding]:
    """The loss has not fallen over a long stretch of training."""
    if not history.has("loss"):
        return
    series = history.series("loss")
    finite = np.isfinite(series.values)
    steps, values = series.steps[finite], series.values[finite]
    if values.size < FLAT_MIN_POINTS:
        return
    tenth = max(10, values.size // 10)
    start, now = float(np.median(values[:tenth])), float(np.median(values[-tenth:]))
    if start == 0 or now > DIVERGENCE_FACTOR * start:
        return
    decrease = (start - now) / abs(start)
    if decrease < FLAT_MIN_DECREASE:
        yield Finding(
            "loss_flat", "warning",
            f"the loss has not decreased over {values.size} recorded steps (median {start:.4g} "
            f"at the start, {now:.4g} now)",
            "check that the model can learn: a learning rate high enough, labels that match "
            "the inputs, gradients that reach the weights (see the other findings), no frozen "
            "model",
            steps=(int(steps[0]), int(steps[-1])),
            evidence={"loss start": start, "loss now": now, "relative decrease": decrease},
        )


def learning_rate(history: History) -> Iterator[Finding]:
    """Update-to-weight ratio far above (too high) or below (too low) about 1e-3.

    Too high: in any layer, the running median over LEARNING_RATE_HIGH_POINTS values exceeds the threshold
    anywhere in the run (a too-high rate often kills or blows up the network, after which the
    ratio says nothing). Too low: in every layer, over the recent window, while gradients are
    not zero (zero gradients are another rule's case).
    """
    high: dict[Key, tuple[float, int, int]] = {}
    for key in _weights(history, "update_to_weight_ratio"):
        series = history.series("update_to_weight_ratio", *key)
        good = np.isfinite(series.values)
        steps, values = series.steps[good], series.values[good]
        if values.size < LEARNING_RATE_HIGH_POINTS:
            continue
        running = np.median(np.lib.stride_tricks.sliding_window_view(values, LEARNING_RATE_HIGH_POINTS), axis=1)
        above = np.flatnonzero(running > LEARNING_RATE_HIGH_RATIO)
        if above.size:
            first = int(above[0])
            high[key] = (float(running[above].max()), int(steps[first]),
                         int(steps[first + LEARNING_RATE_HIGH_POINTS - 1]))
    if high:
        layers = _layers(high)
        yield Finding(
            "learning_rate_too_high", "warning",
            f"steps change the weights of {', '.join(layers)} by more than "
            f"{LEARNING_RATE_HIGH_RATIO:g} of their norm (median update/weight ratio over "
            f"{LEARNING_RATE_HIGH_POINTS} steps; healthy is about 1e-3)",
            "lower the learning rate about "
            f"{max(v[0] for v in high.values()) / 1e-3:.0f}x (or use warm-up / a schedule)",
            layers=layers, steps=(min(v[1] for v in high.values()), max(v[2] for v in high.values())),
            evidence={_label("update_to_weight_ratio", k): v[0] for k, v in high.items()},
        )
        return
    medians: dict[Key, float] = {}
    spans = []
    for key in _weights(history, "update_to_weight_ratio"):
        window = recent(history, "update_to_weight_ratio", key)
        if window is not None:
            medians[key] = float(np.median(window[1]))
            spans.append(window[0])
    if not medians or not all(median < LEARNING_RATE_LOW_RATIO for median in medians.values()):
        return
    gradients = [recent(history, "gradient_norm", key) for key in medians]
    if all(g is not None and np.median(g[1]) < VANISHING_ABSOLUTE for g in gradients):
        return
    top = max(medians.values())
    factor = "" if top == 0 else f" about {1e-3 / top:.0f}x"
    yield Finding(
        "learning_rate_too_low", "warning",
        f"each step changes the weights by less than {LEARNING_RATE_LOW_RATIO:g} of their "
        "norm in every layer (median update/weight ratio; healthy is about 1e-3)",
        f"raise the learning rate{factor}; if it is already reasonable, check that the "
        "optimizer steps the model's parameters and that gradients are not vanishing",
        layers=_layers(medians), steps=_span(spans),
        evidence={_label("update_to_weight_ratio", k): m for k, m in medians.items()},
    )


def _relative_gradients(history: History) -> dict[Key, tuple[float, float, np.ndarray]]:
    """Per weight: (median ||gradient||, median ||gradient|| / ||weight||, steps)."""
    found = {}
    for key in _weights(history, "gradient_norm"):
        window = recent(history, "gradient_norm", key)
        if window is None:
            continue
        gradient = float(np.median(window[1]))
        weight_window = recent(history, "weight_norm", key)
        weight = float(np.median(weight_window[1])) if weight_window is not None else 0.0
        found[key] = (gradient, gradient / weight if weight > 0 else gradient, window[0])
    return found


def vanishing_gradients(history: History) -> Iterator[Finding]:
    """Early layers' gradients tiny next to later layers' (or every layer's, absolutely)."""
    found = _relative_gradients(history)
    keys = list(found)
    if len(keys) < 2:
        return
    relative = [found[key][1] for key in keys]
    vanishing = [key for i, key in enumerate(keys)
                 if relative[i] < VANISHING_RATIO * max(relative[i + 1:], default=0.0)]
    if vanishing:
        later = max(relative[keys.index(vanishing[-1]) + 1:])
        yield Finding(
            "vanishing_gradients", "warning",
            f"the gradients of {', '.join(_layers(vanishing))} are less than {VANISHING_RATIO:g} "
            f"of a later layer's (relative to their weights, {min(found[k][1] for k in vanishing):.3g} "
            f"vs {later:.3g}): these layers barely learn",
            "use an activation that keeps gradients (ReLU family instead of sigmoid/tanh in deep "
            "stacks), a variance-preserving initialization (He/Glorot), normalization layers "
            "or residual connections",
            layers=_layers(vanishing), steps=_span(found[k][2] for k in vanishing),
            evidence={_label("gradient_norm/weight_norm", k): found[k][1] for k in keys},
        )
        return
    gradients = [found[key][0] for key in keys]
    loss = recent(history, "loss", (None, None))
    if max(gradients) < VANISHING_ABSOLUTE and (loss is None or np.median(loss[1]) > LOSS_NEAR_ZERO):
        yield Finding(
            "vanishing_gradients", "warning",
            f"every layer's gradient norm is below {VANISHING_ABSOLUTE:g} while the loss is not "
            "near zero: nothing learns",
            "check for saturated outputs (sigmoid/softmax fed huge logits), a loss that does not "
            "depend on the model, or a scale problem at initialization",
            layers=_layers(keys), steps=_span(found[k][2] for k in keys),
            evidence={_label("gradient_norm", k): found[k][0] for k in keys},
        )


def exploding_gradients(history: History) -> Iterator[Finding]:
    """The gradient norm grows by orders of magnitude, or dwarfs the weights."""
    found = _relative_gradients(history)
    large = [key for key, (_, relative, _) in found.items() if relative > EXPLODING_RELATIVE]
    steps, norms = _global_gradient_norm(history)
    growth = 0.0
    if norms.size >= 2 * GROWTH_POINTS:
        start = float(np.median(norms[:GROWTH_POINTS]))
        now = float(np.median(norms[-GROWTH_POINTS:]))
        growth = now / start if start > 0 else 0.0
    if not large and growth <= EXPLODING_GROWTH:
        return
    evidence = {_label("gradient_norm/weight_norm", k): found[k][1] for k in large}
    message = []
    if growth > EXPLODING_GROWTH:
        message.append(f"the global gradient norm grew {growth:.3g}x (from {start:.3g} to {now:.3g})")
        evidence.update({"global_gradient_norm start": start, "global_gradient_norm now": now})
    if large:
        message.append(f"the gradients of {', '.join(_layers(large))} are more than "
                       f"{EXPLODING_RELATIVE:g}x the norm of their weights")
    spans = [found[k][2] for k in large] + ([steps] if growth > EXPLODING_GROWTH else [])
    yield Finding(
        "exploding_gradients", "error", "; ".join(message),
        "clip gradients (by global norm), lower the learning rate, use a smaller initialization "
        "scale or add normalization layers",
        layers=_layers(large), steps=_span(spans), evidence=evidence,
    )


def _global_gradient_norm(history: History) -> tuple[np.ndarray, np.ndarray]:
    """Finite values of ``global_gradient_norm``, or the root sum of squares of every
    parameter's ``gradient_norm`` at each step."""
    if history.has("global_gradient_norm"):
        series = history.series("global_gradient_norm")
        good = np.isfinite(series.values)
        return series.steps[good], series.values[good]
    totals: dict[int, float] = {}
    for key in history.keys("gradient_norm"):
        series = history.series("gradient_norm", *key)
        for step, value in zip(series.steps.tolist(), series.values.tolist()):
            totals[step] = totals.get(step, 0.0) + value * value
    steps = np.array(sorted(totals), dtype=np.int64)
    norms = np.sqrt(np.array([totals[s] for s in steps.tolist()], dtype=np.float64))
    good = np.isfinite(norms)
    return steps[good], norms[good]


def dead_units(history: History) -> Iterator[Finding]:
    """Layers whose units output zero for every sample (dead ReLUs), as one finding: a dead
    layer usually kills the layers after it too."""
    dead: list[tuple[str | None, str, tuple[np.ndarray, np.ndarray], str]] = []
    measured = set()
    for key in history.keys("dead_unit_fraction"):
        measured.add(key[0])
        window = recent(history, "dead_unit_fraction", key, minimum=1, size=DEAD_POINTS)
        if window is not None and np.median(window[1]) >= DEAD_FRACTION:
            dead.append((key[0], "dead_unit_fraction", window,
                         f"{np.median(window[1]):.0%} of its units output zero for every sample"))
    for key in history.keys("activation_zero_fraction"):
        if key[0] in measured:
            continue
        window = recent(history, "activation_zero_fraction", key)
        if window is not None and np.median(window[1]) >= ZERO_FRACTION_DEAD:
            dead.append((key[0], "activation_zero_fraction", window,
                         f"{np.median(window[1]):.1%} of its outputs are exactly zero"))
    if not dead:
        return
    if len(dead) == 1:
        message = f"layer {dead[0][0]!r} is dead: {dead[0][3]}"
    else:
        message = f"{len(dead)} layers are dead: " + "; ".join(
            f"{layer!r}, {what}" for layer, _, _, what in dead)
    yield Finding(
        "dead_units", "warning", message,
        "dead ReLUs get no gradient and never recover: check the bias initialization (large "
        "negative biases), lower the learning rate, or use LeakyReLU/GELU",
        layers=tuple(layer for layer, _, _, _ in dead if layer),
        steps=(min(int(w[0][0]) for _, _, w, _ in dead), max(int(w[0][-1]) for _, _, w, _ in dead)),
        evidence={_label(metric, (layer, None)): float(np.median(window[1]))
                  for layer, metric, window, _ in dead},
    )


def saturated_activations(history: History) -> Iterator[Finding]:
    """Most outputs of a bounded activation (tanh, sigmoid) sit at its bounds."""
    for key in history.keys("saturated_fraction"):
        window = recent(history, "saturated_fraction", key, minimum=SPARSE_MIN_POINTS)
        if window is None:
            continue
        median = float(np.median(window[1]))
        if median >= SATURATED_FRACTION:
            yield Finding(
                "saturated_activations", "warning",
                f"layer {key[0]!r} is saturated: {median:.0%} of its outputs sit at the "
                "activation's bounds, where its gradient is about zero",
                "scale the inputs of this layer down: a smaller weight initialization (Glorot), "
                "normalized inputs, a normalization layer before the activation, or a lower "
                "learning rate",
                layers=(key[0],) if key[0] else (), steps=(int(window[0][0]), int(window[0][-1])),
                evidence={_label("saturated_fraction", key): median},
            )


def weights_not_updating(history: History) -> Iterator[Finding]:
    """A trainable layer whose update is exactly zero while it has gradients and others update."""
    frozen: dict[str, list[Key]] = {}
    spans: dict[str, np.ndarray] = {}
    moving = False
    for key in history.keys("update_norm"):
        window = recent(history, "update_norm", key, minimum=FROZEN_POINTS, size=FROZEN_POINTS)
        if window is None:
            continue
        if np.any(window[1] != 0):
            moving = True
            continue
        gradient = recent(history, "gradient_norm", key, minimum=1, size=FROZEN_POINTS)
        if gradient is not None and np.all(gradient[1] == 0):
            continue  # no gradient reaches it: not this rule's case
        frozen.setdefault(key[0] or "", []).append(key)
        spans[key[0] or ""] = window[0]
    if not moving:
        return
    for layer, keys in frozen.items():
        evidence = {}
        for key in keys:
            evidence[_label("update_norm", key)] = 0.0
            gradient = recent(history, "gradient_norm", key, minimum=1)
            if gradient is not None:
                evidence[_label("gradient_norm", key)] = float(np.median(gradient[1]))
        yield Finding(
            "weights_not_updating", "warning",
            f"the weights of layer {layer!r} have not changed for {FROZEN_POINTS} recorded steps "
            "although they receive gradients and other layers' weights change",
            "the optimizer does not step this layer's parameters: pass all of model.parameters() "
            "(or this layer's) to the optimizer, or freeze it on purpose (requires_grad=False / "
            "trainable=False) so that no gradient is computed",
            layers=(layer,), steps=(int(spans[layer][0]), int(spans[layer][-1])), evidence=evidence,
        )


def activation_scale_with_depth(history: History) -> Iterator[Finding]:
    """The activations' standard deviation grows or collapses by orders of magnitude with depth."""
    stds: dict[Key, float] = {}
    spans = []
    for key in history.keys("activation_std"):
        window = recent(history, "activation_std", key, minimum=SPARSE_MIN_POINTS)
        if window is not None and np.median(window[1]) > 0:
            stds[key] = float(np.median(window[1]))
            spans.append(window[0])
    keys = [key for key in stds if key[0] is not None]
    if len(keys) < 3:
        return
    first, last = keys[0], keys[-1]
    ratio = stds[last] / stds[first]
    if 1 / DEPTH_SCALE_FACTOR <= ratio <= DEPTH_SCALE_FACTOR:
        return
    direction = "grows" if ratio > 1 else "collapses"
    yield Finding(
        "activation_scale_with_depth", "warning",
        f"the activations' standard deviation {direction} {ratio if ratio > 1 else 1 / ratio:.3g}x "
        f"from layer {first[0]!r} ({stds[first]:.3g}) to layer {last[0]!r} ({stds[last]:.3g})",
        "the initialization does not preserve the scale through depth: use He (ReLU) or Glorot "
        "(tanh/sigmoid) initialization, or add normalization layers",
        layers=(first[0], last[0]), steps=_span(spans),
        evidence={_label("activation_std", key): stds[key] for key in keys},
    )


#: The built-in rules, in the order they run.
RULES = (
    nan_or_inf,
    loss_diverging,
    exploding_gradients,
    vanishing_gradients,
    learning_rate,
    dead_units,
    saturated_activations,
    weights_not_updating,
    activation_scale_with_depth,
    loss_flat,
)


@hookimpl
def ikkuna_findings() -> list:
    return list(RULES)
