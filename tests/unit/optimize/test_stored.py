"""Training data from OpenAI stored completions, end to end over HTTP.

The calls are made with the real SDK as the plugin makes them (``store=True`` plus the
eval / case metadata), tagged with :func:`tag_verdicts`, read back with
:func:`stored_records`, and turned into an SFT set: only the teacher's passing answers.
"""

from __future__ import annotations

import urllib.parse
from typing import TYPE_CHECKING, Any

import openai
import pytest

from pytest_modelopt.optimize import training_data
from pytest_modelopt.optimize.stored import (
    META_CASE,
    META_EVAL,
    META_VERDICT,
    StoredCompletionsError,
    stored_records,
    tag_verdicts,
)
from pytest_modelopt.optimize.training_data import Selection
from tests.conftest import TEST_KEY

if TYPE_CHECKING:
    from collections.abc import Iterator

    from openai.types.chat import ChatCompletion, ChatCompletionMessageParam

    from tests.support.fake_openai import FakeOpenAI, RecordedRequest


TEACHER = "gpt-4.1"


STUDENT = "gpt-4.1-mini"


SYSTEM = "Answer in one word."


#: (eval, case, question, teacher's answer, verdict or None: never tagged)
CASES: list[tuple[str, str, str, str, str | None]] = [
    ("geo", "fr", "Capital of France?", "Paris", "passed"),
    ("geo", "de", "Capital of Germany?", "Berlin", "passed"),
    ("geo", "it", "Capital of Italy?", "Milan", "failed"),
    ("geo", "es", "Capital of Spain?", "Madrid", "passed"),
    ("geo", "pt", "Capital of Portugal?", "Lisbon", "error"),
    ("geo", "nl", "Capital of the Netherlands?", "Amsterdam", None),
    ("math", "add", "What is 2+2?", "4", "passed"),
]


@pytest.fixture
def client(server: FakeOpenAI) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=server.base_url, api_key=TEST_KEY, max_retries=0) as sdk:
        yield sdk


def prompt(question: str) -> list[dict[str, Any]]:
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}]


def call(
    client: openai.OpenAI,
    eval_name: str,
    case_id: str,
    question: str,
    *,
    model: str = TEACHER,
    extra: dict[str, str] | None = None,
) -> tuple[str, dict[str, str]]:
    """One eval call as the plugin sends it with ``store = true``: (id, its metadata)."""
    metadata = {**(extra or {}), META_EVAL: eval_name, META_CASE: case_id}
    messages: list[ChatCompletionMessageParam] = [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": question},
    ]
    completion: ChatCompletion = client.chat.completions.create(
        model=model, messages=messages, store=True, metadata=metadata
    )
    return completion.id, metadata


def list_requests(server: FakeOpenAI) -> list[RecordedRequest]:
    return [r for r in server.requests if r.method == "GET" and r.path == "/v1/chat/completions"]


def query(request: RecordedRequest) -> dict[str, list[str]]:
    return urllib.parse.parse_qs(request.query)


@pytest.fixture
def stored(server: FakeOpenAI, client: openai.OpenAI) -> dict[str, str]:
    """The run: the teacher on every case, the student failing one, a completion that is
    not an eval's, and one that was never stored; all tagged except ``nl``.
    Returns {"<eval>/<case>" or a label: completion id}."""
    for _, _, question, answer, _ in CASES:
        server.reply(answer, model=TEACHER, contains=question)
    server.reply("Lyon", model=STUDENT)
    ids: dict[str, str] = {}
    tags: list[tuple[str, dict[str, str]]] = []
    for eval_name, case_id, question, _, verdict in CASES:
        completion_id, metadata = call(
            client, eval_name, case_id, question, extra={"suite": "nightly"}
        )
        ids[f"{eval_name}/{case_id}"] = completion_id
        if verdict is not None:
            tags.append((completion_id, {**metadata, META_VERDICT: verdict}))
    student_id, metadata = call(client, "geo", "fr", "Capital of France?", model=STUDENT)
    ids["student"] = student_id
    tags.append((student_id, {**metadata, META_VERDICT: "failed"}))
    other: ChatCompletion = client.chat.completions.create(
        model=TEACHER,
        messages=[{"role": "user", "content": "not an eval"}],
        store=True,
        metadata={"app": "chatbot", META_VERDICT: "passed"},
    )
    ids["other"] = other.id
    client.chat.completions.create(
        model=TEACHER, messages=[{"role": "user", "content": "never stored"}]
    )
    assert tag_verdicts(client, tags) == []
    return ids


def test_tag_verdicts_sends_the_full_metadata_map(
    server: FakeOpenAI, stored: dict[str, str]
) -> None:
    by_id = {c["id"]: c for c in server.stored_completions}
    assert len(by_id) == len(CASES) + 2  # the unstored call is not there
    assert by_id[stored["geo/fr"]]["metadata"] == {
        "suite": "nightly",
        META_EVAL: "geo",
        META_CASE: "fr",
        META_VERDICT: "passed",
    }
    assert by_id[stored["geo/it"]]["metadata"][META_VERDICT] == "failed"
    assert META_VERDICT not in by_id[stored["geo/nl"]]["metadata"]
    updates = [
        r for r in server.requests if r.method == "POST" and r.path != "/v1/chat/completions"
    ]
    assert len(updates) == 7
    assert all(set(r.body) == {"metadata"} for r in updates)


def test_passing_teacher_answers_become_the_sft_set(
    server: FakeOpenAI, client: openai.OpenAI, stored: dict[str, str]
) -> None:
    before = len(server.requests)
    records = stored_records(client, evals=["geo"], model=TEACHER, verdict="passed")
    assert [(r.eval, r.case_id, r.status, r.output) for r in records] == [
        ("geo", "fr", "passed", "Paris"),
        ("geo", "de", "passed", "Berlin"),
        ("geo", "es", "passed", "Madrid"),
    ]
    fr = records[0]
    assert fr.nodeid == f"stored::{stored['geo/fr']}"
    assert (fr.model, fr.sample, fr.calls) == (TEACHER, 0, 1)
    assert fr.input == prompt("Capital of France?")
    assert [(g.name, g.score, g.passed) for g in fr.grades] == [("stored_verdict", 1.0, True)]
    assert fr.score == 1.0
    assert fr.usage.prompt_tokens > 0
    # All three filters went to the server: one list request, one messages request each.
    (listing,) = list_requests(server)[-1:]
    assert query(listing) == {
        "limit": ["100"],
        "order": ["asc"],
        "model": [TEACHER],
        f"metadata[{META_VERDICT}]": ["passed"],
        f"metadata[{META_EVAL}]": ["geo"],
    }
    assert len(server.requests) - before == 1 + len(records)

    training = training_data.sft(records, Selection(teacher=TEACHER, holdout_fraction=0.0))
    assert training.examples == [
        {"messages": [*prompt(q), {"role": "assistant", "content": a}]}
        for q, a in (  # sorted by case id
            ("Capital of Germany?", "Berlin"),
            ("Capital of Spain?", "Madrid"),
            ("Capital of France?", "Paris"),
        )
    ]
    assert training.case_ids == ["de", "es", "fr"]
    assert training.evals == ["geo"]


def test_every_verdict_is_read_and_only_passing_ones_are_trained_on(
    server: FakeOpenAI, client: openai.OpenAI, stored: dict[str, str]
) -> None:
    records = stored_records(client, page_size=2)  # 9 stored completions: 5 pages
    listings = list_requests(server)
    assert len(listings) == 5
    assert [query(r).get("after") for r in listings][:2] == [None, [stored["geo/de"]]]
    assert all("metadata[modelopt_eval]" not in query(r) for r in listings)
    by_case = {(r.eval, r.model, r.case_id): r for r in records}
    assert sorted(by_case) == sorted(
        [(e, TEACHER, c) for e, c, _, _, v in CASES if v is not None] + [("geo", STUDENT, "fr")]
    )
    assert records.skipped == {
        "no verdict tag (modelopt_verdict)": 1,
        "not made by an eval (no modelopt_eval / modelopt_case metadata)": 1,
    }
    failed = by_case[("geo", TEACHER, "it")]
    assert (failed.status, failed.output, failed.score) == ("failed", "Milan", 0.0)
    assert [(g.score, g.passed) for g in failed.grades] == [(0.0, False)]
    errored = by_case[("geo", TEACHER, "pt")]
    assert (errored.status, errored.grades, errored.score) == ("error", [], None)
    assert errored.error is not None
    assert errored.error.kind == "stored_verdict"
    student = by_case[("geo", STUDENT, "fr")]
    assert (student.status, student.output) == ("failed", "Lyon")

    training = training_data.sft(records, Selection(teacher=TEACHER, holdout_fraction=0.0))
    assert training.examples == [  # sorted by (eval, case): geo/de, geo/es, geo/fr, math/add
        {"messages": [*prompt(q), {"role": "assistant", "content": a}]}
        for q, a in (
            ("Capital of Germany?", "Berlin"),
            ("Capital of Spain?", "Madrid"),
            ("Capital of France?", "Paris"),
            ("What is 2+2?", "4"),
        )
    ]
    assert training.skipped == {"did not pass": 2}
    assert sorted(training.evals) == ["geo", "math"]


def test_eval_globs_are_matched_here_and_limit_stops_the_listing(
    server: FakeOpenAI, client: openai.OpenAI, stored: dict[str, str]
) -> None:
    records = stored_records(client, evals=["m*"], page_size=3)
    assert [(r.eval, r.case_id) for r in records] == [("math", "add")]
    assert all(f"metadata[{META_EVAL}]" not in query(r) for r in list_requests(server))
    assert records.skipped["another eval"] == 7  # the six geo calls and the student's

    assert len(stored_records(client, evals=["geo", "nope"], verdict="failed")) == 2
    assert [r.model for r in stored_records(client, model=STUDENT)] == [STUDENT]

    before = len(list_requests(server))
    limited = stored_records(client, limit=2, page_size=2)
    assert [r.case_id for r in limited] == ["fr", "de"]
    assert len(list_requests(server)) - before == 1  # the first page was enough


def test_untagged_completions_are_skipped_and_counted(
    server: FakeOpenAI, client: openai.OpenAI
) -> None:
    call(client, "geo", "fr", "Capital of France?")
    records = stored_records(client)
    assert list(records) == []
    assert records.skipped == {"no verdict tag (modelopt_verdict)": 1}
    (note,) = records.notes
    assert "1 no verdict tag" in note
    assert "store = true" in note


def test_samples_and_long_prompts_are_read_in_full(
    server: FakeOpenAI, client: openai.OpenAI
) -> None:
    messages: list[ChatCompletionMessageParam] = [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "one"},
        {"role": "assistant", "content": "two"},
        {"role": "user", "content": [{"type": "text", "text": "three"}]},
        {"role": "assistant", "content": "four"},
        {"role": "user", "content": "five?"},
    ]
    metadata = {META_EVAL: "chat", META_CASE: "c1", META_VERDICT: "passed"}
    for _ in range(2):  # samples=2: the same request twice
        client.chat.completions.create(
            model=TEACHER, messages=messages, store=True, metadata=metadata
        )
    records = stored_records(client, page_size=2)
    assert [r.sample for r in records] == [0, 1]
    assert records[0].nodeid != records[1].nodeid
    expected: list[dict[str, Any]] = [dict(m) for m in messages]
    expected[3]["content"] = [{"type": "text", "text": "three"}]
    assert records[0].input == expected
    pages = [r for r in server.requests if r.path.endswith("/messages")]
    assert len(pages) == 6  # 6 messages, 2 a page: 3 pages per completion
    training = training_data.sft(records, Selection(teacher=TEACHER, holdout_fraction=0.0))
    assert len(training.examples) == 1  # one example per case: its best sample
    assert training.examples[0]["messages"][-1] == {"role": "assistant", "content": "five?"}


def test_an_api_error_is_one_clear_error_without_the_key(
    server: FakeOpenAI, client: openai.OpenAI, stored: dict[str, str]
) -> None:
    server.stored_completions_fault(
        401, f"Incorrect API key provided: {TEST_KEY}.", code="invalid_api_key"
    )
    with pytest.raises(StoredCompletionsError) as excinfo:
        stored_records(client)
    message = str(excinfo.value)
    assert TEST_KEY not in message
    assert "SECRET" not in message
    assert message.startswith("listing stored chat completions failed (auth): HTTP 401")
    assert "OPENAI_API_KEY" in message
    assert "allowed to read stored chat completions" in message
    assert message.count("OPENAI_API_KEY") == 1
    assert excinfo.value.__cause__ is None  # the SDK exception (and its request) is not chained

    server.stored_completions_fault(403, "Missing scopes: api.model.read", action="messages")
    with pytest.raises(StoredCompletionsError, match="input messages of stored completion"):
        stored_records(client)

    server.stored_completions_fault(500, "The server had an error")
    with pytest.raises(StoredCompletionsError, match="try again later"):
        stored_records(client)


def test_a_server_without_stored_completions_says_so(
    server: FakeOpenAI, client: openai.OpenAI
) -> None:
    server.stored_completions_enabled = False
    with pytest.raises(StoredCompletionsError) as excinfo:
        stored_records(client)
    message = str(excinfo.value)
    assert "(not_found): HTTP 404" in message
    assert "OPENAI_BASE_URL" in message
    assert "store = true" in message
    warnings = tag_verdicts(client, [("chatcmpl-x", {META_VERDICT: "passed"})])
    assert len(warnings) == 1
    assert "could not tag stored completion chatcmpl-x (not_found)" in warnings[0]


def test_tag_verdicts_collects_failures_as_warnings(
    server: FakeOpenAI, client: openai.OpenAI
) -> None:
    ids = [call(client, "geo", f"c{i}", f"question {i}")[0] for i in range(4)]
    server.stored_completions_fault(
        401, f"Incorrect API key provided: {TEST_KEY}.", code="invalid_api_key"
    )
    tags = [
        (ids[0], {META_VERDICT: "passed"}),
        ("chatcmpl-missing", {META_VERDICT: "passed"}),
        (ids[1], {f"k{i}": "v" for i in range(17)}),  # over OpenAI's 16 pairs
        (ids[2], {META_VERDICT: "failed"}),
        (ids[3], {META_VERDICT: "error"}),
    ]
    warnings = tag_verdicts(client, tags, concurrency=1)  # one at a time: the fault hits ids[0]
    assert len(warnings) == 3
    assert all("\n" not in w for w in warnings)
    assert warnings[0].startswith(f"could not tag stored completion {ids[0]} (auth): HTTP 401")
    assert TEST_KEY not in warnings[0]
    assert "write (update) stored chat completions" in warnings[0]
    assert warnings[1].startswith("could not tag stored completion chatcmpl-missing (not_found)")
    assert warnings[2].startswith(f"could not tag stored completion {ids[1]} (bad_request)")
    verdicts = {c["id"]: c["metadata"].get(META_VERDICT) for c in server.stored_completions}
    assert verdicts == {ids[0]: None, ids[1]: None, ids[2]: "failed", ids[3]: "error"}
    assert tag_verdicts(client, []) == []


def test_tagging_many_runs_concurrently(server: FakeOpenAI, client: openai.OpenAI) -> None:
    ids = [call(client, "geo", f"c{i}", f"question {i}")[0] for i in range(20)]
    tags = [
        (completion_id, {META_EVAL: "geo", META_CASE: f"c{n}", META_VERDICT: "passed"})
        for n, completion_id in enumerate(ids)
    ]
    assert tag_verdicts(client, tags, concurrency=8) == []
    records = stored_records(client, verdict="passed")
    assert [r.case_id for r in records] == [f"c{i}" for i in range(20)]


def test_bad_arguments_are_rejected(client: openai.OpenAI) -> None:
    with pytest.raises(ValueError, match="verdict must be one of"):
        stored_records(client, verdict="pass")
    with pytest.raises(ValueError, match="page_size"):
        stored_records(client, page_size=101)
    with pytest.raises(ValueError, match="limit"):
        stored_records(client, limit=-1)
    assert list(stored_records(client, limit=0)) == []


def test_a_dated_snapshot_counts_as_the_model_asked_for(
    server: FakeOpenAI, client: openai.OpenAI
) -> None:
    server.chat_snapshots = {TEACHER: f"{TEACHER}-2025-04-14"}
    server.reply("Paris")
    for model in (TEACHER, f"{TEACHER}-nano"):  # a longer name is another model
        completion_id, metadata = call(client, "geo", "fr", "Capital of France?", model=model)
        assert tag_verdicts(client, [(completion_id, {**metadata, META_VERDICT: "passed"})]) == []
    (record,) = stored_records(client, model=TEACHER)
    assert (record.model, record.note) == (TEACHER, f"stored completion of {TEACHER}-2025-04-14")
    training = training_data.sft([record], Selection(teacher=TEACHER, holdout_fraction=0.0))
    assert len(training.examples) == 1
    unfiltered = {r.model for r in stored_records(client)}
    assert unfiltered == {f"{TEACHER}-2025-04-14", f"{TEACHER}-nano"}
