"""Cost of a call in USD, from user overrides first, then the genai-prices table.

genai-prices is imported on the first price lookup only (it costs ~0.5 s to import), and
never asked to update itself over the network: its bundled snapshot is the table.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ..config import Price
    from .types import Usage


def cost_usd(
    model: str, usage: Usage, *, provider: str, overrides: Mapping[str, Price]
) -> float | None:
    """USD for one call, or None when no price is known for the model (never a guess)."""
    price = overrides.get(model)
    if price is not None:
        cached = min(usage.cached_tokens, usage.prompt_tokens)
        cached_rate = price.input if price.cached_input is None else price.cached_input
        total = (
            (usage.prompt_tokens - cached) * price.input
            + cached * cached_rate
            + usage.completion_tokens * price.output
        )
        return total / 1_000_000
    return _table_cost(
        model, provider, usage.prompt_tokens, usage.cached_tokens, usage.completion_tokens
    )


@functools.lru_cache(maxsize=4096)
def _table_cost(
    model: str, provider: str, prompt: int, cached: int, completion: int
) -> float | None:
    if not _known(model, provider):
        return None
    from genai_prices import (
        Usage as PriceUsage,
    )  # genai-prices costs ~0.5 s to import: only with the first price
    from genai_prices import calc_price

    result = calc_price(
        PriceUsage(
            input_tokens=prompt, cache_read_tokens=min(cached, prompt), output_tokens=completion
        ),
        model_ref=model,
        provider_id=provider,
    )
    return float(result.total_price)


@functools.lru_cache(maxsize=256)
def _known(model: str, provider: str) -> bool:
    from genai_prices import Usage as PriceUsage  # genai-prices: only with the first price
    from genai_prices import calc_price

    try:
        calc_price(PriceUsage(input_tokens=1), model_ref=model, provider_id=provider)
    except LookupError:
        return False
    return True
