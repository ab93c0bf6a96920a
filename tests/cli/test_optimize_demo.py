"""``./scripts/optimize-demo`` and the example it runs (examples/finetune).

The full demo trains for minutes and is documented (docs/optimize.md), not run here; this
runs the same path at a tiny scale, so every step of it keeps working: the base model's
replayed run, ``modelopt finetune --answers-from label`` on the ``local`` backend, the
trained model served and scored on the cases it did not train on, ``--eval-distill-to``,
``modelopt compare`` and the before/after table.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_modelopt.records.store import read_cases

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "finetune"


def test_the_dataset_is_the_seeded_scripts_output_byte_for_byte(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(EXAMPLE / "make_dataset.py"), "--out", str(tmp_path)],
        check=True,
        capture_output=True,
    )
    for name in ("tickets.jsonl", "unlabelled.jsonl"):
        assert (tmp_path / name).read_bytes() == (EXAMPLE / "data" / name).read_bytes(), name
    rows = [json.loads(line) for line in (EXAMPLE / "data" / "tickets.jsonl").open()]
    texts = [row["text"] for row in rows]
    texts += [json.loads(line)["text"] for line in (EXAMPLE / "data" / "unlabelled.jsonl").open()]
    assert len(rows) >= 300
    assert len(set(texts)) == len(texts)  # a held-out case is never a training case's twin
    labels = [row["label"] for row in rows]
    assert {labels.count(label) for label in set(labels)} == {len(rows) // 5}


def test_the_tiny_demo_runs_every_step(tmp_path: Path) -> None:
    pytest.importorskip("trl", reason="the local backend needs pytest-modelopt[train]")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MODELOPT_", "OPENAI_"))}
    env["MODELOPT_VENV"] = str(Path(sys.executable).parent.parent)
    done = subprocess.run(
        [str(ROOT / "scripts" / "optimize-demo"), "--tiny", "--keep", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    out = done.stdout
    assert done.returncode == 0, out[-3000:] + done.stderr[-3000:]
    base_run, finetune, student, compare = (
        out.index(f"$ {command}")
        for command in (
            "pytest -q",
            "modelopt finetune base",
            "OPENAI_BASE_URL=",
            "modelopt compare",
        )
    )
    assert base_run < finetune < student < compare
    # the base model replays its recordings: all 80 cases of the tiny copy scored, as recorded
    assert "3 passed, 77 tolerated in" in out[:finetune]
    assert "FAILED eval test_router::test_intent on smollm2-135m-instruct" in out[:finetune]
    assert "note: answers: the dataset field 'label' of each case" in out[finetune:student]
    assert "local job " in out[finetune:student]
    assert ": succeeded" in out[finetune:student]
    assert "training loss (3 steps):" in out
    assert "it is scored only on the others" in out[student:compare]
    assert "test_router::test_intent" in out[compare:]
    table = out[out.index("before and after") :]
    assert "test_router::test_intent" in table
    assert "test_router::test_routable" in table
    launches = sorted((tmp_path / "finetune" / ".modelopt" / "finetune").glob("*/manifest.json"))
    manifest = json.loads(launches[0].read_text())
    held = set(manifest["holdout_cases"])
    trained = set(manifest["trained_cases"])
    assert held
    assert trained
    assert not held & trained
    student_run = (tmp_path / "finetune" / ".modelopt" / "saved" / "student").resolve()
    scored = {record.case_id for record in read_cases(student_run)}
    assert scored
    assert not scored & trained
