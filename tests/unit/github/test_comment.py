"""The sticky PR comment's body: safe, marked once, under GitHub's limit."""

from __future__ import annotations

import pytest

from pytest_modelopt.github.comment import (
    COMMENT_LIMIT,
    TRUNCATED_NOTE,
    comment_body,
    marker_line,
    with_viewer_link,
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


URL = "https://github.com/acme/bot/actions/runs/42/artifacts/7"


def test_the_viewer_link_goes_under_the_headline_once() -> None:
    report = "### ✅ 2 evals passed\n\n| eval | pass rate |\n"
    linked = with_viewer_link(report, URL)
    lines = linked.splitlines()
    assert lines[0] == "### ✅ 2 evals passed"
    assert lines[2].startswith(f"**[Open every case in the run viewer]({URL})**")
    assert "| eval | pass rate |" in linked
    assert with_viewer_link(linked, URL) == linked  # a second run of the step adds nothing
    assert with_viewer_link("no headline", URL).endswith("\n\nno headline")


@pytest.mark.parametrize(
    "url",
    [
        "http://github.com/a/b/actions/runs/1/artifacts/2",  # not https
        "https://github.com/a/b) [click](https://evil.example",  # ends the link
        "https://github.com/a/b\n### forged heading",
        "javascript:alert(1)",
        "",
    ],
)
def test_an_address_that_is_not_a_plain_https_path_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match="not an artifact address"):
        with_viewer_link("### ok\n", url)
