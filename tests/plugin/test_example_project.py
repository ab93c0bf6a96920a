"""The shipped example projects collect, run end to end (triage, against the local fake) and
replay their recordings of the real local model offline."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.support.fake_openai import FakeOpenAI


EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def copy_example(name: str, pytester: pytest.Pytester) -> Path:
    """The example project ``examples/<name>``, recordings included, as pytester's project."""
    shutil.copytree(
        EXAMPLES / name,
        pytester.path,
        dirs_exist_ok=True,
        ignore=shutil.ignore_patterns("runs", "__pycache__"),
    )
    return pytester.path


def replay_offline(
    name: str, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, mode: list[str]
) -> pytest.RunResult:
    """Run the copied example with --eval-record none, no key and no model server, and
    check every number its recording run wrote (later versions may add derived fields)."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")  # nothing listens there
    result = pytester.runpytest(*mode, "-p", "no:cacheprovider", "--eval-record", "none")
    recorded = json.loads((EXAMPLES / name / ".modelopt" / "recorded-summary.json").read_text())
    summary_path = sorted((pytester.path / ".modelopt" / "runs").glob("*/summary.json"))[-1]
    replayed = json.loads(summary_path.read_text())
    assert [
        {k: row[k] for k in rec}
        for row, rec in zip(replayed["evals"], recorded["evals"], strict=True)
    ] == recorded["evals"]
    assert result.ret == 0
    return result


@pytest.fixture
def example(pytester: pytest.Pytester, server: FakeOpenAI) -> Path:
    return copy_example("triage", pytester)


def test_example_has_44_tickets_and_four_evals(
    example: Path, pytester: pytest.Pytester, mode: list[str]
) -> None:
    result = pytester.runpytest(*mode, "--collect-only", "-q", "-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(
        [
            "tests/test_triage.py::test_category[[]smollm2-135m-instruct-t01[]]",
            "*176 tests collected*",
        ]
    )


def test_example_runs_end_to_end(example: Path, pytester: pytest.Pytester, mode: list[str]) -> None:
    result = pytester.runpytest(*mode, "-p", "no:cacheprovider", "--eval-models", "echo-model")
    rows = [
        json.loads(line) for line in (example / "data" / "tickets.jsonl").read_text().splitlines()
    ]
    # The fake server echoes the last user message, so each eval's outcome is predictable.
    category = sum(r["category"] in r["body"].lower() for r in rows)
    summary_path = sorted((example / ".modelopt" / "runs").glob("*/summary.json"))[-1]
    evals = {e["eval"]: e for e in json.loads(summary_path.read_text())["evals"]}
    assert evals["test_triage::test_category"]["passed"] == category
    assert evals["test_triage::test_order_id"]["pass_rate"] == 1.0  # "...or none." is echoed
    assert all(e["errors"] == 0 and e["cases"] == 44 for e in evals.values())
    assert evals["test_triage::test_reply"]["judge_calls"] == 44  # the "polite" judge
    assert result.ret == (0 if category / 44 >= 0.25 else 1)


def test_example_replays_offline_to_the_recorded_verdicts(
    example: Path, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, mode: list[str]
) -> None:
    """The shipped recordings of the real local model replay with no key, no network and no
    model server, to exactly the numbers of the run that recorded them."""
    result = replay_offline("triage", pytester, monkeypatch, mode)
    if "-n" in mode:  # the workers' progress, summed
        result.stdout.fnmatch_lines(
            ["modelopt: generated 176 declared completions on 2 workers in *(0 sent*"]
        )
    else:
        result.stdout.fnmatch_lines(["modelopt: generated 176/176 declared completions*0 sent*"])


def test_the_agent_example_has_44_cases_and_two_evals(pytester: pytest.Pytester) -> None:
    example = copy_example("agent", pytester)
    result = pytester.runpytest("--collect-only", "-q", "-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(
        [
            "tests/test_agent.py::test_tool_use[[]smollm2-135m-instruct-o01[]]",
            "*88 tests collected*",
        ]
    )
    rows = (example / "data" / "cases.jsonl").read_text().splitlines()
    tools = [json.loads(row)["tool"] for row in rows]
    assert {tool: tools.count(tool) for tool in set(tools)} == {
        "lookup_order": 16,
        "refund_policy": 12,
        "escalate": 8,
        "none": 8,
    }


def test_the_agent_example_replays_offline_to_the_recorded_verdicts(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, mode: list[str]
) -> None:
    """Every agent turn comes from the recordings of SmolLM2 (served by llama.cpp over Chat
    Completions); the tools run again and give the same outputs, so the replay reaches the
    recorded numbers."""
    copy_example("agent", pytester)
    replay_offline("agent", pytester, monkeypatch, mode)
