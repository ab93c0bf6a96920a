"""Data is data: values from datasets are compared literally, never rendered as templates or
run as code; templates written in code render within bounds of time and size."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import pytest

from pytest_modelopt import graders
from pytest_modelopt.collect.datasets import load_cases
from pytest_modelopt.collect.prompts import PromptError, load_prompt
from pytest_modelopt.graders.base import GraderError, from_openai
from pytest_modelopt.templating import MAX_SECONDS
from pytest_modelopt.untrusted import DataText

if TYPE_CHECKING:
    from pathlib import Path

    from tests.conftest import Project
    from tests.support.fake_openai import FakeOpenAI


def _case(tmp_path: Path, **fields: str) -> dict[str, str]:
    import json

    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps({"id": "c1", **fields}) + "\n")
    (case,) = load_cases(path)
    return case


def test_dataset_strings_are_marked_as_data(tmp_path: Path) -> None:
    case = _case(tmp_path, expected="{{ sample.output_text }}")
    assert isinstance(case["expected"], DataText)
    assert case["expected"] == "{{ sample.output_text }}"


def test_a_template_in_an_expected_answer_is_compared_literally(tmp_path: Path) -> None:
    case = _case(tmp_path, expected="{{ sample.output_text }}")
    grader = graders.string_check(reference=case["expected"])
    assert not grader.grade("anything", case).passed  # it used to render to the output
    assert grader.grade("{{ sample.output_text }}", case).passed


def test_a_literal_placeholder_in_data_is_not_an_error(tmp_path: Path) -> None:
    case = _case(tmp_path, expected="Hello {{name}}")
    grade = graders.string_check(reference=case["expected"]).grade("Hello {{name}}", case)
    assert grade.passed  # it used to fail to render ("name" is undefined)


def test_templates_written_in_code_still_render(tmp_path: Path) -> None:
    case = _case(tmp_path, expected="Paris")
    assert graders.string_check(reference="{{ item.expected }}").grade("Paris", case).passed


def test_a_nested_loop_in_data_never_runs(tmp_path: Path) -> None:
    loop = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
    case = _case(tmp_path, expected=loop)
    started = time.monotonic()
    assert not graders.string_check(reference=case["expected"]).grade("x", case).passed
    assert time.monotonic() - started < 1.0


def test_a_nested_loop_written_in_code_is_stopped(tmp_path: Path) -> None:
    loop = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
    started = time.monotonic()
    with pytest.raises(GraderError, match=r"range\(\) loops ran past 100,000 steps"):
        graders.string_check(reference=loop).grade("x", {})
    assert time.monotonic() - started < MAX_SECONDS + 1


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{ 'a' * 10**8 }}", "power|sequence"),
        ("{% for i in range(90000) %}{{ 'abcdefghijklmnop' }}{% endfor %}", "longer than"),
    ],
)
def test_output_past_the_bound_is_refused(template: str, message: str) -> None:
    with pytest.raises(GraderError, match=message):
        graders.string_check(reference=template).grade("x", {})


def test_the_sandbox_keeps_templates_away_from_the_process(tmp_path: Path) -> None:
    """The attr-filter escape of jinja2 3.1.5 (CVE-2025-27516) reached os.environ."""
    payload = "{{ ('{0.__class__.__init__.__globals__[os].environ}' | attr('format'))(joiner) }}"
    with pytest.raises(GraderError):
        graders.string_check(reference=payload).grade("x", {})


def test_a_prompt_with_a_runaway_loop_is_a_prompt_error(tmp_path: Path) -> None:
    prompt = tmp_path / "p.j2"
    prompt.write_text(
        "{% for i in range(1000) %}{% for j in range(1000) %}{% endfor %}{% endfor %}"
    )
    with pytest.raises(PromptError, match=r"p.j2.*range\(\) loops ran past"):
        load_prompt(prompt).render({})


def test_a_prompt_substitutes_data_and_never_renders_it(tmp_path: Path) -> None:
    prompt = tmp_path / "p.j2"
    prompt.write_text("Q: {{ q }}")
    case = _case(tmp_path, q="{{ 7 * 6 }} {% for i in range(3) %}x{% endfor %}")
    rendered = load_prompt(prompt).render(case)
    assert rendered.messages[0]["content"] == "Q: {{ 7 * 6 }} {% for i in range(3) %}x{% endfor %}"


def test_data_is_never_run_as_python_grader_source(tmp_path: Path) -> None:
    case = _case(tmp_path, code="def grade(sample, item):\n    return 1.0\n")
    with pytest.raises(GraderError, match="data is never run as code"):
        graders.python(source=case["code"])


def test_a_literal_exports_as_a_template_that_renders_to_it(tmp_path: Path) -> None:
    case = _case(tmp_path, expected='say "{{ hi }}"\n{% raw %}')
    exported = graders.string_check(reference=case["expected"]).to_openai()
    assert exported["reference"] != case["expected"]
    again = from_openai(exported)
    assert again.grade('say "{{ hi }}"\n{% raw %}', {}).passed
    assert not again.grade("other", {}).passed


SUITE = """
import pytest
from pytest_modelopt import graders

@pytest.mark.eval(prompt="p.j2", dataset="d.jsonl", threshold=0.0)
def test_answer(completion, case, grade):
    grade(completion, graders.string_check(reference=case["expected"]))
"""


def test_a_row_whose_answer_is_a_template_fails_in_a_real_run(
    project: Project, server: FakeOpenAI, mode: list[str]
) -> None:
    project.dataset(
        "d.jsonl",
        [
            {"id": "tricky", "q": "q1", "expected": "{{ sample.output_text }}"},
            {"id": "plain", "q": "q2", "expected": "q2"},
        ],
    )
    project.file("p.j2", "{{ q }}")
    project.test(SUITE)
    project.run(*mode)
    statuses = {case["case_id"]: case["status"] for case in project.cases()}
    assert statuses == {"tricky": "failed", "plain": "passed"}
