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
from .types import CallContext, Completion, ModelCallError, Usage
from .wire import ENDPOINTS

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Mapping

    from agents import RunResult

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


class AgentRunner:
    """The ``run_agent`` fixture: runs an agent on the model under test (the ``llm``
    fixture's ``BoundModel``), each model call sent as it and counted on its case."""

    def __init__(self, model: BoundModel) -> None:
        self.llm = model

    def __repr__(self) -> str:
        return f"<run_agent {self.llm.name}>"

    def __call__(self, agent: Agent[Any], input: str | list[Any], **options: Any) -> AgentRun:
        """Run ``agent`` to its final output (``Runner.run``); ``options`` as ``arun``'s.
        From a coroutine, await ``arun`` instead."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            done: AgentRun = asyncio.run(self.arun(agent, input, **options))
            return done
        raise RuntimeError(
            "run_agent(...) was called inside a running event loop: "
            "use `await run_agent.arun(...)` there"
        )

    async def arun(
        self,
        agent: Agent[Any],
        input: str | list[Any],
        *,
        pinned: Iterable[str] = (),
        max_turns: int = 10,
        api: str = "responses",
        **run_config: Any,
    ) -> AgentRun:
        """``pinned``: model names that keep their own model; ``api``: "responses" or
        "chat" (Chat Completions, for servers without the Responses API, such as
        llama.cpp's); ``run_config``: ``RunConfig`` fields (tracing stays off unless set)."""
        check_agents(agent)
        _check_api(api)
        llm = self.llm
        calls = AgentCalls(on_call=lambda completion: llm.seen(completion, input))
        provider = LayerProvider(
            llm.client, llm.name, context=llm.context(api), pinned=pinned, calls=calls, api=api
        )
        result = await Runner.run(
            agent, input, max_turns=max_turns, run_config=provider.run_config(**run_config)
        )
        run = trajectory(result, calls.turns, calls.tool_errors)
        return AgentRun(result, run, list(calls.completions), api)


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
    """The agent an ``agent="package.module:name"`` marker names, imported."""
    module_name, _, attribute = ref.partition(":")
    try:
        found: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"agent={ref!r}: cannot import {module_name!r}: {exc}") from None
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
    last = run.calls[-1] if run.calls else None
    final = run.final_output
    usage = sum((c.usage for c in run.calls), Usage())
    costs = [c.cost for c in run.calls]
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
        for item in run.trajectory["items"]
        if item["kind"] == "tool_call"
    ]
    return Completion(
        text="" if final is None else _text(final),
        model=last.model if last else "",
        api=run.api,
        tool_calls=tool_calls,
        usage=usage,
        cost=None if None in costs else sum(c for c in costs if c is not None),
        latency_s=sum(c.latency_s for c in run.calls),
        cached=bool(run.calls) and all(c.cached for c in run.calls),
        request=last.request if last else {},
        response=last.response if last else None,
        trajectory=run.trajectory,
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
    result: RunResult, turns: int, tool_errors: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The run's trajectory dict: its items in order, the model calls made, the output.

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
    final = result.final_output
    return {
        "items": items,
        "turns": turns,
        "final_output": None if final is None else _text(final),
    }


def _blank(kind: str, agent: str | None) -> dict[str, Any]:
    return {
        "kind": kind,
        "agent": agent,
        "role": None,
        "content": None,
        "name": None,
        "arguments": None,
        "call_id": None,
        "output": None,
        "error": None,
    }


def _item(item: Any) -> dict[str, Any] | None:
    """One ``RunResult.new_items`` entry as a trajectory item; None for kinds not kept.

    A handoff is one item (agent: from, name: to), from the SDK's handoff output item."""
    agent = getattr(getattr(item, "agent", None), "name", None)
    raw = item.raw_item
    if isinstance(item, MessageOutputItem):
        out = _blank("message", agent)
        out["role"] = raw.role
        out["content"] = "".join(
            str(getattr(part, "text", None) or getattr(part, "refusal", "")) for part in raw.content
        )
        return out
    if isinstance(item, HandoffCallItem):
        return None  # its tool name, not the agent: the output item below names both agents
    if isinstance(item, HandoffOutputItem):
        out = _blank("handoff", item.source_agent.name)
        out["name"] = item.target_agent.name
        out["call_id"] = _get(raw, "call_id")
        return out
    if isinstance(item, ToolCallItem):
        out = _blank("tool_call", agent)
        out["name"] = _get(raw, "name") or _get(raw, "type")
        out["call_id"] = _get(raw, "call_id")
        out["arguments"] = _arguments(_get(raw, "arguments"))
        return out
    if isinstance(item, ToolCallOutputItem):
        out = _blank("tool_output", agent)
        out["call_id"] = _get(raw, "call_id")
        out["output"] = _text(item.output)
        return out
    if isinstance(item, ReasoningItem):
        out = _blank("reasoning", agent)
        out["content"] = "\n".join(s.text for s in raw.summary) or None
        return out
    return None


def _guardrail(name: str, output: Any, agent: str | None) -> dict[str, Any]:
    out = _blank("guardrail", agent)
    out["name"] = name
    out["content"] = "tripwire triggered" if output.tripwire_triggered else "passed"
    out["output"] = None if output.output_info is None else _text(output.output_info)
    return out


def _get(raw: Any, key: str) -> Any:
    return raw.get(key) if isinstance(raw, dict) else getattr(raw, key, None)
