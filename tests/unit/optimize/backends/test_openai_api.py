"""The ``openai`` fine-tuning backend, driven over real HTTP against the local fake server.

Each test builds a launch directory by hand (train.jsonl, manifest.json, ...) the way the
dataset builders will, launches it through the real SDK, and checks what the server
received and what the backend reports and writes.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import openai
import pytest

from pytest_modelopt.optimize.backends.openai_api import (
    META_BASE_MODEL,
    META_NAME,
    META_SHA256,
    OpenAIBackend,
)
from pytest_modelopt.optimize.follow import follow
from pytest_modelopt.optimize.jobs import (
    BackendError,
    JobEvent,
    JobInfo,
    Manifest,
    files_sha256,
    read_job,
)
from tests.conftest import TEST_KEY
from tests.support.openapi import spec_available, validate_request

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from tests.support.fake_openai import FakeOpenAI, RecordedRequest


BASE = "gpt-4.1-mini-2025-04-14"


GRADER = {
    "type": "string_check",
    "name": "category",
    "input": "{{ sample.output_text }}",
    "reference": "{{ item.category }}",
    "operation": "eq",
}


def sft_rows(n: int = 12) -> list[dict[str, Any]]:
    return [
        {
            "messages": [
                {"role": "system", "content": "Classify the ticket."},
                {"role": "user", "content": f"ticket {i}: the app crashes"},
                {"role": "assistant", "content": "bug"},
            ]
        }
        for i in range(n)
    ]


def dpo_rows(n: int = 12) -> list[dict[str, Any]]:
    return [
        {
            "input": {"messages": [{"role": "user", "content": f"ticket {i}: refund please"}]},
            "preferred_output": [{"role": "assistant", "content": "billing"}],
            "non_preferred_output": [{"role": "assistant", "content": "bug"}],
        }
        for i in range(n)
    ]


def rft_rows(n: int = 12) -> list[dict[str, Any]]:
    return [
        {
            "messages": [
                {"role": "developer", "content": "Classify the ticket."},
                {"role": "user", "content": f"ticket {i}: where is my invoice"},
            ],
            "category": "billing",
        }
        for i in range(n)
    ]


def jsonl(rows: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(row) + "\n" for row in rows)


def make_launch(
    directory: Path,
    method: str = "sft",
    rows: list[dict[str, Any]] | None = None,
    *,
    name: str = "triage-sft",
    base_model: str = BASE,
    validation: list[dict[str, Any]] | None = None,
    grader: dict[str, Any] | None = None,
    **fields: Any,
) -> Manifest:
    """Write a launch directory as the dataset builders do: files, then manifest.json."""
    directory.mkdir(parents=True, exist_ok=True)
    if rows is None:
        rows = {"sft": sft_rows, "dpo": dpo_rows, "rft": rft_rows}[method]()
    (directory / "train.jsonl").write_text(jsonl(rows))
    paths = [directory / "train.jsonl"]
    if validation is not None:
        (directory / "validation.jsonl").write_text(jsonl(validation))
        paths.append(directory / "validation.jsonl")
        fields["validation_file"] = "validation.jsonl"
    if grader is not None:
        (directory / "grader.json").write_text(json.dumps(grader))
        paths.append(directory / "grader.json")
        fields["grader_file"] = "grader.json"
    manifest = Manifest(
        name=name,
        method=method,  # type: ignore[arg-type]
        base_model=base_model,
        examples=len(rows),
        dataset_sha256=files_sha256(paths),
        **fields,
    )
    (directory / "manifest.json").write_text(manifest.model_dump_json(indent=2))
    return manifest


@pytest.fixture
def backend(server: FakeOpenAI) -> OpenAIBackend:
    return OpenAIBackend(base_url=server.base_url, api_key=TEST_KEY, max_retries=0)


@pytest.fixture
def sdk(server: FakeOpenAI) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0) as client:
        yield client


def run_to_end(backend: OpenAIBackend, job: JobInfo) -> tuple[JobInfo, list[JobEvent]]:
    events: list[JobEvent] = []
    final = follow(backend, job, events.append, poll_interval=0.0, timeout=60.0)
    return final, events


def sent(server: FakeOpenAI, method: str, path: str) -> list[RecordedRequest]:
    return [r for r in server.requests if (r.method, r.path) == (method, path)]


def creates(server: FakeOpenAI) -> list[RecordedRequest]:
    return sent(server, "POST", "/v1/fine_tuning/jobs")


def uploads(server: FakeOpenAI) -> list[RecordedRequest]:
    return sent(server, "POST", "/v1/files")


def check_spec(request: RecordedRequest) -> None:
    if spec_available():
        validate_request(request.path, request.body)


def test_sft_launch_follows_to_a_fine_tuned_model(
    server: FakeOpenAI, backend: OpenAIBackend, tmp_path: Path
) -> None:
    launch_dir = tmp_path / "triage-sft"
    manifest = make_launch(launch_dir, hyperparameters={"n_epochs": 2})

    job = backend.launch(manifest, launch_dir)

    assert job.backend == "openai"
    assert job.id.startswith("ftjob-")
    assert (job.status, job.method, job.base_model) == ("validating_files", "sft", BASE)
    assert job.dataset_sha256 == manifest.dataset_sha256
    assert read_job(launch_dir) == job
    (upload,) = uploads(server)
    assert b'name="purpose"\r\n\r\nfine-tune' in upload.raw
    assert (launch_dir / "train.jsonl").read_bytes() in upload.raw
    (create,) = creates(server)
    check_spec(create)
    body = create.body
    assert body["model"] == BASE
    assert body["training_file"] == server.fine_tuning_jobs[0]["training_file"]
    assert body["method"] == {
        "type": "supervised",
        "supervised": {"hyperparameters": {"n_epochs": 2}},
    }
    assert body["suffix"] == "triage-sft"
    assert body["metadata"] == {
        META_SHA256: manifest.dataset_sha256,
        META_NAME: "triage-sft",
        META_BASE_MODEL: BASE,
    }
    assert isinstance(body["seed"], int)
    assert "validation_file" not in body

    final, events = run_to_end(backend, job)

    assert final.status == "succeeded"
    assert final.done
    assert final.error is None
    model = final.fine_tuned_model
    assert model is not None
    assert model.startswith(f"ft:{BASE}:modelopt:triage-sft:")
    assert final.serve_hint == f"pytest --eval-models {model}"
    assert final.checkpoints == [f"{model}:ckpt-step-{step}" for step in (1, 2, 3)]
    assert final.metrics["train_loss"] == pytest.approx(1.6 * 0.6**3)
    assert final.metrics["step"] == 3
    assert final.finished_at is not None
    messages = [event.message for event in events]
    assert messages[0] == f"Created fine-tuning job: {job.id}"
    assert messages[-1] == "The job has successfully completed"
    assert f"New fine-tuned model created: {model}" in messages
    assert len({event.id for event in events}) == len(events) == 12
    assert [event.created_at for event in events] == sorted(event.created_at for event in events)
    losses = [event.data["train_loss"] for event in events if event.data]
    assert len(losses) == 3
    assert losses == sorted(losses, reverse=True)
    assert losses[0] > losses[-1]
    on_disk = (launch_dir / "job.json").read_text()
    assert read_job(launch_dir) == final
    assert TEST_KEY not in on_disk
    assert "SECRET" not in on_disk
    assert all(TEST_KEY not in event.message for event in events)


def test_a_validation_file_is_uploaded_and_named(
    server: FakeOpenAI, backend: OpenAIBackend, tmp_path: Path
) -> None:
    manifest = make_launch(tmp_path, validation=sft_rows(3))
    job = backend.launch(manifest, tmp_path)
    assert len(uploads(server)) == 2
    (create,) = creates(server)
    (listed,) = server.fine_tuning_jobs
    assert create.body["validation_file"] == listed["validation_file"] != listed["training_file"]
    final, events = run_to_end(backend, job)
    assert final.status == "succeeded"
    assert final.metrics["valid_loss"] == pytest.approx(1.7 * 0.6**3)
    assert any("validation loss=" in event.message for event in events)


def test_events_are_paged_oldest_first_and_resume_after_a_cursor(
    server: FakeOpenAI, backend: OpenAIBackend, tmp_path: Path
) -> None:
    server.fine_tuning_steps = 60  # two events a step: more than one page of 100
    job = backend.launch(make_launch(tmp_path), tmp_path)
    final = follow(backend, job, poll_interval=0.0, timeout=60.0)
    assert final.status == "succeeded"

    events = backend.events(final)

    assert len(events) == 2 + 2 + 2 * 60 + 2
    assert events[0].message.startswith("Created fine-tuning job")
    assert events[-1].message == "The job has successfully completed"
    steps = [int(event.data["step"]) for event in events if event.data]
    assert steps == list(range(1, 61))
    paged = [r.query for r in sent(server, "GET", f"/v1/fine_tuning/jobs/{job.id}/events")]
    assert any("after=ftevent-" in query for query in paged)
    assert backend.events(final, after=events[50].id) == events[51:]
    assert backend.events(final, after=events[-1].id) == []
    # Only the last three checkpoints are kept, as on OpenAI.
    assert [name.rsplit("-", 1)[1] for name in final.checkpoints] == ["58", "59", "60"]


def test_dpo_launch_sends_the_preference_method(
    server: FakeOpenAI, backend: OpenAIBackend, tmp_path: Path
) -> None:
    manifest = make_launch(tmp_path, "dpo", name="triage-dpo", hyperparameters={"beta": 0.2})
    job = backend.launch(manifest, tmp_path)
    (create,) = creates(server)
    check_spec(create)
    assert create.body["method"] == {"type": "dpo", "dpo": {"hyperparameters": {"beta": 0.2}}}
    final, _ = run_to_end(backend, job)
    assert (final.status, final.method) == ("succeeded", "dpo")
    assert server.fine_tuning_jobs[0]["method"]["dpo"]["hyperparameters"]["beta"] == 0.2


def test_rft_launch_carries_the_grader_and_response_format(
    server: FakeOpenAI, backend: OpenAIBackend, tmp_path: Path
) -> None:
    response_format = {
        "type": "json_schema",
        "json_schema": {
            "name": "triage",
            "strict": True,
            "schema": {
                "type": "object",
                "properties": {"category": {"type": "string"}},
                "required": ["category"],
                "additionalProperties": False,
            },
        },
    }
    manifest = make_launch(
        tmp_path,
        "rft",
        name="triage-rft",
        base_model="o4-mini-2025-04-16",
        grader=GRADER,
        response_format=response_format,
        hyperparameters={"reasoning_effort": "low"},
    )
    job = backend.launch(manifest, tmp_path)
    (create,) = creates(server)
    check_spec(create)
    assert create.body["method"] == {
        "type": "reinforcement",
        "reinforcement": {
            "hyperparameters": {"reasoning_effort": "low"},
            "grader": GRADER,
            "response_format": response_format,
        },
    }
    final, _ = run_to_end(backend, job)
    assert final.status == "succeeded"
    assert final.metrics["scores.train_reward_mean"] == pytest.approx(1 - 0.6**3)


def test_rft_without_a_grader_is_refused_before_any_request(
    server: FakeOpenAI, backend: OpenAIBackend, tmp_path: Path
) -> None:
    manifest = make_launch(tmp_path, "rft")
    with pytest.raises(BackendError, match=r"needs grader\.json"):
        backend.launch(manifest, tmp_path)
    (tmp_path / "grader.json").write_text("[1, 2]")
    manifest = make_launch(tmp_path, "rft", grader={"no": "type"})
    with pytest.raises(BackendError, match="not an OpenAI grader"):
        backend.launch(manifest, tmp_path)
    assert server.requests == []


def test_relaunching_the_same_data_creates_nothing(
    server: FakeOpenAI, backend: OpenAIBackend, tmp_path: Path
) -> None:
    launch_dir = tmp_path / "first"
    manifest = make_launch(launch_dir)
    job = backend.launch(manifest, launch_dir)
    assert (len(uploads(server)), len(creates(server))) == (1, 1)

    again = backend.launch(manifest, launch_dir)  # job.json is there
    assert again.id == job.id

    (launch_dir / "job.json").unlink()  # found through jobs.list(metadata=...) instead
    found = backend.launch(manifest, launch_dir)
    assert found.id == job.id
    assert read_job(launch_dir) == found

    copy = tmp_path / "elsewhere"  # the same files in another directory: the same job
    shutil.copytree(launch_dir, copy)
    (copy / "job.json").unlink()
    assert backend.launch(manifest, copy).id == job.id

    assert (len(uploads(server)), len(creates(server))) == (1, 1)
    assert len(server.fine_tuning_jobs) == 1
    listed = [r.query for r in sent(server, "GET", "/v1/fine_tuning/jobs")]
    assert f"metadata[{META_SHA256}]={manifest.dataset_sha256}" in listed[-1]


def test_another_base_model_or_a_cancelled_job_launches_anew(
    server: FakeOpenAI, backend: OpenAIBackend, tmp_path: Path
) -> None:
    manifest = make_launch(tmp_path / "a")
    first = backend.launch(manifest, tmp_path / "a")
    other = make_launch(tmp_path / "b", base_model="gpt-4.1-2025-04-14")
    assert other.dataset_sha256 == manifest.dataset_sha256
    second = backend.launch(other, tmp_path / "b")
    assert second.id != first.id

    backend.cancel(first)
    third = backend.launch(manifest, tmp_path / "a")
    assert third.id not in (first.id, second.id)
    assert len(server.fine_tuning_jobs) == 3


def test_a_lost_create_reply_is_not_retried_into_a_second_job(
    server: FakeOpenAI, tmp_path: Path
) -> None:
    server.fine_tuning_lost_replies = 1  # the job is created, the answer is a 500
    backend = OpenAIBackend(base_url=server.base_url, api_key=TEST_KEY, max_retries=2)
    job = backend.launch(make_launch(tmp_path), tmp_path)
    (created,) = server.fine_tuning_jobs
    assert job.id == created["id"]
    assert len(creates(server)) == 1
    assert read_job(tmp_path) == job


def test_files_edited_after_the_manifest_are_refused(
    server: FakeOpenAI, backend: OpenAIBackend, tmp_path: Path
) -> None:
    manifest = make_launch(tmp_path)
    with (tmp_path / "train.jsonl").open("a") as handle:
        handle.write(json.dumps(sft_rows(1)[0]) + "\n")
    with pytest.raises(BackendError, match=r"changed after manifest\.json was written"):
        backend.launch(manifest, tmp_path)
    (tmp_path / "train.jsonl").unlink()
    with pytest.raises(BackendError, match=r"train\.jsonl is missing"):
        backend.launch(manifest, tmp_path)
    assert server.requests == []


def test_an_org_without_fine_tuning_gets_the_alternatives(
    server: FakeOpenAI, backend: OpenAIBackend, sdk: openai.OpenAI, tmp_path: Path
) -> None:
    server.fine_tuning_access = False
    with pytest.raises(BackendError) as excinfo:
        backend.launch(make_launch(tmp_path), tmp_path)
    message = str(excinfo.value)
    assert "HTTP 403" in message
    assert "does not have access to fine-tuning" in message  # the server's own words
    assert "--backend local" in message
    assert "Hugging Face TRL" in message
    assert "--backend export" in message
    assert "2027-01-06" in message
    assert TEST_KEY not in message
    assert not excinfo.value.retryable
    assert server.fine_tuning_jobs == []
    assert read_job(tmp_path) is None
    # The uploaded file, which no job will use, is deleted again.
    assert len(uploads(server)) == 1
    deleted = [r.path for r in server.requests if r.method == "DELETE"]
    assert len(deleted) == 1
    assert deleted[0].startswith("/v1/files/file-")
    assert list(sdk.files.list()) == []


def test_a_server_without_fine_tuning_is_named_before_any_upload(
    server: FakeOpenAI, backend: OpenAIBackend, tmp_path: Path
) -> None:
    server.fine_tuning_enabled = False
    with pytest.raises(BackendError, match="this server has no fine-tuning API") as excinfo:
        backend.launch(make_launch(tmp_path), tmp_path)
    assert "HTTP 404" in str(excinfo.value)
    assert "--backend local" in str(excinfo.value)
    assert uploads(server) == []


def test_a_rejected_key_is_not_mistaken_for_no_access(
    server: FakeOpenAI, backend: OpenAIBackend, tmp_path: Path
) -> None:
    server.fine_tuning_fault(
        401, "Incorrect API key provided: sk-test-***cdef.", code="invalid_api_key"
    )
    with pytest.raises(BackendError) as excinfo:
        backend.launch(make_launch(tmp_path), tmp_path)
    message = str(excinfo.value)
    assert message.startswith("listing fine-tuning jobs failed: HTTP 401: Incorrect API key")
    assert "check OPENAI_API_KEY" in message
    assert "--backend local" not in message
    assert uploads(server) == []


def test_a_key_echoed_by_the_server_is_redacted(
    server: FakeOpenAI, backend: OpenAIBackend, tmp_path: Path
) -> None:
    server.fine_tuning_fault(400, f"Header Authorization: Bearer {TEST_KEY} is malformed")
    with pytest.raises(BackendError, match=r"HTTP 400: Header Authorization: \*\*\*") as excinfo:
        backend.launch(make_launch(tmp_path), tmp_path)
    assert TEST_KEY not in str(excinfo.value)
    assert "SECRET" not in str(excinfo.value)


def test_a_key_without_the_fine_tuning_scope_gets_the_alternatives(
    server: FakeOpenAI, backend: OpenAIBackend, tmp_path: Path
) -> None:
    server.fine_tuning_fault(
        401,
        "You have insufficient permissions for this operation. "
        "Missing scopes: api.fine_tuning.jobs.read.",
    )
    with pytest.raises(BackendError, match="Missing scopes") as excinfo:
        backend.launch(make_launch(tmp_path), tmp_path)
    assert "--backend local" in str(excinfo.value)
    assert "--backend export" in str(excinfo.value)


def test_follow_rides_out_a_server_error_while_polling(
    server: FakeOpenAI, backend: OpenAIBackend, tmp_path: Path
) -> None:
    job = backend.launch(make_launch(tmp_path), tmp_path)
    server.fine_tuning_fault(503, "The engine is currently overloaded.", times=2)
    with pytest.raises(BackendError, match="HTTP 503") as excinfo:
        backend.refresh(job)
    assert excinfo.value.retryable
    final, events = run_to_end(backend, job)
    assert final.status == "succeeded"
    assert events[-1].message == "The job has successfully completed"


def test_a_missing_key_is_a_backend_error(
    server: FakeOpenAI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY")
    with pytest.raises(BackendError, match="OPENAI_API_KEY"):
        OpenAIBackend(base_url=server.base_url).launch(make_launch(tmp_path), tmp_path)


@pytest.mark.parametrize(
    ("method", "rows", "expected"),
    [
        pytest.param("sft", sft_rows(4), "has 4 example(s), but must have at least 10", id="few"),
        pytest.param(
            "sft",
            [*sft_rows(2), {"messages": [{"role": "user", "content": "no answer"}]}, *sft_rows(9)],
            "Line 3, key 'messages': at least one message must be from the assistant",
            id="no-assistant",
        ),
        pytest.param(
            "sft",
            [*sft_rows(11), {"messages": [{"role": "bot", "content": "x"}]}],
            "Line 12, key 'messages', message 1: unrecognized role 'bot'",
            id="bad-role",
        ),
        pytest.param(
            "dpo", sft_rows(12), "Line 1, key 'input': expected an object", id="sft-as-dpo"
        ),
        pytest.param(
            "rft",
            sft_rows(12),  # the answer is in the prompt: nothing left to sample
            "Line 1, key 'messages': the last message must be from the user",
            id="rft-answered",
        ),
    ],
)
def test_a_file_that_does_not_conform_fails_the_job(
    server: FakeOpenAI,
    backend: OpenAIBackend,
    tmp_path: Path,
    method: str,
    rows: list[dict[str, Any]],
    expected: str,
) -> None:
    grader = GRADER if method == "rft" else None
    job = backend.launch(make_launch(tmp_path, method, rows, grader=grader), tmp_path)
    assert job.status == "validating_files"

    final, events = run_to_end(backend, job)

    assert final.status == "failed"
    assert final.done
    assert final.fine_tuned_model is None
    assert final.serve_hint is None
    assert final.checkpoints == []
    assert final.error is not None
    assert final.error.startswith("invalid_training_file: The job failed due to an invalid")
    assert expected in final.error
    assert events[-1].level == "error"
    assert expected in events[-1].message
    assert read_job(tmp_path) == final


def test_cancel_stops_the_job_and_records_it(
    server: FakeOpenAI, backend: OpenAIBackend, tmp_path: Path
) -> None:
    job = backend.launch(make_launch(tmp_path), tmp_path)
    job = backend.refresh(backend.refresh(job))
    assert job.status == "running"

    cancelled = backend.cancel(job)

    assert cancelled.status == "cancelled"
    assert cancelled.done
    assert read_job(tmp_path) == cancelled
    assert server.fine_tuning_jobs[0]["status"] == "cancelled"
    assert backend.refresh(cancelled).status == "cancelled"  # it stays cancelled
    assert backend.events(cancelled)[-1].message == "The job was cancelled"
    with pytest.raises(BackendError, match=r"HTTP 400: Cannot cancel .* 'cancelled'"):
        backend.cancel(cancelled)


def test_a_paused_job_is_not_done_and_follow_stays_bounded(
    server: FakeOpenAI, backend: OpenAIBackend, sdk: openai.OpenAI, tmp_path: Path
) -> None:
    job = backend.launch(make_launch(tmp_path), tmp_path)
    job = backend.refresh(backend.refresh(job))
    sdk.fine_tuning.jobs.pause(job.id)

    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    paused = follow(
        backend, job, poll_interval=5.0, timeout=30.0, sleep=sleep, clock=lambda: now[0]
    )
    assert paused.status == "paused"
    assert not paused.done
    assert now[0] <= 30.0
    assert read_job(tmp_path) == paused

    sdk.fine_tuning.jobs.resume(job.id)
    final, _ = run_to_end(backend, paused)
    assert final.status == "succeeded"


def test_jobs_of_other_backends_and_unknown_jobs_are_refused(
    server: FakeOpenAI, backend: OpenAIBackend
) -> None:
    local = JobInfo(
        backend="local",
        id="run-1",
        status="running",
        base_model=BASE,
        method="sft",
        dataset_sha256="0" * 64,
    )
    for call in (backend.refresh, backend.events, backend.cancel):
        with pytest.raises(BackendError, match="belongs to the 'local' backend"):
            call(local)
    ghost = local.model_copy(update={"backend": "openai", "id": "ftjob-nope"})
    with pytest.raises(BackendError, match="ftjob-nope was not found"):
        backend.refresh(ghost)


def test_importing_the_backend_does_not_import_openai() -> None:
    code = (
        "import sys\n"
        "import pytest_modelopt.optimize.backends.openai_api, pytest_modelopt.optimize.follow\n"
        "print('openai' in sys.modules, 'pytest' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.split() == ["False", "False"]


def dated(server: FakeOpenAI, day: str) -> OpenAIBackend:
    """The backend as if the fake server were OpenAI's platform, on ``day``."""
    today = dt.date.fromisoformat(day)
    return OpenAIBackend(
        base_url=server.base_url,
        api_key=TEST_KEY,
        max_retries=0,
        platform=True,
        clock=lambda: today,
    )


def test_before_the_deadline_the_launch_states_it_and_goes(
    server: FakeOpenAI, tmp_path: Path
) -> None:
    backend = dated(server, "2026-12-07")
    manifest = make_launch(tmp_path)
    notices = backend.notices(manifest)
    assert notices[0].startswith("OpenAI stops creating fine-tuning jobs on 2027-01-06 (in 30")
    assert notices[1].startswith(f"{BASE} is a gpt-4.1 model: OpenAI shuts that family down")
    assert backend.refusal(manifest) is None
    job = backend.launch(manifest, tmp_path)
    assert job.status == "validating_files"
    assert len(creates(server)) == 1


@pytest.mark.parametrize(
    ("day", "base_model", "reasons"),
    [
        ("2027-01-06", "my-open-model", ["stopped creating fine-tuning jobs on 2027-01-06"]),
        (
            "2027-02-01",
            "gpt-4o-mini-2024-07-18",
            ["stopped creating fine-tuning jobs on 2027-01-06", "a gpt-4o model, shut down"],
        ),
    ],
)
def test_after_the_deadline_the_launch_is_refused_before_any_request(
    server: FakeOpenAI, tmp_path: Path, day: str, base_model: str, reasons: list[str]
) -> None:
    backend = dated(server, day)
    manifest = make_launch(tmp_path, base_model=base_model, source_run="20270101-000000-abcdef")
    assert backend.notices(manifest) == []
    with pytest.raises(BackendError) as refused:
        backend.launch(manifest, tmp_path)
    message = str(refused.value)
    for reason in reasons:
        assert reason in message
    assert "not launched" in message
    run = "20270101-000000-abcdef"
    assert f"modelopt distill {run} --student LOCAL_MODEL --backend local" in message
    assert f"modelopt distill {run} --student MODEL --backend export" in message
    assert "Together AI" in message
    assert server.requests == []  # nothing uploaded, nothing listed
    assert read_job(tmp_path) is None


def test_whether_the_dates_bind_comes_from_the_url_called(
    server: FakeOpenAI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A compatible server (here the fake one) keeps its own schedule: no date is stated and
    nothing is refused, whatever the day; OpenAI's own API (no URL at all) is bound."""
    late = dt.date(2030, 1, 1)
    compatible = OpenAIBackend(base_url=server.base_url, api_key=TEST_KEY, clock=lambda: late)
    manifest = make_launch(tmp_path)
    assert compatible.platform is False
    assert compatible.notices(manifest) == []
    assert compatible.refusal(manifest) is None
    assert compatible.launch(manifest, tmp_path).status == "validating_files"
    monkeypatch.delenv("OPENAI_BASE_URL")
    openai_itself = OpenAIBackend(api_key=TEST_KEY, clock=lambda: late)
    assert openai_itself.platform is True
    assert "stopped creating fine-tuning jobs" in (openai_itself.refusal(manifest) or "")
