"""Report file names: safe on every file system and unique within a report."""

from __future__ import annotations

import hashlib

from ikkuna.report.names import (
    MAX_NAME_LENGTH,
    comparison_folder_name,
    run_folder_name,
    safe_name,
    unique_names,
)


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


def test_a_run_whose_name_is_safe_has_a_folder_of_that_name():
    assert run_folder_name("exp-1.lr_0.1") == "exp-1.lr_0.1"


def test_runs_whose_safe_names_are_alike_get_folders_of_their_own():
    folders = [run_folder_name(name) for name in ("a b", "a_b", "a?b", "a/b")]
    assert folders[1] == "a_b" and len(set(folders)) == 4
    assert folders[0] == "a_b-" + hashlib.sha1(b"a b").hexdigest()[:8]  # the same in any process


def test_long_names_that_differ_only_past_the_cut_get_folders_of_their_own():
    long = "resnet-" + "x" * 100
    first, second = run_folder_name(long + "-seed1"), run_folder_name(long + "-seed2")
    assert first != second and len(first) == len(second) == MAX_NAME_LENGTH + 9


def test_a_comparison_never_takes_the_folder_of_a_single_run():
    assert comparison_folder_name(["a", "b"]) == "compare-a-vs-b"
    assert run_folder_name("a-vs-b") == "a-vs-b"
    assert run_folder_name("compare-a-vs-b") != "compare-a-vs-b"
    assert run_folder_name("Compare-a-vs-b").startswith("Compare-a-vs-b-")


def test_comparisons_of_different_runs_get_different_folders():
    folders = [comparison_folder_name(runs) for runs in (
        ["a", "b", "c"], ["a-vs-b", "c"], ["a", "b-vs-c"], ["a b", "c"], ["a_b", "c"],
        ["x" * 100 + "1", "y"], ["x" * 100 + "2", "y"])]
    assert len(set(folders)) == len(folders)
    assert all(folder.startswith("compare-") and len(folder) <= 8 + MAX_NAME_LENGTH + 9
               for folder in folders)
