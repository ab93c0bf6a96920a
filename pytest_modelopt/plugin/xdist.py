"""pytest-xdist's side: the controller names the run for every worker and hears their ends.

Registered only with xdist present, and light: it is loaded in every run of an
environment that has xdist, evals or not.
"""

from __future__ import annotations

from typing import Any

import pytest

from .state import WORKER_OUTPUT, identity


class XdistHooks:
    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        """Every worker writes into the controller's run (one id, one start time)."""
        run_id, started_at = identity(self.config)
        node.workerinput["modelopt_run_id"] = run_id
        node.workerinput["modelopt_started_at"] = started_at

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        output = getattr(node, "workeroutput", None) or {}
        reported = {key: value for key, value in output.items() if key.startswith("modelopt_")}
        reported["crashed"] = error is not None
        self.config.stash.setdefault(WORKER_OUTPUT, []).append(reported)
