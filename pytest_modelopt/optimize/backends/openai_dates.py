"""OpenAI's end dates for fine-tuning, in one place, and what a launch says about them.

OpenAI's deprecations page (developers.openai.com/api/docs/deprecations, "Update to
OpenAI's self-serve fine-tuning"): organisations new to fine-tuning cannot create jobs since
2026-05-07, and on 2027-01-06 "active existing customers will no longer be able to create
new fine-tuning jobs"; jobs already created run on, and fine-tuned models answer until their
base model is shut down. The same page (entry of 2026-04-22) shut ``gpt-4.1-nano`` and the
RFT model ``o4-mini-2025-04-16`` down on 2026-10-23; the entry of 2026-10-14 shuts GPT-4o,
GPT-4o mini, GPT-4.1 and GPT-4.1 mini down, fine-tunes included, on 2027-01-14 (that entry
read from secondary copies of the page: /work/shared/research/openai_api_facts.md §0).

These are OpenAI's platform's dates: they bind a launch against ``api.openai.com`` (or the
SDK's default, with no base URL), not one against Azure OpenAI or another server with the
same endpoints, which keep their own schedules. Today's date comes from a clock the caller
may pass (tests do), never from patching time.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from collections.abc import Callable

#: Organisations that never fine-tuned could not create jobs from this day.
NEW_ORGANISATIONS_CUT_OFF = dt.date(2026, 5, 7)
#: No one can create a fine-tuning job on OpenAI's platform from this day (UTC).
JOB_CREATION_ENDS = dt.date(2027, 1, 6)
#: Model families shut down (their fine-tuned models too), most specific prefix first.
SHUTDOWNS: tuple[tuple[str, dt.date], ...] = (
    ("gpt-4.1-nano", dt.date(2026, 10, 23)),
    ("o4-mini-2025-04-16", dt.date(2026, 10, 23)),
    ("gpt-4.1", dt.date(2027, 1, 14)),
    ("gpt-4o", dt.date(2027, 1, 14)),
)


def utc_today() -> dt.date:
    """The date in UTC, the zone OpenAI's dates are read in."""
    return dt.datetime.now(dt.timezone.utc).date()


def on_openai_platform(base_url: str | None) -> bool:
    """Whether requests go to OpenAI's own API: no base URL (the SDK's default) or a host
    under openai.com (api.openai.com, regional hosts), not Azure's ``*.openai.azure.com``."""
    if not base_url:
        return True
    host = (urlsplit(base_url).hostname or "").lower()
    return host == "openai.com" or host.endswith(".openai.com")


def family_of(model: str) -> tuple[str, dt.date] | None:
    """The shut-down family a model (or a fine-tune of it, ``ft:BASE:...``) belongs to."""
    name = model.split(":")[1] if model.startswith("ft:") else model
    for prefix, day in SHUTDOWNS:
        if name == prefix or name.startswith(prefix + "-"):
            return prefix, day
    return None


def _days(n: int) -> str:
    return "today" if n == 0 else f"in {n} day{'s' if n != 1 else ''}"


@dataclass(frozen=True)
class Deadlines:
    """What OpenAI's dates mean for one launch today: lines to state, or why to refuse."""

    clock: Callable[[], dt.date] = field(default=utc_today)
    job_creation_ends: dt.date = JOB_CREATION_ENDS

    def notices(self, base_model: str) -> list[str]:
        """The lines a launch before the dates states (printed and in the confirmation)."""
        today = self.clock()
        if today >= self.job_creation_ends:
            return []
        left = (self.job_creation_ends - today).days
        lines = [
            f"OpenAI stops creating fine-tuning jobs on {self.job_creation_ends.isoformat()} "
            f"({_days(left)}); jobs created before then run to the end"
        ]
        family = family_of(base_model)
        if family is not None and today < family[1]:
            lines.append(
                f"{base_model} is a {family[0]} model: OpenAI shuts that family down, "
                f"fine-tuned models included, on {family[1].isoformat()} "
                f"({_days((family[1] - today).days)}); the model this job makes stops "
                "answering then"
            )
        return lines

    def refusal(self, base_model: str) -> str | None:
        """Why OpenAI's platform cannot take this launch today, or None."""
        today = self.clock()
        reasons = []
        if today >= self.job_creation_ends:
            reasons.append(
                f"OpenAI stopped creating fine-tuning jobs on "
                f"{self.job_creation_ends.isoformat()} (today is {today.isoformat()})"
            )
        family = family_of(base_model)
        if family is not None and today >= family[1]:
            reasons.append(
                f"{base_model} is a {family[0]} model, shut down on {family[1].isoformat()}"
            )
        return "; ".join(reasons) or None
