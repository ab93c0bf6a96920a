"""Only calibrated judges gate: an eval whose LLM judge has too few human labels is
*inconclusive (judge not calibrated)* and says how many more it needs; with enough labels
that agree with it, it gates as it did without a policy. Labels are given through
``modelopt review`` (driven through stdin) and, as the run viewer writes them, combined by
``modelopt labels merge`` into a calibration report.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from tests.conftest import Project
    from tests.support.fake_openai import FakeOpenAI

SUITE = """
import pytest
from pytest_modelopt import graders

JUDGE = graders.label_model(
    "Is {{ sample.output_text }} good?", labels=["good", "bad"], passing_labels=["good"]
)

@pytest.mark.eval(prompt="p.j2", dataset="d.jsonl", threshold=THRESHOLD, graders=[JUDGE])
def test_judged(completion):
    pass
"""
ROWS = [{"id": f"c{i:02d}", "q": f"q{i}"} for i in range(60)]
POLICY = "calibration = {min_labels = 30, min_kappa = 0.6}\n"


def _judge_reply(body: dict[str, Any]) -> str:
    """The fake judge: an answer naming an even number is good, an odd one bad."""
    text = str(body["messages"][-1]["content"])
    number = int(re.search(r"q(\d+)", text).group(1))  # type: ignore[union-attr]
    label = "good" if number % 2 == 0 else "bad"
    return json.dumps({"explanation": "", "label": label})


def _setup(project: Project, server: FakeOpenAI, threshold: float, policy: str = POLICY) -> None:
    project.file(
        "pyproject.toml",
        '[tool.modelopt]\nmodels = ["gpt-4.1-mini"]\njudge_model = "judge-1"\n'
        f'labels = ["evals/labels/*.jsonl"]\n{policy}',
    )
    project.dataset("d.jsonl", ROWS)
    project.file("p.j2", "{{ q }}")
    project.test(SUITE.replace("THRESHOLD", str(threshold)))
    server.reply(_judge_reply, model="judge-1")


def _review(project: Project, answers: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``modelopt review`` as a reviewer at a terminal would drive it, through stdin."""
    return subprocess.run(
        [sys.executable, "-m", "pytest_modelopt.cli", "review", *args],
        input=answers,
        capture_output=True,
        text=True,
        cwd=project.path,
        check=False,
    )


def _label_grades(project: Project, start: int, stop: int) -> subprocess.CompletedProcess[str]:
    """Ann labels the judge's grades of cases ``start`` to ``stop``, agreeing with it."""
    answers = _agreeing_answers(project, start, stop)
    return _review(
        project, answers, "--grades", "--reviewer", "ann", "-o", "evals/labels/ann.jsonl"
    )


def _agreeing_answers(project: Project, start: int, stop: int) -> str:
    """p/f answers that agree with the judge, for cases ``start`` to ``stop`` in review order
    (the run's canonical order), each with an empty note, then q."""
    cases = project.cases()[start:stop]
    answers = ["p" if c["grades"][0]["passed"] else "f" for c in cases]
    return "".join(f"{a}\n\n" for a in answers) + "q\n"


def _report(project: Project) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((project.path / "report.json").read_text())
    return data


@pytest.mark.parametrize("threshold", [0.4, 0.9])
def test_a_judge_gates_only_once_calibrated(
    project: Project, server: FakeOpenAI, mode: list[str], threshold: float
) -> None:
    # Without a policy the judge gates as it always did: half the answers are good.
    _setup(project, server, threshold, policy="")
    before = project.run(*mode, "--eval-json", "report.json")
    expected = "pass" if threshold == 0.4 else "fail"
    assert _report(project)["summary"]["evals"][0]["verdict"] == expected
    assert before.ret == (0 if expected == "pass" else 1)

    # Ten labels, all agreeing with the judge: too few to let it decide.
    _setup(project, server, threshold)
    reviewed = _label_grades(project, 0, 10)
    assert reviewed.returncode == 0, reviewed.stderr
    assert "10 labels appended" in reviewed.stdout
    few = project.run(*mode, "--eval-json", "report.json")
    report = _report(project)
    (row,) = report["summary"]["evals"]
    assert row["verdict"] == "inconclusive"
    (cal,) = report["calibration"]
    assert (cal["labels"], cal["calibrated"], cal["needed"]) == (10, False, 20)
    assert report["verdict"] == "pass"  # inconclusive does not fail by default...
    assert few.ret == 0
    few.stdout.fnmatch_lines(
        ["*INCONCLUSIVE eval test_suite::test_judged (judge not calibrated)*needs 20 more labels*"]
    )
    # modelopt compare decides by the same policy, with the same labels (the settings')
    compared = project.modelopt("compare", "latest", "latest", "--json", "cli.json")
    cli = json.loads((project.path / "cli.json").read_text())
    assert compared.returncode == 0, compared.stderr
    assert cli["calibration"] == report["calibration"]
    assert cli["summary"]["evals"][0]["verdict"] == "inconclusive"
    assert "INCONCLUSIVE eval test_suite::test_judged (judge not calibrated)" in compared.stdout
    strict = project.run(*mode, "--eval-fail-inconclusive")  # ...unless told to
    assert strict.ret == 1

    # All sixty labelled, all agreeing: calibrated, and it gates as before.
    more = _label_grades(project, 10, 60)
    assert "50 labels appended" in more.stdout  # the ten already given are not asked again
    after = project.run(*mode, "--eval-json", "report.json")
    report = _report(project)
    (row,) = report["summary"]["evals"]
    (cal,) = report["calibration"]
    assert (cal["labels"], cal["calibrated"], cal["kappa"]) == (60, True, 1.0)
    assert row["verdict"] == expected
    assert after.ret == before.ret
    (corrected,) = cal["corrected"]
    assert corrected["rate"] == pytest.approx(0.5)  # a perfect judge needs no correction


def test_labels_bound_to_another_judge_do_not_count(
    project: Project, server: FakeOpenAI, mode: list[str]
) -> None:
    _setup(project, server, 0.4)
    project.run(*mode)
    _label_grades(project, 0, 60)
    # the judge's prompt changes: its identity with it, so its labels are stale
    project.test(SUITE.replace("THRESHOLD", "0.4").replace("good?", "good? Be strict."))
    project.run(*mode, "--eval-json", "report.json")
    report = _report(project)
    (cal,) = report["calibration"]
    assert (cal["labels"], cal["stale"], cal["calibrated"], cal["needed"]) == (0, 60, False, 30)
    assert "another version of this judge" in cal["why"]
    assert report["summary"]["evals"][0]["verdict"] == "inconclusive"


def _viewer_label(case: dict[str, Any], verdict: str, reviewer: str, at: str) -> str:
    """A label line exactly as the run viewer's "save labels" writes it (the agreed format)."""
    import hashlib

    grade = case["grades"][0]
    return json.dumps(
        {
            "schema_version": 1,
            "eval": case["eval"],
            "case_id": case["case_id"],
            "model": case["model"],
            "sample": case["sample"],
            "grader": grade["name"],
            "grader_identity": grade["identity"],
            "verdict": verdict,
            "note": "",
            "reviewer": reviewer,
            "labelled_at": at,
            "run_id": "viewer-run",
            "output_sha256": hashlib.sha256(case["output"].encode()).hexdigest(),
        }
    )


def test_viewer_labels_merge_into_a_calibration_report(
    project: Project, server: FakeOpenAI
) -> None:
    _setup(project, server, 0.4)
    project.run("-p", "no:xdist")
    cases = project.cases()
    agree = ["pass" if c["grades"][0]["passed"] else "fail" for c in cases]
    # two reviewers, each saving a download from the viewer: they overlap on c00-c09, and
    # disagree on c00
    first = [
        _viewer_label(c, v, "ann", "2026-12-07T17:00:00Z")
        for c, v in zip(cases[:40], agree[:40], strict=True)
    ]
    second = [
        _viewer_label(c, v, "bob", "2026-12-07T18:00:00Z")
        for c, v in zip(cases[:10] + cases[40:], agree[:10] + agree[40:], strict=True)
    ]
    second[0] = _viewer_label(
        cases[0], "fail" if agree[0] == "pass" else "pass", "bob", "2026-12-07T18:00:00Z"
    )
    project.file("downloads/ann.jsonl", "\n".join(first) + "\n")
    project.file("downloads/bob.jsonl", "\n".join(second) + "\n")

    refused = project.modelopt(
        "labels", "merge", "downloads/ann.jsonl", "downloads/bob.jsonl", "-o", "merged.jsonl"
    )
    assert refused.returncode == 1
    assert "conflict: test_suite::test_judged [gpt-4.1-mini] case c00" in refused.stderr
    assert not (project.path / "merged.jsonl").exists()

    merged = project.modelopt(
        "labels",
        "merge",
        "downloads/ann.jsonl",
        "downloads/bob.jsonl",
        "-o",
        "merged.jsonl",
        "--prefer",
        "latest",
    )
    assert merged.returncode == 0, merged.stderr
    assert "60 labels, 9 duplicates collapsed, 1 conflicts resolved" in merged.stdout
    lines = (project.path / "merged.jsonl").read_text().splitlines()
    assert len(lines) == 60

    check = project.modelopt("labels", "check", "merged.jsonl")
    assert check.returncode == 0, check.stdout + check.stderr
    # 59 agree, and bob's later fail of c00 (a pass of the judge's) disagrees
    assert "judge 'label_model' calibrated: 60 labels, accuracy 98%" in check.stdout
    assert "judge-corrected pass rate [gpt-4.1-mini]" in check.stdout
