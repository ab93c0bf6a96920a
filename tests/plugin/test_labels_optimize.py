"""Human labels feed the optimize stage, on a real run of the fake server: a reviewer's
pass is the preferred SFT example and a reviewer's fail never one, a reviewer's pass and
fail of two answers to one case make a DPO pair, and labelled cases can be pinned to the
holdout.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

    from tests.conftest import Project
    from tests.support.fake_openai import FakeOpenAI

SUITE = """
import pytest

@pytest.mark.eval(prompt="p.j2", dataset="d.jsonl")
def test_answer(completion):
    pass
"""


def _config(project: Project, pin: bool = False) -> None:
    project.file(
        "pyproject.toml",
        '[tool.modelopt]\nmodels = ["gpt-4.1", "gpt-4.1-mini"]\n'
        'labels = ["evals/labels/*.jsonl"]\n\n[tool.modelopt.finetune]\nholdout = 0.0\n'
        f"pin_labelled = {'true' if pin else 'false'}\n",
    )


def _review(project: Project, model: str, answers: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pytest_modelopt.cli", "review", "--model", model,
         "--reviewer", "ann", "-o", f"evals/labels/{model}.jsonl"],
        input="".join(f"{a}\n\n" for a in answers) + "q\n",
        capture_output=True, text=True, cwd=project.path, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


def _distill(project: Project, method: str, teacher: str, out: str) -> tuple[dict[str, Any], str]:
    result = project.modelopt(
        "distill", "--student", "student", "--teacher", teacher, "--method", method,
        "--backend", "export", "--out", out, "--dry-run",
    )  # fmt: skip
    # so few examples are an error of the set's validation, reported after it is written
    assert f"dry run: nothing launched; the files and manifest are in {out}" in result.stdout
    manifest: dict[str, Any] = json.loads((project.path / out / "manifest.json").read_text())
    return manifest, result.stdout


def _rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_labels_choose_examples_pairs_and_holdout(project: Project, server: FakeOpenAI) -> None:
    _config(project)
    project.dataset("d.jsonl", [{"id": f"c{i}", "q": f"q{i}"} for i in range(10)])
    project.file("p.j2", "{{ q }}")
    project.test(SUITE)
    # the weaker model rambles; every answer passes the (empty) graders
    server.reply(lambda body: "meh " + str(body["messages"][-1]["content"]), model="gpt-4.1-mini")
    assert project.run("-p", "no:xdist").ret == 0
    # a reviewer passes gpt-4.1's answers to c0-c5 but c3, and fails gpt-4.1-mini's to c0-c4
    _review(project, "gpt-4.1", ["p", "p", "p", "f", "p", "p"])
    _review(project, "gpt-4.1-mini", ["f"] * 5)

    dpo, said = _distill(project, "dpo", "gpt-4.1", "dpo")
    assert "4 pairs are a reviewer's pass and fail" in said
    pairs = _rows(project.path / "dpo" / "train.jsonl")
    # c3: the reviewer failed both answers; c5-c9: nobody failed one
    assert dpo["trained_cases"] == ["c0", "c1", "c2", "c4"]
    assert [p["preferred_output"][0]["content"] for p in pairs] == ["q0", "q1", "q2", "q4"]
    assert [p["non_preferred_output"][0]["content"] for p in pairs] == [
        "meh q0", "meh q1", "meh q2", "meh q4",
    ]  # fmt: skip

    sft, said = _distill(project, "sft", "gpt-4.1", "sft")
    assert "5 of the answers were passed by a reviewer" in said
    assert sft["trained_cases"] == [f"c{i}" for i in range(10) if i != 3]  # c3 failed by a human

    _config(project, pin=True)
    pinned, _ = _distill(project, "sft", "gpt-4.1", "pinned")
    assert pinned["trained_cases"] == ["c6", "c7", "c8", "c9"]
    assert pinned["holdout_cases"] == [f"c{i}" for i in range(6)]
    # the examples never hold a pinned case's answer
    contents = [
        r["messages"][-1]["content"] for r in _rows(project.path / "pinned" / "train.jsonl")
    ]
    assert contents == ["q6", "q7", "q8", "q9"]
