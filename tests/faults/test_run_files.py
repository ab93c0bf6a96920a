"""Run files: every file carries its format version; a newer format is refused with what to
do, never read as empty; a torn last line (a crash mid-write) is skipped, any other damage
is one clear message in every reader: pytest, modelopt show|compare|report|merge, the Action.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest

from pytest_modelopt.records.models import SCHEMA_VERSION
from pytest_modelopt.records.store import RunUnreadable, read_cases, read_run_info

if TYPE_CHECKING:
    from pathlib import Path

    from tests.conftest import Project
    from tests.support.fake_openai import FakeOpenAI

SUITE = """
import pytest

@pytest.mark.eval(prompt="p.j2", dataset="d.jsonl", threshold=0.0)
def test_answer(completion, case):
    assert completion.text == case["q"]
"""


@pytest.fixture
def saved(project: Project, server: FakeOpenAI) -> Path:
    project.dataset("d.jsonl", [{"id": f"c{i}", "q": f"q{i}"} for i in range(4)])
    project.file("p.j2", "{{ q }}")
    project.test(SUITE)
    project.run("--eval-save", "base")
    project.run()
    return project.path / ".modelopt" / "saved" / "base"


def _case_file(run_dir: Path) -> Path:
    return next((run_dir / "cases").glob("*.jsonl"))


def test_every_file_of_a_run_carries_its_version(saved: Path) -> None:
    for name in ("run.json", "summary.json", "report.json"):
        assert "schema_version" in json.loads((saved / name).read_text())
    lines = _case_file(saved).read_text().splitlines()
    assert [json.loads(line)["schema_version"] for line in lines] == [SCHEMA_VERSION] * 4


def test_a_version_1_case_line_is_still_read(saved: Path) -> None:
    path = _case_file(saved)
    old = [json.loads(line) for line in path.read_text().splitlines()]
    for record in old:
        del record["schema_version"]  # as version 1 wrote them
    path.write_text("".join(json.dumps(r) + "\n" for r in old))
    assert [c.schema_version for c in read_cases(saved)] == [1, 1, 1, 1]


def test_a_torn_last_line_is_skipped_but_a_corrupt_one_is_refused(saved: Path) -> None:
    path = _case_file(saved)
    text = path.read_text()
    path.write_text(text + '{"schema_version": 2, "eval": "x", "nod')  # a crash mid-write
    assert len(list(read_cases(saved))) == 4
    lines = text.splitlines()
    path.write_text("\n".join([lines[0], "not json", *lines[1:]]) + "\n")
    with pytest.raises(RunUnreadable, match=r"case 2: not a case record.*corrupt"):
        list(read_cases(saved))


def test_a_newer_case_format_is_refused_not_read_as_empty(saved: Path) -> None:
    path = _case_file(saved)
    newer = [json.loads(line) for line in path.read_text().splitlines()]
    for record in newer:
        record["schema_version"] = SCHEMA_VERSION + 1
        record["a_field_of_the_future"] = True
    path.write_text("".join(json.dumps(r) + "\n" for r in newer))
    with pytest.raises(
        RunUnreadable, match=rf"format {SCHEMA_VERSION + 1} by a newer pytest-modelopt.*upgrade"
    ):
        list(read_cases(saved))


def test_a_newer_run_json_is_refused(saved: Path) -> None:
    info = json.loads((saved / "run.json").read_text())
    info["schema_version"] = SCHEMA_VERSION + 1
    (saved / "run.json").write_text(json.dumps(info))
    with pytest.raises(RunUnreadable, match="newer pytest-modelopt"):
        read_run_info(saved)


@pytest.mark.parametrize(
    "command",
    [
        ["show", "base"],
        ["compare", "base", "latest"],
        ["compare", "latest", "base"],
        ["merge", "base", "latest", "-o", "merged"],
        ["report", "base"],
    ],
)
def test_every_command_refuses_a_corrupt_run_with_one_line(
    project: Project, saved: Path, command: list[str]
) -> None:
    (saved / "report.json").unlink()
    path = _case_file(saved)
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0], "{oops", *lines[1:]]) + "\n")
    result = project.modelopt(*command)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(errors) == 1
    assert "not a case record" in errors[0]
    assert "run the evals again" in errors[0]
