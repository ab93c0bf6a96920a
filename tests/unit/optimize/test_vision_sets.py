"""Vision fine-tuning sets: image cases make examples in OpenAI's format, within its limits."""

from __future__ import annotations

import base64
import json
from typing import TYPE_CHECKING, Any

import pytest

from pytest_modelopt import images
from pytest_modelopt.optimize.backends.local.backend import LocalBackend
from pytest_modelopt.optimize.jobs import BackendError
from pytest_modelopt.optimize.launch import Prepared, prepare
from pytest_modelopt.optimize.training_data import Selection
from pytest_modelopt.optimize.validate import validate
from pytest_modelopt.records.models import CaseRecord, GradeRecord
from tests.support.fake_openai.training_files import file_problem
from tests.support.images import GIF, png

if TYPE_CHECKING:
    from pathlib import Path


@pytest.fixture
def pictures(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project directory (the working directory) with data/ for images."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    return tmp_path / "data"


def _ref(folder: Path, name: str, data: bytes) -> str:
    (folder / name).write_bytes(data)
    return images.resolve(name, folder)


def _example(url: str, answer: str = "cat", role: str = "user") -> dict[str, Any]:
    image = {"type": "image_url", "image_url": {"url": url}}
    messages = [
        {"role": "user", "content": [{"type": "text", "text": "Which animal?"}, image]},
        {"role": "assistant", "content": answer},
    ]
    if role == "assistant":
        messages[1] = {"role": "assistant", "content": [image]}
    return {"messages": messages}


def _codes(report: Any) -> list[tuple[str, int | None]]:
    return [(i.code, i.line) for i in report.issues if i.level == "error"]


def test_images_within_openais_limits_pass_with_the_moderation_warning(pictures: Path) -> None:
    examples = [_example(_ref(pictures, f"{i}.png", png(seed=i)), f"a{i % 3}") for i in range(12)]
    report = validate("sft", examples, base_model="gpt-4o-2024-08-06")
    assert _codes(report) == []
    assert [i.code for i in report.issues if i.level == "warning"] == ["images_moderated"]


def test_each_broken_vision_rule_is_an_error_on_its_line(pictures: Path) -> None:
    good = _ref(pictures, "good.png", png())
    examples = [_example(good, f"a{i}") for i in range(12)]
    examples[0] = _example(_ref(pictures, "grey.png", png(color_type=0)))
    gif = "data:image/gif;base64," + base64.b64encode(GIF).decode()
    examples[1] = _example(gif)
    examples[2] = _example(good, role="assistant")
    examples[3]["messages"][0]["content"] += [examples[3]["messages"][0]["content"][1]] * 10
    big = png() + b"\0" * (10 * 1024 * 1024)
    examples[4] = _example(_ref(pictures, "big.png", big))
    gone = _ref(pictures, "gone.png", png(seed=7))
    (pictures / "gone.png").unlink()
    examples[5] = _example(gone)
    report = validate("sft", examples, base_model="gpt-4o-2024-08-06")
    assert _codes(report) == [
        ("image_mode", 1),
        ("image_format", 2),
        ("image_in_assistant_message", 3),
        ("too_many_images", 4),
        ("image_too_large", 5),
        ("image_unreadable", 6),
    ]


def _record(case: str, url: str) -> CaseRecord:
    """A passing record of an eval whose prompt uses the Responses API's shape."""
    return CaseRecord(
        eval="t.py::test_look",
        nodeid=f"t.py::test_look[teacher-{case}]",
        model="teacher",
        case_id=case,
        status="passed",
        input=[
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "Which animal?"},
                    {"type": "input_image", "image_url": url, "detail": "low"},
                ],
            }
        ],
        output=f"animal {case}",
        item={"id": case},
        grades=[GradeRecord(name="check", score=1.0, passed=True)],
    )


def _sft_set(pictures: Path, datas: dict[str, bytes], base_model: str) -> Prepared:
    """The SFT set (nothing held out) of passing image cases, one per image."""
    records = [_record(case, _ref(pictures, f"{case}.png", data)) for case, data in datas.items()]
    return prepare(
        records,
        method="sft",
        base_model=base_model,
        selection=Selection(holdout_fraction=0.0),
        root=pictures.parent / "finetune",
    )


def test_an_sft_file_from_image_cases_is_openais_vision_format(pictures: Path) -> None:
    datas = {f"c{i}": png(seed=i) for i in range(12)}
    prepared = _sft_set(pictures, datas, "gpt-4o-2024-08-06")
    assert [i.code for i in prepared.report.issues if i.level == "error"] == []
    raw = (prepared.launch_dir / "train.jsonl").read_bytes()
    assert file_problem("supervised", raw, "Training", 10) is None  # the fake API's own reading
    lines = [json.loads(line) for line in raw.decode().splitlines()]
    assert len(lines) == 12
    for line in lines:
        user = line["messages"][0]
        case = line["messages"][1]["content"].removeprefix("animal ")
        assert user["content"] == [
            {"type": "text", "text": "Which animal?"},
            {
                "type": "image_url",
                "image_url": {
                    "url": "data:image/png;base64," + base64.b64encode(datas[case]).decode(),
                    "detail": "low",
                },
            },
        ]


def test_the_local_backend_refuses_a_set_with_images_by_line(pictures: Path) -> None:
    """It trains text models: the images would be dropped silently."""
    datas = {f"c{i}": png(seed=i) for i in range(12)}
    prepared = _sft_set(pictures, datas, "HuggingFaceTB/SmolLM2-135M-Instruct")
    with pytest.raises(BackendError, match=r"train\.jsonl:1: the example has images, and the"):
        LocalBackend().launch(prepared.manifest, prepared.launch_dir)
