"""What a launch states before it goes, and when it refuses: ``Finetuner.launch`` with the
openai backend against the local fake server, made to read OpenAI's dates on a chosen day
(its clock is injected; a plugin hands the backend in, as any plugin may)."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import pluggy
import pytest

from pytest_modelopt import hookspecs
from pytest_modelopt.config import load_settings
from pytest_modelopt.optimize.backends.export import ExportBackend
from pytest_modelopt.optimize.backends.openai_api import OpenAIBackend
from pytest_modelopt.optimize.flow import Finetuner, preflight
from pytest_modelopt.optimize.jobs import BackendError, Manifest
from pytest_modelopt.optimize.launch import LaunchRefused
from pytest_modelopt.records.models import CaseRecord, GradeRecord
from tests.conftest import TEST_KEY

if TYPE_CHECKING:
    from pathlib import Path

    from pytest_modelopt.config import Settings
    from tests.support.fake_openai import FakeOpenAI

STUDENT = "gpt-4.1-mini-2025-04-14"


def records(n: int = 30) -> list[CaseRecord]:
    return [
        CaseRecord(
            eval="test_t::test_category",
            nodeid=f"t.py::test_category[teacher-c{i:02d}]",
            model="teacher",
            case_id=f"c{i:02d}",
            status="passed",
            input=[{"role": "user", "content": f"ticket {i}: the app crashes"}],
            output="bug" if i % 2 else "billing",
            item={"id": f"c{i:02d}"},
            grades=[GradeRecord(name="check", score=1.0, passed=True)],
        )
        for i in range(n)
    ]


class Heard:
    """What the finetuner said and asked, in order."""

    def __init__(self, answer: str = "y") -> None:
        self.lines: list[str] = []
        self.questions: list[str] = []
        self.answer = answer

    def ask(self, question: str) -> str:
        self.questions.append(question)
        return self.answer


def finetuner(server: FakeOpenAI, tmp_path: Path, day: str, heard: Heard) -> Finetuner:
    today = dt.date.fromisoformat(day)

    class DatedOpenAI:
        @pluggy.HookimplMarker("pytest")
        def pytest_modelopt_finetune_backend(self, name: str, settings: Settings) -> object:
            if name != "openai":
                return None
            return OpenAIBackend(
                base_url=server.base_url, api_key=TEST_KEY, platform=True, clock=lambda: today
            )

    manager = pluggy.PluginManager("pytest")
    manager.add_hookspecs(hookspecs)
    manager.register(DatedOpenAI())
    settings = load_settings(tmp_path, {}, {"OPENAI_BASE_URL": server.base_url})
    return Finetuner(settings, manager.hook, say=heard.lines.append, ask=heard.ask)


def test_the_confirmation_question_carries_the_deadline(server: FakeOpenAI, tmp_path: Path) -> None:
    heard = Heard(answer="y")
    tuner = finetuner(server, tmp_path, "2026-12-07", heard)
    prepared = tuner.prepare(records(), base_model=STUDENT, source_run="run-1")
    job = tuner.launch(prepared, backend="openai", yes=False)
    (question,) = heard.questions
    first, second, last = question.splitlines()
    assert first == (
        "  note: OpenAI stops creating fine-tuning jobs on 2027-01-06 (in 30 days); jobs "
        "created before then run to the end"
    )
    assert second.startswith(f"  note: {STUDENT} is a gpt-4.1 model: OpenAI shuts that family")
    assert "on 2027-01-14 (in 38 days)" in second
    assert last == f"launch this openai job for {STUDENT}? [y/N] "
    assert heard.lines == [f"openai job {job.id}: validating_files"]  # asked: not said twice
    assert len(server.fine_tuning_jobs) == 1


def test_with_yes_the_deadline_is_said_before_the_launch(
    server: FakeOpenAI, tmp_path: Path
) -> None:
    heard = Heard()
    tuner = finetuner(server, tmp_path, "2027-01-05", heard)
    prepared = tuner.prepare(records(), base_model="my-open-model", source_run="run-1")
    job = tuner.launch(prepared, backend="openai", yes=True)
    assert heard.questions == []
    assert heard.lines == [
        "  note: OpenAI stops creating fine-tuning jobs on 2027-01-06 (in 1 day); jobs created "
        "before then run to the end",
        f"openai job {job.id}: validating_files",
    ]


def test_after_the_deadline_nobody_is_asked_and_nothing_is_sent(
    server: FakeOpenAI, tmp_path: Path
) -> None:
    heard = Heard()
    tuner = finetuner(server, tmp_path, "2027-01-07", heard)
    prepared = tuner.prepare(records(), base_model=STUDENT, source_run="run-1")
    with pytest.raises(BackendError, match="stopped creating fine-tuning jobs on 2027-01-06"):
        tuner.launch(prepared, backend="openai", yes=False)
    assert heard.questions == []
    assert server.requests == []
    assert (prepared.launch_dir / "train.jsonl").is_file()  # kept: export it instead


def test_answering_no_still_launches_nothing(server: FakeOpenAI, tmp_path: Path) -> None:
    heard = Heard(answer="n")
    tuner = finetuner(server, tmp_path, "2026-12-07", heard)
    prepared = tuner.prepare(records(), base_model=STUDENT, source_run="run-1")
    with pytest.raises(LaunchRefused, match="answered no"):
        tuner.launch(prepared, backend="openai", yes=False)
    assert server.fine_tuning_jobs == []


def test_a_backend_without_the_optional_methods_states_nothing(tmp_path: Path) -> None:
    """``notices`` and ``refusal`` are optional (a plugin's backend may have neither): the
    shipped export backend has neither, and its launch goes on with nothing said."""
    backend = ExportBackend()
    assert not hasattr(backend, "notices")
    assert not hasattr(backend, "refusal")
    assert preflight(backend, Manifest(name="x", method="sft", base_model="gpt-4.1")) == []
