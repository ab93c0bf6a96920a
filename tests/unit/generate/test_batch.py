"""Batch API support: submit a run's requests, poll, collect into the cache, replay.

Everything runs against the fake server (tests/support/fake_openai.py) with the real SDK,
so the wire format (multipart upload, batch objects, JSONL output files) is exercised.
"""

from __future__ import annotations

import base64
import json
import socket
from typing import TYPE_CHECKING, Any

import openai
import pytest

from pytest_modelopt import images
from pytest_modelopt.generate import batch
from pytest_modelopt.generate.batch import (
    BatchError,
    BatchRequest,
    BatchStatus,
    batch_lines,
    cancel,
    collect,
    load_pending,
    poll,
    save_pending,
    submit,
)
from pytest_modelopt.model.cache import ResponseCache, cache_key
from pytest_modelopt.model.client import ModelClient
from pytest_modelopt.model.types import CallContext
from tests.conftest import TEST_KEY
from tests.support.images import png
from tests.support.openapi import spec_available, validate_request, validate_response

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from tests.support.fake_openai import FakeOpenAI


MODEL = "gpt-4.1-mini"


EMBEDDER = "text-embedding-3-small"


CHAT, RESPONSES, EMBEDDINGS = "/chat/completions", "/responses", "/embeddings"


@pytest.fixture
def client(server: FakeOpenAI) -> Iterator[ModelClient]:
    model_client = ModelClient(base_url=server.base_url, timeout=5.0, max_retries=0)
    yield model_client
    model_client.close()


def chat(text: str, *, sample: int = 0, model: str = MODEL, **params: Any) -> BatchRequest:
    body = {"model": model, "messages": [{"role": "user", "content": text}], **params}
    return BatchRequest.for_call(CHAT, body, sample)


def model_requests(server: FakeOpenAI) -> list[str]:
    """The live model calls the server has seen (batch lines are not HTTP requests)."""
    return [r.path for r in server.requests if r.path.removeprefix("/v1") in _PARSED]


_PARSED = (CHAT, RESPONSES, EMBEDDINGS)


def run_all(
    client: ModelClient, requests: list[BatchRequest], cache: ResponseCache, **kwargs: Any
) -> tuple[list[BatchStatus], int, dict[str, str]]:
    """submit -> poll -> collect every batch; (final statuses, written, failures)."""
    by_id = {r.custom_id: r for r in requests}
    statuses, written, failed = [], 0, {}
    for batch_id in submit(client, requests, **kwargs):
        status = poll(client, batch_id, interval=0)
        statuses.append(status)
        count, errors = collect(client, status, by_id, cache)
        written += count
        failed.update(errors)
    return statuses, written, failed


def test_batch_lines_are_one_request_per_line() -> None:
    requests = [
        chat("héllo ✓"),
        chat("héllo ✓", sample=1, temperature=0.5),
        BatchRequest.for_call(RESPONSES, {"model": MODEL, "input": "hi", "instructions": "x"}),
        BatchRequest.for_call(EMBEDDINGS, {"model": EMBEDDER, "input": ["a", "b"]}),
    ]
    data = batch_lines([*requests, requests[0]])  # a repeat is sent once
    assert data.endswith(b"\n")
    lines = [json.loads(line) for line in data.decode("utf-8").splitlines()]
    assert len(lines) == len(requests)
    for line, request in zip(lines, requests, strict=True):
        assert line == {
            "custom_id": request.custom_id,
            "method": "POST",
            "url": "/v1" + request.endpoint,
            "body": request.body,
        }
        assert line["custom_id"] == cache_key(request.endpoint, line["body"], request.sample)
        if spec_available():
            validate_request(line["url"], line["body"])
    assert batch_lines([]) == b""


def test_batch_requests_are_checked() -> None:
    with pytest.raises(BatchError, match="endpoint must be one of"):
        BatchRequest("id", "/v1/chat/completions", {"model": MODEL})
    with pytest.raises(BatchError, match="non-empty custom_id"):
        BatchRequest("", CHAT, {"model": MODEL})
    clash = BatchRequest("same", CHAT, {"model": MODEL, "messages": []})
    with pytest.raises(BatchError, match="two different requests share custom_id 'same'"):
        batch_lines([clash, BatchRequest("same", CHAT, {"model": "other", "messages": []})])
    with pytest.raises(BatchError, match="is not JSON"):
        batch_lines([BatchRequest("x", CHAT, {"model": MODEL, "messages": object()})])


def test_submit_poll_collect_then_replay_without_a_live_call(
    server: FakeOpenAI, client: ModelClient, tmp_path: Path
) -> None:
    server.reply("PONG", contains="ping")
    prepared = [
        client.prepare("chat", {"model": MODEL, "messages": [{"role": "user", "content": t}]})[0]
        for t in ("ping", "héllo ✓", "third")
    ]
    requests = [BatchRequest.for_call(CHAT, body) for body in prepared]
    requests.append(BatchRequest.for_call(CHAT, prepared[0], sample=1))

    ids = submit(client, requests, metadata={"suite": "nightly"})
    assert len(ids) == 1
    seen: list[BatchStatus] = []
    status = poll(client, ids[0], interval=0, on_progress=seen.append)
    assert [s.status for s in seen] == ["in_progress", "finalizing", "completed"]
    assert (status.total, status.completed, status.failed) == (4, 4, 0)
    assert status.output_file_id is not None
    assert status.error_file_id is None

    cache = ResponseCache(tmp_path, "new")
    written, failed = collect(client, status, {r.custom_id: r for r in requests}, cache)
    assert (written, failed) == (4, {})
    entry = cache.get(requests[0].custom_id)
    assert entry is not None
    assert (entry.latency_s, entry.request, entry.sample) == (0.0, prepared[0], 0)
    assert model_requests(server) == []

    replayer = ModelClient(cache=cache, base_url=server.base_url, timeout=5.0, max_retries=0)
    texts = []
    for request in requests:
        context = CallContext(CHAT, MODEL, sample=request.sample)
        completion = replayer.call("chat", request.body, context)
        assert completion.cached
        texts.append(completion.text)
    assert texts == ["PONG", "héllo ✓", "third", "PONG"]
    assert model_requests(server) == []  # every answer came from the batch

    live = ModelClient(base_url=server.base_url, timeout=5.0, max_retries=0)
    assert live.call("chat", prepared[1]).response == replayer.call("chat", prepared[1]).response
    created = [r for r in server.requests if r.path == "/v1/batches"]
    assert created[0].body["metadata"] == {"suite": "nightly"}
    if spec_available():
        validate_request("/v1/batches", created[0].body)


def test_mixed_endpoints_make_one_batch_each(
    server: FakeOpenAI, client: ModelClient, tmp_path: Path
) -> None:
    requests = [
        chat("one"),
        # as ModelClient.prepare makes every Responses body (the plugin's are prepared)
        BatchRequest.for_call(RESPONSES, {"model": MODEL, "input": "two", "store": False}),
        BatchRequest.for_call(EMBEDDINGS, {"model": EMBEDDER, "input": ["three", "four"]}),
        chat("five"),
    ]
    cache = ResponseCache(tmp_path, "new")
    statuses, written, failed = run_all(client, requests, cache)
    assert [s.total for s in statuses] == [2, 1, 1]
    assert (written, failed) == (4, {})
    endpoints = [r.body["endpoint"] for r in server.requests if r.path == "/v1/batches"]
    assert endpoints == ["/v1/chat/completions", "/v1/responses", "/v1/embeddings"]

    replayer = ModelClient(cache=cache, base_url=server.base_url, timeout=5.0, max_retries=0)
    assert replayer.call("chat", requests[0].body).text == "one"
    assert replayer.respond(MODEL, "two").text == "two"
    vectors, call = replayer.embed(EMBEDDER, ["three", "four"])
    assert call.cached
    assert len(vectors) == 2
    assert model_requests(server) == []


def test_one_batch_per_model_and_split_at_the_limit(
    server: FakeOpenAI, client: ModelClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(batch, "_MAX_LINES", 2)
    requests = [chat(str(i)) for i in range(5)] + [chat("other", model="gpt-4.1")]
    server.batch_steps = 1
    ids = submit(client, requests)
    assert len(ids) == 4  # 2 + 2 + 1 for gpt-4.1-mini, 1 for gpt-4.1
    statuses = [poll(client, batch_id, interval=0) for batch_id in ids]
    assert [(s.status, s.total) for s in statuses] == [("completed", n) for n in (2, 2, 1, 1)]


def test_batch_lines_get_rules_but_not_faults_or_latency(
    server: FakeOpenAI, client: ModelClient, tmp_path: Path
) -> None:
    server.reply(lambda body: f"scripted {len(body['messages'])}")
    server.fault("500", times=None)
    server.latency = 5.0  # would make the test slow if batch lines waited for it
    cache = ResponseCache(tmp_path, "new")
    _, written, failed = run_all(client, [chat("a"), chat("b")], cache)
    assert (written, failed) == (2, {})
    entry = cache.get(chat("a").custom_id)
    assert entry is not None
    assert entry.response["choices"][0]["message"]["content"] == "scripted 1"
    assert server.max_in_flight == 0
    assert submit(client, []) == []


def test_failed_lines_are_reported_not_cached(
    server: FakeOpenAI, client: ModelClient, tmp_path: Path
) -> None:
    server.known_models = {MODEL}
    good = chat("fine")
    no_messages = BatchRequest.for_call(CHAT, {"model": MODEL})
    unknown = chat("who?", model="no-such-model")
    cache = ResponseCache(tmp_path, "new")
    statuses, written, failed = run_all(client, [good, no_messages, unknown], cache)
    assert [(s.completed, s.failed) for s in statuses] == [(1, 1), (0, 1)]
    assert statuses[1].output_file_id is None
    assert written == 1
    assert failed == {
        no_messages.custom_id: "HTTP 400: Missing required parameter: 'messages'.",
        unknown.custom_id: "HTTP 404: The model `no-such-model` does not exist or you do not "
        "have access to it.",
    }
    assert cache.get(good.custom_id) is not None
    assert cache.get(no_messages.custom_id) is None
    assert cache.get(unknown.custom_id) is None


def test_results_for_unknown_ids_are_not_cached(
    server: FakeOpenAI, client: ModelClient, tmp_path: Path
) -> None:
    request = chat("orphan")
    server.batch_steps = 0
    status = poll(client, submit(client, [request])[0], interval=0)
    cache = ResponseCache(tmp_path, "new")
    written, failed = collect(client, status, {}, cache)
    assert written == 0
    assert list(failed) == [request.custom_id]
    assert "not among the submitted requests" in failed[request.custom_id]
    assert cache.get(request.custom_id) is None


def test_cancel(server: FakeOpenAI, client: ModelClient, tmp_path: Path) -> None:
    batch_id = submit(client, [chat("never")])[0]
    assert cancel(client, batch_id).status == "cancelling"
    seen: list[str] = []
    status = poll(client, batch_id, interval=0, on_progress=lambda s: seen.append(s.status))
    assert seen == ["cancelled"]
    assert (status.completed, status.output_file_id) == (0, None)
    assert collect(client, status, {}, ResponseCache(tmp_path, "new")) == (0, {})
    with pytest.raises(BatchError, match=r"cancelling batch .*Cannot cancel a batch with status"):
        cancel(client, batch_id)


def test_a_server_without_batches_gives_one_clear_error(
    server: FakeOpenAI, client: ModelClient
) -> None:
    server.batches_enabled = False
    with pytest.raises(BatchError) as info:
        submit(client, [chat("x")])
    message = str(info.value)
    assert message == (
        "this server has no Batch API (404 on POST /v1/files): run without --eval-batch"
    )
    assert info.value.batch_ids == ()
    with pytest.raises(BatchError, match=r"checking batch batch_x failed: HTTP 404") as polled:
        poll(client, "batch_x", interval=0)
    for error in (info.value, polled.value):
        assert "\n" not in str(error)
        assert TEST_KEY not in str(error)


def test_a_partly_submitted_run_names_its_batches(
    server: FakeOpenAI, client: ModelClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_lines = batch.batch_lines

    def broken_second_file(requests: list[BatchRequest]) -> bytes:
        data = real_lines(requests)
        return data if requests[0].model == MODEL else data.replace(b'"POST"', b'"GET"')

    monkeypatch.setattr(batch, "batch_lines", broken_second_file)
    with pytest.raises(BatchError) as info:
        submit(client, [chat("a"), chat("b", model="gpt-4.1")])
    assert len(info.value.batch_ids) == 1
    assert f"already submitted (and billed when they run): {info.value.batch_ids[0]}" in str(
        info.value
    )


def test_the_uploaded_file_is_validated(
    server: FakeOpenAI, client: ModelClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_lines = batch.batch_lines

    def malformed(requests: list[BatchRequest]) -> bytes:
        lines = real_lines(requests).splitlines(keepends=True)
        lines[1] = lines[1].replace(b'"url": "/v1/chat/completions"', b'"url": "/v1/nope"')
        return b"".join(lines)

    monkeypatch.setattr(batch, "batch_lines", malformed)
    with pytest.raises(BatchError) as info:
        submit(client, [chat("a"), chat("b"), chat("c")])
    assert str(info.value) == (
        "uploading 3 /chat/completions request(s) for gpt-4.1-mini was rejected: HTTP 400: "
        "Invalid batch input file 'modelopt-chat-completions-gpt-4.1-mini-1.jsonl': line 2: "
        "'url' must be one of /v1/chat/completions, /v1/responses, /v1/embeddings, got "
        "'/v1/nope': fix it, or run without --eval-batch"
    )
    assert not any(r.path == "/v1/batches" for r in server.requests)


LINE = {"custom_id": "a", "method": "POST", "url": "/v1/chat/completions", "body": {}}


@pytest.mark.parametrize(
    ("lines", "problem"),
    [
        (
            [LINE, {**LINE, "custom_id": "b"}, LINE],
            "line 3: 'custom_id' 'a' is not unique (also on line 1)",
        ),
        ([LINE, {**LINE, "custom_id": 1}], "line 2: 'custom_id' must be a non-empty string"),
        ([{**LINE, "method": "GET"}], "line 1: 'method' must be 'POST', got 'GET'"),
        ([{**LINE, "body": []}], "line 1: 'body' must be a JSON object"),
        ([LINE, "not json"], "line 2 is not valid JSON"),
        ([], "the file has no requests"),
    ],
)
def test_the_fake_rejects_bad_batch_files(
    server: FakeOpenAI, lines: list[Any], problem: str
) -> None:
    data = "".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines)
    with openai.OpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0) as sdk:
        with pytest.raises(openai.BadRequestError) as info:
            sdk.files.create(file=("in.jsonl", data.encode()), purpose="batch")
        assert f"Invalid batch input file 'in.jsonl': {problem}." in str(info.value)
        # other purposes are not batch files: stored as they are
        assert sdk.files.create(file=("x.txt", b"free text"), purpose="user_data").bytes == 9


def test_a_batch_that_fails_validation(
    server: FakeOpenAI, client: ModelClient, tmp_path: Path
) -> None:
    lines = [
        {**LINE, "custom_id": "a", "body": {"model": MODEL, "messages": []}},
        {**LINE, "custom_id": "b", "body": {"model": "gpt-4.1", "messages": []}},
    ]
    data = "".join(json.dumps(line) + "\n" for line in lines).encode()
    with openai.OpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0) as sdk:
        file = sdk.files.create(file=("in.jsonl", data), purpose="batch")
        created = sdk.batches.create(
            input_file_id=file.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
    status = poll(client, created.id, interval=0)
    assert status.status == "failed"
    assert status.errors == (
        "line 2: All requests in a batch must use the same model: line 2 uses 'gpt-4.1', "
        "line 1 uses 'gpt-4.1-mini'.",
    )
    with pytest.raises(BatchError, match=r"failed: line 2: All requests .*submit again$"):
        collect(client, status, {}, ResponseCache(tmp_path, "new"))


def test_poll_rides_out_a_short_outage(server: FakeOpenAI, client: ModelClient) -> None:
    batch_id = submit(client, [chat("x")])[0]
    server.batch_retrieve_errors = 2
    seen: list[BatchStatus] = []
    assert poll(client, batch_id, interval=0, on_progress=seen.append).status == "completed"
    assert len(seen) == 3
    server.batch_retrieve_errors = 10
    with pytest.raises(BatchError, match=r"checking batch .* failed \(server\): HTTP 500"):
        poll(client, batch_id, interval=0)


def test_poll_timeout_leaves_the_batch_running(server: FakeOpenAI, client: ModelClient) -> None:
    server.batch_steps = 1000
    batch_id = submit(client, [chat("slow")])[0]
    with pytest.raises(BatchError) as info:
        poll(client, batch_id, interval=0.01, timeout=0.05)
    assert str(info.value) == (
        f"batch {batch_id} is still in_progress after 0.05 s: it keeps running; collect it "
        "later with --eval-batch=collect"
    )


def test_collect_refuses_unfinished_batches_and_read_only_caches(
    server: FakeOpenAI, client: ModelClient, tmp_path: Path
) -> None:
    running = BatchStatus("batch_1", "in_progress", 1, 0, 0, None, None)
    with pytest.raises(BatchError, match="still in_progress: poll it until it finishes"):
        collect(client, running, {}, ResponseCache(tmp_path, "new"))
    done = BatchStatus("batch_1", "completed", 1, 1, 0, "file-1", None)
    with pytest.raises(BatchError, match=r"read-only \(--eval-record none\)"):
        collect(client, done, {}, ResponseCache(tmp_path, "none"))


def test_manifest_round_trip(tmp_path: Path) -> None:
    requests = [
        chat("héllo"),
        chat("héllo", sample=2),
        BatchRequest.for_call(EMBEDDINGS, {"model": EMBEDDER, "input": ["a"]}),
    ]
    directory = tmp_path / "pending"
    assert load_pending(directory) == []
    path = save_pending(directory, ["batch_1", "batch_2"], requests)
    assert path.parent == directory
    assert path.name.startswith("batch-")
    assert TEST_KEY not in path.read_text()
    assert load_pending(directory) == [(path, ["batch_1", "batch_2"], requests)]
    assert [p.name for p in directory.iterdir()] == [path.name]  # no temporary left behind

    (directory / "batch-0-broken.json").write_text("{")
    with pytest.raises(BatchError, match=r"cannot read the pending-batch manifest .*broken"):
        load_pending(directory)


def test_fake_files_and_batches_endpoints(server: FakeOpenAI) -> None:
    with openai.OpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0) as sdk:
        data = batch_lines([chat("a")])
        file = sdk.files.create(file=("in.jsonl", data, "application/jsonl"), purpose="batch")
        assert (file.object, file.purpose, file.status, file.bytes) == (
            "file",
            "batch",
            "processed",
            len(data),
        )
        assert sdk.files.retrieve(file.id) == file
        assert sdk.files.content(file.id).content == data
        ids = [
            sdk.batches.create(
                input_file_id=file.id, endpoint="/v1/chat/completions", completion_window="24h"
            ).id
            for _ in range(3)
        ]
        listed = [b.id for b in sdk.batches.list(limit=2)]  # the SDK follows has_more
        assert listed == ids[::-1]
        page = sdk.batches.with_raw_response.list(limit=2)
        assert json.loads(page.content)["has_more"] is True
        if spec_available():
            validate_response("ListBatchesResponse", json.loads(page.content))
            validate_response("OpenAIFile", file.to_dict())
            for _ in range(server.batch_steps):  # every status on the way to completed
                raw = json.loads(sdk.batches.with_raw_response.retrieve(ids[0]).content)
                validate_response("Batch", raw)
            assert raw["status"] == "completed"
        assert sdk.files.delete(file.id).deleted
        with pytest.raises(openai.NotFoundError):
            sdk.files.retrieve(file.id)
        with pytest.raises(openai.BadRequestError, match="completion_window"):
            sdk.batches.create(
                input_file_id=file.id,
                endpoint="/v1/chat/completions",
                completion_window="1h",  # type: ignore[arg-type]
            )
        server.batches_enabled = False
        with pytest.raises(openai.NotFoundError):
            sdk.batches.list()
    server.reset()
    assert (server.batches_enabled, server.batch_steps) == (True, 3)


def test_an_unreachable_server_says_so(server: FakeOpenAI) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    unreachable = ModelClient(base_url=url, timeout=2.0, max_retries=0)
    with pytest.raises(BatchError) as info:
        submit(unreachable, [chat("x")])
    message = str(info.value)
    assert message.startswith("uploading 1 /chat/completions request(s) for gpt-4.1-mini failed")
    assert message.endswith("try again later")
    assert TEST_KEY not in message


def test_a_batch_file_carries_the_images_and_the_request_keeps_their_references(
    tmp_path: Path,
) -> None:
    image = png(seed=5)
    (tmp_path / "cat.png").write_bytes(image)
    ref = images.resolve("cat.png", tmp_path)
    part = {"type": "image_url", "image_url": {"url": ref}}
    body = {"model": "gpt-4.1-mini", "messages": [{"role": "user", "content": [part]}]}
    request = BatchRequest.for_call("/chat/completions", body)
    assert request.custom_id == cache_key("/chat/completions", body, 0)
    (line,) = batch_lines([request]).decode().splitlines()
    sent = json.loads(line)["body"]["messages"][0]["content"][0]["image_url"]["url"]
    assert sent == "data:image/png;base64," + base64.b64encode(image).decode()
    assert request.body == body  # what is cached with the answer names the file
