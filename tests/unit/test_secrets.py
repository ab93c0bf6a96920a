"""Secrets: keys and bearer tokens are redacted from any text."""

from __future__ import annotations

from pytest_modelopt.secrets import redact
from tests.conftest import TEST_KEY


def test_redact_removes_keys_and_bearer_tokens() -> None:
    text = f"bad key {TEST_KEY} and Authorization: Bearer abc.def and sk-proj-AbCdEf123456"
    cleaned = redact(text, (TEST_KEY,))
    assert TEST_KEY not in cleaned
    assert "abc.def" not in cleaned
    assert "sk-proj-AbCdEf123456" not in cleaned
