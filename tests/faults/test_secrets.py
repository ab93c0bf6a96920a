"""Nothing secret leaves the process: no key, token, header value or URL credential in any
file written — records, summaries, reports, the cache — even when a model echoes it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from pytest_modelopt.secrets import redact, redact_url, register
from tests.conftest import TEST_KEY

if TYPE_CHECKING:
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


HEADERS_SUITE = """
import pytest

@pytest.mark.eval(prompt="p.j2", dataset="d.jsonl", threshold=0.0)
def test_answer(completion, case):
    assert completion.text

@pytest.mark.eval(models=["gpt-4.1-mini"])
def test_extra_headers(model):
    assert model.chat(
        [{"role": "user", "content": "hi"}], extra_headers={"X-Per-Call": "per-call-secret-9"}
    ).text
"""


def test_configured_headers_are_sent_and_never_written(
    project: Project, server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch, mode: list[str]
) -> None:
    monkeypatch.setenv("GATEWAY_KEY", "gw-secret-value-1234")
    project.file(
        "pyproject.toml",
        """
        [tool.modelopt]
        models = ["gpt-4.1-mini"]
        headers = { "X-Gateway-Key" = "${GATEWAY_KEY}", "X-Team" = "evals" }
        """,
    )
    project.dataset("d.jsonl", [{"id": f"c{i}", "q": f"q{i}"} for i in range(20)])
    project.file("p.j2", "{{ q }}")
    project.test(HEADERS_SUITE)
    # the helper process sends the declared requests: the headers reach it too
    result = project.run(*mode, "--eval-sender", "process", "--eval-json", "out/r.json")
    assert result.ret == 0
    chats = [r for r in server.requests if r.path == "/v1/chat/completions"]
    assert len(chats) == 21
    assert all(r.headers.get("x-gateway-key") == "gw-secret-value-1234" for r in chats)
    assert all(r.headers.get("x-team") == "evals" for r in chats)
    (per_call,) = [r for r in chats if "x-per-call" in r.headers]
    assert per_call.headers["x-per-call"] == "per-call-secret-9"
    assert "extra_headers" not in per_call.body  # a header, not a body field
    written = _everything_written(project.path / ".modelopt") + _everything_written(
        project.path / "out"
    )
    assert "gw-secret-value-1234" not in written
    assert "per-call-secret-9" not in written


def test_a_header_naming_an_unset_variable_stops_pytest(
    project: Project, server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GATEWAY_KEY", raising=False)
    project.file(
        "pyproject.toml",
        '[tool.modelopt]\nmodels = ["m"]\nheaders = { "X-Gateway-Key" = "${GATEWAY_KEY}" }\n',
    )
    project.test("def test_x():\n    pass\n")
    result = project.run()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "*[[]tool.modelopt[]]: headers.X-Gateway-Key names the environment variable "
            "GATEWAY_KEY, which is not set*"
        ]
    )


def test_the_helper_process_gets_no_secret_on_its_command_line() -> None:
    import asyncio

    from pytest_modelopt.model.sender import Sender

    sender = Sender(
        base_url="http://bob:hunter2-cmdline@127.0.0.1:9/v1",
        api_key="sk-cmdline-secret-000000",
        headers={"X-Key": "header-secret-000"},
    )
    sender.warm_up()
    try:
        (child,) = [c for c in sender._children if c is not None]
        cmdline = Path(f"/proc/{child.proc.pid}/cmdline").read_bytes()
        for secret in (b"hunter2-cmdline", b"sk-cmdline-secret", b"header-secret-000"):
            assert secret not in cmdline
    finally:
        asyncio.run(sender.close())


def test_an_echoed_key_never_reaches_the_response_cache(
    project: Project, server: FakeOpenAI, mode: list[str]
) -> None:
    server.reply(f"your key is {TEST_KEY}")
    project.dataset("d.jsonl", [{"id": "c1", "q": "q1"}])
    project.file("p.j2", "{{ q }}")
    project.test(SUITE)
    project.run(*mode)
    cached = _everything_written(project.path / ".modelopt" / "cache")
    assert "your key is ***" in cached
    assert TEST_KEY not in cached
