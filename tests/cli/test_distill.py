"""The optimize loop through pytest and the `modelopt` command, against the local server:
a run's passing answers become a training set, a job is launched and followed, and the
fine-tuned model is then scored only on cases it never trained on.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest

from pytest_modelopt.optimize.training_data import in_holdout
from tests.plugin.suites import DISTILL_CASES, distill_suite, launch_dirs

if TYPE_CHECKING:
    from tests.conftest import Project
    from tests.support.fake_openai import FakeOpenAI


def test_distill_dry_run_writes_a_validated_set_and_launches_nothing(
    project: Project, server: FakeOpenAI, mode: list[str]
) -> None:
    distill_suite(project, server)
    assert project.run(*mode).parseoutcomes() == {"passed": 32, "tolerated": 8}
    done = project.modelopt("distill", "latest", "--student", "gpt-4.1-nano", "--dry-run")
    assert done.returncode == 0, done.stderr
    assert "dry run: nothing launched" in done.stdout
    assert "estimated cost" in done.stdout
    (manifest_path,) = launch_dirs(project)
    manifest = json.loads(manifest_path.read_text())
    held = {f"c{i:02d}" for i in range(DISTILL_CASES) if in_holdout(f"c{i:02d}", 0.2)}
    passing = {f"c{i:02d}" for i in range(8, DISTILL_CASES)}
    assert set(manifest["trained_cases"]) == passing - held
    assert set(manifest["holdout_cases"]) == held  # every held-out case, passing or not
    lines = (manifest_path.parent / "train.jsonl").read_text().splitlines()
    assert len(lines) == manifest["examples"] == len(passing - held)
    first = json.loads(lines[0])
    assert first["messages"][-1]["role"] == "assistant"
    assert not [r for r in server.requests if "fine_tuning" in r.path or r.path.endswith("/files")]


def test_a_ci_run_never_launches_a_paid_job_without_yes(
    project: Project, server: FakeOpenAI, mode: list[str]
) -> None:
    distill_suite(project, server)
    project.run(*mode)
    refused = project.modelopt("distill", "--student", "gpt-4.1-nano")
    assert refused.returncode == 1
    assert "pass --yes, or set auto_launch = true" in refused.stderr
    assert server.fine_tuning_jobs == []


def test_distill_launches_follows_and_the_student_is_scored_on_holdout_only(
    project: Project, server: FakeOpenAI, mode: list[str]
) -> None:
    distill_suite(project, server)
    project.file(  # --follow polls the fake's job (a state a poll) without the 10 s wait
        "pyproject.toml",
        """
        [tool.modelopt]
        models = ["gpt-4.1-mini"]

        [tool.modelopt.finetune]
        poll_interval = 0
        """,
    )
    assert project.run("-p", "no:xdist").parseoutcomes() == {"passed": 32, "tolerated": 8}
    launched = project.modelopt("distill", "--student", "gpt-4.1-nano", "--yes", "--follow")
    assert launched.returncode == 0, launched.stderr
    assert "openai job ftjob" in launched.stdout
    assert "succeeded" in launched.stdout
    (manifest_path,) = launch_dirs(project)
    job = json.loads((manifest_path.parent / "job.json").read_text())
    student = job["fine_tuned_model"]
    assert student.startswith("ft:gpt-4.1-nano")
    manifest = json.loads(manifest_path.read_text())
    again = project.modelopt("distill", "--student", "gpt-4.1-nano", "--yes")
    assert again.returncode == 0, again.stderr
    assert len(server.fine_tuning_jobs) == 1  # the same data finds the same job

    server.known_models = None
    result = project.run("--eval-models", student, *mode)
    trained = len(manifest["trained_cases"])
    outcomes = result.parseoutcomes()
    if "-n" not in mode:  # xdist deselects on the workers: the controller does not count them
        assert outcomes["deselected"] == trained
    assert outcomes["passed"] + outcomes["tolerated"] == DISTILL_CASES - trained
    result.stdout.fnmatch_lines(
        [f"*{student} trained on {trained} cases*scored only on the others*"]
    )
    scored = {c["case_id"] for c in project.cases()}
    assert not scored & set(manifest["trained_cases"])
    note = f"{student} trained on {trained} cases"
    run_info = json.loads((project.run_dir() / "run.json").read_text())
    assert any(note in n for n in run_info["notes"])  # the report says so, too
    assert project.modelopt("report", "latest", "--md", "student.md").returncode == 0
    assert note in (project.path / "student.md").read_text().replace("\\", "")

    listed = project.modelopt("jobs", "list")
    assert student in listed.stdout
    assert "succeeded" in listed.stdout
    followed = project.modelopt("jobs", "follow")  # no JOB: the newest launch's job
    assert followed.returncode == 0, followed.stderr
    assert f"model: {student}" in followed.stdout


def test_jobs_follow_with_no_job_launched_says_how_to_launch_one(project: Project) -> None:
    followed = project.modelopt("jobs", "follow")
    assert followed.returncode == 1
    assert "no launched job under" in followed.stderr
    assert "modelopt distill --student MODEL --yes" in followed.stderr
    cancelled = project.modelopt("jobs", "cancel")
    assert cancelled.returncode == 1
    assert "cancel which job?" in cancelled.stderr


def test_too_few_examples_is_one_clear_error_before_any_upload(
    project: Project, server: FakeOpenAI, mode: list[str]
) -> None:
    distill_suite(project, server, wrong=33)  # only 7 cases pass
    project.run(*mode)
    done = project.modelopt("distill", "--student", "gpt-4.1-nano", "--yes")
    assert done.returncode == 1
    assert "fine-tuning needs at least 10" in done.stdout
    assert "the training set has errors" in done.stderr
    assert server.fine_tuning_jobs == []


def test_no_fine_tuning_access_names_the_other_backends(
    project: Project, server: FakeOpenAI, mode: list[str]
) -> None:
    distill_suite(project, server)
    project.run(*mode)
    server.fine_tuning_access = False
    done = project.modelopt("distill", "--student", "gpt-4.1-nano", "--yes")
    assert done.returncode == 1
    assert "--backend local" in done.stderr
    assert "--backend export" in done.stderr


def test_export_then_register_a_model_trained_elsewhere(
    project: Project, server: FakeOpenAI, mode: list[str]
) -> None:
    distill_suite(project, server)
    project.run(*mode)
    done = project.modelopt("finetune", "--base-model", "my-model", "--backend", "export")
    assert done.returncode == 0, done.stderr
    (manifest_path,) = launch_dirs(project)
    export = manifest_path.parent / "export"
    assert "/export: together/, trl/, axolotl/ (see its README.md)" in done.stdout
    for name in ("together/train.jsonl", "trl/train.jsonl", "axolotl/config.yaml", "README.md"):
        assert (export / name).is_file()
    registered = project.modelopt("jobs", "register", str(manifest_path.parent), "my-model-ft")
    assert registered.returncode == 0, registered.stderr
    trained = len(json.loads(manifest_path.read_text())["trained_cases"])
    result = project.run(*mode, "--eval-models", "my-model-ft")
    outcomes = result.parseoutcomes()
    if "-n" not in mode:  # xdist deselects on the workers: the controller does not count them
        assert outcomes["deselected"] == trained
    assert outcomes["passed"] + outcomes["tolerated"] == DISTILL_CASES - trained


def test_rft_set_carries_the_evals_grader(
    project: Project, server: FakeOpenAI, mode: list[str]
) -> None:
    distill_suite(project, server)
    project.run(*mode)
    done = project.modelopt("finetune", "--base-model", "o4-mini", "--method", "rft", "--dry-run")
    assert done.returncode == 0, done.stdout + done.stderr
    (manifest_path,) = launch_dirs(project)
    grader = json.loads((manifest_path.parent / "grader.json").read_text())
    assert grader["type"] == "string_check"
    assert grader["reference"] == "{{ item.want }}"
    first = json.loads((manifest_path.parent / "train.jsonl").read_text().splitlines()[0])
    assert first["messages"][-1]["role"] == "user"
    assert "want" in first


@pytest.mark.parametrize("method", ["dpo"])
def test_dpo_from_two_models(
    project: Project, server: FakeOpenAI, method: str, mode: list[str]
) -> None:
    distill_suite(project, server, wrong=DISTILL_CASES)  # every case wants "other"...
    server.reply("other", model="gpt-4.1")  # ...which only the strong model says
    server.known_models = None
    project.run(*mode, "--eval-models", "gpt-4.1,gpt-4.1-mini")
    done = project.modelopt(
        "finetune",
        "--base-model",
        "gpt-4.1-mini",
        "--method",
        method,
        "--teacher",
        "gpt-4.1",
        "--dry-run",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (manifest_path,) = launch_dirs(project)
    row = json.loads((manifest_path.parent / "train.jsonl").read_text().splitlines()[0])
    assert row["preferred_output"][0]["content"] == "other"
    assert row["non_preferred_output"][0]["content"].startswith("q")


def test_store_true_tags_stored_completions_and_distill_reads_them(
    project: Project, server: FakeOpenAI, mode: list[str]
) -> None:
    distill_suite(project, server)
    project.config(models=["gpt-4.1-mini"], store=True)
    project.run(*mode, "--eval-record", "off")
    stored = server.stored_completions
    assert len(stored) == DISTILL_CASES
    verdicts = sorted(c["metadata"]["modelopt_verdict"] for c in stored)
    assert verdicts == ["failed"] * 8 + ["passed"] * 32
    assert {c["metadata"]["modelopt_eval"] for c in stored} == {"test_suite::test_echo"}
    done = project.modelopt("distill", "--source", "stored", "--student", "s", "--dry-run")
    assert done.returncode == 0, done.stdout + done.stderr
    (manifest_path,) = launch_dirs(project)
    manifest = json.loads(manifest_path.read_text())
    held = {f"c{i:02d}" for i in range(DISTILL_CASES) if in_holdout(f"c{i:02d}", 0.2)}
    assert set(manifest["trained_cases"]) == {f"c{i:02d}" for i in range(8, DISTILL_CASES)} - held
    assert manifest["source_run"] == "stored-completions"


def test_a_torn_record_line_is_skipped_not_a_crash(
    project: Project, server: FakeOpenAI, mode: list[str]
) -> None:
    distill_suite(project, server)
    project.run(*mode)
    if "-n" in mode:  # one file per worker: tear one of them
        files = sorted((project.run_dir() / "cases").glob("*.jsonl"))
        assert [f.name for f in files] == ["gw0.jsonl", "gw1.jsonl"]
        cases_file = files[0]
    else:
        (cases_file,) = (project.run_dir() / "cases").glob("*.jsonl")
    with cases_file.open("a") as handle:
        handle.write('{"eval": "test_suite::test_echo", "nodeid": "torn')  # a crash mid-line
    done = project.modelopt("distill", "--student", "s", "--dry-run")
    assert done.returncode == 0, done.stderr
    (manifest_path,) = launch_dirs(project)
    assert json.loads(manifest_path.read_text())["examples"] > 10


def test_finetune_answers_from_trains_on_the_labels_of_failing_cases_too(
    project: Project, server: FakeOpenAI, mode: list[str]
) -> None:
    distill_suite(project, server)
    project.run(*mode)
    done = project.modelopt(
        "finetune", "--base-model", "gpt-4.1-nano", "--answers-from", "want", "--dry-run"
    )
    assert done.returncode == 0, done.stderr
    assert "note: answers: the dataset field 'want' of each case" in done.stdout
    (manifest_path,) = launch_dirs(project)
    held = {f"c{i:02d}" for i in range(DISTILL_CASES) if in_holdout(f"c{i:02d}", 0.2)}
    everyone = {f"c{i:02d}" for i in range(DISTILL_CASES)}
    assert set(json.loads(manifest_path.read_text())["trained_cases"]) == everyone - held
    answers = [
        json.loads(line)["messages"][-1]["content"]
        for line in (manifest_path.parent / "train.jsonl").read_text().splitlines()
    ]
    assert answers.count("other") == len({f"c{i:02d}" for i in range(8)} - held)  # failing: label
    refused = project.modelopt(
        "finetune", "--base-model", "gpt-4.1-nano", "--answers-from", "want", "--method", "dpo"
    )
    assert refused.returncode == 2
    assert "use --method sft" in refused.stderr


def test_a_dry_run_for_openais_platform_says_the_launch_would_be_refused(
    project: Project, server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """gpt-4.1-nano was shut down on 2026-10-23 (optimize/backends/openai_dates.py): on
    OpenAI's own API a dry run names the refusal and the two ways on. Nothing is sent: any
    request would meet a dead proxy on 127.0.0.1, never the internet."""
    distill_suite(project, server)
    project.run()
    monkeypatch.setenv("OPENAI_BASE_URL", "https://api.openai.com/v1")
    for name in ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "https_proxy", "http_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    done = project.modelopt(
        "distill", "--student", "gpt-4.1-nano-2025-04-14", "--backend", "openai", "--dry-run"
    )
    assert done.returncode == 0, done.stderr
    (refusal,) = [line for line in done.stdout.splitlines() if "would be refused" in line]
    assert refusal.startswith("  note: a launch on openai would be refused: ")
    assert "2026-10-23" in refusal, refusal
    assert "--backend local" in refusal, refusal
    assert "dry run: nothing launched" in done.stdout
    assert not [r for r in server.requests if "fine_tuning" in r.path or r.path.endswith("/files")]
