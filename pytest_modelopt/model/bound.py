"""The model under test as a test sees it: the ``llm`` / ``model`` fixture's object.

Each call goes through the run's :class:`~pytest_modelopt.model.client.ModelClient`
(cache, retries, hooks) and is counted on the current case.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .types import CallContext, Completion
from .wire import ENDPOINTS

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from .client import ModelClient


class BoundModel:
    """The ``llm`` fixture: the model under test, with calls counted on the current case."""

    def __init__(
        self,
        client: ModelClient,
        name: str,
        *,
        sample: int = 0,
        eval: str | None = None,
        case_id: str | None = None,
        on_call: Callable[[Completion, Any], None] | None = None,
    ) -> None:
        self.client = client
        self.name = name
        self.sample = sample
        self._eval = eval
        self._case_id = case_id
        self._on_call = on_call

    def __repr__(self) -> str:
        return f"<llm {self.name}>"

    def context(self, api: str) -> CallContext:
        """Who calls: this model, sample, eval and case (the agent adapter sends as it)."""
        return CallContext(ENDPOINTS[api], self.name, self.sample, self._eval, self._case_id)

    def seen(self, completion: Completion, input: Any) -> Completion:
        """Count a call made for this model on the current case."""
        if self._on_call is not None:
            self._on_call(completion, input)
        return completion

    def chat(self, messages: list[dict[str, Any]], **params: Any) -> Completion:
        """Chat Completions with this model; ``params`` go into the request body as they are,
        but for the SDK's ``extra_headers`` (sent as headers, never cached or recorded) and
        ``extra_body`` (merged into the body)."""
        headers, extra = _split(params)
        body = {"model": self.name, "messages": messages, **params, **extra}
        call = self.client.call("chat", body, self.context("chat"), headers=headers)
        return self.seen(call, messages)

    def respond(self, input: Any, **params: Any) -> Completion:
        """The Responses API with this model; ``input`` is a string or a list of items."""
        headers, extra = _split(params)
        body = {"model": self.name, "input": input, **params, **extra}
        call = self.client.call("responses", body, self.context("responses"), headers=headers)
        return self.seen(call, input)

    async def achat(self, messages: list[dict[str, Any]], **params: Any) -> Completion:
        headers, extra = _split(params)
        body = {"model": self.name, "messages": messages, **params, **extra}
        call = await self.client.acall("chat", body, self.context("chat"), headers=headers)
        return self.seen(call, messages)

    async def arespond(self, input: Any, **params: Any) -> Completion:
        headers, extra = _split(params)
        body = {"model": self.name, "input": input, **params, **extra}
        completion = await self.client.acall(
            "responses", body, self.context("responses"), headers=headers
        )
        return self.seen(completion, input)

    def run_tools(
        self,
        input: str | list[dict[str, Any]],
        tools: Sequence[Callable[..., Any]],
        **options: Any,
    ) -> Completion:
        """A tool-calling loop without the Agents SDK: the model calls ``tools`` (Python
        functions, run here), sees their outputs, until it answers or ``max_turns`` (10)
        calls were made. ``api`` (``"responses"`` or ``"chat"``), ``max_turns``,
        ``tool_errors`` (``"raise"`` or ``"send"``) and request parameters as in
        ``model/tools.py``'s ``run_tools``; the completion carries the run's trajectory.
        From a coroutine, await ``arun_tools``."""
        from .tools import run_tools_sync  # pydantic schemas: only when a loop runs

        return run_tools_sync(self, input, tools, **options)

    async def arun_tools(
        self,
        input: str | list[dict[str, Any]],
        tools: Sequence[Callable[..., Any]],
        **options: Any,
    ) -> Completion:
        from .tools import run_tools  # pydantic schemas: only when a loop runs

        return await run_tools(self, input, tools, **options)


def _split(params: dict[str, Any]) -> tuple[dict[str, str] | None, dict[str, Any]]:
    """The SDK's request options taken out of ``params`` (in place): ``extra_headers`` go as
    headers, ``extra_body`` into the body; ``extra_query`` and ``timeout`` are refused with
    what to do instead, not sent as body fields the server would reject."""
    headers = params.pop("extra_headers", None)
    extra = params.pop("extra_body", None) or {}
    for option in ("extra_query", "timeout"):
        if option in params:
            raise TypeError(
                f"{option}= is not supported by the model fixture: set timeout with "
                "--eval-timeout, and query parameters in the base URL"
            )
    return (dict(headers) if headers else None), dict(extra)
