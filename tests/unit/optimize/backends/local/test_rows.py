"""Training rows in TRL's forms, and the grader as the RFT reward."""

from __future__ import annotations

import json

from pytest_modelopt.optimize.backends.local.rows import (
    ITEM_COLUMN,
    dpo_rows,
    grader_reward,
    sft_rows,
)


def test_rows_take_trls_conversational_forms() -> None:
    single = {
        "messages": [
            {"role": "developer", "content": [{"type": "text", "text": "Be brief."}]},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello", "weight": 1},
        ]
    }
    rows, mode, warnings = sft_rows([single])
    assert mode == "prompt_completion"  # loss on the completion only, whatever the template
    assert rows[0]["prompt"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
    ]
    assert rows[0]["completion"] == [{"role": "assistant", "content": "Hello"}]
    multi = {
        "messages": [
            {"role": "user", "content": "a"},
            {"role": "assistant", "content": "b"},
            {"role": "user", "content": "c"},
            {"role": "assistant", "content": "d", "weight": 0},
        ]
    }
    rows, mode, warnings = sft_rows([single, multi])
    assert mode == "messages"
    assert "weight 0" in warnings[0]
    assert all("weight" not in m for row in rows for m in row["messages"])
    pair = {
        "input": {"messages": [{"role": "user", "content": "q"}], "tools": [{"type": "function"}]},
        "preferred_output": [{"role": "assistant", "content": "good"}],
        "non_preferred_output": [{"role": "assistant", "content": "bad"}],
    }
    (row,) = dpo_rows([pair])
    assert row["chosen"] == [{"role": "assistant", "content": "good"}]
    assert row["rejected"] == [{"role": "assistant", "content": "bad"}]
    assert json.loads(row["tools"]) == [{"type": "function"}]


def test_the_grader_is_the_reward_and_its_errors_are_heard() -> None:
    errors: list[str] = []
    reward = grader_reward(
        {
            "type": "string_check",
            "name": "exact",
            "input": "{{ sample.output_text }}",
            "reference": "{{ item.colour }}",
            "operation": "eq",
        },
        on_error=errors.append,
    )
    assert reward.__name__ == "exact"  # TRL logs it as rewards/exact/mean
    items = [json.dumps({"colour": "blue"}), json.dumps({"colour": "red"}), json.dumps({})]
    completions = [
        [{"role": "assistant", "content": "blue"}],
        [{"role": "assistant", "content": "blue"}],
        "blue",
    ]
    assert reward(completions=completions, **{ITEM_COLUMN: items}) == [1.0, 0.0, 0.0]
    assert len(errors) == 1
    assert "colour" in errors[0]  # the missing field is named, not a silent zero
