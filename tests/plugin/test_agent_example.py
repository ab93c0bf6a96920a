"""The shipped agent example (examples/agent) collects, and replays its recordings of the
real local model offline to the numbers of the run that recorded them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "agent"


@pytest.fixture
def example(pytester: pytest.Pytester) -> Path:
    shutil.copytree(
        EXAMPLE,
        pytester.path,
        dirs_exist_ok=True,
        ignore=shutil.ignore_patterns("runs", "__pycache__"),
    )
    return pytester.path


def test_the_agent_example_has_44_cases_and_two_evals(
    example: Path, pytester: pytest.Pytester
) -> None:
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
    example: Path, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, mode: list[str]
) -> None:
    """No key, no network, no model server: every agent turn comes from the recordings of
    SmolLM2 (served by llama.cpp over Chat Completions), to the recorded numbers."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")  # nothing listens there
    result = pytester.runpytest(*mode, "-p", "no:cacheprovider", "--eval-record", "none")
    recorded = json.loads((EXAMPLE / ".modelopt" / "recorded-summary.json").read_text())
    summary_path = sorted((example / ".modelopt" / "runs").glob("*/summary.json"))[-1]
    replayed = json.loads(summary_path.read_text())
    assert [
        {k: row[k] for k in rec}
        for row, rec in zip(replayed["evals"], recorded["evals"], strict=True)
    ] == recorded["evals"]
    assert all(row["errors"] == 0 and row["cases"] == 44 for row in replayed["evals"])
    assert result.ret == 0
