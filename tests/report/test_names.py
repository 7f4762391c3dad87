"""Report file names: safe on every file system and unique within a report."""

from __future__ import annotations

from ikkuna.report.names import MAX_NAME_LENGTH, safe_name, unique_names


def test_characters_outside_letters_digits_dot_dash_underscore_become_underscores():
    assert safe_name("plugin/odd name:<i>") == "plugin_odd_name_i_"
    assert safe_name("weight_norm") == "weight_norm"


def test_names_cannot_hide_climb_or_be_empty_or_reserved():
    assert safe_name("../..") == "unnamed"
    assert safe_name(".hidden") == "hidden"
    assert safe_name("<>") == "unnamed"
    assert safe_name("con") == "_con"
    assert len(safe_name("x" * 500)) == MAX_NAME_LENGTH


def test_names_that_clash_even_by_case_get_numbered():
    assert unique_names(["a/b", "a:b", "A_B", "a_b-2"], ".png") == [
        "a_b.png", "a_b-2.png", "A_B-3.png", "a_b-2-2.png"]
