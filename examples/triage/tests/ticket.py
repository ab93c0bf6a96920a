from typing import Literal

from pydantic import BaseModel


class Ticket(BaseModel):
    """One row of data/tickets.jsonl; a bad row fails collection with file:line:field."""

    id: str
    subject: str
    body: str
    category: Literal["billing", "bug", "account", "shipping"]
    order_id: str
    urgent: bool
