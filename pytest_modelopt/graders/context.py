"""Who grades with which model: the client and judge model behind LLM judges and cosine.

The plugin sets a context for every case, so judge calls share the run's client (retries,
cache, hooks) and their cost is recorded on the case apart from the model under test's.
Outside pytest, a judge makes its own client from OPENAI_API_KEY / OPENAI_BASE_URL.
"""

from __future__ import annotations

import contextlib
import os
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..model.client import ModelClient
from ..model.types import CallContext

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from ..model.types import Completion


@dataclass
class GradingContext:
    client: ModelClient | None = None
    judge_model: str | None = None
    embedding_model: str | None = None
    eval: str | None = None
    case_id: str | None = None
    on_judge_call: Callable[[Completion], None] | None = None
    # per judge model: how far down judges.FORMATS its server's answers took us
    structured_output_level: dict[str, int] = field(default_factory=dict)

    def get_client(self) -> ModelClient:
        if self.client is None:
            self.client = ModelClient(
                base_url=os.environ.get("OPENAI_BASE_URL"), timeout=60.0, max_retries=4
            )
        return self.client

    def call_context(self, endpoint: str, model: str) -> CallContext:
        return CallContext(endpoint=endpoint, model=model, eval=self.eval, case_id=self.case_id)

    def judged(self, completion: Completion) -> Completion:
        if self.on_judge_call is not None:
            self.on_judge_call(completion)
        return completion


_current: ContextVar[GradingContext | None] = ContextVar("modelopt_grading", default=None)
_default = GradingContext()


def current() -> GradingContext:
    return _current.get() or _default


@contextlib.contextmanager
def grading(context: GradingContext) -> Iterator[GradingContext]:
    """Use ``context`` for every grader called inside the block."""
    token = _current.set(context)
    try:
        yield context
    finally:
        _current.reset(token)
