"""The plugin's state: stash keys and the running test item. Light, so that the pytest
glue that loads in every run imports nothing else of the package."""

from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from contextvars import Token

    from .hooks import EvalPlugin

#: The active plugin (and its EvalRun), once this session has evals.
PLUGIN: pytest.StashKey[EvalPlugin] = pytest.StashKey()
#: (run id, started at): named before the run exists, for xdist workers.
IDENTITY = pytest.StashKey[tuple[str, str]]()
#: What each xdist worker reported at its end (progress, whether it ran evals).
WORKER_OUTPUT = pytest.StashKey[list[dict[str, Any]]]()
ITEM_TOKEN: pytest.StashKey[Token[pytest.Item | None]] = pytest.StashKey()
#: The parametrized argument that carries an item's EvalParam.
PARAM = "_modelopt_param"
#: The running test item, for the fixtures: through ``request`` pytest would build its
#: special request fixture again for every fixture and item (measured: ~0.1 ms a test).
ITEM: ContextVar[pytest.Item | None] = ContextVar("modelopt_item", default=None)


def is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def identity(config: pytest.Config) -> tuple[str, str]:
    """This run's id and start time: a worker's from its controller, else named here."""
    workerinput: dict[str, Any] | None = getattr(config, "workerinput", None)
    if workerinput is not None and "modelopt_run_id" in workerinput:
        return workerinput["modelopt_run_id"], workerinput["modelopt_started_at"]
    found = config.stash.get(IDENTITY, None)
    if found is None:
        from ..records.ids import new_run_id, utcnow  # a leaf of the standard library only

        found = config.stash[IDENTITY] = (new_run_id(), utcnow())
    return found
