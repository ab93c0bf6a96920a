"""``modelopt review`` shows untrusted text escaped, skips and quits as asked, and does
not ask again about what the reviewer already labelled."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import TYPE_CHECKING

from pytest_modelopt.records.models import CaseRecord, GradeRecord, RunInfo
from pytest_modelopt.records.store import RunWriter, write_run_info

if TYPE_CHECKING:
    from pathlib import Path

EVIL = "fine\x1b]0;pwned\x07\x1b[2J answer"


def _run(root: Path) -> None:
    run_dir = root / ".modelopt" / "runs" / "r1"
    write_run_info(run_dir, RunInfo(run_id="r1", started_at="2026-12-07T17:00:00Z",
                                    plugin_version="0"))  # fmt: skip
    (root / ".modelopt" / "runs" / "latest").write_text("r1")
    writer = RunWriter(run_dir, "main")
    for i in range(3):
        writer.append(
            CaseRecord(
                eval="e",
                nodeid=f"t[{i}]",
                model="m",
                case_id=f"c{i}",
                status="passed",
                input=[{"role": "user", "content": f"question {i}"}],
                output=f"{EVIL} {i}",
                grades=[GradeRecord(name="g", score=1.0, passed=True, reason=EVIL)],
            )
        )
    writer.close()


def _review(root: Path, answers: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest_modelopt.cli", "review", "--reviewer", "ann",
         "-o", "labels.jsonl"],
        input=answers, capture_output=True, text=True, cwd=root, check=False,
    )  # fmt: skip


def test_review_escapes_skips_quits_and_resumes(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.pytest.ini_options]\n")
    _run(tmp_path)
    first = _review(tmp_path, "maybe\np\nlooks right\ns\nq\n")
    assert first.returncode == 0, first.stderr
    assert "\x1b" not in first.stdout
    assert "\x07" not in first.stdout
    assert "answer p, f, s or q" in first.stdout
    assert "1 labels appended to labels.jsonl (1 pass, 0 fail), 1 skipped" in first.stdout
    (label,) = [json.loads(x) for x in (tmp_path / "labels.jsonl").read_text().splitlines()]
    assert (label["case_id"], label["verdict"], label["note"], label["grader"]) == (
        "c0", "pass", "looks right", None,
    )  # fmt: skip
    # again: c0 is labelled, so c1 comes first; the end of input quits
    again = _review(tmp_path, "f\n\n")
    assert "[1/2] e [m] case c1" in again.stdout
    assert "1 labels appended" in again.stdout


def test_labels_merge_names_every_bad_line_and_writes_nothing(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.pytest.ini_options]\n")
    (tmp_path / "bad.jsonl").write_text('{"schema_version": 1}\nnot json\n')
    done = subprocess.run(
        [sys.executable, "-m", "pytest_modelopt.cli", "labels", "merge", "bad.jsonl", "-o",
         "out.jsonl"],
        capture_output=True, text=True, cwd=tmp_path, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    problems = done.stderr.splitlines()
    assert problems[0].startswith("modelopt labels merge: bad.jsonl:1: eval: Field required")
    assert problems[1].startswith("modelopt labels merge: bad.jsonl:2: not JSON")
    assert not (tmp_path / "out.jsonl").exists()
