"""Prompt files: sandboxed templates, YAML prompts with parameters, clear errors per case."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from pytest_modelopt.collect.prompts import PromptError, load_prompt

if TYPE_CHECKING:
    from pathlib import Path

    from tests.conftest import Project
    from tests.support.fake_openai import FakeOpenAI


def test_text_prompt_is_one_user_message(tmp_path: Path) -> None:
    path = tmp_path / "p.j2"
    path.write_text("Ticket: {{ subject }}\n{{ body | upper }}\n")
    rendered = load_prompt(path).render({"subject": "hi", "body": "help"})
    assert rendered.messages == [{"role": "user", "content": "Ticket: hi\nHELP"}]
    assert rendered.request() == {"messages": rendered.messages}


def test_yaml_prompt_with_params_and_responses_api(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(
        "api: responses\n"
        "temperature: 0\n"
        "messages:\n"
        "  - {role: system, content: 'Classify.'}\n"
        "  - {role: user, content: '{{ text }}'}\n"
    )
    rendered = load_prompt(path).render({"text": "refund"})
    assert rendered.api == "responses"
    assert rendered.request() == {
        "input": [
            {"role": "system", "content": "Classify."},
            {"role": "user", "content": "refund"},
        ],
        "temperature": 0,
    }


def test_undefined_variable_names_itself_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "p.j2"
    path.write_text("Hello\n{{ subjct }}\n")
    with pytest.raises(PromptError) as info:
        load_prompt(path, display="prompts/p.j2").render({"subject": "x", "id": "t1"})
    assert str(info.value) == (
        "prompts/p.j2:2: 'subjct' is undefined; the case's fields are: id, subject"
    )


def test_sandbox_blocks_attribute_escapes(tmp_path: Path) -> None:
    path = tmp_path / "p.j2"
    path.write_text("{{ text.__class__.__mro__ }}")
    with pytest.raises(PromptError, match="unsafe"):
        load_prompt(path).render({"text": "x"})


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("p.yaml", "messages: [\n", "p.yaml:2: invalid YAML"),
        ("p.yaml", "- a\n", "expected a mapping with a 'messages' list"),
        ("p.yaml", "messages: []\n", "'messages' must be a non-empty list"),
        ("p.yaml", "messages:\n  - {role: robot, content: x}\n", "role must be one of"),
        ("p.yaml", "model: gpt-4.1\nmessages:\n  - {role: user, content: x}\n", "'model' does"),
        ("p.yaml", "api: rest\nmessages:\n  - {role: user, content: x}\n", "api must be one of"),
        ("p.j2", "{% if %}", "p.j2:1: template syntax error"),
        ("p.toml", "x", "unknown prompt file type '.toml'"),
    ],
)
def test_bad_prompt_files(tmp_path: Path, name: str, text: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(PromptError) as info:
        load_prompt(path, display=name).render({})
    assert message in str(info.value)


def test_prompt_params_reach_the_server(project: Project, server: FakeOpenAI) -> None:
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
    project.run().assert_outcomes(passed=1)
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


def test_bad_yaml_prompt_errors_its_cases_not_the_session(project: Project) -> None:
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
    result = project.run()
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*prompt: p.yaml:2: invalid YAML*"])


def test_bad_dataset_row_fails_collection_naming_file_line_and_field(project: Project) -> None:
    project.file(
        "data/d.jsonl",
        '{"id": "a", "label": "billing"}\n{"id": "b", "label": "biling"}\n{"id": "c"\n',
    )
    project.file(
        "schemas.py",
        """
        from typing import Literal
        from pydantic import BaseModel

        class Ticket(BaseModel):
            id: str
            label: Literal["billing", "bug"]
        """,
    )
    project.test(
        """
        import pytest
        from schemas import Ticket

        @pytest.mark.eval(dataset="data/d.jsonl", schema=Ticket)
        def test_p(case):
            pass
        """
    )
    result = project.run()
    assert result.ret == 2
    result.stdout.fnmatch_lines(
        [
            "test_suite.py::test_p: data/d.jsonl:2: field 'label': Input should be 'billing' "
            "or 'bug' (got 'biling')",
            "data/d.jsonl:3: invalid JSON*",
            "fix the rows above (or remove them) and run again",
        ]
    )
    assert "Traceback" not in result.stdout.str()


def test_case_fixture_gives_validated_rows(project: Project) -> None:
    project.file("data/d.csv", "id,n\nx,1\ny,2\n")
    project.file(
        "schemas.py",
        """
        from pydantic import BaseModel

        class Row(BaseModel):
            id: str
            n: int
        """,
    )
    project.test(
        """
        import pytest
        from schemas import Row

        @pytest.mark.eval(dataset="data/d.csv", schema=Row)
        def test_p(case):
            assert isinstance(case["n"], int)
            assert case.model.n == case["n"]
        """
    )
    project.run().assert_outcomes(passed=2)


def test_dataset_found_relative_to_rootdir_too(project: Project) -> None:
    project.dataset("data/d.jsonl", [{"id": "a", "q": "x"}])
    project.file(
        "tests/evals/test_nested.py",
        """
        import pytest

        @pytest.mark.eval(dataset="data/d.jsonl")
        def test_p(case):
            assert case["q"] == "x"
        """,
    )
    project.run().assert_outcomes(passed=1)
