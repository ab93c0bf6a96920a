"""--eval-batch: the suite's requests through OpenAI's Batch API, then replayed."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tests.plugin.suites import chat_posts, echo_suite

if TYPE_CHECKING:
    from tests.conftest import Project
    from tests.support.fake_openai import FakeOpenAI


def batch_posts(server: FakeOpenAI) -> int:
    return sum(r.path == "/v1/batches" and r.method == "POST" for r in server.requests)


# Serial only: --eval-batch runs in one process (it refuses -n, see the last test).
def test_eval_batch_runs_the_suite_through_one_batch(project: Project, server: FakeOpenAI) -> None:
    echo_suite(project, rows=5)
    result = project.run("--eval-batch", "--eval-batch-poll-interval", "0")
    result.assert_outcomes(passed=5)
    assert batch_posts(server) == 1
    assert chat_posts(server) == 0  # every answer came from the batch, through the cache
    result.stdout.fnmatch_lines(
        [
            "modelopt: submitted 5 requests as batch batch_*",
            "modelopt: batch batch_*: 5 responses cached, 0 failed",
        ]
    )


# Serial only: --eval-batch runs in one process.
def test_eval_batch_submit_then_collect(project: Project, server: FakeOpenAI) -> None:
    echo_suite(project, rows=4)
    submitted = project.run("--eval-batch=submit")
    assert submitted.ret == 0
    submitted.stdout.fnmatch_lines(
        [
            "*submitted 4 requests (batch_*; manifest *); collect them later with: "
            "pytest --eval-batch=collect*"
        ]
    )
    assert not (project.path / ".modelopt" / "runs").exists() or not project.cases()
    assert len(list((project.path / ".modelopt" / "batches").glob("*.json"))) == 1
    collected = project.run("--eval-batch=collect", "--eval-batch-poll-interval", "0")
    collected.assert_outcomes(passed=4)
    assert chat_posts(server) == 0
    assert list((project.path / ".modelopt" / "batches").glob("*.json")) == []


# Its xdist leg is its first half: --eval-batch with -n is refused.
def test_eval_batch_refuses_xdist_and_a_server_without_batches(
    project: Project, server: FakeOpenAI
) -> None:
    echo_suite(project, rows=2)
    result = project.run("--eval-batch", "-n", "2")
    assert result.ret == 4
    result.stderr.fnmatch_lines(["*--eval-batch runs in one process*"])
    server.batches_enabled = False
    result = project.run("-p", "no:xdist", "--eval-batch", "--eval-batch-poll-interval", "0")
    assert result.ret == 4
    result.stderr.fnmatch_lines(["*--eval-batch: this server has no Batch API*"])
