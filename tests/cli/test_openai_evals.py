"""``modelopt import openai-evals`` / ``modelopt export openai-evals``: OpenAI's hosted
evals, as exported, become projects that ``pytest`` runs here, and back.

Every input is built from the schemas of OpenAI's published spec and checked against them
(``tests/support/openapi.py``), so the importer is tested on what the API returned, not on
our idea of it. The projects run against the local fake OpenAI server.
"""

from __future__ import annotations

import ast
import copy
import json
import re
from typing import TYPE_CHECKING, Any

import pytest

from pytest_modelopt import graders
from pytest_modelopt.collect.prompts import load_prompt
from tests.support import openapi
from tests.support.cli import modelopt

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from tests.support.fake_openai import FakeOpenAI

ITEMS = [
    {"id": "t01", "ticket": "I was charged twice for order 48213.", "category": "billing"},
    {"id": "t02", "ticket": "The app crashes when I open settings.", "category": "bug"},
    {"id": "t03", "ticket": "My parcel has not arrived.", "category": "shipping"},
]
ITEM_SCHEMA = {
    "type": "object",
    "properties": {"ticket": {"type": "string"}, "category": {"type": "string"}},
    "required": ["ticket", "category"],
}
PYTHON_SOURCE = (
    "def grade(sample, item) -> float:\n"
    "    return 1.0 if item['category'] in sample['output_text'].lower() else 0.0\n"
)
STRING_CHECK = {
    "name": "category",
    "type": "string_check",
    "input": "{{ sample.output_text }}",
    "reference": "{{ item.category }}",
    "operation": "ilike",
}
PYTHON = {
    "type": "python",
    "name": "names the category",
    "source": PYTHON_SOURCE,
    "pass_threshold": 1.0,
}
TEXT_SIMILARITY = {
    "type": "text_similarity",
    "name": "close to the label",
    "input": "{{ sample.output_text }}",
    "reference": "{{ item.category }}",
    "pass_threshold": 0.8,
    "evaluation_metric": "fuzzy_match",
}
SCORE_MODEL = {
    "type": "score_model",
    "name": "judge",
    "model": "gpt-4.1",
    "input": [{"role": "user", "content": "Rate 1-10: {{ sample.output_text }}"}],
    "range": [1, 10],
    "pass_threshold": 7,
    "sampling_params": {"temperature": 0},
}
LABEL_MODEL = {
    "type": "label_model",
    "name": "tone",
    "model": "gpt-4.1-mini",
    "input": [{"role": "user", "content": "Tone of: {{ sample.output_text }}"}],
    "labels": ["polite", "rude"],
    "passing_labels": ["polite"],
}
MULTI = {
    "type": "multi",
    "name": "both",
    "graders": {
        "exact": STRING_CHECK,
        "py": {k: v for k, v in PYTHON.items() if k != "pass_threshold"},
    },
    "calculate_output": "(exact + py) / 2",
}


def an_eval(criteria: list[dict[str, Any]], config: dict[str, Any] | None = None) -> dict[str, Any]:
    """An ``Eval`` object as GET /v1/evals/{eval_id} returned it."""
    body = {
        "object": "eval",
        "id": "eval_67abd54d9b0081909a86353f6fb9317a",
        "name": "Ticket triage",
        "data_source_config": config
        or {
            "type": "custom",
            "schema": {
                "type": "object",
                "properties": {"item": ITEM_SCHEMA, "sample": {"type": "object"}},
                "required": ["item", "sample"],
            },
        },
        "testing_criteria": criteria,
        "created_at": 1739314509,
        "metadata": {"team": "support"},
    }
    if openapi.spec_available():
        openapi.validate_response("Eval", body)
    return body


def a_run(data_source: dict[str, Any]) -> dict[str, Any]:
    """An ``EvalRun`` object as GET /v1/evals/{eval_id}/runs/{run_id} returned it."""
    body = {
        "object": "eval.run",
        "id": "evalrun_67e57965b480819094274e3a32235e4c",
        "eval_id": "eval_67abd54d9b0081909a86353f6fb9317a",
        "report_url": "https://platform.openai.com/evaluations/eval_67abd54d9b0081909a86353f6fb9317a",
        "status": "completed",
        "model": data_source.get("model", ""),
        "name": "triage run",
        "created_at": 1743092069,
        "result_counts": {"total": 3, "errored": 0, "failed": 0, "passed": 3},
        "per_model_usage": [],
        "per_testing_criteria_results": [],
        "data_source": data_source,
        "metadata": {},
        "error": {"code": "", "message": ""},
    }
    if openapi.spec_available():
        openapi.validate_response("EvalRun", body)
    return body


def template(kind: str = "completions", **extra: Any) -> dict[str, Any]:
    """A ``completions`` or ``responses`` run data source with an inline item list."""
    return {
        "type": kind,
        "model": "gpt-4.1-mini",
        "input_messages": {
            "type": "template",
            "template": [
                {
                    "role": "system",
                    "content": "Classify the ticket as billing, bug or shipping. One word.",
                },
                {
                    "type": "message",
                    "role": "user",
                    "content": {"type": "input_text", "text": "{{ item.ticket }}"},
                },
            ],
        },
        "sampling_params": {"temperature": 0, "max_completion_tokens": 5, "top_p": 1},
        "source": {"type": "file_content", "content": [{"item": item} for item in ITEMS]},
        **extra,
    }


def write(root: Path, name: str, body: Any) -> str:
    path = root / "export" / name
    path.parent.mkdir(exist_ok=True)
    if name.endswith(".jsonl"):
        path.write_text("".join(json.dumps(line) + "\n" for line in body))
    else:
        path.write_text(json.dumps(body, indent=2))
    return str(path.relative_to(root))


def files(root: Path) -> dict[str, Any]:
    """The project's files; JSON as values (a score written 7 comes back 7.0: equal)."""
    evals = root / "tests" / "evals"
    out: dict[str, Any] = {}
    for path in sorted(evals.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            text = path.read_text()
            if path.suffix == ".json":
                text = json.loads(text)
            elif path.suffix == ".jsonl":
                text = [json.loads(line) for line in text.splitlines()]
            out[path.relative_to(evals).as_posix()] = text
    return out


def answer_categories(server: FakeOpenAI) -> None:
    for item in ITEMS:
        server.reply(str(item["category"]).capitalize(), contains=str(item["ticket"])[:12])


def test_an_eval_and_its_run_become_a_project_that_pytest_runs(
    pytester: pytest.Pytester, server: FakeOpenAI, mode: list[str]
) -> None:
    root = pytester.path
    paths = [
        write(root, "eval.json", an_eval([STRING_CHECK, PYTHON])),
        write(root, "run.json", a_run(template())),
    ]
    done = modelopt(root, "import", "openai-evals", *paths)
    assert done.returncode == 0, done.stderr
    assert "everything carried over" in done.stdout
    assert "3 items, 2 graders, models: gpt-4.1-mini" in done.stdout
    written = {p.relative_to(root / "tests/evals").as_posix(): p.read_text()
               for p in (root / "tests/evals").rglob("*") if p.is_file()}  # fmt: skip
    assert sorted(written) == [
        "data/ticket_triage.jsonl",
        "graders/ticket_triage.json",
        "openai/ticket_triage.json",
        "prompts/ticket_triage.yaml",
        "test_ticket_triage.py",
    ]
    # the criteria byte for byte as exported, the items as rows with their ids
    assert json.loads(written["graders/ticket_triage.json"]) == [STRING_CHECK, PYTHON]
    rows = [json.loads(line) for line in written["data/ticket_triage.jsonl"].splitlines()]
    assert rows == ITEMS
    assert "content: '{{ item.ticket }}'" in written["prompts/ticket_triage.yaml"]

    answer_categories(server)
    result = pytester.runpytest("-p", "no:cacheprovider", "-rs", *mode)
    text = result.stdout.str()
    assert result.ret == 0, text
    assert result.parseoutcomes() == {"passed": 3}
    assert re.search(r"test_ticket_triage +gpt-4\.1-mini +100\.0%", text), text
    requests = [r for r in server.requests if r.path == "/v1/chat/completions"]
    assert len(requests) == 3
    sent = requests[0].body
    assert (sent["temperature"], sent["max_completion_tokens"]) == (0, 5)
    assert sent["messages"][1]["content"] in {str(item["ticket"]) for item in ITEMS}


@pytest.mark.parametrize(
    "criterion",
    [STRING_CHECK, PYTHON, TEXT_SIMILARITY, SCORE_MODEL, LABEL_MODEL, MULTI],
    ids=lambda c: c["type"],
)
def test_every_grader_type_is_carried_over_byte_for_byte(
    tmp_path: Path, criterion: dict[str, Any]
) -> None:
    if criterion["type"] == "multi":  # the Eval object's criteria do not list multi graders
        body = an_eval([STRING_CHECK])
        body["testing_criteria"] = [criterion]
        if openapi.spec_available():
            # the spec's GraderMulti says `graders` is one grader, where OpenAI's graders
            # guide (and tests/unit/graders/test_multi.py) has a map of named graders
            openapi.validate_response("GraderStringCheck", criterion["graders"]["exact"])
            openapi.validate_response("GraderPython", criterion["graders"]["py"])
    else:
        body = an_eval([criterion])
    done = modelopt(tmp_path, "import", "openai-evals", write(tmp_path, "eval.json", body),
                    write(tmp_path, "run.json", a_run(template())))  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert graders.from_openai(criterion).to_openai() == criterion
    kept = (tmp_path / "tests/evals/graders/ticket_triage.json").read_text()
    assert kept == json.dumps([criterion], indent=2) + "\n"
    assert "everything carried over" in done.stdout


def test_what_cannot_be_carried_over_is_reported_and_marked_as_skipped_tests(
    pytester: pytest.Pytester, server: FakeOpenAI
) -> None:
    root = pytester.path
    unknown = {"type": "endpoint", "name": "our service", "url": "https://grader.example"}
    run = template()
    run["sampling_params"] = {**run["sampling_params"], "logit_bias": {"50256": -100}}
    image = {"type": "input_image", "image_url": "{{ item.photo }}", "detail": "low"}
    audio = {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "mp3"}}
    text = {"type": "input_text", "text": "{{ item.ticket }}"}
    run["input_messages"]["template"][1]["content"] = [text, image, audio]
    items = [{**item, "photo": f"https://img.example/{item['id']}.png"} for item in ITEMS]
    run["source"]["content"] = [{"item": item} for item in items]
    body = an_eval([STRING_CHECK])
    body["testing_criteria"].append(unknown)  # a type the spec does not know either
    paths = [
        write(root, "eval.json", body),
        write(root, "run.json", a_run(run)),
    ]
    done = modelopt(root, "import", "openai-evals", *paths)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "not carried over (3; each a skipped test in the module):" in out
    assert (
        "testing_criteria[1]: grader 'our service' (endpoint): unknown grader type 'endpoint'"
        in out
    )
    assert "input_messages.template[1].content[2]: an input_audio part" in out
    assert "sampling_params.logit_bias" in out
    prompt = (root / "tests/evals/prompts/ticket_triage.yaml").read_text()
    assert "image_url: '{{ item.photo }}'" in prompt  # the image part is carried over

    answer_categories(server)
    result = pytester.runpytest("-p", "no:cacheprovider", "-p", "no:xdist", "-rs")
    text = result.stdout.str()
    assert result.parseoutcomes() == {"passed": 3, "skipped": 3}, text
    assert "not carried over: export/eval.json: testing_criteria[1]" in text
    images = [r.body["messages"][1]["content"][1] for r in server.requests]
    assert {
        "type": "image_url",
        "image_url": {"url": "https://img.example/t01.png", "detail": "low"},
    } in images


def test_a_responses_run_becomes_a_responses_prompt(
    pytester: pytest.Pytester, server: FakeOpenAI
) -> None:
    root = pytester.path
    run = template("responses")
    run["sampling_params"]["seed"] = 42
    paths = [write(root, "eval.json", an_eval([STRING_CHECK])), write(root, "run.json", a_run(run))]
    done = modelopt(root, "import", "openai-evals", *paths)
    assert done.returncode == 0, done.stderr
    assert "sampling_params.seed: seed 42: the Responses API takes no seed" in done.stdout
    assert (
        (root / "tests/evals/prompts/ticket_triage.yaml").read_text().startswith("api: responses\n")
    )
    answer_categories(server)
    result = pytester.runpytest("-p", "no:cacheprovider", "-p", "no:xdist")
    assert result.parseoutcomes() == {"passed": 3, "skipped": 1}, result.stdout.str()
    assert {r.path for r in server.requests} == {"/v1/responses"}
    assert server.requests[0].body["max_output_tokens"] == 5


def test_a_jsonl_run_grades_the_samples_it_holds_without_calling_a_model(
    pytester: pytest.Pytester, server: FakeOpenAI
) -> None:
    root = pytester.path
    content = [
        {"item": item, "sample": {"output_text": str(item["category"]), "model": "gpt-4o"}}
        for item in ITEMS
    ]
    content[2]["sample"]["output_text"] = "billing"  # a wrong stored answer
    run = a_run({"type": "jsonl", "source": {"type": "file_content", "content": content}})
    paths = [write(root, "eval.json", an_eval([STRING_CHECK])), write(root, "run.json", run)]
    done = modelopt(root, "import", "openai-evals", *paths)
    assert done.returncode == 0, done.stderr
    assert not (root / "tests/evals/prompts").exists()
    result = pytester.runpytest("-p", "no:cacheprovider", "-p", "no:xdist")
    assert result.parseoutcomes() == {"passed": 2, "failed": 1}, result.stdout.str()
    assert server.requests == []


def test_items_in_a_jsonl_file_fill_a_run_whose_file_was_on_the_platform(tmp_path: Path) -> None:
    run = template()
    run["source"] = {"type": "file_id", "id": "file-9GYS6xbkWgWhmE7VoLUWFg"}
    listed = {  # GET /v1/evals: a list of Eval objects
        "object": "list",
        "data": [an_eval([STRING_CHECK])],
        "first_id": "eval_67abd54d9b0081909a86353f6fb9317a",
        "last_id": "eval_67abd54d9b0081909a86353f6fb9317a",
        "has_more": False,
    }
    if openapi.spec_available():
        openapi.validate_response("EvalList", listed)
    paths = [
        write(tmp_path, "evals.json", listed),
        write(tmp_path, "run.json", a_run(run)),
        write(tmp_path, "items.jsonl", [{"item": item} for item in ITEMS]),
    ]
    done = modelopt(tmp_path, "import", "openai-evals", *paths)
    assert done.returncode == 0, done.stderr
    assert "everything carried over" in done.stdout
    rows = (tmp_path / "tests/evals/data/ticket_triage.jsonl").read_text().splitlines()
    assert [json.loads(row) for row in rows] == ITEMS


@pytest.mark.parametrize(
    ("config", "source", "gap"),
    [
        ({"type": "logs", "schema": {"type": "object"}}, {"type": "responses", "model": "gpt-4o"},
         "a 'responses' source (the items are logged model calls)"),
        ({"type": "stored_completions", "schema": {"type": "object"}},
         {"type": "stored_completions", "model": "gpt-4o"},
         "a 'stored_completions' source (the items are logged model calls)"),
    ],
    ids=["logs", "stored_completions"],
)  # fmt: skip
def test_logged_data_sources_are_reported_with_what_to_do(
    pytester: pytest.Pytester, config: dict[str, Any], source: dict[str, Any], gap: str
) -> None:
    root = pytester.path
    run = template("responses" if source["type"] == "responses" else "completions")
    run["source"] = source
    paths = [
        write(root, "eval.json", an_eval([STRING_CHECK], config)),
        write(root, "run.json", a_run(run)),
    ]
    done = modelopt(root, "import", "openai-evals", *paths)
    assert done.returncode == 0, done.stderr
    assert gap in done.stdout
    assert "export them as JSONL items and pass the file beside this run" in done.stdout
    assert f"a {config['type']!r} data source" in done.stdout
    result = pytester.runpytest("-p", "no:cacheprovider", "-p", "no:xdist", "-rs")
    assert "skipped" in result.parseoutcomes(), result.stdout.str()


@pytest.mark.parametrize("kind", ["completions", "responses"])
def test_item_reference_runs_send_each_items_own_messages(
    pytester: pytest.Pytester, server: FakeOpenAI, kind: str
) -> None:
    root = pytester.path
    run = template(kind)
    run["input_messages"] = {"type": "item_reference", "item_reference": "item.input"}
    messages = [{"role": "user", "content": str(item["ticket"])} for item in ITEMS]
    items = [{**item, "input": [m]} for item, m in zip(ITEMS, messages, strict=True)]
    run["source"]["content"] = [{"item": item} for item in items]
    paths = [write(root, "eval.json", an_eval([STRING_CHECK])), write(root, "run.json", a_run(run))]
    done = modelopt(root, "import", "openai-evals", *paths)
    assert done.returncode == 0, done.stderr
    assert "everything carried over" in done.stdout
    assert not (root / "tests/evals/prompts").exists()
    answer_categories(server)
    result = pytester.runpytest("-p", "no:cacheprovider", "-p", "no:xdist")
    assert result.parseoutcomes() == {"passed": 3}, result.stdout.str()
    sent = [r.body for r in server.requests]
    if kind == "responses":
        assert {r.path for r in server.requests} == {"/v1/responses"}
        assert sorted(b["input"][0]["content"] for b in sent) == sorted(
            m["content"] for m in messages
        )
        assert {b["max_output_tokens"] for b in sent} == {5}
    else:
        assert sorted(b["messages"][0]["content"] for b in sent) == sorted(
            m["content"] for m in messages
        )
        assert {b["max_completion_tokens"] for b in sent} == {5}


def test_an_eval_with_items_and_no_run_is_pending_until_its_prompt_is_written(
    pytester: pytest.Pytester,
) -> None:
    root = pytester.path
    paths = [write(root, "eval.json", an_eval([STRING_CHECK])), write(root, "items.jsonl", ITEMS)]
    done = modelopt(root, "import", "openai-evals", *paths)
    assert done.returncode == 0, done.stderr
    assert "no prompt or model to carry over: write prompts/ticket_triage.yaml" in done.stdout
    pytester.makepyprojecttoml('[tool.modelopt]\nmodels = ["gpt-4.1-mini"]\n')
    result = pytester.runpytest("-p", "no:cacheprovider", "-p", "no:xdist")
    assert result.parseoutcomes() == {"pending": 3, "skipped": 1}, result.stdout.str()


def _set(body: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    body = copy.deepcopy(body)
    node: Any = body
    keys = [int(k) if k.isdigit() else k for k in path.split(".")]
    for key in keys[:-1]:
        node = node[key]
    node[keys[-1]] = value
    return body


GOOD_EVAL = {k: v for k, v in an_eval([STRING_CHECK]).items()}
GOOD_RUN = a_run(template())


@pytest.mark.parametrize(
    ("name", "body", "message"),
    [
        ("eval.json", "{not json", "eval.json: line 1: not JSON (Expecting property name"),
        ("eval.json", {"object": "file"},
         "eval.json: neither an eval nor an eval run; pass an Eval object"),
        ("eval.json", _set(GOOD_EVAL, "data_source_config.type", "sql"),
         "eval.json: data_source_config.type: 'sql' is not one of custom, logs, "
         "stored_completions"),
        ("eval.json", _set(GOOD_EVAL, "testing_criteria", {"type": "string_check"}),
         "eval.json: testing_criteria: must be a list, got an object"),
        ("eval.json", _set(GOOD_EVAL, "testing_criteria.0", "exact"),
         "eval.json: testing_criteria[0]: must be a grader object with a 'type', got a string"),
        ("eval.json", _set(GOOD_EVAL, "data_source_config.schema", "label: string"),
         "eval.json: data_source_config.schema: must be an object, got a string"),
        ("eval.json", _set(GOOD_EVAL, "data_source_config.schema.properties.item.type", 7),
         "eval.json: data_source_config.schema.properties.item: not a JSON Schema (7 is not"),
        ("run.json", _set(GOOD_RUN, "data_source.type", "batch"),
         "run.json: data_source.type: 'batch' is not one of completions, responses, jsonl"),
        ("run.json", _set(GOOD_RUN, "data_source.source.content", {"item": {}}),
         "run.json: data_source.source.content: must be a list, got an object"),
        ("run.json", _set(GOOD_RUN, "data_source.source.content.1", {"sample": {}}),
         "run.json: data_source.source.content[1].item: missing or not an object"),
        ("run.json", _set(GOOD_RUN, "data_source.input_messages.template.0.role", "robot"),
         "run.json: data_source.input_messages.template[0].role: 'robot' is not one of system"),
        ("run.json", _set(GOOD_RUN, "data_source.source.content.2.item.ticket", 7),
         "run.json: item 3.ticket: 7 is not of type 'string'; fix the item, or the item_schema"),
        ("run.json", _set(GOOD_RUN, "data_source.input_messages",
                          {"type": "item_reference", "item_reference": "sample.input"}),
         "run.json: data_source.input_messages.item_reference: 'sample.input' is not a path in "
         "the item; write it as item.FIELD"),
        ("items.jsonl", [ITEMS[0], "t02"], "items.jsonl: line 2: must be an object, got a string"),
    ],
    ids=lambda v: v if isinstance(v, str) and len(v) < 12 else None,
)  # fmt: skip
def test_malformed_input_is_one_clear_error_and_nothing_is_written(
    tmp_path: Path, name: str, body: Any, message: str
) -> None:
    inputs = {"eval.json": GOOD_EVAL, "run.json": GOOD_RUN}
    paths = [write(tmp_path, n, b) for n, b in inputs.items() if n != name]
    if isinstance(body, str) and not name.endswith(".jsonl"):
        (tmp_path / "export" / name).write_text(body)
        paths.append(f"export/{name}")
    else:
        paths.append(write(tmp_path, name, body))
    done = modelopt(tmp_path, "import", "openai-evals", *paths)
    assert done.returncode == 2
    assert message in done.stderr, done.stderr
    schema = {"eval.json": "Eval", "run.json": "EvalRun"}.get(name)
    # an item schema that is no JSON Schema, an item that does not match it, a reference
    # outside the item: the spec leaves them free-form, the import checks them as the
    # platform did
    beyond_spec = any(s in message for s in ("JSON Schema", "item_schema", "not a path"))
    spec_rules = schema and isinstance(body, dict) and not beyond_spec
    if spec_rules and openapi.spec_available():  # what the import refuses, the spec does too
        with pytest.raises(AssertionError, match="does not match the OpenAI OpenAPI spec"):
            openapi.validate_response(str(schema), body)
    assert done.stderr.count("\n") == 1
    assert done.stderr.rstrip().endswith("nothing was written")
    assert not (tmp_path / "tests").exists()


def test_without_an_eval_object_the_import_says_what_to_pass(tmp_path: Path) -> None:
    done = modelopt(tmp_path, "import", "openai-evals", write(tmp_path, "run.json", GOOD_RUN))
    assert done.returncode == 2
    assert "run.json: no Eval object among the inputs; pass the eval's JSON" in done.stderr


@pytest.mark.parametrize("kind", ["completions", "responses"])
def test_export_writes_request_bodies_and_import_of_export_is_the_identity(
    tmp_path: Path, kind: str
) -> None:
    second_run = template(kind)
    second_run["model"] = "gpt-4.1"
    first = tmp_path / "first"
    first.mkdir()
    paths = [
        write(
            first,
            "eval.json",
            an_eval([STRING_CHECK, PYTHON, TEXT_SIMILARITY, SCORE_MODEL, LABEL_MODEL]),
        ),
        write(first, "run.json", a_run(template(kind))),
        write(first, "run2.json", a_run(second_run)),
    ]
    assert modelopt(first, "import", "openai-evals", *paths).returncode == 0
    done = modelopt(
        first, "export", "openai-evals", "tests/evals/test_ticket_triage.py", "-o", "out"
    )
    assert done.returncode == 0, done.stderr
    out = first / "out" / "ticket_triage"
    assert sorted(p.name for p in out.iterdir()) == ["eval.json", "run-1.json", "run-2.json"]
    eval_body = json.loads((out / "eval.json").read_text())
    runs = [json.loads((out / f"run-{n}.json").read_text()) for n in (1, 2)]
    assert eval_body["name"] == "Ticket triage"
    assert eval_body["data_source_config"]["item_schema"] == ITEM_SCHEMA
    assert [r["data_source"]["model"] for r in runs] == ["gpt-4.1-mini", "gpt-4.1"]
    if openapi.spec_available():
        openapi.validate_request("/evals", eval_body)
        for run in runs:
            openapi.validate_request("/evals/eval_1/runs", run)

    second = tmp_path / "second"
    second.mkdir()
    exported = [str(p) for p in sorted(out.iterdir())]
    again = modelopt(second, "import", "openai-evals", *exported)
    assert again.returncode == 0, again.stderr
    assert files(second) == files(first)


def test_export_of_a_hand_written_eval_names_the_fields_as_openai_does(project: Any) -> None:
    project.pytester.makepyfile(
        test_triage="""
import pytest
from pytest_modelopt import graders

@pytest.mark.eval(prompt="prompts/triage.yaml", dataset="data/triage.jsonl", models=["m1"],
                  graders=[graders.string_check("{{ item.category }}", operation="ilike"),
                           graders.function(lambda sample, item: True, name="mine")])
def test_category(completion):
    pass
"""
    )
    (project.path / "prompts").mkdir()
    (project.path / "prompts/triage.yaml").write_text(
        "temperature: 0\nmax_tokens: 5\nmessages:\n  - role: user\n"
        "    content: 'Ticket: {{ ticket }} ({{ case.id }})'\n"
    )
    (project.path / "data").mkdir()
    (project.path / "data/triage.jsonl").write_text(json.dumps(ITEMS[0]) + "\n")
    done = project.modelopt("export", "openai-evals", "test_triage.py", "-o", "out")
    assert done.returncode == 0, done.stderr
    assert "not exported: test_triage.py::test_category: grader 'mine': " in done.stdout
    assert "is a Python function and has no OpenAI JSON form" in done.stdout
    out = project.path / "out/test_triage_test_category"
    [criterion] = json.loads((out / "eval.json").read_text())["testing_criteria"]
    assert criterion["type"] == "string_check"
    run = json.loads((out / "run-1.json").read_text())
    source = run["data_source"]
    assert source["input_messages"]["template"] == [
        {"role": "user", "content": "Ticket: {{ item.ticket }} ({{ item.id }})"}
    ]
    assert source["sampling_params"] == {"temperature": 0, "max_completion_tokens": 5}
    assert source["source"]["content"] == [{"item": ITEMS[0]}]
    if openapi.spec_available():
        openapi.validate_request("/evals/eval_1/runs", run)


def test_text_from_the_export_cannot_break_or_inject_into_the_generated_module(
    tmp_path: Path,
) -> None:
    body = an_eval([STRING_CHECK])
    body["name"] = 'triage"""\nimport os  # \\'
    body["testing_criteria"].append({"type": "endpoint", "name": 'x"""); import os; ("'})
    paths = [write(tmp_path, "eval.json", body), write(tmp_path, "run.json", GOOD_RUN)]
    done = modelopt(tmp_path, "import", "openai-evals", *paths)
    assert done.returncode == 0, done.stderr
    [module] = (tmp_path / "tests/evals").glob("test_*.py")
    assert module.name == "test_triage_import_os.py"
    tree = ast.parse(module.read_text())
    assert not [n for n in ast.walk(tree) if isinstance(n, ast.Import) and n.names[0].name == "os"]
    assert ast.get_docstring(tree).startswith(f"The OpenAI eval {body['name']!r}")  # type: ignore[union-attr]


def _item_reference_run() -> dict[str, Any]:
    run = template("responses")
    run["input_messages"] = {"type": "item_reference", "item_reference": "item.input"}
    items = [{**item, "input": [{"role": "user", "content": item["ticket"]}]} for item in ITEMS]
    run["source"]["content"] = [{"item": item} for item in items]
    return run


def _stored_samples_run() -> dict[str, Any]:
    content = [{"item": item, "sample": {"output_text": "x", "model": "gpt-4o"}} for item in ITEMS]
    return {"type": "jsonl", "source": {"type": "file_content", "content": content}}


@pytest.mark.parametrize(
    "data_source", [_item_reference_run(), _stored_samples_run()], ids=["item_reference", "jsonl"]
)
def test_runs_without_a_prompt_file_round_trip_too(
    tmp_path: Path, data_source: dict[str, Any]
) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    paths = [
        write(first, "eval.json", an_eval([STRING_CHECK])),
        write(first, "run.json", a_run(data_source)),
    ]
    assert modelopt(first, "import", "openai-evals", *paths).returncode == 0
    done = modelopt(
        first, "export", "openai-evals", "tests/evals/test_ticket_triage.py", "-o", "out"
    )
    assert done.returncode == 0, done.stderr
    assert "not exported" not in done.stdout
    exported = sorted((first / "out" / "ticket_triage").iterdir())
    for path in exported:
        if openapi.spec_available():
            endpoint = "/evals" if path.name == "eval.json" else "/evals/eval_1/runs"
            openapi.validate_request(endpoint, json.loads(path.read_text()))
    again = modelopt(second, "import", "openai-evals", *map(str, exported))
    assert again.returncode == 0, again.stderr
    assert files(second) == files(first)


#: prompt templates and how export writes them (qualified by jinja2's parser, not a pattern)
TEMPLATES = {
    "{{ ticket|upper }}": "{{ item.ticket|upper }}",
    "{% for x in tags %}{{ x }}{% endfor %}": "{% for x in item.tags %}{{ x }}{% endfor %}",
    '{{ "ticket" }}: {{ case.id }}': '{{ "ticket" }}: {{ item.id }}',
    "{{ item.ticket }}": "{{ item.ticket }}",
    "{{ sample.output_text }}": "{{ sample.output_text }}",
    "{%- if ticket is defined %} {{ ticket }}{% endif %}{% raw %}{{ ticket }}{% endraw %}": (
        "{%- if item.ticket is defined %} {{ item.ticket }}{% endif %}{% raw %}{{ ticket }}"
        "{% endraw %}"
    ),
}


def _prompt_file(project: Any, templates: Sequence[str]) -> None:
    project.pytester.makepyfile(
        test_triage="""
import pytest
from pytest_modelopt import graders

@pytest.mark.eval(prompt="prompts/triage.yaml", dataset="data/triage.jsonl", models=["m1"],
                  graders=[graders.string_check("{{ item.category }}", operation="ilike")])
def test_category(completion):
    pass
"""
    )
    (project.path / "prompts").mkdir()
    messages = [{"role": "user", "content": t} for t in templates]
    (project.path / "prompts/triage.yaml").write_text(json.dumps({"messages": messages}))
    (project.path / "data").mkdir()
    (project.path / "data/triage.jsonl").write_text(json.dumps({**ITEMS[0], "tags": ["a"]}) + "\n")


def test_export_qualifies_a_templates_case_fields_as_jinja2_parses_them(project: Any) -> None:
    _prompt_file(project, list(TEMPLATES))
    done = project.modelopt("export", "openai-evals", "test_triage.py", "-o", "out")
    assert done.returncode == 0, done.stderr
    run = json.loads((project.path / "out/test_triage_test_category/run-1.json").read_text())
    written = [m["content"] for m in run["data_source"]["input_messages"]["template"]]
    assert written == list(TEMPLATES.values())
    # each renders here as the original does (this package renders ``item`` as the case)
    case = {**ITEMS[0], "tags": ["a"]}
    for original, exported in TEMPLATES.items():
        if "sample" not in original:
            assert _rendered(project.path, exported, case) == _rendered(
                project.path, original, case
            )
    if openapi.spec_available():
        openapi.validate_request("/evals/eval_1/runs", run)


def _rendered(folder: Path, template: str, case: dict[str, Any]) -> str:
    path = folder / f"rendered-{len(list(folder.glob('rendered-*')))}.yaml"  # one a template
    path.write_text(json.dumps({"messages": [{"role": "user", "content": template}]}))
    [message] = load_prompt(path).render(case).messages
    return str(message["content"])


@pytest.mark.parametrize(
    ("template", "why"),
    [
        (
            "{{ x }}{% for x in tags %}{{ x }}{% endfor %}",
            "x is both a case field and a name the template binds",
        ),
        (
            "{% for x in items %}{{ x }}{% endfor %}",
            "the field 'items' would read as item.items, which is the mapping's method",
        ),
    ],
    ids=["bound_and_free", "mapping_method"],
)
def test_export_refuses_a_template_it_cannot_qualify_exactly(
    project: Any, template: str, why: str
) -> None:
    _prompt_file(project, ["{{ ticket }}", template])
    done = project.modelopt("export", "openai-evals", "test_triage.py", "-o", "out")
    assert done.returncode == 2
    assert done.stderr.startswith(
        "modelopt export openai-evals: test_triage.py::test_category: prompts/triage.yaml: "
        "message 2: cannot be written with OpenAI's item namespace: " + why
    ), done.stderr
    assert "write the case's fields as {{ item.NAME }} in the prompt file yourself" in done.stderr
    assert done.stderr.rstrip().endswith("nothing was written")
    assert not (project.path / "out").exists()


def test_an_import_over_its_own_files_is_refused_unless_forced(tmp_path: Path) -> None:
    paths = [
        write(tmp_path, "eval.json", an_eval([STRING_CHECK])),
        write(tmp_path, "run.json", a_run(template())),
    ]
    assert modelopt(tmp_path, "import", "openai-evals", *paths).returncode == 0
    written = files(tmp_path)
    graders_file = tmp_path / "tests/evals/graders/ticket_triage.json"
    graders_file.write_text("[]\n")  # a change of the user's, which only --force replaces
    (tmp_path / "tests/evals/test_mine.py").write_text("def test_mine(): pass\n")
    data_file = tmp_path / "tests/evals/data/ticket_triage.jsonl"
    data_file.unlink()  # what is missing counts for nothing: it is not overwritten

    done = modelopt(tmp_path, "import", "openai-evals", *paths)
    assert done.returncode == 2
    [message] = done.stderr.splitlines()
    assert message == (
        "modelopt import openai-evals: 4 of the files it would write exist in .: "
        "tests/evals/test_ticket_triage.py, tests/evals/graders/ticket_triage.json, "
        "tests/evals/prompts/ticket_triage.yaml, tests/evals/openai/ticket_triage.json; "
        "pass --force to overwrite them (and only them), or -o another folder; "
        "nothing was written"
    )
    assert graders_file.read_text() == "[]\n"
    assert not data_file.exists()

    forced = modelopt(tmp_path, "import", "openai-evals", *paths, "--force")
    assert forced.returncode == 0, forced.stderr
    assert "  replaced tests/evals/graders/ticket_triage.json" in forced.stdout
    assert "  wrote    tests/evals/data/ticket_triage.jsonl" in forced.stdout
    assert files(tmp_path) == {**written, "test_mine.py": "def test_mine(): pass\n"}


def test_export_names_runs_writes_one_per_sweep_value_and_reports_samples(project: Any) -> None:
    project.pytester.makepyfile(
        test_triage="""
import pytest
from pytest_modelopt import graders

GRADE = [graders.string_check("{{ item.category }}", operation="ilike")]

@pytest.mark.eval(prompt="prompts/triage.yaml", dataset="data/triage.jsonl",
                  models=["m1", "m2"], samples=3, graders=GRADE,
                  sweep={"temperature": [0, 0.7], "reasoning.effort": ["low", "high"]})
def test_category(completion):
    pass

@pytest.mark.eval(prompt="prompts/triage.yaml", dataset="data/triage.jsonl", models=["m1"],
                  graders=GRADE, sweep={"frequency_penalty": [0, 1]})
def test_penalty(completion):
    pass
"""
    )
    (project.path / "prompts").mkdir()
    (project.path / "prompts/triage.yaml").write_text(
        "max_tokens: 5\nmessages:\n  - role: user\n    content: '{{ ticket }}'\n"
    )
    (project.path / "data").mkdir()
    (project.path / "data/triage.jsonl").write_text(json.dumps(ITEMS[0]) + "\n")
    done = project.modelopt("export", "openai-evals", "test_triage.py", "-o", "out")
    assert done.returncode == 0, done.stderr

    swept = sorted((project.path / "out/test_triage_test_category").glob("run-*.json"))
    runs = [json.loads(path.read_text()) for path in swept]
    assert [(r["name"], r["data_source"]["sampling_params"]) for r in runs] == [
        (
            f"test_triage::test_category[temperature={t},reasoning.effort={e}] [{m}]",
            {"max_completion_tokens": 5, "temperature": float(t), "reasoning_effort": e},
        )
        for t in ("0", "0.7")
        for e in ("low", "high")
        for m in ("m1", "m2")
    ]
    assert (
        "  not exported: test_triage.py::test_category: samples=3: an OpenAI run has no "
        "samples field and samples each item once: each run is written once; create it 3 "
        "times for as many samples"
    ) in done.stdout.splitlines()

    [penalty] = (project.path / "out/test_triage_test_penalty").glob("run-*.json")
    run = json.loads(penalty.read_text())
    assert run["name"] == "test_triage::test_penalty [m1]"
    assert run["data_source"]["sampling_params"] == {"max_completion_tokens": 5}
    assert (
        "  not exported: test_triage.py::test_penalty: sweep over 'frequency_penalty': a run's "
        "sampling_params have no field for it: its variants are not written (they would be "
        "the same run); one run per model is"
    ) in done.stdout.splitlines()
    assert "test_triage.py::test_penalty: triage.yaml: parameter 'frequency_penalty'" in done.stdout
    if openapi.spec_available():
        for body in [*runs, run]:
            openapi.validate_request("/evals/eval_1/runs", body)
