"""Model calls inside pytest: the llm fixture, API errors as errors, a flaky server,
no secret on disk, the request hook.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tests.conftest import TEST_KEY, Project

if TYPE_CHECKING:
    from tests.support.fake_openai import FakeOpenAI


def test_llm_fixture_chat_respond_and_async(
    project: Project, server: FakeOpenAI, mode: list[str]
) -> None:
    project.test(
        """
        import asyncio
        import pytest

        @pytest.mark.eval()
        def test_api(llm, model):
            assert llm is model
            assert llm.name == "gpt-4.1-mini"
            assert llm.chat([{"role": "user", "content": "hi"}]).text == "hi"
            assert llm.respond("there").text == "there"
            texts = asyncio.run(_both(llm))
            assert texts == ["a", "b"]

        async def _both(llm):
            a = await llm.achat([{"role": "user", "content": "a"}])
            b = await llm.arespond("b")
            return [a.text, b.text]

        def test_outside_an_eval(llm):
            assert llm.chat([{"role": "user", "content": "plain"}]).text == "plain"
        """
    )
    result = project.run(*mode)
    result.assert_outcomes(passed=2)
    (case,) = project.cases()
    assert case["calls"] == 4
    assert case["output"] == "b"
    assert case["input"] == "b"


def test_api_error_is_an_error_not_a_failure(
    project: Project, server: FakeOpenAI, mode: list[str]
) -> None:
    server.known_models = {"gpt-4.1-mini"}
    project.dataset("data/d.jsonl", [{"id": "a", "q": "x"}, {"id": "b", "q": "y"}])
    project.file("p.j2", "{{ q }}")
    project.test(
        """
        import pytest

        @pytest.mark.eval(prompt="p.j2", dataset="data/d.jsonl", threshold=0.5)
        def test_declared(completion):
            assert completion.text

        @pytest.mark.eval(threshold=0.5)
        def test_imperative(llm):
            llm.chat([{"role": "user", "content": "hello"}])
        """
    )
    result = project.run("--eval-models", "gpt-4.1-mini,no-such-model", *mode)
    outcomes = result.parseoutcomes()
    assert (outcomes["passed"], outcomes["errors"]) == (3, 3)
    assert "failed" not in outcomes
    result.stdout.fnmatch_lines(
        [
            "*test_suite::test_declared [[]a[]]: not_found: HTTP 404: The model `no-such-model`*",
            "errors (not counted in pass rates):",
            "  3 x not_found: HTTP 404: The model `no-such-model` does not exist*",
        ]
    )
    errors = [c for c in project.cases() if c["status"] == "error"]
    assert {(c["model"], c["error"]["kind"]) for c in errors} == {("no-such-model", "not_found")}
    rows = {(r["eval"], r["model"]): r for r in project.summary()["evals"]}
    assert rows[("test_suite::test_declared", "no-such-model")]["verdict"] == "error"
    assert rows[("test_suite::test_declared", "gpt-4.1-mini")]["pass_rate"] == 1.0


def test_a_flaky_server_loses_no_case(
    project: Project, server: FakeOpenAI, mode: list[str]
) -> None:
    server.fault("429", times=3, retry_after=0)
    server.fault("500", times=2, contains="r3")
    server.fault("malformed", times=1, contains="r5")
    rows = [{"id": f"r{i}", "q": f"r{i}"} for i in range(8)]
    project.dataset("data/d.jsonl", rows)
    project.file("p.j2", "{{ q }}")
    project.test(
        """
        import pytest

        @pytest.mark.eval(prompt="p.j2", dataset="data/d.jsonl")
        def test_echo(completion, case):
            assert completion.text == case["q"]
        """
    )
    result = project.run(*mode)
    result.assert_outcomes(passed=8)
    assert len(project.cases()) == 8


def test_no_secret_is_written_anywhere(
    project: Project, server: FakeOpenAI, mode: list[str]
) -> None:
    server.fault("401", times=None, model="locked-model")
    project.test(
        """
        import pytest

        @pytest.mark.eval()
        def test_call(llm):
            llm.chat([{"role": "user", "content": "hi"}])
        """
    )
    result = project.run(
        *mode, "--eval-models", "gpt-4.1-mini,locked-model", "--eval-json", "out.json"
    )
    assert TEST_KEY not in result.stdout.str()
    written = [p for p in project.path.rglob("*") if p.is_file()]
    assert any(p.name == "summary.json" for p in written)
    for path in written:
        assert TEST_KEY.encode() not in path.read_bytes(), path
    assert server.requests[0].headers["authorization"] == f"Bearer {TEST_KEY}"


def test_request_hook_adjusts_every_call(
    project: Project, server: FakeOpenAI, mode: list[str]
) -> None:
    project.file(
        "conftest.py",
        """
        def pytest_modelopt_request(request, context):
            request["metadata"] = {"eval": context.eval, "case": context.case_id}
            request["temperature"] = 0
        """,
    )
    project.dataset("d.jsonl", [{"id": "c1", "q": "hello"}])
    project.file("p.j2", "{{ q }}")
    project.test(
        """
        import pytest

        @pytest.mark.eval(prompt="p.j2", dataset="d.jsonl")
        def test_one(completion):
            assert completion.text == "hello"
        """
    )
    project.run(*mode).assert_outcomes(passed=1)
    (request,) = server.requests
    assert request.body["metadata"] == {"eval": "test_suite::test_one", "case": "c1"}
    assert request.body["temperature"] == 0
