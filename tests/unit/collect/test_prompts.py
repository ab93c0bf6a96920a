"""Prompt files: sandboxed templates, YAML prompts with parameters, clear errors."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from pytest_modelopt.collect.prompts import PromptError, load_prompt

if TYPE_CHECKING:
    from pathlib import Path


def test_text_prompt_is_one_user_message(tmp_path: Path) -> None:
    path = tmp_path / "p.j2"
    path.write_text("Ticket: {{ subject }}\n{{ body | upper }}\n")
    rendered = load_prompt(path).render({"subject": "hi", "body": "help"})
    assert rendered.messages == [{"role": "user", "content": "Ticket: hi\nHELP"}]
    assert rendered.request() == {"messages": rendered.messages}


def test_a_case_is_its_fields_and_also_case_and_openai_item(tmp_path: Path) -> None:
    """OpenAI's eval templates say {{ item.x }}: they render here as written."""
    path = tmp_path / "p.j2"
    path.write_text("{{ subject }} / {{ case.subject }} / {{ item.subject }} / {{ item['id'] }}")
    rendered = load_prompt(path).render({"subject": "hi", "id": "t1"})
    assert rendered.messages == [{"role": "user", "content": "hi / hi / hi / t1"}]


def test_a_case_field_named_item_keeps_its_value(tmp_path: Path) -> None:
    path = tmp_path / "p.j2"
    path.write_text("{{ item }}")
    assert load_prompt(path).render({"item": "a lamp"}).messages[0]["content"] == "a lamp"


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
