"""Settings inside pytest: a bad config stops the run, options are in --help, models
come from the environment and the command line.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pytest

    from tests.conftest import Project


def test_bad_config_stops_pytest_with_exit_code_4(project: Project, mode: list[str]) -> None:
    project.file("pyproject.toml", "[tool.modelopt]\nmodels = ['a']\ncolour = 'blue'\n")
    project.test("def test_x():\n    pass\n")
    result = project.run(*mode)
    assert result.ret == 4
    result.stderr.fnmatch_lines(
        ["ERROR: pyproject.toml [[]tool.modelopt[]]: unknown key 'colour' (known keys: *"]
    )


def test_options_are_listed_in_help(project: Project, mode: list[str]) -> None:
    result = project.run(*mode, "--help")
    result.stdout.fnmatch_lines(
        [
            "LLM evals (pytest-modelopt):",
            # one line in the project's 200-column terminal
            "*--eval-models=A,B*Also MODELOPT_MODELS / [[]tool.modelopt[]] models.",
        ]
    )


def test_models_from_env_and_cli(
    project: Project, monkeypatch: pytest.MonkeyPatch, mode: list[str]
) -> None:
    project.config()
    project.test(
        """
        import pytest

        @pytest.mark.eval()
        def test_m(llm):
            pass
        """
    )
    monkeypatch.setenv("MODELOPT_MODELS", "env-a,env-b")
    result = project.run(*mode, "--collect-only", "-q")
    result.stdout.fnmatch_lines(["*test_m[[]env-a[]]", "*test_m[[]env-b[]]"])
    result = project.run(*mode, "--collect-only", "-q", "--eval-models", "cli-x")
    result.stdout.fnmatch_lines(["*test_m[[]cli-x[]]"])
