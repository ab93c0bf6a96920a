"""The model under test as a test sees it: the ``llm`` / ``model`` fixture's object.

Each call goes through the run's :class:`~pytest_modelopt.model.client.ModelClient`
(cache, retries, hooks) and is counted on the current case.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .types import CallContext, Completion
from .wire import ENDPOINTS

if TYPE_CHECKING:
    from collections.abc import Callable

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
        self._client = client
        self.name = name
        self.sample = sample
        self._eval = eval
        self._case_id = case_id
        self._on_call = on_call

    def __repr__(self) -> str:
        return f"<llm {self.name}>"

    def _context(self, api: str) -> CallContext:
        return CallContext(ENDPOINTS[api], self.name, self.sample, self._eval, self._case_id)

    def _seen(self, completion: Completion, input: Any) -> Completion:
        if self._on_call is not None:
            self._on_call(completion, input)
        return completion

    def chat(self, messages: list[dict[str, Any]], **params: Any) -> Completion:
        """Chat Completions with this model; ``params`` go into the request body as they are."""
        body = {"model": self.name, "messages": messages, **params}
        return self._seen(self._client.call("chat", body, self._context("chat")), messages)

    def respond(self, input: Any, **params: Any) -> Completion:
        """The Responses API with this model; ``input`` is a string or a list of items."""
        body = {"model": self.name, "input": input, **params}
        return self._seen(self._client.call("responses", body, self._context("responses")), input)

    async def achat(self, messages: list[dict[str, Any]], **params: Any) -> Completion:
        body = {"model": self.name, "messages": messages, **params}
        return self._seen(await self._client.acall("chat", body, self._context("chat")), messages)

    async def arespond(self, input: Any, **params: Any) -> Completion:
        body = {"model": self.name, "input": input, **params}
        completion = await self._client.acall("responses", body, self._context("responses"))
        return self._seen(completion, input)
