"""How a cost is shown, wherever one is: the terminal table, the progress line, the
Markdown report and PR comment, the CLI, the fine-tuning estimates.

A cost nobody knows is ``?``, never ``$0.0000``: a model with no known price (a local
server, a new model, a fine-tune) costs something or nothing, and a zero would claim the
latter. A total that is known for some calls and not for others shows the known part
followed by ``+?`` (``$0.0123+?``): at least that much, and more for the calls with no
price. A leaf every stage may use.
"""

from __future__ import annotations

UNKNOWN = "?"
PARTLY = "+?"


def money(value: float | None, unpriced: int = 0, *, calls: bool = True) -> str:
    """``value`` USD; ``None`` is unknown (``-`` when no call was made: nothing to price);
    ``unpriced`` calls that had no price make the value a lower bound."""
    if value is None:
        return UNKNOWN if calls or unpriced else "-"
    if 0 < value < 0.0001:
        return "<$0.0001" + (PARTLY if unpriced else "")
    text = f"${value:.4f}" if value < 1 else f"${value:,.2f}"
    return text + PARTLY if unpriced else text


def total(costs: list[float | None]) -> tuple[float | None, int]:
    """The known part of a sum of costs (``None`` when no part is known and there is
    something to sum) and how many parts were unknown."""
    known = [cost for cost in costs if cost is not None]
    unknown = len(costs) - len(known)
    if costs and not known:
        return None, unknown
    return float(sum(known)), unknown
