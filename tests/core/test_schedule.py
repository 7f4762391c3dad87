"""Step schedules (``every=``) and layer selections (``layers=``)."""

from __future__ import annotations

import pytest

from ikkuna.core.layers import LayerInfo
from ikkuna.core.schedule import Every, as_layer_filter, as_schedule


def active_steps(schedule, steps=range(12)) -> list[int]:
    return [step for step in steps if schedule(step)]


def layer(name: str, kind: str = "dense") -> LayerInfo:
    return LayerInfo(name, kind, "numpy")


LAYERS = [layer("encoder.0"), layer("encoder.1"), layer("decoder.0"), layer("head", "other")]


def selected(predicate) -> list[str]:
    return [info.name for info in LAYERS if predicate(info)]


# --- Every -------------------------------------------------------------------------------------


def test_every_n_is_active_on_multiples_of_n_from_step_zero():
    assert active_steps(Every(3)) == [0, 3, 6, 9]


def test_every_with_start_is_active_from_start_then_every_n():
    assert active_steps(Every(4, start=2)) == [2, 6, 10]


def test_every_one_is_active_on_every_step():
    assert active_steps(Every(1)) == list(range(12))


@pytest.mark.parametrize("n", [0, -2, 1.5, "2", True, None])
def test_every_rejects_n_that_is_not_a_positive_int_naming_it(n):
    with pytest.raises(ValueError) as error:
        Every(n)
    assert "positive int" in str(error.value)
    assert repr(n) in str(error.value)


@pytest.mark.parametrize("start", [-1, 0.5, False])
def test_every_rejects_start_that_is_not_a_non_negative_int(start):
    with pytest.raises(ValueError) as error:
        Every(2, start=start)
    assert ">= 0" in str(error.value)
    assert repr(start) in str(error.value)


# --- as_schedule -------------------------------------------------------------------------------


def test_as_schedule_none_is_every_step():
    assert active_steps(as_schedule(None)) == list(range(12))


def test_as_schedule_int_is_every_n_steps():
    assert active_steps(as_schedule(5)) == [0, 5, 10]


def test_as_schedule_keeps_an_every_instance():
    assert active_steps(as_schedule(Every(3, start=1))) == [1, 4, 7, 10]


def test_as_schedule_callable_is_used_as_is():
    def odd(step: int) -> bool:
        return step % 2 == 1

    schedule = as_schedule(odd)
    assert schedule is odd
    assert active_steps(schedule) == [1, 3, 5, 7, 9, 11]


@pytest.mark.parametrize("every", [0, -3])
def test_as_schedule_rejects_non_positive_int_saying_positive_int(every):
    with pytest.raises(ValueError, match="positive int"):
        as_schedule(every)


@pytest.mark.parametrize("every, given", [("3", "str"), (2.5, "float"), ([1, 2], "list"), (True, "bool")])
def test_as_schedule_rejects_other_types_naming_what_is_accepted_and_given(every, given):
    with pytest.raises(TypeError) as error:
        as_schedule(every)
    message = str(error.value)
    assert "int" in message
    assert "ikkuna.Every" in message
    assert "callable" in message
    assert given in message


# --- as_layer_filter ---------------------------------------------------------------------------


def test_layer_filter_none_selects_every_layer():
    assert selected(as_layer_filter(None)) == [info.name for info in LAYERS]


def test_layer_filter_glob_matches_dotted_names():
    assert selected(as_layer_filter("encoder.*")) == ["encoder.0", "encoder.1"]


def test_layer_filter_glob_is_case_sensitive_and_matches_whole_name():
    assert selected(as_layer_filter("Encoder.*")) == []
    assert selected(as_layer_filter("encoder")) == []
    assert selected(as_layer_filter("*.0")) == ["encoder.0", "decoder.0"]


def test_layer_filter_list_of_globs_selects_the_union():
    assert selected(as_layer_filter(["decoder.*", "head"])) == ["decoder.0", "head"]


def test_layer_filter_tuple_of_globs_works_like_a_list():
    assert selected(as_layer_filter(("encoder.1", "head"))) == ["encoder.1", "head"]


def test_layer_filter_empty_list_selects_nothing():
    assert selected(as_layer_filter([])) == []


def test_layer_filter_predicate_receives_layer_info():
    seen = []

    def dense_only(info: LayerInfo) -> bool:
        seen.append(info)
        return info.kind == "dense"

    assert selected(as_layer_filter(dense_only)) == ["encoder.0", "encoder.1", "decoder.0"]
    assert seen == LAYERS


@pytest.mark.parametrize("layers, given", [(3, "int"), (2.0, "float")])
def test_layer_filter_rejects_bad_type_naming_what_is_accepted(layers, given):
    with pytest.raises(TypeError) as error:
        as_layer_filter(layers)
    message = str(error.value)
    assert "glob" in message
    assert "list of globs" in message
    assert "callable" in message
    assert given in message


def test_layer_filter_rejects_non_string_globs_naming_them():
    with pytest.raises(TypeError) as error:
        as_layer_filter(["encoder.*", 7])
    assert "strings" in str(error.value)
    assert "7" in str(error.value)
