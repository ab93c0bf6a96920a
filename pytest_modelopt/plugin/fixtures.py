"""The plugin's fixtures: ``llm`` / ``model``, ``run_agent``, ``case``, ``completion``,
``grade``, ``finetune``.

They find the running item through a context variable set at its setup (see ``state.py``)
rather than through ``request``, and import the run's code only when called, so that
defining them costs nothing in a session without evals.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import pytest

from .activation import activate
from .state import ITEM

if TYPE_CHECKING:
    from ..collect.spec import EvalParam
    from ..graders.base import Grade
    from ..model.agents_sdk import AgentRunner
    from ..model.bound import BoundModel
    from ..model.types import Completion
    from ..optimize.flow import Finetuner
    from .hooks import EvalPlugin

GradeFn = Callable[..., Any]


def _item(fixture: str) -> pytest.Item:
    item = ITEM.get()
    if item is None:  # pragma: no cover - function-scoped fixtures run inside a test
        raise pytest.UsageError(f"the {fixture!r} fixture needs a running test")
    return item


def _plugin(item: pytest.Item) -> EvalPlugin:
    return activate(item.config)


@pytest.fixture
def _modelopt_param() -> EvalParam | None:
    """Replaced by the eval parametrization; None in tests that are not evals."""
    return None


@pytest.fixture
def llm(_modelopt_param: EvalParam | None, pytestconfig: pytest.Config) -> BoundModel:
    """The model under test (outside evals: the first selected model)."""
    from ..model.bound import BoundModel  # the model layer, once a test asks for a model

    plugin = activate(pytestconfig)
    run = plugin.run
    if _modelopt_param is None:
        if not run.settings.models:
            raise pytest.UsageError(
                "the 'llm' fixture needs a model: pass --eval-models or set models in "
                "[tool.modelopt]"
            )
        return BoundModel(run.client, run.settings.models[0])
    state = plugin.eval_state(_item("llm"), "llm")
    return BoundModel(
        run.client,
        _modelopt_param.model,
        sample=_modelopt_param.sample,
        eval=_modelopt_param.spec.name,
        case_id=state.case_id,
        on_call=state.add_call,
    )


@pytest.fixture
def run_agent(llm: BoundModel, _modelopt_param: EvalParam | None) -> AgentRunner:
    """Runs an OpenAI Agents SDK agent on the model under test: ``run_agent(agent, input)``.

    Every model call of the run goes through the run's model client (cache, retries,
    usage and cost), as ``llm``'s calls do, and counts on the case; in an eval its
    trajectory is the case's (the last run's, unless the eval runs an ``agent=``)."""
    try:
        # the Agents SDK (and openai, ~1 s) only once a test runs an agent
        from ..model.agents_sdk import AgentRunner
    except ModuleNotFoundError as exc:
        if exc.name != "agents":
            raise
        raise pytest.UsageError(
            "the 'run_agent' fixture needs the OpenAI Agents SDK: "
            "pip install 'pytest-modelopt[agents]'"
        ) from None
    if _modelopt_param is None:
        return AgentRunner(llm)
    item = _item("run_agent")
    return AgentRunner(llm, on_run=_plugin(item).eval_state(item, "run_agent").add_trajectory)


@pytest.fixture
def model(llm: BoundModel) -> BoundModel:
    """Another name for ``llm``."""
    return llm


@pytest.fixture
def case() -> Mapping[str, Any]:
    """The current dataset row (validated); without a dataset, the test's own parameters."""
    item = _item("case")
    plugin = _plugin(item)
    return plugin.case_values(item, plugin.eval_state(item, "case").param)


@pytest.fixture
def completion() -> Completion:
    """The declared prompt, rendered with this case, answered by this model (in an
    ``agent=`` eval: the agent's run on this case)."""
    item = _item("completion")
    return _plugin(item).completion(item)


@pytest.fixture(scope="session")
def finetune(pytestconfig: pytest.Config) -> Finetuner:
    """Build training sets from runs and launch fine-tuning jobs, with this session's
    settings and hooks (see docs/optimize.md)."""
    from ..optimize.flow import Finetuner  # the optimize stage, once a test asks for it

    reporter = pytestconfig.pluginmanager.get_plugin("terminalreporter")
    say = reporter.write_line if reporter is not None else print
    run = activate(pytestconfig).run
    return Finetuner(run.settings, pytestconfig.hook, say=say, current_run=run.run_dir)


@pytest.fixture
def grade() -> GradeFn:
    """``grade(output, grader, *, name=None)``: grade the output and record it on the case.

    In an eval the test's verdict comes from all its grades together (and its asserts);
    outside an eval a failed grade fails at once, like an assert.
    """
    from ..graders.base import as_grader  # the graders, once a test grades

    test = _item("grade")
    plugin = _plugin(test)
    state = plugin.state(test)
    item: Mapping[str, Any] = {} if state is None else plugin.case_values(test, state.param)
    named = plugin.run.named_graders

    def _grade(output: Any, grader: Any, *, name: str | None = None) -> Grade:
        built = as_grader(grader, named)
        result = built.grade(output, item)
        if name:
            result = result.model_copy(update={"name": name})
            built = built.model_copy(update={"name": name})
        if state is None:
            assert result.passed, f"{result.name}: {result.reason}"
        else:
            trajectory = getattr(output, "trajectory", None)
            if trajectory is not None:  # an agent or tool loop's run: the case records it
                state.add_trajectory(trajectory)
            state.add_grade(result, built)
        return result

    return _grade
