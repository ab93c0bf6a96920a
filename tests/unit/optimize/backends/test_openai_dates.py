"""OpenAI's end dates (``openai_dates.py``): which launches they bind, what a launch
states before them and why it is refused after, read through an injected clock."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from pytest_modelopt.optimize.backends.openai_dates import (
    JOB_CREATION_ENDS,
    Deadlines,
    family_of,
    on_openai_platform,
)

ROOT = Path(__file__).resolve().parents[4]


def on(day: str) -> Deadlines:
    return Deadlines(clock=lambda: dt.date.fromisoformat(day))


@pytest.mark.parametrize(
    ("base_url", "expected"),
    [
        (None, True),  # the SDK's default: api.openai.com
        ("", True),
        ("https://api.openai.com/v1", True),
        ("https://eu.api.openai.com/v1", True),
        ("https://my-resource.openai.azure.com/openai/v1", False),  # Azure: its own dates
        ("http://127.0.0.1:8000/v1", False),
        ("https://api.together.xyz/v1", False),
        ("https://notopenai.com/v1", False),
    ],
)
def test_the_dates_bind_only_openais_own_api(base_url: str | None, expected: bool) -> None:
    assert on_openai_platform(base_url) is expected


@pytest.mark.parametrize(
    ("model", "family", "day"),
    [
        ("gpt-4o", "gpt-4o", "2027-01-14"),
        ("gpt-4o-mini-2024-07-18", "gpt-4o", "2027-01-14"),
        ("gpt-4.1", "gpt-4.1", "2027-01-14"),
        ("gpt-4.1-mini-2025-04-14", "gpt-4.1", "2027-01-14"),
        ("ft:gpt-4o-mini-2024-07-18:acme::9abc", "gpt-4o", "2027-01-14"),
        ("gpt-4.1-nano-2025-04-14", "gpt-4.1-nano", "2026-10-23"),
        ("o4-mini-2025-04-16", "o4-mini-2025-04-16", "2026-10-23"),
    ],
)
def test_model_families_and_their_shutdown_days(model: str, family: str, day: str) -> None:
    assert family_of(model) == (family, dt.date.fromisoformat(day))


@pytest.mark.parametrize("model", ["gpt-5-mini", "gpt-4", "gpt-4.10", "my-org/my-model", "o4-mini"])
def test_other_models_belong_to_no_shut_down_family(model: str) -> None:
    assert family_of(model) is None


def test_before_the_deadline_a_launch_states_both_dates() -> None:
    deadlines = on("2026-12-07")
    assert deadlines.refusal("gpt-4.1-mini-2025-04-14") is None
    assert deadlines.notices("gpt-4.1-mini-2025-04-14") == [
        "OpenAI stops creating fine-tuning jobs on 2027-01-06 (in 30 days); jobs created "
        "before then run to the end",
        "gpt-4.1-mini-2025-04-14 is a gpt-4.1 model: OpenAI shuts that family down, "
        "fine-tuned models included, on 2027-01-14 (in 38 days); the model this job makes "
        "stops answering then",
    ]
    assert on("2027-01-05").notices("some-open-model") == [
        "OpenAI stops creating fine-tuning jobs on 2027-01-06 (in 1 day); jobs created before "
        "then run to the end"
    ]


def test_from_the_deadline_on_a_launch_is_refused() -> None:
    assert on("2027-01-06").notices("gpt-4.1-mini") == []
    assert on("2027-01-06").refusal("gpt-4.1-mini") == (
        "OpenAI stopped creating fine-tuning jobs on 2027-01-06 (today is 2027-01-06)"
    )
    assert on("2027-01-14").refusal("gpt-4o-mini-2024-07-18") == (
        "OpenAI stopped creating fine-tuning jobs on 2027-01-06 (today is 2027-01-14); "
        "gpt-4o-mini-2024-07-18 is a gpt-4o model, shut down on 2027-01-14"
    )


def test_a_shut_down_family_is_refused_whatever_the_job_creation_date() -> None:
    later = Deadlines(clock=lambda: dt.date(2027, 1, 20), job_creation_ends=dt.date(2027, 6, 1))
    assert later.refusal("gpt-4.1") == "gpt-4.1 is a gpt-4.1 model, shut down on 2027-01-14"
    assert later.notices("gpt-4.1") == [
        "OpenAI stops creating fine-tuning jobs on 2027-06-01 (in 132 days); jobs created "
        "before then run to the end"
    ]


def test_the_docs_state_the_date_the_code_reads() -> None:
    assert JOB_CREATION_ENDS.isoformat() in (ROOT / "docs" / "optimize.md").read_text("utf-8")
