"""Prompt files inside pytest: parameters reach the server, errors stay on their cases."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.conftest import Project
    from tests.support.fake_openai import FakeOpenAI


def test_prompt_params_reach_the_server(
    project: Project, server: FakeOpenAI, mode: list[str]
) -> None:
    project.dataset("d.jsonl", [{"id": "c1", "text": "refund please"}])
    project.file(
        "prompts/p.yaml",
        """
        temperature: 0
        max_tokens: 5
        response_format: {type: json_object}
        messages:
          - role: system
            content: Answer in JSON.
          - role: user
            content: "Ticket: {{ text }}"
        """,
    )
    project.test(
        """
        import pytest

        @pytest.mark.eval(prompt="prompts/p.yaml", dataset="d.jsonl")
        def test_p(completion):
            assert completion.text == "Ticket: refund please"
        """
    )
    project.run(*mode).assert_outcomes(passed=1)
    (request,) = server.requests
    assert request.body == {
        "model": "gpt-4.1-mini",
        "messages": [
            {"role": "system", "content": "Answer in JSON."},
            {"role": "user", "content": "Ticket: refund please"},
        ],
        "temperature": 0,
        "max_tokens": 5,
        "response_format": {"type": "json_object"},
    }
    (case,) = project.cases()
    assert case["input"] == request.body["messages"]


def test_undefined_variable_is_an_error_on_that_case_and_the_rest_runs(
    project: Project, server: FakeOpenAI, mode: list[str]
) -> None:
    project.dataset(
        "d.jsonl", [{"id": "ok", "text": "a", "extra": "x"}, {"id": "bad", "text": "b"}]
    )
    project.file("p.j2", "{{ text }} {{ extra }}")
    project.test(
        """
        import pytest

        @pytest.mark.eval(prompt="p.j2", dataset="d.jsonl")
        def test_p(completion):
            assert completion.text
        """
    )
    result = project.run(*mode)
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        ["*test_suite::test_p [[]bad[]]: prompt: p.j2:1: 'extra' is undefined; the case's fields*"]
    )
    assert len(server.requests) == 1


def test_bad_yaml_prompt_errors_its_cases_not_the_session(
    project: Project, mode: list[str]
) -> None:
    project.dataset("d.jsonl", [{"id": "c1", "text": "a"}])
    project.file("p.yaml", "messages: [\n")
    project.test(
        """
        import pytest

        @pytest.mark.eval(prompt="p.yaml", dataset="d.jsonl")
        def test_p(completion):
            pass

        def test_other():
            pass
        """
    )
    result = project.run(*mode)
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*prompt: p.yaml:2: invalid YAML*"])
