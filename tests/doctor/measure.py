"""Print the README's doctor table from the test trainings: for each rule, the broken case
that shows it, the step after which the live doctor (``doctor_every=1``) first reported it,
and how many of the six healthy digits trainings it fired on.

    python -m tests.doctor.measure      (needs torch, keras + tensorflow, jax + flax + optax)
"""

from __future__ import annotations

import os
import tempfile
import warnings

os.environ.setdefault("IKKUNA_STORE", tempfile.mkdtemp())
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main() -> None:
    import keras
    import torch

    import ikkuna
    from tests.doctor import jax_cases, keras_cases, torch_cases

    warnings.simplefilter("ignore")
    rows: list[tuple[str, str, str]] = []
    healthy: list[list] = []
    for name, (rule, _) in sorted(torch_cases.BROKEN.items()):
        _, monitor = torch_cases.diagnosed(torch, name)
        rows.append((rule, f"torch `test_torch_rules.py[{name}]`", _detected(monitor, rule)))
    for name in torch_cases.HEALTHY:
        healthy.append(torch_cases.diagnosed(torch, name, metrics="default")[0])
    live = {"doctor": "warn", "doctor_every": 1}
    keras.utils.set_random_seed(0)
    nan = keras_cases.fit(keras, keras_cases.mlp(keras, breaks_from=3), steps=10, **live)
    high = keras_cases.fit(keras, keras_cases.mlp(keras, activation="tanh"), lr=1.0,
                           momentum=0.0, epochs=2, **live)
    rows += [("nan_or_inf", "Keras fit `test_keras_nan_origin...`", _detected(nan, "nan_or_inf")),
             ("learning_rate_too_high", "Keras fit `test_keras_learning_rate_too_high...`",
              _detected(high, "learning_rate_too_high"))]
    for build, images in (("mlp", False), ("cnn", True)):
        keras.utils.set_random_seed(0)
        monitor = keras_cases.fit(keras, getattr(keras_cases, build)(keras), images=images, **live)
        healthy.append(ikkuna.diagnose(monitor.run))
    nan = jax_cases.train(jax_cases.mlp(breaks_from=3), steps=10, **live)
    high = jax_cases.train(jax_cases.mlp(activation="tanh"), lr=1.0, momentum=0.0, steps=90, **live)
    rows += [("nan_or_inf", "JAX jit `test_jax_nan_origin...`", _detected(nan, "nan_or_inf")),
             ("learning_rate_too_high", "JAX jit `test_jax_learning_rate_too_high...`",
              _detected(high, "learning_rate_too_high"))]
    for build, images in (("mlp", False), ("cnn", True)):
        monitor = jax_cases.train(getattr(jax_cases, build)(), images=images, **live)
        healthy.append(ikkuna.diagnose(monitor.run))
    print("| rule | broken case (test) | detected after step | false alarms on healthy runs |")
    print("|---|---|---|---|")
    for rule, case, step in rows:
        alarms = sum(any(f.rule == rule for f in findings) for findings in healthy)
        print(f"| `{rule}` | {case} | {step} | {alarms} of {len(healthy)} |")
    print(f"\nhealthy runs: {len(healthy)}, findings in them: {sum(map(len, healthy))}")


def _detected(monitor, rule: str) -> str:
    steps = [step for (name, _), step in monitor.doctor.detected_at.items() if name == rule]
    return str(min(steps)) if steps else "not detected"


if __name__ == "__main__":
    main()
