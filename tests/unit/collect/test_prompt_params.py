"""One prompt file serves both APIs: chat-shaped parameters become the Responses API's (and
back), what has no counterpart is refused by name, and the bodies are valid for OpenAI."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from pytest_modelopt.collect.prompts import PromptError, api_params, load_prompt
from tests.support import openapi

if TYPE_CHECKING:
    from pathlib import Path

PARAMETERS = {
    "type": "object",
    "properties": {"order_id": {"type": "string"}},
    "required": ["order_id"],
    "additionalProperties": False,
}
SCHEMA = {"type": "object", "properties": {"label": {"type": "string"}}, "required": ["label"]}

CHAT = {
    "tools": [
        {
            "type": "function",
            "function": {"name": "lookup_order", "description": "Find", "parameters": PARAMETERS},
        }
    ],
    "tool_choice": {"type": "function", "function": {"name": "lookup_order"}},
    "max_tokens": 64,
    "reasoning_effort": "low",
    "response_format": {
        "type": "json_schema",
        "json_schema": {"name": "label", "schema": SCHEMA, "strict": True},
    },
}
RESPONSES = {
    "tools": [
        {
            "type": "function",
            "name": "lookup_order",
            "description": "Find",
            "parameters": PARAMETERS,
            "strict": False,  # chat's default, kept: Responses would default to strict
        }
    ],
    "tool_choice": {"type": "function", "name": "lookup_order"},
    "max_output_tokens": 64,
    "reasoning": {"effort": "low"},
    "text": {"format": {"type": "json_schema", "name": "label", "schema": SCHEMA, "strict": True}},
}


def test_chat_shaped_params_become_the_responses_shape_and_back() -> None:
    assert api_params(CHAT, "responses", "p.yaml") == RESPONSES
    assert api_params(RESPONSES, "responses", "p.yaml") == RESPONSES  # idempotent
    back = api_params(RESPONSES, "chat", "p.yaml")
    tool = {"type": "function", "function": {**CHAT["tools"][0]["function"], "strict": False}}
    # chat's current name for the output budget (max_tokens is deprecated there)
    expected = {k: v for k, v in CHAT.items() if k != "max_tokens"}
    assert back == {**expected, "tools": [tool], "max_completion_tokens": 64}
    assert api_params(back, "chat", "p.yaml") == back


def test_translated_bodies_are_valid_for_openai(tmp_path: Path) -> None:
    if not openapi.spec_available():
        pytest.skip("OpenAI's OpenAPI spec is not beside the project (../shared/data)")
    for api, path in (("responses", "/responses"), ("chat", "/chat/completions")):
        params = api_params(CHAT, api, "p.yaml")
        messages = [{"role": "user", "content": "where is A1"}]
        key = "input" if api == "responses" else "messages"
        openapi.validate_request(path, {"model": "gpt-4.1-mini", key: messages, **params})


@pytest.mark.parametrize(
    ("api", "params", "message"),
    [
        (
            "responses",
            {"seed": 1, "n": 2},
            "p.yaml: 'n', 'seed' belong(s) to Chat Completions, and the Responses API has no "
            "such field: remove it, or set api: chat",
        ),
        (
            "chat",
            {"instructions": "Be brief."},
            "p.yaml: 'instructions' belong(s) to the Responses API, and Chat Completions has "
            "no such field: remove it, or set api: responses",
        ),
        (
            "chat",
            {"tools": [{"type": "web_search"}]},
            "p.yaml#tools[0]: a 'web_search' tool is one of the Responses API's built-in tools; "
            "Chat Completions takes function tools only: set api: responses",
        ),
        (
            "chat",
            {"reasoning": {"effort": "low", "summary": "auto"}},
            "p.yaml: 'reasoning.summary' belongs to the Responses API, and Chat Completions has "
            "no such field: remove it, or set api: responses",
        ),
        (
            "responses",
            {"max_tokens": 10, "max_output_tokens": 20},
            "p.yaml: 'max_tokens' and 'max_output_tokens' disagree (10 vs 20): keep one",
        ),
        ("responses", {"tools": {"a": 1}}, "p.yaml#tools: 'tools' must be a list of tools"),
        ("chat", {"stream": True}, "pytest-modelopt reads whole responses"),
    ],
)
def test_what_cannot_be_translated_is_refused_by_name(
    api: str, params: dict[str, Any], message: str
) -> None:
    with pytest.raises(PromptError) as info:
        api_params(params, api, "p.yaml")
    assert message in str(info.value)


def test_a_prompt_file_is_translated_at_load_and_errors_name_it(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(
        "api: responses\nmax_tokens: 32\nmessages:\n  - {role: user, content: '{{ q }}'}\n"
    )
    rendered = load_prompt(path, display="prompts/p.yaml").render({"q": "hi"})
    assert rendered.request() == {
        "input": [{"role": "user", "content": "hi"}],
        "max_output_tokens": 32,
    }
    path.write_text("api: chat\ntruncation: auto\nmessages:\n  - {role: user, content: hi}\n")
    with pytest.raises(PromptError, match=r"^prompts/p.yaml: 'truncation' belong\(s\) to"):
        load_prompt(path, display="prompts/p.yaml")


def test_an_evals_params_merge_over_the_files(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(
        "api: responses\nreasoning: {effort: high, summary: auto}\ntemperature: 0\n"
        "messages:\n  - {role: user, content: hi}\n"
    )
    prompt = load_prompt(path)
    # a sweep's reasoning.effort keeps the file's reasoning.summary; chat names translate
    merged = prompt.request_params({"reasoning": {"effort": "low"}, "max_tokens": 8}, "marker")
    assert merged == {
        "reasoning": {"effort": "low", "summary": "auto"},
        "temperature": 0,
        "max_output_tokens": 8,
    }
    assert prompt.render({}, {"temperature": 1}).params["temperature"] == 1
    assert prompt.params["temperature"] == 0  # the loaded prompt is not changed
    with pytest.raises(PromptError, match=r"^eval e params: 'stop' belong"):
        prompt.render({}, {"stop": ["\n"]}, "eval e params")


def test_a_message_may_be_text_and_image_parts_in_either_apis_shape(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    messages = (
        "messages:\n"
        "  - role: user\n"
        "    content:\n"
        "      - {type: text, text: 'What is in {{ name }}?'}\n"
        "      - {type: image_url, image_url: {url: '{{ url }}', detail: low}}\n"
        "      - {type: input_image, image_url: 'https://x.test/b.png'}\n"
    )
    case = {"name": "the photo", "url": "https://x.test/a.png"}
    sent: dict[str, Any] = {}
    for api, endpoint in (("chat", "/chat/completions"), ("responses", "/responses")):
        path.write_text(f"api: {api}\n{messages}")
        rendered = load_prompt(path).render(case)
        sent[api] = rendered.messages[0]["content"]
        key = "input" if api == "responses" else "messages"
        if openapi.spec_available():
            body = {"model": "gpt-4.1-mini", key: rendered.messages}
            openapi.validate_request(endpoint, body)
    assert sent["chat"] == [
        {"type": "text", "text": "What is in the photo?"},
        {"type": "image_url", "image_url": {"url": "https://x.test/a.png", "detail": "low"}},
        {"type": "image_url", "image_url": {"url": "https://x.test/b.png"}},
    ]
    assert sent["responses"] == [
        {"type": "input_text", "text": "What is in the photo?"},
        {"type": "input_image", "image_url": "https://x.test/a.png", "detail": "low"},
        {"type": "input_image", "image_url": "https://x.test/b.png", "detail": "auto"},
    ]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[{type: audio, data: x}]", "p.yaml#messages[0].content[0]: a content part is"),
        ("7", "p.yaml#messages[0]: content must be a string template or a list of content"),
    ],
)
def test_a_bad_content_part_is_refused_by_place(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(f"messages:\n  - role: user\n    content: {content}\n")
    with pytest.raises(PromptError) as info:
        load_prompt(path, display="p.yaml")
    assert str(info.value).startswith(message)
    path.write_text("messages:\n  - role: assistant\n    content: [{type: text, text: a}]\n")
    with pytest.raises(PromptError, match="an assistant message's content must be a string"):
        load_prompt(path, display="p.yaml")
