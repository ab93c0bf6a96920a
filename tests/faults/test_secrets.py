"""Nothing secret leaves the process: no key, token, header value or URL credential in any
file written — records, summaries, reports, the cache — even when a model echoes it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pytest_modelopt.secrets import redact, redact_url, register
from tests.conftest import TEST_KEY

if TYPE_CHECKING:
    from pathlib import Path

    from tests.conftest import Project
    from tests.support.fake_openai import FakeOpenAI

SUITE = """
import pytest
from pytest_modelopt import graders

@pytest.mark.eval(prompt="p.j2", dataset="d.jsonl", threshold=0.0)
def test_answer(completion, case, grade):
    grade(completion, graders.string_check(reference=case["q"]))
"""


def _everything_written(root: Path) -> str:
    return "\n".join(path.read_text(errors="replace") for path in root.rglob("*") if path.is_file())


def test_url_credentials_and_key_shapes_are_redacted() -> None:
    assert redact_url("https://bob:hunter2@gw.example/v1") == "https://bob:***@gw.example/v1"
    assert redact_url("https://gw.example/v1?api-key=abc123&x=1") == (
        "https://gw.example/v1?api-key=***&x=1"
    )
    assert redact("Authorization: Bearer abc.def") == "Authorization: ***"
    assert redact("key sk-proj-0123456789abcdef here") == "key *** here"
    register("gateway-secret-value")
    assert redact("the gateway said gateway-secret-value") == "the gateway said ***"


def test_a_model_that_echoes_the_key_does_not_make_it_persist(
    project: Project, server: FakeOpenAI, mode: list[str]
) -> None:
    server.reply(f"sure, your key is {TEST_KEY} and {TEST_KEY[3:]}")
    project.dataset("d.jsonl", [{"id": "c1", "q": "q1"}])
    project.file("p.j2", "{{ q }}")
    project.test(SUITE)
    project.run(*mode, "--eval-json", "out/r.json", "--eval-md", "out/r.md")
    written = _everything_written(project.path / ".modelopt" / "runs")
    written += _everything_written(project.path / "out")
    assert "your key is ***" in written
    assert TEST_KEY not in written
    assert TEST_KEY[3:] not in written  # the key's body, without its sk- prefix, too


def test_credentials_in_the_base_url_are_never_written(
    project: Project, server: FakeOpenAI, mode: list[str]
) -> None:
    credentialed = server.base_url.replace("http://", "http://bob:hunter2-secret@")
    project.dataset("d.jsonl", [{"id": "c1", "q": "q1"}])
    project.file("p.j2", "{{ q }}")
    project.test(SUITE)
    # aiohttp refuses credentials in a URL: gateways that take them work over httpx
    result = project.run(
        *mode,
        "--eval-base-url",
        credentialed,
        "--eval-transport",
        "httpx",
        "--eval-json",
        "out/r.json",
    )
    assert result.ret == 0
    written = _everything_written(project.path / ".modelopt") + _everything_written(
        project.path / "out"
    )
    assert "hunter2-secret" not in written
    assert "bob:***@" in written  # the run still says which endpoint it used
    assert "hunter2-secret" not in result.stdout.str() + result.stderr.str()
