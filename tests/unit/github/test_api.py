"""The GitHub REST client: links, redirects without the token, Retry-After."""

from __future__ import annotations

import io
import urllib.error
import urllib.request
from typing import TYPE_CHECKING

import pytest

from pytest_modelopt.github.api import GitHubClient, GitHubError, parse_link
from pytest_modelopt.github.artifact import DEFAULT_ARTIFACT
from tests.support.fake_github import FakeGitHub

if TYPE_CHECKING:
    from collections.abc import Iterator


REPO = "acme/evals"


TOKEN = "ghs_" + "A1b2C3d4E5f6" * 3  # shaped like a real installation token


READONLY = "readonly-fork-token-7d1e9a"  # shaped like nothing: redacted because it is the token


WORKFLOW = "evals.yml"


@pytest.fixture(scope="module")
def _fake() -> Iterator[FakeGitHub]:
    with FakeGitHub() as server:
        yield server


@pytest.fixture
def fake(_fake: FakeGitHub) -> FakeGitHub:
    _fake.reset()
    _fake.add_repo(REPO)
    _fake.add_token(TOKEN)
    _fake.add_token(READONLY, write=False)
    return _fake


def seed_baseline(fake: FakeGitHub, data: bytes, branch: str = "main") -> int:
    run = fake.add_run(REPO, WORKFLOW, branch)
    return fake.add_artifact(REPO, run.id, DEFAULT_ARTIFACT, data).id


def test_the_download_redirect_never_carries_the_token(fake: FakeGitHub) -> None:
    artifact = seed_baseline(fake, b"PK-bytes")
    client = GitHubClient(TOKEN, fake.api_url)
    sink = io.BytesIO()
    client.download(f"/repos/{REPO}/actions/artifacts/{artifact}/zip", sink)
    assert sink.getvalue() == b"PK-bytes"
    assert fake.blob_auth_leaks == []

    # the control: urllib's own redirect handling would have sent it along
    request = urllib.request.Request(
        f"{fake.api_url}/repos/{REPO}/actions/artifacts/{artifact}/zip",
        headers={"Authorization": f"Bearer {TOKEN}", "User-Agent": "naive"},
    )
    with pytest.raises(urllib.error.HTTPError):
        urllib.request.build_opener().open(request, timeout=10)
    assert len(fake.blob_auth_leaks) == 1


def test_a_long_retry_after_is_reported_not_slept(fake: FakeGitHub) -> None:
    slept: list[float] = []
    fake.fault("GET", "/comments", 429, headers={"Retry-After": "3600"})
    client = GitHubClient(TOKEN, fake.api_url, sleep=slept.append)
    with pytest.raises(GitHubError, match=r"429 \(rate-limited\)") as caught:
        client.list_comments(REPO, 7)
    assert caught.value.status == 429
    assert slept == []


def test_parse_link() -> None:
    header = (
        '<https://api.github.com/x?page=2>; rel="next", <https://api.github.com/x?page=5>; '
        'rel="last"'
    )
    assert parse_link(header) == {
        "next": "https://api.github.com/x?page=2",
        "last": "https://api.github.com/x?page=5",
    }
    assert parse_link("") == {}
