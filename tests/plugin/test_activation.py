"""The plugin costs nothing where there are no evals: it loads in every pytest run of every
project where it is installed, and wakes up only for a project that configures it or a test
that carries the ``eval`` marker."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pytest

    from tests.conftest import Project
    from tests.support.fake_openai import FakeOpenAI

PLAIN = """
import sys

def test_plain():
    assert True

def test_nothing_heavy_was_imported():
    heavy = ["pytest_modelopt.run", "pytest_modelopt.plugin.hooks", "pydantic", "jinja2",
             "openai", "pytest_modelopt.records.models", "pytest_modelopt.reports.terminal"]
    assert [name for name in heavy if name in sys.modules] == []
"""


def test_a_project_without_evals_imports_nothing_heavy(pytester: pytest.Pytester) -> None:
    """In a fresh interpreter (pytester's in-process runs share this one's modules)."""
    pytester.makepyfile(test_plain=PLAIN)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:xdist")
    result.assert_outcomes(passed=2)
    assert result.ret == 0


def test_an_unknown_modelopt_variable_does_not_break_a_run_without_evals(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELOPT_NOT_A_SETTING", "1")
    pytester.makepyfile(test_plain="def test_plain():\n    assert True\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert "MODELOPT_NOT_A_SETTING" not in result.stdout.str() + result.stderr.str()


def test_an_unknown_modelopt_variable_is_reported_once_evals_run(
    project: Project, server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch, mode: list[str]
) -> None:
    (project.path / "pyproject.toml").unlink()  # no config: the eval marker wakes the plugin
    monkeypatch.setenv("MODELOPT_NOT_A_SETTING", "1")
    project.test(
        """
        import pytest

        @pytest.mark.eval(models=["m"])
        def test_eval(model):
            pass
        """
    )
    result = project.run(*mode)
    assert result.ret != 0
    output = result.stdout.str() + result.stderr.str()
    assert "environment: unknown variable MODELOPT_NOT_A_SETTING" in output


def test_the_eval_marker_wakes_the_plugin_without_any_configuration(
    project: Project, server: FakeOpenAI, mode: list[str]
) -> None:
    (project.path / "pyproject.toml").unlink()
    project.test(
        """
        import pytest

        @pytest.mark.eval(models=["gpt-4.1-mini"], threshold=0.5)
        @pytest.mark.parametrize("q", ["a", "b"])
        def test_eval(model, q):
            assert model.chat([{"role": "user", "content": q}]).text == q
        """
    )
    result = project.run(*mode)
    assert result.ret == 0
    # an 80-column terminal: the table keeps the name, rate and verdict (its cases column goes)
    result.stdout.fnmatch_lines(
        ["*modelopt: evals*", "test_suite::test_eval *gpt-4.1-mini*100.0%*PASS*"]
    )
    assert [case["status"] for case in project.cases()] == ["passed", "passed"]
