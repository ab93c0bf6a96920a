"""OpenAI Agents SDK agents, run on the eval's model through our model layer.

The SDK asks a ``ModelProvider`` (``RunConfig(model_provider=...)``) for each agent's
``Model`` by name. ``LayerProvider`` answers with the SDK's own ``OpenAIResponsesModel``
or, for servers without the Responses API (llama.cpp's, which ``modelopt serve-local``
runs), its ``OpenAIChatCompletionsModel`` (so the SDK keeps converting tools, handoffs and
output schemas to the API itself), given a client whose one method the SDK calls,
``responses.create`` or ``chat.completions.create``, sends the request body through
``ModelClient.acall``: the response cache (record / replay / none),
the concurrency limiter, retries, usage, cost and latency apply to every agent turn as to
any other eval call. Nothing of the SDK is patched.

The eval's model replaces every agent's model, sub-agents' included, except the names
in ``pinned`` (an agent that must stay on its own model, such as a fixed judge or router).
An agent whose ``model`` is a ``Model`` object, not a name, never reaches the provider
(the SDK uses the object as it is): ``check_agents`` refuses such agents, since their
calls would bypass the cache and the records.

``trajectory`` turns a ``RunResult`` into the trajectory record's plain-dict shape
(see records/trajectory.py once it lands; the fields are agreed in issue 18).

Only imported when an eval runs an agent: ``agents`` imports ``openai`` (~0.9 s).
"""

from __future__ import annotations

import asyncio
import importlib
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from agents import (
    Agent,
    Model,
    ModelProvider,
    OpenAIChatCompletionsModel,
    OpenAIResponsesModel,
    RunConfig,
    Runner,
)
from agents.exceptions import AgentsException, MaxTurnsExceeded, ModelBehaviorError
from agents.items import (
    HandoffCallItem,
    HandoffOutputItem,
    MessageOutputItem,
    ReasoningItem,
    ToolCallItem,
    ToolCallOutputItem,
)
from openai import AsyncOpenAI, NotGiven, Omit
from openai.types.chat import ChatCompletion
from openai.types.responses import Response

from .tools import arguments_of as _arguments
from .tools import as_text as _text
from .tools import trajectory_item
from .types import AgentError, CallContext, Completion, ModelCallError, Usage
from .wire import ENDPOINTS

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping

    from agents import RunResult
    from agents.exceptions import RunErrorDetails

    from .bound import BoundModel
    from .client import ModelClient

#: the APIs an agent's model calls can go to (the ``agent_api`` marker keyword's values)
AGENT_APIS = ("responses", "chat")


def _check_api(api: str) -> None:
    if api not in AGENT_APIS:
        raise ValueError(f"api must be one of {', '.join(AGENT_APIS)}, got {api!r}")


@dataclass
class AgentCalls:
    """The model calls one agent run made, in order: what records, usage and cost read.

    ``on_call``: told of each call as it ends (the case in flight counts it)."""

    completions: list[Completion] = field(default_factory=list)
    on_call: Callable[[Completion], object] | None = None
    # tool exceptions by call id, as "Type: message" (the model sees the SDK's message)
    tool_errors: dict[str, str] = field(default_factory=dict)

    @property
    def turns(self) -> int:
        return len(self.completions)

    def add(self, completion: Completion) -> None:
        self.completions.append(completion)
        if self.on_call is not None:
            self.on_call(completion)


@dataclass
class AgentRun:
    """What ``run_agent`` returns: the SDK's result, the run as a trajectory, its calls."""

    result: RunResult
    trajectory: dict[str, Any]
    calls: list[Completion]
    api: str = "responses"  # the API its model calls went to: "responses" or "chat"

    @property
    def final_output(self) -> Any:
        return self.result.final_output

    @property
    def text(self) -> str:
        """The final output as text: ``grade(run, grader)`` grades the run like a
        completion (``sample.output_text``, and ``sample.trajectory`` for tool graders)."""
        final: str | None = self.trajectory["final_output"]
        return final or ""

    @property
    def completion(self) -> Completion:
        """The run as a ``Completion`` (final output, tool calls, usage, trajectory), for
        ``grade(run.completion, ...)``: the case then records this run's trajectory."""
        return as_completion(self)


DEFAULT_MAX_TURNS = 10  # the SDK's own default for Runner.run


@dataclass
class CaseRun:
    """An agent's run on one case, however it ended: what the case records.

    ``run`` is None when the run did not finish; ``trajectory`` holds what it did up to
    there when the SDK says (its ``run_data``). ``error``: why it did not finish, or a tool
    that raised in a run that did (``AgentError`` kind ``tool``)."""

    run: AgentRun | None
    calls: list[Completion]
    trajectory: dict[str, Any] | None
    error: BaseException | None = None
    input: Any = None  # what the agent was given
    api: str = "responses"  # the API its model calls went to

    def completion(self) -> Completion:
        """The run as the ``completion`` a test and its graders read (see
        ``as_completion``); a run that did not finish has no final output."""
        if self.run is not None:
            return as_completion(self.run)
        empty = {"items": [], "turns": len(self.calls), "final_output": None}
        return _completion(self.calls, self.trajectory or empty, None, self.api)

    def model_behaviour(self) -> str | None:
        """The error as a failed case's reason when it is what the model did (it kept
        calling tools past ``max_turns``, it called a tool that does not exist): the
        model's behaviour is graded, not an error of the run."""
        error = self.error
        if isinstance(error, MaxTurnsExceeded | ModelBehaviorError):
            return f"{type(error).__name__}: {error.message}"
        return None


class AgentRunner:
    """The ``run_agent`` fixture: runs an agent on the model under test (the ``llm``
    fixture's ``BoundModel``), each model call sent as it and counted on its case.

    ``on_run``: told of each run's trajectory (also a run that failed part-way), so the
    case records it."""

    def __init__(
        self, model: BoundModel, on_run: Callable[[dict[str, Any]], object] | None = None
    ) -> None:
        self.llm = model
        self.on_run = on_run

    def __repr__(self) -> str:
        return f"<run_agent {self.llm.name}>"

    def __call__(self, agent: Agent[Any], input: str | list[Any], **options: Any) -> AgentRun:
        """Run ``agent`` to its final output (``Runner.run``); ``options`` as ``arun``'s.
        From a coroutine, await ``arun`` instead."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            done: AgentRun = asyncio.run(self._closing(self.arun(agent, input, **options)))
            return done
        raise RuntimeError(
            "run_agent(...) was called inside a running event loop: "
            "use `await run_agent.arun(...)` there"
        )

    async def _closing(self, run: Awaitable[AgentRun]) -> AgentRun:
        """``run``, then the model client's connections on this (the test's) loop closed:
        the loop ends with the call, and a client left on it would be kept per test."""
        try:
            return await run
        finally:
            await self.llm.client.aclose()

    async def arun(
        self,
        agent: Agent[Any],
        input: str | list[Any],
        *,
        pinned: Iterable[str] = (),
        max_turns: int = DEFAULT_MAX_TURNS,
        api: str = "responses",
        **run_config: Any,
    ) -> AgentRun:
        """``pinned``: model names that keep their own model; ``api``: "responses" or
        "chat" (Chat Completions, for servers without the Responses API, such as
        llama.cpp's); ``run_config``: ``RunConfig`` fields (tracing stays off unless set).
        Raises what stopped the run (the SDK's ``MaxTurnsExceeded`` included); a tool that
        raised in a run that finished is in its trajectory (the item's ``error``), for the
        test to judge, unlike in an ``agent=`` eval, where it is the case's error."""
        _check_api(api)
        llm = self.llm
        case = await run_case(
            llm.client,
            llm.context(api),
            agent,
            input,
            pinned=pinned,
            max_turns=max_turns,
            api=api,
            on_call=lambda completion: llm.seen(completion, input),
            **run_config,
        )
        if case.trajectory is not None and self.on_run is not None:
            self.on_run(case.trajectory)
        if case.run is None:  # it did not finish
            assert case.error is not None
            raise case.error
        return case.run  # a tool that raised is in its trajectory: the test decides


async def run_case(
    client: ModelClient,
    context: CallContext,
    agent: Agent[Any] | str,
    input: str | list[Any],
    *,
    pinned: Iterable[str] = (),
    max_turns: int = DEFAULT_MAX_TURNS,
    api: str = "responses",
    on_call: Callable[[Completion], object] | None = None,
    **run_config: Any,
) -> CaseRun:
    """Run ``agent`` (or the ``"package.module:name"`` it names) on ``context``'s model
    and case, over ``api``. Never raises for the run's own failures: they come back as
    ``error``, with the calls made and the trajectory so far, for the case to record."""
    calls = AgentCalls(on_call=on_call)
    try:
        found = load_agent(agent) if isinstance(agent, str) else agent
        check_agents(found)
    except ValueError as exc:
        return CaseRun(None, [], None, AgentError("agent", str(exc)), input, api)
    provider = LayerProvider(
        client, context.model, context=context, pinned=pinned, calls=calls, api=api
    )
    try:
        result = await Runner.run(
            found, input, max_turns=max_turns, run_config=provider.run_config(**run_config)
        )
    except AgentsException as exc:  # MaxTurnsExceeded, ModelBehaviorError, UserError...
        data = exc.run_data
        so_far = None if data is None else trajectory(data, calls.turns, calls.tool_errors)
        return CaseRun(None, list(calls.completions), so_far, exc, input, api)
    except Exception as exc:  # a model call that failed for good (ModelCallError), a bug
        return CaseRun(None, list(calls.completions), None, exc, input, api)
    made = trajectory(result, calls.turns, calls.tool_errors)
    run = AgentRun(result, made, calls.completions, api)
    return CaseRun(run, run.calls, run.trajectory, _tool_error(run.trajectory), input, api)


def _tool_error(run: Mapping[str, Any]) -> AgentError | None:
    """The first tool that raised in a finished run, as the case's error. The model was
    told (the SDK's default message) and the run went on, as it would in production, so
    the recorded requests replay and the trajectory shows what the model made of it."""
    names = {i["call_id"]: i["name"] for i in run["items"] if i["kind"] == "tool_call"}
    for item in run["items"]:
        if item["kind"] == "tool_output" and item["error"]:
            name = names.get(item["call_id"]) or "?"
            return AgentError(
                "tool",
                f"tool {name!r} raised {item['error']} (the model was told and the run "
                "went on; the case's trajectory shows the rest): fix the tool, or make it "
                "return the failure as its output if the model is meant to handle it",
            )
    return None


class _Endpoint:
    """One endpoint of the client the SDK holds: ``create`` goes through the model layer.

    ``api`` is the model layer's name for it ("responses" or "chat"); ``parse`` turns the
    response body into the SDK's type for it (``Response`` or ``ChatCompletion``)."""

    def __init__(
        self,
        api: str,
        parse: Callable[[dict[str, Any]], Any],
        client: ModelClient,
        context: CallContext,
        calls: AgentCalls,
    ) -> None:
        self._api = api
        self._parse = parse
        self._client = client
        self._context = context
        self._calls = calls

    async def create(self, **kwargs: Any) -> Any:
        """One agent turn: the SDK's request, sent (or replayed) by ``ModelClient.acall``."""
        if kwargs.get("stream") is True:
            raise ModelCallError(
                "unsupported",
                "streamed agent runs (Runner.run_streamed) are not recorded yet: "
                "use Runner.run or the run_agent fixture",
                model=str(kwargs.get("model")),
            )
        # the SDK's own User-Agent is left out: a per-call header is registered as a
        # possible secret (redacted wherever it appears), and our client names itself
        headers = {
            name: value
            for name, value in (kwargs.pop("extra_headers", None) or {}).items()
            if name.lower() != "user-agent"
        } or None
        extra_query = kwargs.pop("extra_query", None)
        if extra_query:
            raise ModelCallError(
                "unsupported",
                "ModelSettings.extra_query is not supported for agents run by an eval "
                "(the model layer sends the body only): move the values to extra_body",
                model=str(kwargs.get("model")),
            )
        extra_body = kwargs.pop("extra_body", None) or {}
        # the SDK passes every parameter, unset ones as omit/None: only set ones are sent,
        # so the body (and its cache key) is what the agent's settings say
        body = {
            k: v for k, v in kwargs.items() if not isinstance(v, Omit | NotGiven) and v is not None
        }
        body.update(extra_body)
        if self._api == "chat":
            body = _chat_body(body)
        context = CallContext(
            endpoint=ENDPOINTS[self._api],
            model=str(body.get("model")),
            sample=self._context.sample,
            eval=self._context.eval,
            case_id=self._context.case_id,
        )
        completion = await self._client.acall(self._api, body, context, headers=headers)
        self._calls.add(completion)
        return self._parse(completion.response or {})


def _chat_body(body: dict[str, Any]) -> dict[str, Any]:
    """The SDK's chat request with an assistant message that only calls tools given
    ``content: ""`` instead of null: llama.cpp's server (llama-cpp-python 0.3.36, what
    ``modelopt serve-local`` runs) answers null with HTTP 500, and OpenAI's API takes both
    (``ChatCompletionRequestAssistantMessage.content`` is a nullable string)."""
    messages = body.get("messages")
    if not isinstance(messages, list):
        return body
    fixed = [
        {**m, "content": ""}
        if isinstance(m, dict)
        and m.get("role") == "assistant"
        and m.get("tool_calls")
        and m.get("content") is None
        else m
        for m in messages
    ]
    return {**body, "messages": fixed}


class _Chat:
    """``client.chat``: the SDK's Chat Completions model calls ``chat.completions.create``."""

    def __init__(self, completions: _Endpoint) -> None:
        self.completions = completions


class _LayerClient:
    """The part of ``AsyncOpenAI`` that the SDK's models call on a plain run:
    ``responses.create`` (``OpenAIResponsesModel``) and ``chat.completions.create``
    (``OpenAIChatCompletionsModel``).

    ``base_url`` is None so the SDK treats it as a non-OpenAI endpoint and adds no
    OpenAI-only defaults (prompt cache keys, ``store``) that would change the cached body."""

    base_url = None

    def __init__(self, client: ModelClient, context: CallContext, calls: AgentCalls) -> None:
        self.responses = _Endpoint("responses", Response.model_validate, client, context, calls)
        self.chat = _Chat(_Endpoint("chat", ChatCompletion.model_validate, client, context, calls))

    def with_options(self, **_: Any) -> _LayerClient:
        return self  # max_retries=0 from the SDK: our layer retries, the SDK never does


class LayerProvider(ModelProvider):
    """Every agent's model, by name, as the eval's model sent through our model layer.

    ``api``: "responses" hands out the SDK's ``OpenAIResponsesModel``, "chat" its
    ``OpenAIChatCompletionsModel`` (the SDK converts the run to messages and the answers
    back to the same run items, so the trajectory has the same shape either way)."""

    def __init__(
        self,
        client: ModelClient,
        model: str,
        *,
        context: CallContext | None = None,
        pinned: Iterable[str] = (),
        calls: AgentCalls | None = None,
        api: str = "responses",
    ) -> None:
        _check_api(api)
        self.model = model
        self.api = api
        self.pinned = frozenset(pinned)
        self.calls = calls if calls is not None else AgentCalls()
        context = context or CallContext(endpoint=ENDPOINTS[api], model=model)
        self._client = _LayerClient(client, context, self.calls)

    def get_model(self, model_name: str | None) -> Model:
        name = model_name if model_name in self.pinned and model_name else self.model
        client = cast("AsyncOpenAI", self._client)
        if self.api == "chat":
            return OpenAIChatCompletionsModel(model=name, openai_client=client)
        return OpenAIResponsesModel(model=name, openai_client=client)

    def run_config(self, **settings: Any) -> RunConfig:
        """A ``RunConfig`` that uses this provider, with tracing off: an eval sends nothing
        to OpenAI's trace exporter (its spans would carry dataset rows and outputs).

        A tool that raises is noted for the trajectory through the SDK's
        ``tool_error_formatter`` (the user's own one, if given, still decides the message
        the model sees; without one the SDK's default message is kept, so that recorded
        requests replay)."""
        settings.setdefault("tracing_disabled", True)
        settings["tool_error_formatter"] = self._noting(settings.get("tool_error_formatter"))
        return RunConfig(model_provider=self, **settings)

    def _noting(self, formatter: Callable[[Any], Any] | None) -> Callable[[Any], Any]:
        errors = self.calls.tool_errors

        def note(args: Any) -> Any:
            if args.kind == "tool_exception" and args.error is not None:
                errors[args.call_id] = f"{type(args.error).__name__}: {args.error}"
            return None if formatter is None else formatter(args)

        return note


def load_agent(ref: str) -> Agent[Any]:
    """The agent an ``agent="package.module:name"`` marker names, imported. Each failure
    is a ``ValueError`` that says what to write instead."""
    module_name, _, attribute = ref.partition(":")
    if not module_name or not attribute:
        raise ValueError(
            f"agent={ref!r}: write 'package.module:name' (the module that defines the "
            "agent, a colon, then the agent's name in it)"
        )
    try:
        found: Any = importlib.import_module(module_name)
    except Exception as exc:  # the user's module: any error it raises on import
        raise ValueError(
            f"agent={ref!r}: cannot import {module_name!r}: {type(exc).__name__}: {exc} "
            "(it must import as the test file's own imports do, e.g. from the rootdir)"
        ) from None
    for part in attribute.split("."):
        if not hasattr(found, part):
            raise ValueError(f"agent={ref!r}: {module_name!r} has no {attribute!r}")
        found = getattr(found, part)
    if not isinstance(found, Agent):
        raise ValueError(f"agent={ref!r} is a {type(found).__name__}, not an agents.Agent")
    return found


def as_completion(run: AgentRun) -> Completion:
    """The agent run as the ``completion`` a test and its graders read: the final output
    as text, every tool call, and the usage, cost and latency of all its model calls."""
    return _completion(run.calls, run.trajectory, run.final_output, run.api)


def _completion(calls: list[Completion], run: dict[str, Any], final: Any, api: str) -> Completion:
    last = calls[-1] if calls else None
    usage = sum((c.usage for c in calls), Usage())
    costs = [c.cost for c in calls]
    tool_calls = [
        {
            "id": item["call_id"],
            "type": "function",
            "function": {
                "name": item["name"],
                "arguments": item["arguments"]
                if isinstance(item["arguments"], str)
                else json.dumps(item["arguments"]),
            },
        }
        for item in run["items"]
        if item["kind"] == "tool_call"
    ]
    return Completion(
        text="" if final is None else _text(final),
        model=last.model if last else "",
        api=api,
        tool_calls=tool_calls,
        usage=usage,
        cost=None if None in costs else sum(c for c in costs if c is not None),
        latency_s=sum(c.latency_s for c in calls),
        cached=bool(calls) and all(c.cached for c in calls),
        request=last.request if last else {},
        response=last.response if last else None,
        trajectory=run,
    )


def check_agents(agent: Agent[Any]) -> None:
    """Refuse an agent graph where a ``Model`` object would bypass the provider."""
    for each in _agents(agent, set()):
        if isinstance(each.model, Model):
            raise ValueError(
                f"agent {each.name!r} has a Model object as its model; an eval replaces "
                "agents' models by name through its model layer, so give the agent a model "
                "name (a string) or none"
            )


def _agents(agent: Agent[Any], seen: set[int]) -> Iterator[Agent[Any]]:
    if id(agent) in seen:
        return
    seen.add(id(agent))
    yield agent
    for handoff in agent.handoffs:
        if isinstance(handoff, Agent):
            yield from _agents(handoff, seen)
        # a Handoff object holds its agent behind an async callback: only its name is known


def trajectory(
    result: RunResult | RunErrorDetails, turns: int, tool_errors: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The run's trajectory dict: its items in order, the model calls made, the output
    (None for a run that did not finish: the SDK's ``RunErrorDetails``).

    ``tool_errors``: the exceptions tools raised, by call id (``AgentCalls.tool_errors``)."""
    items: list[dict[str, Any]] = []
    for guardrail in result.input_guardrail_results:
        items.append(_guardrail(guardrail.guardrail.get_name(), guardrail.output, None))
    for item in result.new_items:
        converted = _item(item)
        if converted is None:
            continue
        if converted["kind"] == "tool_output" and tool_errors:
            converted["error"] = tool_errors.get(converted["call_id"])
        items.append(converted)
    for checked in result.output_guardrail_results:
        items.append(_guardrail(checked.guardrail.get_name(), checked.output, checked.agent.name))
    final = getattr(result, "final_output", None)
    return {
        "items": items,
        "turns": turns,
        "final_output": None if final is None else _text(final),
    }


def _item(item: Any) -> dict[str, Any] | None:
    """One ``RunResult.new_items`` entry as a trajectory item; None for kinds not kept.

    A handoff is one item (agent: from, name: to), from the SDK's handoff output item."""
    agent = getattr(getattr(item, "agent", None), "name", None)
    raw = item.raw_item
    if isinstance(item, MessageOutputItem):
        out = trajectory_item("message", agent)
        out["role"] = raw.role
        out["content"] = "".join(
            str(getattr(part, "text", None) or getattr(part, "refusal", "")) for part in raw.content
        )
        return out
    if isinstance(item, HandoffCallItem):
        return None  # its tool name, not the agent: the output item below names both agents
    if isinstance(item, HandoffOutputItem):
        out = trajectory_item("handoff", item.source_agent.name)
        out["name"] = item.target_agent.name
        out["call_id"] = _get(raw, "call_id")
        return out
    if isinstance(item, ToolCallItem):
        out = trajectory_item("tool_call", agent)
        out["name"] = _get(raw, "name") or _get(raw, "type")
        out["call_id"] = _get(raw, "call_id")
        out["arguments"] = _arguments(_get(raw, "arguments"))
        return out
    if isinstance(item, ToolCallOutputItem):
        out = trajectory_item("tool_output", agent)
        out["call_id"] = _get(raw, "call_id")
        out["output"] = _text(item.output)
        return out
    if isinstance(item, ReasoningItem):
        out = trajectory_item("reasoning", agent)
        out["content"] = "\n".join(s.text for s in raw.summary) or None
        return out
    return None


def _guardrail(name: str, output: Any, agent: str | None) -> dict[str, Any]:
    out = trajectory_item("guardrail", agent)
    out["name"] = name
    out["content"] = "tripwire triggered" if output.tripwire_triggered else "passed"
    out["output"] = None if output.output_info is None else _text(output.output_info)
    return out


def _get(raw: Any, key: str) -> Any:
    return raw.get(key) if isinstance(raw, dict) else getattr(raw, key, None)
