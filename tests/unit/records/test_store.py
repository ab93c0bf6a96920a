"""Reading a run's records: a torn last line is skipped; slim records summarise the same."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pytest_modelopt.records.models import RunInfo
from pytest_modelopt.records.store import RunWriter, read_cases
from pytest_modelopt.verdict.summary import summarize
from tests.support.records import record

if TYPE_CHECKING:
    from pathlib import Path


def test_torn_last_line_is_skipped(tmp_path: Path) -> None:
    writer = RunWriter(tmp_path, "main")
    writer.append(record("a", "passed"))
    writer.close()
    with (tmp_path / "cases" / "main.jsonl").open("a") as handle:
        handle.write('{"eval": "e", "nodeid": "t[b')
    assert [c.case_id for c in read_cases(tmp_path)] == ["a"]


def test_slim_records_summarise_the_same_and_share_what_is_equal(tmp_path: Path) -> None:
    """What a session's summary holds at once: the same summary as full records, in
    records without prompts and rows, sharing their field-name sets and fingerprints."""
    writer = RunWriter(tmp_path, "main")
    for i in range(20):
        full = record(f"c{i}", "passed" if i % 3 else "failed", score=float(i % 3 > 0))
        full.input = [{"role": "user", "content": f"question {i}"}]
        full.item = {"id": f"c{i}", "q": "x" * 100}
        full.output = f"answer {i}"
        full.fingerprint = {"prompt": "abc", "dataset": "def"}
        writer.append(full)
    writer.close()
    info = RunInfo(run_id="r", started_at="now", plugin_version="0")
    full_cases = list(read_cases(tmp_path))
    slim_cases = list(read_cases(tmp_path, slim=True))
    assert summarize(info, slim_cases) == summarize(info, full_cases)
    assert [c.output for c in slim_cases] == [c.output for c in full_cases]  # diffs show them
    assert all(c.input is None and c.item is None for c in slim_cases)
    assert full_cases[0].input is not None
    assert len({id(c.fingerprint) for c in slim_cases}) == 1
    assert len({id(c.__pydantic_fields_set__) for c in slim_cases}) == 1
    assert len({id(g.__pydantic_fields_set__) for c in slim_cases for g in c.grades}) == 1
