"""``scripts/probe-local-tools``: the measurement behind examples/agent/MODEL-TOOLS.md.

The figures there come from the real local model; this checks the counting against the
fake server, whose answers (and so the right figures) are known.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.support.fake_openai import FakeOpenAI

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "probe-local-tools"


def test_probe_counts_tool_calls_arguments_and_text(server: FakeOpenAI, tmp_path: Path) -> None:
    server.reply_tool_call("lookup_order", {"order_id": "A1234"}, contains="order A1234")
    server.reply_tool_call("refund_policy", {"topic": "shoes"}, contains="return shoes")
    server.reply_tool_call("lookup_order", {"order_id": "Q9"}, contains="Track order")
    server.reply_tool_call("lookup_order", {"order_id": "X"}, contains="Hi there")
    # every other prompt: the fake server echoes it back as text
    done = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--base-url",
            server.base_url,
            "--choices",
            "auto",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    row = done.stdout.splitlines()[2]
    # 24 prompts, 4 tool calls (3 expected tools: "Hi there" needs none), all JSON with the
    # required key, 2 values from the prompt (Q9 and X are not in theirs), 3 of the 4
    # prompts that need no tool answered in text
    assert row.startswith(
        "| serve-local | auto | 24 | 0 | 4 | 4 | 4 | 2 | 3/20 | 3/4 "
        "| {'lookup_order': 3, 'refund_policy': 1} |"
    ), done.stdout
    assert (tmp_path / "summary.md").read_text(encoding="utf-8") == done.stdout.rstrip("\n") + "\n"
    raw = [json.loads(line) for line in (tmp_path / "serve-local.jsonl").open(encoding="utf-8")]
    assert len(raw) == 24
    first = raw[0]
    assert first["prompt"] == "Where is my order A1234?"
    call = first["response"]["choices"][0]["message"]["tool_calls"][0]
    assert call["function"] == {"name": "lookup_order", "arguments": '{"order_id": "A1234"}'}
