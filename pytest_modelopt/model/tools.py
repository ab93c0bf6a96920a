"""A tool-calling loop in plain Python, without the Agents SDK: ``llm.run_tools(...)``.

The model is sent the tools' JSON schemas; each tool call it makes runs the user's
function here, in the test process, and its output goes back to the model, until the
model answers without calling a tool or ``max_turns`` model calls were made. Every call
is a ``BoundModel`` call, so the response cache (record / replay / none), retries, the
limiter, usage, cost and latency apply to each, and each is counted on the case. A
replayed run gets the recorded replies, so it calls the same tools with the same
arguments again: the tools run on replay too, deterministically.

The run comes back as one ``Completion`` whose ``trajectory`` is records/trajectory.py's
shape, so the trajectory graders read it as they read an agent's.

Schemas come from the functions' signatures through pydantic (``TypeAdapter`` of the
function), which also validates the arguments the model sends against the same types
(``validate_call``). ``openai.pydantic_function_tool`` needs a pydantic model per tool
rather than a function, and the Agents SDK's ``function_schema`` needs the optional SDK.
"""

from __future__ import annotations

import asyncio
import inspect
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import pydantic

from .types import Completion, Usage

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from .bound import BoundModel

ToolErrors = Literal["raise", "send"]


class ToolError(Exception):
    """A tool raised during ``run_tools``: the case's error, naming the tool (the default;
    ``tool_errors="send"`` sends the error to the model instead)."""

    def __init__(
        self, name: str, exc: BaseException, trajectory: dict[str, Any] | None = None
    ) -> None:
        super().__init__(
            f"tool {name!r} raised {type(exc).__name__}: {exc} (pass tool_errors='send' to "
            "run_tools to send a tool's error to the model instead)"
        )
        self.tool = name
        # the run up to the raise (its last item the failed tool output), which the case
        # records as its trajectory: the evidence of what the model did before the error
        self.trajectory = trajectory


@dataclass(frozen=True)
class Tool:
    """A Python function the model may call, with its schema."""

    name: str
    description: str
    parameters: dict[str, Any]
    call: Callable[..., Any]  # the function wrapped in pydantic's argument validation
    function: Callable[..., Any]  # the function itself

    def raised_inside(self, exc: BaseException) -> bool:
        """Whether ``exc`` came out of the tool's own body (a ``ValidationError`` may be
        the model's arguments, refused before the call, or the tool's own pydantic use)."""
        code = getattr(self.function, "__code__", None)
        frame = exc.__traceback__
        while frame is not None:
            if frame.tb_frame.f_code is code:
                return True
            frame = frame.tb_next
        return False

    @classmethod
    def of(cls, function: Callable[..., Any]) -> Tool:
        name = getattr(function, "__name__", None)
        if not isinstance(name, str) or name == "<lambda>":
            raise TypeError(f"a tool must be a named function, got {function!r}")
        try:
            # a function is a type pydantic validates (its signature), not a TypeForm
            parameters = pydantic.TypeAdapter(function).json_schema()  # type: ignore[arg-type]
        except pydantic.errors.PydanticUserError as exc:
            raise TypeError(f"tool {name!r}: no JSON schema for its signature: {exc}") from None
        return cls(
            name,
            inspect.getdoc(function) or "",
            parameters,
            pydantic.validate_call(function),
            function,
        )

    def schema(self, api: str) -> dict[str, Any]:
        """The tool as ``api`` takes it (chat nests the function; Responses does not)."""
        function = {
            "name": self.name,
            "description": self.description,
            "parameters": self.parameters,
        }
        if api == "chat":
            return {"type": "function", "function": function}
        return {"type": "function", **function, "strict": False}


@dataclass
class _Run:
    """One loop's state: the calls made and the trajectory items so far."""

    calls: list[Completion] = field(default_factory=list)
    items: list[dict[str, Any]] = field(default_factory=list)

    def item(self, kind: str, **fields: Any) -> dict[str, Any]:
        out = trajectory_item(kind, **fields)
        self.items.append(out)
        return out


async def run_tools(
    llm: BoundModel,
    input: str | list[dict[str, Any]],
    tools: Sequence[Callable[..., Any]],
    *,
    max_turns: int = 10,
    api: str = "responses",
    tool_errors: ToolErrors = "raise",
    **params: Any,
) -> Completion:
    """Run the loop (see the module docstring); ``params`` go into every request.

    ``tool_errors``: ``"raise"`` (default) stops the run with a ``ToolError`` naming the
    tool: a tool that raises is a bug in the app under test, the case's error, not a
    grade. ``"send"`` gives the model the error as the tool's output and goes on. Either
    way, arguments the model got wrong (not JSON, or not the tool's types) and a tool name
    that does not exist are the model's mistakes: the model is told and the run goes on.
    """
    if api not in ("chat", "responses"):
        raise ValueError(f"api must be 'chat' or 'responses', got {api!r}")
    if max_turns < 1:
        raise ValueError(f"max_turns must be at least 1, got {max_turns}")
    if tool_errors not in ("raise", "send"):
        raise ValueError(f"tool_errors must be 'raise' or 'send', got {tool_errors!r}")
    if "tools" in params:
        raise TypeError("run_tools takes the tools' functions as tools=[...], not schemas")
    known: dict[str, Tool] = {}
    for tool in map(Tool.of, tools):
        if tool.name in known:
            raise TypeError(f"two tools are named {tool.name!r}: the model calls tools by name")
        known[tool.name] = tool
    schemas = [tool.schema(api) for tool in known.values()]
    history: list[dict[str, Any]] = (
        [{"role": "user", "content": input}] if isinstance(input, str) else list(input)
    )
    run = _Run()
    final: str | None = None
    for _ in range(max_turns):
        if api == "responses":
            completion = await llm.arespond(history, tools=schemas, **params)
            calls = _responses_turn(completion, run, history)
        else:
            completion = await llm.achat(history, tools=schemas, **params)
            calls = _chat_turn(completion, run, history)
        run.calls.append(completion)
        if not calls:
            final = completion.text
            break
        for call_id, name, arguments in calls:
            output = await _call(known, name, arguments, run, call_id, tool_errors)
            if api == "responses":
                history.append(
                    {"type": "function_call_output", "call_id": call_id, "output": output}
                )
            else:
                history.append({"role": "tool", "tool_call_id": call_id, "content": output})
    return _completion(run, final, api)


def _responses_turn(
    completion: Completion, run: _Run, history: list[dict[str, Any]]
) -> list[tuple[str, str, str]]:
    """The turn's output as trajectory items and as the next request's input; its calls.

    Output items go back without their ids (requests are sent with ``store: false``, so
    the server keeps no item to refer to); a reasoning item goes back only when it
    carries its ``encrypted_content`` (ask for it with
    ``include=["reasoning.encrypted_content"]``), the one form a stateless request takes.
    """
    calls = []
    for item in (completion.response or {}).get("output") or []:
        kind = item.get("type")
        if kind == "reasoning":
            summary = "\n".join(s.get("text") or "" for s in item.get("summary") or [])
            run.item("reasoning", content=summary or None)
            if item.get("encrypted_content"):
                history.append(item)
        elif kind == "message":
            text = "".join(
                p.get("text") or p.get("refusal") or "" for p in item.get("content") or []
            )
            run.item("message", role=item.get("role") or "assistant", content=text)
            history.append({"role": item.get("role") or "assistant", "content": text})
        elif kind == "function_call":
            call_id, name = str(item.get("call_id")), str(item.get("name"))
            arguments = str(item.get("arguments") or "")
            run.item("tool_call", name=name, call_id=call_id, arguments=arguments_of(arguments))
            history.append(
                {"type": "function_call", "call_id": call_id, "name": name, "arguments": arguments}
            )
            calls.append((call_id, name, arguments))
    return calls


def _chat_turn(
    completion: Completion, run: _Run, history: list[dict[str, Any]]
) -> list[tuple[str, str, str]]:
    """The assistant message as trajectory items and as the next request's message."""
    message: dict[str, Any] = {"role": "assistant", "content": completion.text or None}
    if completion.text:
        run.item("message", role="assistant", content=completion.text)
    calls = []
    for call in completion.tool_calls:
        function = call.get("function") or {}
        call_id, name = str(call.get("id")), str(function.get("name"))
        arguments = str(function.get("arguments") or "")
        run.item("tool_call", name=name, call_id=call_id, arguments=arguments_of(arguments))
        calls.append((call_id, name, arguments))
    if calls:
        message["tool_calls"] = [
            {"id": c, "type": "function", "function": {"name": n, "arguments": a}}
            for c, n, a in calls
        ]
    history.append(message)
    return calls


async def _call(
    known: dict[str, Tool],
    name: str,
    arguments: str,
    run: _Run,
    call_id: str,
    tool_errors: ToolErrors,
) -> str:
    """Run one tool call; its output as the model reads it (also recorded as an item)."""
    record = run.item("tool_output", name=name, call_id=call_id)
    tool = known.get(name)
    parsed = arguments_of(arguments)
    error: str | None = None
    if tool is None:
        error = f"no tool named {name!r}; the tools are: {', '.join(known) or 'none'}"
    elif not isinstance(parsed, dict):
        error = f"the arguments are not a JSON object: {arguments!r}"
    else:
        try:
            result = tool.call(**parsed)
            if inspect.isawaitable(result):
                result = await result
        except Exception as exc:
            if isinstance(exc, pydantic.ValidationError) and not tool.raised_inside(exc):
                # the model's arguments, refused before the call: the model's mistake
                error = f"invalid arguments for {name}: {exc.errors(include_url=False)}"
            elif tool_errors == "raise":
                record["error"] = f"{type(exc).__name__}: {exc}"
                partial = {"items": run.items, "turns": len(run.calls), "final_output": None}
                raise ToolError(name, exc, partial) from exc
            else:
                error = f"{type(exc).__name__}: {exc}"
        else:
            output = as_text(result)
            record["output"] = output
            return output
    record["error"] = error
    record["output"] = f"error: {error}"
    return f"error: {error}"


def trajectory_item(kind: str, agent: str | None = None, **fields: Any) -> dict[str, Any]:
    """One trajectory item, every field of records/trajectory.py's ``Item`` present (the
    model layer builds the plain dict; records validates it)."""
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
        **fields,
    }


def arguments_of(raw: Any) -> dict[str, Any] | str | None:
    """Tool-call arguments as a trajectory keeps them: the JSON object when they parse to
    one, else the raw string (None when they are not a string at all)."""
    if not isinstance(raw, str):
        return None
    try:
        parsed = json.loads(raw)
    except ValueError:
        return raw
    return parsed if isinstance(parsed, dict) else raw


def as_text(value: Any) -> str:
    """A tool's (or agent's) output as the text a model and a trajectory read: a string as
    it is, a pydantic object or any JSON value as sorted JSON, else its ``str``."""
    if isinstance(value, str):
        return value
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        value = dump(mode="json")
    try:
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    except (TypeError, ValueError):
        return str(value)


def _completion(run: _Run, final: str | None, api: str) -> Completion:
    """The run as one completion: the final answer (empty when ``max_turns`` ran out:
    the trajectory's ``final_output`` is then None), every tool call, summed usage,
    cost and latency, and the trajectory."""
    last = run.calls[-1]
    costs = [c.cost for c in run.calls]
    return Completion(
        text=final or "",
        model=last.model,
        api=api,
        tool_calls=[call for c in run.calls for call in c.tool_calls],
        usage=sum((c.usage for c in run.calls), Usage()),
        cost=None if None in costs else sum(c for c in costs if c is not None),
        latency_s=sum(c.latency_s for c in run.calls),
        cached=all(c.cached for c in run.calls),
        request=last.request,
        response=last.response,
        trajectory={"items": run.items, "turns": len(run.calls), "final_output": final},
    )


def run_tools_sync(llm: BoundModel, *args: Any, **kwargs: Any) -> Completion:
    """``run_tools`` from synchronous code (a test body); from a coroutine, await it."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:  # none: run one (outside the except, so no chained traceback)
        pass
    else:
        raise RuntimeError(
            "llm.run_tools(...) was called inside a running event loop: "
            "use `await llm.arun_tools(...)` there"
        )
    return asyncio.run(run_tools(llm, *args, **kwargs))
