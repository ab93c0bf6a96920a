"""Backoff between attempts: Retry-After first, else growing with jitter."""

from __future__ import annotations

from pytest_modelopt.model.failures import backoff


def test_backoff_honours_retry_after_and_grows() -> None:
    assert backoff(0, 2.5) == 2.5
    assert backoff(5, 1000) == 120
    assert 0.125 <= backoff(0, None) <= 0.25
    assert 2.0 <= backoff(4, None) <= 4.0
