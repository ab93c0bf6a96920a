"""The support agent: three function tools over the shop's data, and the agent itself.

This is the application under test; the evals in tests/ run it on each case with
``@pytest.mark.eval(agent="support.agent:support", ...)``. Its model name is replaced by
the eval's model (``models`` in pyproject.toml, or ``--eval-models``).

The tool descriptions give no example values on purpose: a small model copies them into
its arguments (MODEL-TOOLS.md).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from agents import Agent, ModelSettings, function_tool

ORDERS = json.loads((Path(__file__).parent.parent / "data" / "orders.json").read_text())

POLICIES = {
    "returns": "Unused items can be returned within 30 days of delivery for a full refund.",
    "damaged": "Damaged items are replaced or refunded in full; send a photo within 14 days.",
    "late": "If an order arrives more than 7 days late, the shipping cost is refunded.",
    "exchange": "Items can be exchanged for another size or colour within 30 days, free.",
    "warranty": "Electronics carry a 2-year warranty; repairs are free during that time.",
}


@function_tool
def lookup_order(order_id: str) -> str:
    """Look up the status of a customer's order.

    Args:
        order_id: The order number the customer gave.
    """
    order = ORDERS.get(order_id.strip().upper())
    if order is None:
        return f"There is no order {order_id}."
    if order["status"] == "cancelled":
        return f"Order {order_id} was cancelled; the payment has been refunded."
    if order["status"] == "delivered":
        return f"Order {order_id} was delivered by {order['carrier']} on {order['eta']}."
    if order["status"] == "processing":
        return f"Order {order_id} is being prepared; it should arrive by {order['eta']}."
    status, carrier, eta = order["status"], order["carrier"], order["eta"]
    return f"Order {order_id} is {status} with {carrier}, arriving {eta}."


@function_tool
def refund_policy(topic: Literal["returns", "damaged", "late", "exchange", "warranty"]) -> str:
    """The shop's policy on returns, refunds and exchanges.

    Args:
        topic: What the customer asks about.
    """
    return POLICIES[topic]


@function_tool
def escalate(reason: str) -> str:
    """Hand the conversation to a human agent: when the customer asks for a person, threatens
    legal action, or reports a safety problem.

    Args:
        reason: Why a human is needed.
    """
    return "A human agent will contact the customer by email within 24 hours."


support = Agent(
    name="support",
    instructions=(
        "You are the customer support agent of an online shop. Use lookup_order for "
        "questions about an order, refund_policy for returns, refunds, exchanges and "
        "warranty, and escalate when the customer asks for a person, threatens legal action "
        "or reports a safety problem. Answer other messages yourself, briefly."
    ),
    model="gpt-4.1-mini",  # replaced by the eval's model
    tools=[lookup_order, refund_policy, escalate],
    # tool_choice "auto": llama.cpp's server answers "required" with HTTP 500 (MODEL-TOOLS.md)
    model_settings=ModelSettings(temperature=0, tool_choice="auto", max_tokens=128),
)
