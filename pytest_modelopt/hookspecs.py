"""Hooks other plugins and conftest.py files can implement (``pytest_modelopt_*``).

Registered through ``pytest_addhooks``; implement them like any pytest hook, e.g. in a
``conftest.py``::

    def pytest_modelopt_request(request, context):
        request.setdefault("metadata", {})["team"] = "support"
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .client import CallContext
    from .records import CaseRecord, RunSummary


def pytest_modelopt_request(request: dict[str, Any], context: CallContext) -> None:
    """Adjust a request body in place just before it is sent (and before it is cached).

    ``request`` is the full JSON body (``model``, ``messages`` or ``input``, parameters);
    ``context`` says which endpoint, model, sample, eval and case the call belongs to.
    Called for every model call: the declared prompt's, ``llm.chat()`` in a test body and
    judges alike.
    """


def pytest_modelopt_case_result(record: CaseRecord) -> None:
    """See each case result as it is written to the run (in the process that ran it)."""


def pytest_modelopt_summary_columns() -> list[tuple[str, Any]]:  # type: ignore[empty-body]
    """Extra columns for the summary table: ``[(header, fn(EvalSummary) -> str), ...]``.

    Every implementation's list is used, in hook order.
    """


def pytest_modelopt_summary_sections(summary: RunSummary) -> list[tuple[str, str]]:  # type: ignore[empty-body]
    """Extra sections printed after the summary table: ``[(title, text), ...]``."""
