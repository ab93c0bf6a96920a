"""Image cases inside pytest: the request carries the image, the run keeps its path and hash."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import TYPE_CHECKING, Any

import pytest

from pytest_modelopt.model.cache import ResponseCache
from tests.support import openapi
from tests.support.images import png

if TYPE_CHECKING:
    from tests.conftest import Project
    from tests.support.fake_openai import FakeOpenAI

PROMPT = """
api: {api}
messages:
  - role: user
    content:
      - {{type: text, text: "What animal is this? {{{{ question }}}}"}}
      - {{type: image_url, image_url: {{url: "{{{{ image }}}}", detail: low}}}}
"""
TEST = """
import pytest

@pytest.mark.eval(prompt="prompts/look.yaml", dataset="data/cases.jsonl")
def test_look(completion):
    assert completion.text
"""


def _image_project(project: Project, api: str) -> bytes:
    data = png(seed=1)
    (project.path / "data" / "img").mkdir(parents=True)
    (project.path / "data" / "img" / "cat.png").write_bytes(data)
    project.dataset(
        "data/cases.jsonl",
        [
            {"id": "cat", "question": "Name it.", "image": "img/cat.png"},
            {"id": "web", "question": "And this?", "image": "https://images.test/dog.png"},
        ],
    )
    project.file("prompts/look.yaml", PROMPT.format(api=api))
    project.test(TEST)
    return data


def _image_url(body: dict[str, Any], api: str) -> Any:
    """The image part's URL in a request body (or a record: its input is the messages)."""
    messages = body.get("input", body.get("messages"))
    part = messages[0]["content"][1]
    return part["image_url"] if api == "responses" else part["image_url"]["url"]


def _run_files(project: Project) -> str:
    """Every file the run and the cache wrote, as one text."""
    texts = []
    for root in (project.run_dir(), project.path / ".modelopt" / "cache"):
        texts += [p.read_text(errors="replace") for p in root.rglob("*") if p.is_file()]
    return "\n".join(texts)


@pytest.mark.parametrize(
    ("api", "path"), [("chat", "/chat/completions"), ("responses", "/responses")]
)
def test_the_request_sends_the_image_and_the_run_keeps_its_path_and_hash(
    project: Project, server: FakeOpenAI, mode: list[str], api: str, path: str
) -> None:
    data = _image_project(project, api)
    project.run(*mode).assert_outcomes(passed=2)
    encoded = base64.b64encode(data).decode()
    sha = hashlib.sha256(data).hexdigest()
    sent = {_image_url(r.body, api): r.body for r in server.requests}
    for body in sent.values():
        assert body["model"] == "gpt-4.1-mini"
        if openapi.spec_available():
            openapi.validate_request(path, body)
    cases = {c["case_id"]: c for c in project.cases()}
    ref = f"image-file:data/img/cat.png#sha256={sha}"
    assert _image_url(cases["cat"], api) == ref
    files = _run_files(project)
    assert ref in files  # the records and the recorded request name the file
    assert encoded not in files  # and never hold its bytes


def test_an_edited_image_is_a_new_request_and_an_unchanged_one_replays(
    project: Project, server: FakeOpenAI
) -> None:
    data = _image_project(project, "chat")
    # sent from the helper process: it gets the body with the bytes, the cache the reference
    first = project.run("--eval-html", "report.html", "--eval-sender", "process")
    first.assert_outcomes(passed=2)
    assert "sent from a helper process" in first.stdout.str()
    assert len(server.requests) == 2
    page = (project.path / "report.html").read_text()  # the viewer shows the image itself
    assert "data:image/png;base64," + base64.b64encode(data).decode() in page
    assert "https://images.test/dog.png" in page  # named, not fetched (the CSP loads none)
    server.reset()
    project.run().assert_outcomes(passed=2)
    assert server.requests == []  # the same image: replayed
    (project.path / "data" / "img" / "cat.png").write_bytes(png(seed=2))
    project.run().assert_outcomes(passed=2)
    (request,) = server.requests  # the edited image only: its hash is in the cache key
    url = request.body["messages"][0]["content"][1]["image_url"]["url"]
    assert url == "data:image/png;base64," + base64.b64encode(png(seed=2)).decode()
    cache = ResponseCache(project.path / ".modelopt" / "cache")
    assert cache.stats().entries == 3


def test_the_same_image_replays_from_another_start_directory_or_path(
    project: Project, server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cache key holds the image's hash, not the path the run names it by: started
    from a subdirectory (the path is then written otherwise), or with the file moved, the
    request is the same bytes and replays offline."""
    data = _image_project(project, "chat")
    project.run().assert_outcomes(passed=2)
    assert len(server.requests) == 2
    server.reset()
    (project.path / "data" / "sub").mkdir()
    monkeypatch.chdir(project.path / "data" / "sub")
    project.run("--eval-record", "none", str(project.path)).assert_outcomes(passed=2)
    monkeypatch.chdir(project.path)
    (project.path / "data" / "img" / "cat.png").rename(project.path / "data" / "cat-moved.png")
    rows = (
        (project.path / "data" / "cases.jsonl").read_text().replace("img/cat.png", "cat-moved.png")
    )
    (project.path / "data" / "cases.jsonl").write_text(rows)
    project.run("--eval-record", "none").assert_outcomes(passed=2)
    assert server.requests == []
    (record,) = [c for c in project.cases() if c["case_id"] == "cat"]  # the record names the path
    sha = hashlib.sha256(data).hexdigest()
    assert _image_url(record, "chat") == f"image-file:data/cat-moved.png#sha256={sha}"


def test_a_missing_image_is_an_error_naming_the_case_and_the_rest_runs(
    project: Project, server: FakeOpenAI, mode: list[str]
) -> None:
    _image_project(project, "chat")
    project.dataset(
        "data/cases.jsonl",
        [
            {"id": "cat", "question": "Name it.", "image": "img/cat.png"},
            {"id": "gone", "question": "And this?", "image": "img/gone.png"},
        ],
    )
    result = project.run(*mode)
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        ["*test_look*gone*data/cases.jsonl:2: field 'image': img/gone.png: no such image file*"]
    )
    assert len(server.requests) == 1
    (gone,) = [c for c in project.cases() if c["case_id"] == "gone"]
    assert gone["status"] == "error"
    assert (
        "data/cases.jsonl:2: field 'image': img/gone.png: no such image file"
        in (gone["error"]["message"])
    )


def test_distill_from_image_cases_writes_openais_vision_format(
    project: Project, server: FakeOpenAI
) -> None:
    """The command (another process, in the project) reads each recorded reference's file
    into the training file as a data URL."""
    (project.path / "data" / "img").mkdir(parents=True)
    pictures = {f"c{i:02d}": png(seed=i) for i in range(16)}
    for case, data in pictures.items():
        (project.path / "data" / "img" / f"{case}.png").write_bytes(data)
    project.dataset(
        "data/cases.jsonl",
        [{"id": c, "question": c, "image": f"img/{c}.png"} for c in pictures],
    )
    project.file("prompts/look.yaml", PROMPT.format(api="responses"))
    project.test(TEST)
    project.run().assert_outcomes(passed=16)
    done = project.modelopt(
        "distill", "--student", "gpt-4o-2024-08-06", "--backend", "export", "--dry-run",
        "--out", "vision",
    )  # fmt: skip
    assert "images_moderated" in done.stdout, done.stdout + done.stderr
    lines = (project.path / "vision" / "train.jsonl").read_text().splitlines()
    assert lines
    encoded = {base64.b64encode(data).decode() for data in pictures.values()}
    for line in map(json.loads, lines):
        text, image = line["messages"][0]["content"]
        assert text["type"] == "text"
        url = image["image_url"]["url"]
        assert image["type"] == "image_url"
        assert url.startswith("data:image/png;base64,")
        assert url.removeprefix("data:image/png;base64,") in encoded
    assert "image-file:" not in (project.path / "vision" / "train.jsonl").read_text()
