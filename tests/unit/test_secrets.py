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


def test_a_placeholder_key_too_short_to_be_a_secret_leaves_text_alone() -> None:
    # OPENAI_API_KEY=x against a local server: cutting "x" out of every word would
    # corrupt each recorded response ('"index"' -> '"inde***"')
    text = '{"index": 0, "text": "next"}'
    assert redact(text, ("x",)) == text
    assert redact(f"key {TEST_KEY}", ("x", TEST_KEY)) == "key ***"
