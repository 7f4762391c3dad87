"""`ikkuna new-plugin`: names, files, refusals (installing and testing the result: tests/plugins)."""

from __future__ import annotations

import ast
import tomllib

import pytest

import ikkuna
from ikkuna.cli import main
from ikkuna.scaffold import new_plugin
from ikkuna.scaffold.names import plugin_names


@pytest.mark.parametrize(("given", "slug"), [("grad-noise", "grad_noise"), ("GradNoise", "gradnoise"),
                                             ("ikkuna-grad_noise", "grad_noise"), ("x2", "x2")])
def test_names_follow_from_the_one_name_given(given, slug):
    names = plugin_names(given)
    assert names.slug == slug
    assert names.distribution == "ikkuna-" + slug.replace("_", "-")
    assert names.module == f"ikkuna_{slug}" and names.module.isidentifier()
    assert names.metric == f"{slug}_gradient_rms"


@pytest.mark.parametrize("bad", ["", "9lives", "grad noise", "a--b", "-x", "x-", "ikkuna",
                                 "ikkuna-1x", "ikkuna_9", "grad.noise", 3])
def test_a_name_that_cannot_make_a_package_is_refused_saying_what_is_accepted(bad):
    with pytest.raises(ValueError, match="not accepted") as error:
        plugin_names(bad)
    assert "grad-noise" in str(error.value)


@pytest.mark.parametrize("name", ["grad-noise", "class", "ikkuna-x1", "A_b-C"])
def test_every_accepted_name_renders_python_that_parses(tmp_path, name):
    _, written = new_plugin(name, tmp_path / "pkg")
    for path in written:
        if path.suffix == ".py":
            ast.parse(path.read_text(), filename=str(path))


def test_a_failed_write_leaves_no_half_written_package(tmp_path, monkeypatch):
    from pathlib import Path

    real_write = Path.write_text
    calls = []

    def failing_write(self, *args, **kwargs):
        calls.append(self)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        return real_write(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", failing_write)
    with pytest.raises(OSError, match="No space left"):
        new_plugin("grad-noise", tmp_path / "pkg")
    assert not (tmp_path / "pkg").exists()
    (tmp_path / "empty").mkdir()
    calls.clear()
    with pytest.raises(OSError):
        new_plugin("grad-noise", tmp_path / "empty")
    assert list((tmp_path / "empty").iterdir()) == []


def test_the_package_has_its_entry_point_api_version_metric_and_tests(tmp_path):
    names, written = new_plugin("grad-noise", tmp_path / "pkg")
    relative = sorted(str(p.relative_to(tmp_path / "pkg")) for p in written)
    assert relative == ["README.md", "pyproject.toml", "src/ikkuna_grad_noise/__init__.py",
                        "src/ikkuna_grad_noise/metrics.py", "tests/test_metrics.py"]
    project = tomllib.loads((tmp_path / "pkg" / "pyproject.toml").read_text())
    assert project["project"]["name"] == "ikkuna-grad-noise"
    assert project["project"]["entry-points"]["ikkuna"] == {"grad_noise": "ikkuna_grad_noise"}
    assert f"ikkuna>={ikkuna.__version__}" in project["project"]["dependencies"]
    for path in written:
        if path.suffix == ".py":
            ast.parse(path.read_text(), filename=str(path))  # every template renders to Python
    package = (tmp_path / "pkg" / "src" / "ikkuna_grad_noise" / "__init__.py").read_text()
    assert f'IKKUNA_PLUGIN_API = "{ikkuna.PLUGIN_API_VERSION}"' in package


def test_the_command_prints_the_files_and_next_steps(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["new-plugin", "grad-noise"]) == 0
    out = capsys.readouterr().out
    assert (tmp_path / "ikkuna-grad-noise" / "pyproject.toml").is_file()
    assert "created ikkuna-grad-noise" in out and "pip install -e ikkuna-grad-noise" in out
    main(["new-plugin", "grad-noise", "--path", str(tmp_path / "my plugins" / "x")])
    assert f"pip install -e '{tmp_path / 'my plugins' / 'x'}'" in capsys.readouterr().out
    assert "grad_noise_gradient_rms" in out


def test_an_existing_directory_with_files_is_not_touched(tmp_path, capsys):
    target = tmp_path / "taken"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    assert main(["new-plugin", "grad-noise", "--path", str(target)]) == 1
    assert "already exists" in capsys.readouterr().err
    assert [p.name for p in target.iterdir()] == ["keep.txt"]
    new_plugin("grad-noise", tmp_path / "empty")  # an empty directory is fine
    (tmp_path / "empty-dir").mkdir()
    new_plugin("grad-noise", tmp_path / "empty-dir")


def test_a_bad_name_is_a_one_line_error_and_exit_1(capsys, tmp_path):
    assert main(["new-plugin", "grad noise", "--path", str(tmp_path / "x")]) == 1
    assert "not accepted" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
