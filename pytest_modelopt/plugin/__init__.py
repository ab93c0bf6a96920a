"""pytest glue: options, the ``eval`` marker, fixtures and hooks. Logic lives elsewhere.

pytest loads this module (the ``pytest11`` entry point) in every run of every project where
pytest-modelopt is installed, so it is kept light: it registers the options from a plain
table, the marker and the fixtures, and waits. The rest of the plugin (``hooks.py``:
settings, the run, the per-test hooks) is loaded and registered only in a project that
configures it or once a test carries the ``eval`` marker (``activation.py``).

Session-level hooks live here and hand over to the active plugin when there is one; the
per-test hooks are methods of :class:`~.hooks.EvalPlugin`, registered on activation, so a
run without evals does not call them at all.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from ..collect.marker import marker_doc  # a table, no imports: cheap at start-up
from .activation import activate, active, configured
from .fixtures import _modelopt_param, case, completion, finetune, grade, llm, model, run_agent
from .options import OPTIONS
from .state import ITEM, ITEM_TOKEN, WORKER_OUTPUT, is_worker

if TYPE_CHECKING:
    from collections.abc import Mapping

    from .hooks import EvalPlugin

__all__ = [
    "_modelopt_param",
    "case",
    "completion",
    "finetune",
    "grade",
    "llm",
    "model",
    "run_agent",
]

MARKER_DOC = marker_doc()


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    from .. import hookspecs  # pluggy markers only

    pluginmanager.add_hookspecs(hookspecs)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("modelopt", "LLM evals (pytest-modelopt)")
    for key, option, metavar, help_text, const, append in OPTIONS:
        extra: dict[str, Any] = {"nargs": "?", "const": const} if const else {}
        if append:
            extra = {"action": "append"}
        group.addoption(
            option,
            dest=f"modelopt_{key}",
            metavar=metavar,
            default=None,
            help=f"{help_text} Also MODELOPT_{key.upper()} / [tool.modelopt] {key}.",
            **extra,
        )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER_DOC)
    if config.pluginmanager.hasplugin("xdist"):
        from .xdist import XdistHooks  # light: the controller names the run for its workers

        config.pluginmanager.register(XdistHooks(config), "modelopt-xdist")
    if configured(config):
        activate(config)


def pytest_unconfigure(config: pytest.Config) -> None:
    for name in ("modelopt-evals", "modelopt-xdist"):
        plugin = config.pluginmanager.get_plugin(name)
        if plugin is not None:
            config.pluginmanager.unregister(plugin)


@pytest.hookimpl(tryfirst=True)
def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """An eval test wakes the plugin and is expanded into models x cases x samples."""
    if metafunc.definition.get_closest_marker("eval") is None:
        return
    activate(metafunc.config).generate_tests(metafunc)


def pytest_sessionstart(session: pytest.Session) -> None:
    plugin = active(session.config)
    if plugin is not None:
        plugin.sessionstart(session)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    plugin = active(config)
    if plugin is not None:
        plugin.modifyitems(config, items)


@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session: pytest.Session) -> None:
    plugin = active(session.config)
    if plugin is not None:
        plugin.collection_finish(session)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """The running item, for the fixtures (a ``request`` argument would cost every test
    a fixture definition); reset after its teardown, for a pytester run inside a test."""
    item.stash[ITEM_TOKEN] = ITEM.set(item)


@pytest.hookimpl(tryfirst=True)  # before the finalizers, which may raise
def pytest_runtest_teardown(item: pytest.Item) -> None:
    token = item.stash.get(ITEM_TOKEN, None)
    if token is not None:
        del item.stash[ITEM_TOKEN]
        ITEM.reset(token)


def pytest_report_teststatus(
    report: pytest.TestReport, config: pytest.Config
) -> tuple[str, str, tuple[str, Mapping[str, bool]]] | None:
    """Tolerated failures, eval errors and pending evals get their own words (also on an
    xdist controller, which sees only the reports)."""
    if report.when == "call" and getattr(report, "modelopt_case_failed", False):
        return "tolerated", "f", ("EVAL-FAILED", {"yellow": True})
    if report.when == "call" and getattr(report, "modelopt_error", False):
        return "error", "E", ("ERROR", {"red": True})
    if report.when == "setup" and getattr(report, "modelopt_pending", False):
        return "pending", "p", ("PENDING", {"yellow": True})
    return None


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Decide the verdict (failing closed), on the controller of workers that ran evals too."""
    plugin = _finishing(session.config)
    if plugin is not None:
        plugin.finish(session)


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, exitstatus: int, config: pytest.Config
) -> None:
    plugin = active(config)
    if plugin is not None and not is_worker(config):
        plugin.terminal_summary(terminalreporter)


def _finishing(config: pytest.Config) -> EvalPlugin | None:
    """The plugin to end the session with: the active one, or on an xdist controller that
    never collected, the one its workers' evals call for."""
    plugin = active(config)
    if plugin is None and any(
        output.get("modelopt_evals") or output.get("crashed")
        for output in config.stash.get(WORKER_OUTPUT, [])
    ):
        plugin = activate(config)
    return plugin
