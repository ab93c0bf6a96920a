"""When the plugin wakes up: at configure time in a project that configures it, else at the
first eval collected. A pytest run with no eval pays for none of it."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from .options import ENV_KEYS, ENV_PREFIX, OPTIONS
from .state import PLUGIN

if TYPE_CHECKING:
    import pytest

    from .hooks import EvalPlugin


def configured(config: pytest.Config) -> bool:
    """Whether this project asks for the plugin before any eval is seen: a ``--eval-*``
    option, a ``[tool.modelopt]`` table or ``modelopt.yaml``, or a ``MODELOPT_*`` setting.
    Then a bad setting stops pytest at once (exit status 4), evals or not."""
    if any(config.getoption(f"modelopt_{key}") is not None for key, *_ in OPTIONS):
        return True
    root = config.rootpath
    if (root / "modelopt.yaml").is_file():
        return True
    try:
        pyproject = (root / "pyproject.toml").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        pyproject = ""
    if "[tool.modelopt" in pyproject:
        return True
    return any(
        name[len(ENV_PREFIX) :].lower() in ENV_KEYS
        for name in os.environ
        if name.startswith(ENV_PREFIX)
    )


def active(config: pytest.Config) -> EvalPlugin | None:
    return config.stash.get(PLUGIN, None)


def activate(config: pytest.Config) -> EvalPlugin:
    """The session's EvalPlugin, made (settings loaded, run named) and registered once."""
    plugin = config.stash.get(PLUGIN, None)
    if plugin is None:
        # The plugin's weight (pydantic, the run, its stages) is paid here, once an eval
        # exists: not at import, which every pytest run of the environment pays.
        from .hooks import EvalPlugin

        plugin = config.stash[PLUGIN] = EvalPlugin(config)
        config.pluginmanager.register(plugin, "modelopt-evals")
    return plugin
