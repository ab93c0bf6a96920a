"""Bad datasets get one clear error each — file, line, field, what to do — never a traceback,
a hung run or a silently lost value."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING

import pytest

from pytest_modelopt.collect.datasets import MAX_DEPTH, MAX_LINE, DatasetError, load_cases

if TYPE_CHECKING:
    from pathlib import Path

    from tests.conftest import Project
    from tests.support.fake_openai import FakeOpenAI

LAUGHS = """\
- id: a
  q: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
  l1: &l1 [*l0, *l0, *l0, *l0, *l0, *l0, *l0, *l0, *l0, *l0]
  l2: &l2 [*l1, *l1, *l1, *l1, *l1, *l1, *l1, *l1, *l1, *l1]
  l3: &l3 [*l2, *l2, *l2, *l2, *l2, *l2, *l2, *l2, *l2, *l2]
  l4: &l4 [*l3, *l3, *l3, *l3, *l3, *l3, *l3, *l3, *l3, *l3]
  l5: &l5 [*l4, *l4, *l4, *l4, *l4, *l4, *l4, *l4, *l4, *l4]
  l6: &l6 [*l5, *l5, *l5, *l5, *l5, *l5, *l5, *l5, *l5, *l5]
  l7: &l7 [*l6, *l6, *l6, *l6, *l6, *l6, *l6, *l6, *l6, *l6]
  l8: &l8 [*l7, *l7, *l7, *l7, *l7, *l7, *l7, *l7, *l7, *l7]
- id: b
  q: fine
"""


def _error(path: Path) -> DatasetError:
    with pytest.raises(DatasetError) as caught:
        load_cases(path)
    return caught.value


def test_a_billion_laughs_is_one_error_in_no_time(tmp_path: Path) -> None:
    path = tmp_path / "d.yaml"
    path.write_text(LAUGHS)
    started = time.monotonic()
    error = _error(path)
    assert time.monotonic() - started < 2
    (row,) = error.errors
    assert row.line == 1
    assert "more than 100,000 values" in row.message
    assert "YAML aliases" in row.message


def test_a_recursive_alias_is_one_error(tmp_path: Path) -> None:
    path = tmp_path / "d.yaml"
    path.write_text("- id: a\n  q: &x [1, *x]\n")
    (row,) = _error(path).errors
    assert (row.line, row.field) == (1, "q[1]")
    assert "contains itself" in row.message


@pytest.mark.parametrize("suffix", [".jsonl", ".json"])
def test_nesting_past_the_bound_is_one_error(tmp_path: Path, suffix: str) -> None:
    deep = {"id": "a", "q": json.loads("[" * (MAX_DEPTH + 5) + "]" * (MAX_DEPTH + 5))}
    path = tmp_path / f"d{suffix}"
    path.write_text(json.dumps(deep) if suffix == ".jsonl" else json.dumps([deep]))
    (row,) = _error(path).errors
    assert f"nested more than {MAX_DEPTH} levels deep" in row.message
    assert row.line == 1


def test_nesting_that_would_crash_the_parser_is_one_error(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text('{"id": "a", "q": ' + "[" * 100_000 + "]" * 100_000 + "}\n")
    (row,) = _error(path).errors
    assert "nested too deeply" in row.message


def test_a_line_past_the_bound_is_one_error(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text('{"id": "a", "q": "x"}\n{"id": "b", "q": "' + "y" * MAX_LINE + '"}\n')
    (row,) = _error(path).errors
    assert row.line == 2
    assert "longer than" in row.message


def test_a_lone_surrogate_is_one_error_naming_the_field(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text('{"id": "a", "q": "fine"}\n{"id": "b", "meta": {"q": "bad \\ud800"}}\n')
    (row,) = _error(path).errors
    assert (row.line, row.field) == (2, "meta.q")
    assert "lone surrogate" in row.message


def test_invalid_utf8_and_utf16_are_one_error_each(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_bytes(b'{"id": "a", "q": "x"}\n{"id": "b", "q": "\xff"}\n')
    (row,) = _error(path).errors
    assert row.line == 2
    assert "not valid UTF-8" in row.message
    path.write_bytes('{"id": "a"}\n'.encode("utf-16"))
    (row,) = _error(path).errors
    assert "UTF-16" in row.message


def test_a_utf8_bom_is_read(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_bytes(b"\xef\xbb\xbfid,q\na,x\n")
    (case,) = load_cases(path)
    assert dict(case) == {"id": "a", "q": "x"}


@pytest.mark.parametrize(
    ("name", "text", "line"),
    [
        ("d.jsonl", '{"id": "a", "q": "x", "q": "y"}\n', 1),
        ("d.json", '[\n{"id": "a", "q": "x"},\n{"id": "b", "q": "x", "q": "y"}\n]', 3),
        ("d.yaml", "- id: a\n  q: x\n- id: b\n  q: x\n  q: y\n", 5),
    ],
)
def test_a_duplicate_key_would_lose_a_value_and_is_refused(
    tmp_path: Path, name: str, text: str, line: int
) -> None:
    path = tmp_path / name
    path.write_text(text)
    (row,) = _error(path).errors
    assert row.line == line
    assert "appears twice" in row.message


def test_duplicate_ids_name_both_lines(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text('{"id": "a", "q": "x"}\n{"id": "a", "q": "y"}\n')
    (row,) = _error(path).errors
    assert row.line == 2
    assert "duplicate case id 'a' (first at line 1)" in row.message


def test_pytest_reports_a_bad_dataset_as_one_collection_error(
    project: Project, server: FakeOpenAI, mode: list[str]
) -> None:
    project.file("d.yaml", LAUGHS)
    project.file("p.j2", "{{ q }}")
    project.test(
        """
        import pytest

        @pytest.mark.eval(prompt="p.j2", dataset="d.yaml")
        def test_answer(completion):
            pass
        """
    )
    result = project.run(*mode)
    # a collection error: pytest stops (exit 2); xdist reports it as a failure (exit 1)
    assert result.ret in (pytest.ExitCode.INTERRUPTED, pytest.ExitCode.TESTS_FAILED)
    output = result.stdout.str()
    assert "d.yaml:1: field 'l8': the row holds more than 100,000 values" in output
    assert "Traceback" not in output
    assert "RecursionError" not in output
