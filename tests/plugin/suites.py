"""Projects the plugin and command tests build again and again: an echo eval, a mixed
suite (grades, samples, strict asserts), and what two runs of it should agree on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

    from tests.conftest import Project
    from tests.support.fake_openai import FakeOpenAI


def echo_suite(project: Project, rows: int = 6, marker: str = "") -> None:
    project.dataset("d.jsonl", [{"id": f"c{i}", "q": f"q{i}"} for i in range(rows)])
    project.file("p.j2", "{{ q }}")
    project.test(
        f"""
        import pytest

        @pytest.mark.eval(prompt="p.j2", dataset="d.jsonl"{marker})
        def test_echo(completion, case):
            assert completion.text == case["q"]
        """
    )


def chat_posts(server: FakeOpenAI) -> int:
    return sum(r.path == "/v1/chat/completions" for r in server.requests)


MIXED = """
import pytest
from pytest_modelopt import graders

pytestmark = pytest.mark.eval(prompt="p.j2", dataset="d.jsonl")

@pytest.mark.eval(threshold=0.5, samples=2)
def test_echo(completion, case, grade):
    grade(completion, graders.string_check(reference=case["want"]))

def test_strict(completion, case):
    assert completion.text == case["want"]
"""


def mixed_suite(project: Project, server: FakeOpenAI) -> None:
    server.known_models = {"gpt-4.1-mini", "gpt-4.1"}
    rows = [{"id": f"c{i}", "q": f"q{i}", "want": f"q{i}" if i % 3 else "x"} for i in range(9)]
    project.dataset("d.jsonl", rows)
    project.file("p.j2", "{{ q }}")
    project.test(MIXED)


def comparable(project: Project) -> tuple[Any, list[dict[str, Any]]]:
    summary = project.summary()
    cases = [
        {k: v for k, v in c.items() if k not in ("finished_at", "duration_s")}
        for c in project.cases()
    ]
    return summary["evals"], cases


# -- distillation: 40 cases, the fake model echoes the question, `wrong` of them fail ----

DISTILL_SUITE = """
import pytest
from pytest_modelopt import graders

@pytest.mark.eval(prompt="p.j2", dataset="d.jsonl", threshold={threshold})
def test_echo(completion, case, grade):
    grade(completion, graders.string_check(reference=case["want"], operation="ilike"))
"""


DISTILL_CASES = 40


def distill_suite(
    project: Project, server: FakeOpenAI, threshold: float = 0.5, wrong: int = 8
) -> None:
    """40 cases; the fake model echoes the question, so `wrong` cases fail."""
    rows = [
        {"id": f"c{i:02d}", "q": f"q{i}", "want": f"q{i}" if i >= wrong else "other"}
        for i in range(DISTILL_CASES)
    ]
    project.dataset("d.jsonl", rows)
    project.file("p.j2", "{{ q }}")
    project.test(DISTILL_SUITE.format(threshold=threshold))


def launch_dirs(project: Project) -> list[Path]:
    return sorted((project.path / ".modelopt" / "finetune").glob("*/manifest.json"))


TWO_EVALS = """
import pytest
from pytest_modelopt import graders

pytestmark = pytest.mark.eval(dataset="d.jsonl")

@pytest.mark.eval(prompt="answer.j2")
def test_answer(completion, case, grade):
    grade(completion, graders.string_check(reference=case["q"]))

@pytest.mark.eval(prompt="steady.j2", threshold=0.5)
def test_steady(completion, case, grade):
    grade(completion, graders.string_check(reference=case["q"]))
"""


def two_evals_suite(project: Project, answer: str = "{{ q }}") -> None:
    """Forty cases, two evals; ``answer`` is the first eval's prompt (change it to regress)."""
    project.dataset("d.jsonl", [{"id": f"c{i:02d}", "q": f"q{i}"} for i in range(40)])
    project.file("answer.j2", answer)
    project.file("steady.j2", "{{ q }}")
    project.test(TWO_EVALS)
