"""The sticky PR comment's body: safe, marked once, under GitHub's limit."""

from __future__ import annotations

import pytest

from pytest_modelopt.github.comment import (
    COMMENT_LIMIT,
    TRUNCATED_NOTE,
    comment_body,
    marker_line,
)

MARKER = "<!-- pytest-modelopt:evals -->"


def test_comment_body_is_safe_and_fits() -> None:
    body = comment_body(
        f"hi @octocat and @acme/team, {MARKER} --> <!--pytest-modelopt:evals -->", "evals"
    )
    assert body.count(MARKER) == 1
    assert body.startswith(MARKER)
    assert "@octocat" not in body
    assert "@\u200doctocat" in body
    assert "@\u200dacme/team" in body
    assert "<!--pytest-modelopt" not in body

    huge = comment_body("| a | b |\n" * 20_000 + "🙂" * 10_000)
    assert len(huge.encode("utf-16-le")) // 2 <= COMMENT_LIMIT
    assert huge.startswith(MARKER)
    assert huge.endswith(TRUNCATED_NOTE)

    with pytest.raises(ValueError, match="marker key"):
        marker_line("x -->")
