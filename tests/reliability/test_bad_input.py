"""Every public entry point, given a wrong type or value, names what it got and what it accepts."""

from __future__ import annotations

import pytest

import ikkuna

pytestmark = pytest.mark.framework

#: attach option -> (wrong value, error type, words the message must hold)
ATTACH_CASES = {
    "optimizer": ("sgd", TypeError, ["torch.optim.Optimizer", "builtins.str"]),
    "metrics": (3, TypeError, ["metric names", "got int: 3"]),
    "metrics-item": ([3], TypeError, ["metric names", "got int: 3"]),
    "metrics-unknown": (["nope"], ValueError, ["'nope'", "weight_norm"]),
    "sinks": (3, TypeError, ["sink names", "got int: 3"]),
    "sinks-item": ([3], TypeError, ["sink names", "got int: 3"]),
    "sinks-unknown": (["nope"], ValueError, ["'nope'", "store"]),
    "layers": (3, TypeError, ["glob string", "got int"]),
    "layers-no-match": ("zzz*", ValueError, ["'zzz*'", "its layers"]),
    "every": ("often", TypeError, ["an int, ikkuna.Every or a callable", "got str"]),
    "every-zero": (0, ValueError, ["positive int", "got 0"]),
    "run": (3, TypeError, ["non-empty str", "got 3"]),
    "run-empty": ("", TypeError, ["non-empty str", "got ''"]),
    "store": (3, TypeError, ["directory path", "got int"]),
    "framework": ("mxnet", ValueError, ["'mxnet'", "torch"]),
    "probe": (3, TypeError, ["ikkuna.Probe", "builtins.int"]),
    "doctor": ("yell", ValueError, ["'warn' or 'raise'", "'yell'"]),
    "doctor_every": (0, ValueError, ["int >= 1", "got 0"]),
    "doctor_every-str": ("x", ValueError, ["int >= 1", "got 'x'"]),
    "ranks": (2, ValueError, ["'rank0', 'all', 'mean', 'max'", "got 2"]),
}


@pytest.mark.parametrize("case", sorted(ATTACH_CASES))
def test_attach_names_the_wrong_value_and_what_it_accepts(torch, case, tmp_path):
    option = case.split("-")[0]
    value, error, words = ATTACH_CASES[case]
    options = {"sinks": [], "store": tmp_path, option: value}
    with pytest.raises(error) as raised:
        ikkuna.attach(torch.nn.Linear(2, 2), **options)
    for word in words:
        assert word in str(raised.value), (case, str(raised.value))


@pytest.mark.parametrize("call, error, words", [
    (lambda: ikkuna.attach(None), ikkuna.UnsupportedModelError, ["NoneType", "torch.nn.Module"]),
    (lambda: ikkuna.open_run(3), TypeError, ["str or None", "int"]),
    (lambda: ikkuna.list_runs(store=3), TypeError, ["directory path", "int"]),
    (lambda: ikkuna.Every("x"), ValueError, ["positive int", "'x'"]),
    (lambda: ikkuna.Histogram([1], [1]), ValueError, ["len(edges) == len(counts) + 1", "1 edges"]),
    (lambda: ikkuna.diagnose(3), TypeError, ["ikkuna.Run, a run name", "int"]),
], ids=["attach-model", "open_run", "list_runs", "Every", "Histogram", "diagnose"])
def test_other_entry_points_name_the_wrong_value_and_what_they_accept(torch, call, error, words):
    with pytest.raises(error) as raised:
        call()
    for word in words:
        assert word in str(raised.value), str(raised.value)
