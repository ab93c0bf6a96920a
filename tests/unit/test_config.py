"""Settings: one model behind CLI options, [tool.modelopt], modelopt.yaml and MODELOPT_* env."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from pytest_modelopt.config import ConfigError, cli_fields, load_settings

if TYPE_CHECKING:
    from pathlib import Path


def write(path: Path, text: str) -> None:
    path.write_text(text)


def test_precedence_cli_over_env_over_file(tmp_path: Path) -> None:
    write(tmp_path / "pyproject.toml", '[tool.modelopt]\nmodels = ["a"]\ntimeout = 5\n')
    env = {"MODELOPT_TIMEOUT": "7", "MODELOPT_MAX_RETRIES": "1"}
    settings = load_settings(tmp_path, {"models": "b,c"}, env)
    assert settings.models == ["b", "c"]
    assert settings.timeout == 7
    assert settings.max_retries == 1
    assert settings.dir == tmp_path / ".modelopt"


def test_openai_base_url_env_is_the_default_base_url(tmp_path: Path) -> None:
    settings = load_settings(tmp_path, {}, {"OPENAI_BASE_URL": "http://127.0.0.1:9/v1"})
    assert settings.base_url == "http://127.0.0.1:9/v1"
    settings = load_settings(
        tmp_path, {"base_url": "http://x/v1"}, {"OPENAI_BASE_URL": "http://127.0.0.1:9/v1"}
    )
    assert settings.base_url == "http://x/v1"


def test_modelopt_yaml(tmp_path: Path) -> None:
    write(tmp_path / "modelopt.yaml", "models: [m1]\nprices:\n  m1: {input: 1, output: 2}\n")
    settings = load_settings(tmp_path, {}, {})
    assert settings.models == ["m1"]
    assert settings.prices["m1"].output == 2


@pytest.mark.parametrize(
    ("files", "env", "cli", "message"),
    [
        (
            {"pyproject.toml": "[tool.modelopt]\nmodles = ['a']\n"},
            {},
            {},
            "pyproject.toml [tool.modelopt]: unknown key 'modles' (known keys: models, base_url",
        ),
        (
            {"pyproject.toml": "[tool.modelopt]\ntimeout = -1\n"},
            {},
            {},
            "pyproject.toml [tool.modelopt]: timeout: Input should be greater than 0 (got -1)",
        ),
        (
            {},
            {"MODELOPT_TIMEOUT": "soon"},
            {},
            "environment MODELOPT_TIMEOUT: timeout: Input should be a valid number",
        ),
        ({}, {"MODELOPT_MODLES": "a"}, {}, "environment: unknown variable MODELOPT_MODLES"),
        ({}, {}, {"max_retries": "many"}, "--eval-max-retries: max_retries: Input should be"),
        ({}, {}, {"models": "a,a"}, "--eval-models: models: model 'a' is listed twice"),
        (
            {"pyproject.toml": "[tool.modelopt]\n", "modelopt.yaml": "models: [a]\n"},
            {},
            {},
            "settings found in both pyproject.toml [tool.modelopt] and modelopt.yaml",
        ),
        ({"modelopt.yaml": "models: [a\n"}, {}, {}, "modelopt.yaml:2: invalid YAML: expected"),
        (
            {"modelopt.yaml": "prices:\n  m: {input: 1}\n"},
            {},
            {},
            "modelopt.yaml: prices.m.output: Field required",
        ),
    ],
)
def test_bad_settings_name_their_source(
    tmp_path: Path, files: dict[str, str], env: dict[str, str], cli: dict[str, str], message: str
) -> None:
    for name, text in files.items():
        write(tmp_path / name, text)
    with pytest.raises(ConfigError) as info:
        load_settings(tmp_path, cli, env)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_every_cli_option_has_an_env_and_file_key() -> None:
    options = {option for _, option, _, _ in cli_fields()}
    assert {"--eval-models", "--eval-base-url", "--eval-timeout", "--eval-json"} <= options
    for key, option, _, _ in cli_fields():
        assert option == "--eval-" + key.replace("_", "-")


def test_the_projects_own_variables_are_not_settings(tmp_path: Path) -> None:
    env = {"MODELOPT_VENV": "/x/.venv", "MODELOPT_WORDNET_DIR": "/w", "MODELOPT_TIMEOUT": "3"}
    assert load_settings(tmp_path, {}, env).timeout == 3
