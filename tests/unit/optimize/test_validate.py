"""A training set checked as OpenAI's fine-tuning would, before any upload."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pytest_modelopt.optimize.validate import default_epochs, read_jsonl, validate


def sft_example(i: int, answer: str = "billing") -> dict[str, Any]:
    return {
        "messages": [
            {"role": "user", "content": f"ticket {i}"},
            {"role": "assistant", "content": answer},
        ]
    }


def codes(report: Any) -> list[tuple[str, int | None]]:
    return [(i.code, i.line) for i in report.issues]


def test_validation_accepts_a_clean_set_and_estimates_its_cost() -> None:
    examples = [sft_example(i, ["billing", "bug", "account"][i % 3]) for i in range(30)]
    report = validate("sft", examples, base_model="gpt-4.1-mini-2025-04-14")
    assert report.ok
    assert report.issues == []
    assert report.n_epochs == default_epochs(30) == 3
    assert report.estimated_cost_usd == pytest.approx(5.0 * report.tokens * 3 / 1e6, abs=1e-4)
    assert validate("sft", examples, base_model="my-own-model").estimated_cost_usd is None


def test_validation_names_every_bad_example_by_line() -> None:
    examples: list[Any] = [sft_example(i) for i in range(12)]
    examples[1] = {"messages": [{"role": "user", "content": "no answer"}]}
    examples[3] = {"messages": [{"role": "robot", "content": "x"}, sft_example(0)["messages"][1]]}
    examples[5] = {"messages": [{"role": "user", "content": "  "}, sft_example(0)["messages"][1]]}
    examples[7] = "not an object"
    examples[9] = {
        "messages": [
            {"role": "user", "content": "x" * 300_000},
            {"role": "assistant", "content": "y"},
        ]
    }
    report = validate("sft", examples, base_model="gpt-4.1-mini")
    assert not report.ok
    assert ("example_missing_assistant_message", 2) in codes(report)
    assert ("unrecognized_role", 4) in codes(report)
    assert ("missing_content", 6) in codes(report)
    assert ("data_type", 8) in codes(report)
    assert ("example_too_long", 10) in codes(report)


def test_validation_wants_ten_examples_and_warns_of_duplicates_and_imbalance() -> None:
    few = validate("sft", [sft_example(i) for i in range(9)], base_model="gpt-4.1-mini")
    assert ("too_few_examples", None) in codes(few)
    lopsided = [sft_example(i, "billing" if i < 9 else "bug") for i in range(12)]
    lopsided.append(lopsided[0])
    report = validate("sft", lopsided, base_model="gpt-4.1-mini")
    assert report.ok  # warnings only
    assert ("duplicate", 13) in codes(report)
    assert ("class_imbalance", None) in codes(report)
    assert report.label_counts == {"billing": 10, "bug": 3}


def test_validation_of_dpo_and_rft_shapes() -> None:
    pair = {
        "input": {"messages": [{"role": "user", "content": "q"}]},
        "preferred_output": [{"role": "assistant", "content": "good"}],
        "non_preferred_output": [{"role": "assistant", "content": "good"}],
    }
    bad = {"input": {"messages": [{"role": "user", "content": "q"}]}, "preferred_output": []}
    report = validate("dpo", [pair, bad], base_model="gpt-4.1-mini")
    assert ("identical_preference", 1) in codes(report)
    assert ("invalid_preference", 2) in codes(report)
    rft_rows = [
        {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}
    ]
    assert ("rft_last_message_not_user", 1) in codes(validate("rft", rft_rows, base_model="m"))


def test_a_line_that_is_not_json_is_an_issue_naming_it() -> None:
    text = json.dumps(sft_example(1)) + "\n{torn\n"
    examples, issues = read_jsonl(text)
    assert len(examples) == 1
    assert [(i.code, i.line) for i in issues] == [("invalid_json", 2)]
