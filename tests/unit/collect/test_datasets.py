"""Tests for dataset loading: every format, exact line numbers, ids, schema errors, caching."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
from datetime import date
from typing import TYPE_CHECKING, Any, Literal

import pytest
from pydantic import BaseModel

from pytest_modelopt.collect.datasets import Case, DatasetError, RowError, load_cases

if TYPE_CHECKING:
    from pathlib import Path


class Ticket(BaseModel):
    id: str
    category: Literal["billing", "bug", "other"]
    priority: int


class Scored(BaseModel):
    question: str
    score: float = 0.0
    due: date | None = None


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def errors_of(path: str | os.PathLike[str], **kwargs: Any) -> DatasetError:
    with pytest.raises(DatasetError) as info:
        load_cases(path, **kwargs)
    return info.value


def expected_hash_id(row: dict[str, Any]) -> str:
    canonical = json.dumps(row, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "c" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:8]


def test_jsonl_rows_lines_and_values(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "d.jsonl",
        '{"id": "a", "q": "one", "n": 1}\n'
        "\n"
        "   \n"
        '{"id": "b", "q": "two", "tags": ["x"], "meta": {"k": null}}\r\n'
        '{"id": "c", "q": "sep\\u2028arator \u2028 raw"}\n',
    )
    cases = load_cases(path)
    assert [(c.id, c.line) for c in cases] == [("a", 1), ("b", 4), ("c", 5)]
    assert cases[0] == {"id": "a", "q": "one", "n": 1}
    assert cases[1]["meta"] == {"k": None}
    assert cases[2]["q"] == "sep\u2028arator \u2028 raw"
    assert all(isinstance(c, Case) and c.model is None for c in cases)
    assert {c.source for c in cases} == {str(path)}


def test_json_pretty_printed_array_lines(tmp_path: Path) -> None:
    rows = [{"id": "a", "q": "x"}, {"id": "b", "q": "multi\nline"}, {"id": "c", "nested": [1, 2]}]
    path = write(tmp_path, "d.json", json.dumps(rows, indent=2))
    cases = load_cases(path)
    # "[" on line 1, each object spans 4 lines ("{", two fields, "}") but the last one's list
    # is spread over 4 more lines.
    assert [(c.id, c.line) for c in cases] == [("a", 2), ("b", 6), ("c", 10)]
    assert cases[1]["q"] == "multi\nline"


def test_json_compact_and_irregular_layout(tmp_path: Path) -> None:
    path = write(tmp_path, "d.json", '\n\n[{"id": 1},\n\n\n   {"id": 2}, {"id": 3}\n]\n')
    assert [(c.id, c.line) for c in load_cases(path)] == [("1", 3), ("2", 6), ("3", 6)]


def test_json_object_with_cases_array(tmp_path: Path) -> None:
    text = (
        "{\n"
        '  "meta": {"cases": "not this one", "list": [1, 2]},\n'
        '  "cases": [\n'
        '    {"id": "a"},\n'
        "\n"
        '    {"id": "b"}\n'
        "  ],\n"
        '  "version": 2\n'
        "}\n"
    )
    path = write(tmp_path, "d.json", text)
    assert [(c.id, c.line) for c in load_cases(path)] == [("a", 4), ("b", 6)]


def test_yaml_list_lines_with_multiline_rows(tmp_path: Path) -> None:
    text = (
        "# leading comment\n"
        "- id: a\n"
        "  prompt: |\n"
        "    first line\n"
        "    second line\n"
        "  expected: [x, y]\n"
        "\n"
        "- id: b\n"
        "  when: 2024-05-01\n"
        "-\n"
        "  id: c\n"
    )
    cases = load_cases(write(tmp_path, "d.yaml", text))
    assert [(c.id, c.line) for c in cases] == [("a", 2), ("b", 8), ("c", 11)]
    assert cases[0]["prompt"] == "first line\nsecond line\n"
    assert cases[0]["expected"] == ["x", "y"]
    assert cases[1]["when"] == date(2024, 5, 1)


def test_yaml_mapping_with_cases_and_anchors(tmp_path: Path) -> None:
    text = "defaults: &d {lang: en}\ncases:\n  - id: a\n    opts: *d\n  - {id: b, opts: *d}\n"
    cases = load_cases(write(tmp_path, "d.yml", text))
    assert [(c.id, c.line) for c in cases] == [("a", 3), ("b", 5)]
    assert cases[1]["opts"] == {"lang": "en"}


def test_csv_lines_multiline_quoted_field_and_strings(tmp_path: Path) -> None:
    text = 'id, question ,n\nt1,"a question\nthat spans\nthree lines",1\n\nt2,plain,2\nt3,short\n'
    cases = load_cases(write(tmp_path, "d.csv", text))
    assert [(c.id, c.line) for c in cases] == [("t1", 2), ("t2", 6), ("t3", 7)]
    assert cases[0] == {"id": "t1", "question": "a question\nthat spans\nthree lines", "n": "1"}
    assert cases[1]["n"] == "2"  # values stay strings without a schema
    assert cases[2]["n"] is None  # missing trailing value, like csv.DictReader


def test_csv_bom_and_crlf(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_bytes(b'\xef\xbb\xbfid,q\r\n1,"x\r\ny"\r\n2,z\r\n')
    cases = load_cases(path)
    assert [(c.id, c.line) for c in cases] == [("1", 2), ("2", 4)]
    assert cases[0]["q"] == "x\r\ny"


def test_csv_schema_coerces(tmp_path: Path) -> None:
    path = write(tmp_path, "d.csv", "id,category,priority\nt1,bug,3\n")
    (case,) = load_cases(path, schema=Ticket)
    assert case == {"id": "t1", "category": "bug", "priority": 3}
    assert isinstance(case.model, Ticket)
    assert case.model.priority == 3


def test_csv_extra_values_is_an_error_on_that_line(tmp_path: Path) -> None:
    path = write(tmp_path, "d.csv", "id,q\nt1,x\nt2,y,surplus\nt3,z\n")
    err = errors_of(path)
    assert err.errors == [RowError(3, None, "row has 3 values but the header has 2 columns")]


def test_csv_header_problems(tmp_path: Path) -> None:
    err = errors_of(write(tmp_path, "d.csv", "id,,q,id\n1,2,3,4\n"))
    assert [e.message for e in err.errors] == [
        "header column 2 has no name",
        "duplicate column 'id' in the header (columns 1 and 4)",
    ]
    assert {e.line for e in err.errors} == {1}


def test_csv_unclosed_quote_reports_where_it_starts(tmp_path: Path) -> None:
    err = errors_of(write(tmp_path, "d.csv", 'id,q\n1,ok\n2,"never closed\n3,x\n'))
    assert err.errors == [
        RowError(
            3,
            None,
            "invalid CSV: unexpected end of data "
            "(a quoted field starting on this line is never closed)",
        )
    ]


def test_explicit_and_numeric_ids(tmp_path: Path) -> None:
    path = write(tmp_path, "d.jsonl", '{"id": 7}\n{"id": "x-1"}\n{"id": 2.5}\n{"id": true}\n')
    assert [c.id for c in load_cases(path)] == ["7", "x-1", "2.5", "True"]


def test_hashed_ids_are_stable_across_key_order_and_files(tmp_path: Path) -> None:
    row = {"q": "héllo", "n": 1, "tags": ["a"]}
    a = write(tmp_path, "a.jsonl", '{"q": "héllo", "n": 1, "tags": ["a"]}\n')
    b = write(tmp_path, "b.jsonl", '\n{"tags":["a"],"n":1,"q":"h\\u00e9llo"}\n')
    c = write(tmp_path, "c.yaml", "- tags: [a]\n  n: 1\n  q: héllo\n")
    ids = {load_cases(p)[0].id for p in (a, b, c)}
    assert ids == {expected_hash_id(row)}
    (only,) = ids
    assert len(only) == 9
    assert only.startswith("c")


def test_hash_prefix_collision_between_different_rows_is_not_a_duplicate(tmp_path: Path) -> None:
    # {"n": 7335} and {"n": 13654} share the first 8 hex chars of their sha256 (8e3265b9).
    path = write(tmp_path, "d.jsonl", '{"n": 7335}\n{"n": 13654}\n')
    first, second = load_cases(path)
    assert first.id == "c8e3265b9" == expected_hash_id({"n": 7335})
    digest = hashlib.sha256(b'{"n":13654}').hexdigest()
    assert second.id == "c" + digest[:12]
    assert second.id.startswith("c8e3265b9")


def test_duplicate_ids_name_both_lines(tmp_path: Path) -> None:
    path = write(tmp_path, "tickets.csv", "id,q\nt001,a\nt003,b\nt002,c\nt003,d\nt003,e\n")
    err = errors_of(path, display_path="data/tickets.csv")
    assert str(err).splitlines() == [
        "data/tickets.csv:5: duplicate case id 't003' (first at line 3)",
        "data/tickets.csv:6: duplicate case id 't003' (first at line 3)",
        "fix the rows above (or remove them) and run again",
    ]


def test_identical_rows_without_id_are_duplicates(tmp_path: Path) -> None:
    path = write(tmp_path, "d.jsonl", '{"q": 1}\n{"q": 2}\n{ "q" : 1 }\n')
    (error,) = errors_of(path).errors
    assert error.line == 3
    case_id = expected_hash_id({"q": 1})
    assert error.message.startswith(
        f"duplicate case id {case_id!r} (first at line 1): the rows are identical"
    )


def test_bad_ids(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "d.jsonl",
        '{"id": ["a"]}\n{"id": {"k": 1}}\n{"id": ""}\n{"id": "  "}\n{"id": null}\n{"id": "ok"}\n',
    )
    err = errors_of(path)
    assert [(e.line, e.field) for e in err.errors] == [(n, "id") for n in range(1, 6)]
    assert err.errors[0].message == "must be a string or number, got a list: ['a']"
    assert err.errors[1].message == "must be a string or number, got a dict: {'k': 1}"
    assert err.errors[2].message.startswith("must not be empty")
    assert err.errors[4].message.startswith("must not be null")


def test_schema_validation_and_dump(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "d.yaml",
        "- question: q1\n  score: '0.5'\n  due: 2024-01-02\n  ignored: extra\n- question: q2\n",
    )
    first, second = load_cases(path, schema=Scored)
    assert first == {"question": "q1", "score": 0.5, "due": "2024-01-02"}  # model_dump(json)
    assert isinstance(first.model, Scored)
    assert first.model.due == date(2024, 1, 2)
    assert second == {"question": "q2", "score": 0.0, "due": None}
    # the id hashes the raw row, not the validated view
    assert second.id == expected_hash_id({"question": "q2"})


def test_schema_error_messages(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "tickets.jsonl",
        '{"id": "t1", "category": "bug", "priority": 1}\n'
        '{"id": "t2", "category": "biling", "priority": 2}\n'
        '{"id": "t3", "category": "bug"}\n'
        '{"id": "t4", "category": "other", "priority": "high"}\n'
        '{"id": "t5", "category": ["bug"], "priority": 1}\n',
    )
    err = errors_of(path, schema=Ticket, display_path="data/tickets.jsonl")
    assert str(err).splitlines() == [
        "data/tickets.jsonl:2: field 'category': Input should be 'billing', 'bug' or 'other' "
        "(got 'biling')",
        "data/tickets.jsonl:3: field 'priority': Field required",
        "data/tickets.jsonl:4: field 'priority': Input should be a valid integer, "
        "unable to parse string as an integer (got 'high')",
        "data/tickets.jsonl:5: field 'category': Input should be 'billing', 'bug' or 'other'",
        "fix the rows above (or remove them) and run again",
    ]
    assert err.path == "data/tickets.jsonl"


def test_schema_nested_loc_and_truncated_input(tmp_path: Path) -> None:
    class Inner(BaseModel):
        score: int

    class Outer(BaseModel):
        meta: Inner
        short: Literal["x"]

    long = "y" * 100
    path = write(tmp_path, "d.jsonl", json.dumps({"meta": {"score": "bad"}, "short": long}) + "\n")
    first, second = errors_of(path, schema=Outer).errors
    assert first.field == "meta.score"
    assert first.message.endswith("(got 'bad')")
    assert second.field == "short"
    assert second.message == "Input should be 'x' (got '" + "y" * 56 + "...)"
    assert len("'" + "y" * 56 + "...") == 60


def test_schema_validator_crash_is_a_row_error(tmp_path: Path) -> None:
    from pydantic import field_validator

    class Fragile(BaseModel):
        q: str

        @field_validator("q")
        @classmethod
        def boom(cls, value: str) -> str:
            if value == "boom":
                raise RuntimeError("kaput")
            return value

    path = write(tmp_path, "d.jsonl", '{"q": "ok"}\n{"q": "boom"}\n')
    err = errors_of(path, schema=Fragile)
    assert err.errors == [RowError(2, None, "Fragile validation raised RuntimeError: kaput")]


def test_schema_must_be_a_model(tmp_path: Path) -> None:
    path = write(tmp_path, "d.jsonl", '{"q": 1}\n')
    with pytest.raises(TypeError, match="pydantic BaseModel subclass"):
        load_cases(path, schema=dict)  # type: ignore[arg-type]


def test_id_errors_are_not_repeated_by_the_schema(tmp_path: Path) -> None:
    class Numbered(BaseModel):
        id: int

    path = write(tmp_path, "d.jsonl", '{"id": "x"}\n{"id": "x"}\n{"id": []}\n')
    err = errors_of(path, schema=Numbered)
    assert [(e.line, e.field, e.message) for e in err.errors] == [
        (
            1,
            "id",
            "Input should be a valid integer, unable to parse string as an integer (got 'x')",
        ),
        (2, None, "duplicate case id 'x' (first at line 1)"),
        (
            2,
            "id",
            "Input should be a valid integer, unable to parse string as an integer (got 'x')",
        ),
        (3, "id", "must be a string or number, got a list: []"),
    ]


def test_invalid_json_line_does_not_hide_other_errors(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "d.jsonl",
        '{"id": "a"}\n'
        '{"id": "b", "q": "unterminated" "x": 1}\n'
        "[1, 2]\n"
        '"just a string"\n'
        '{"id": "a"}\n'
        "{broken\n",
    )
    err = errors_of(path, display_path="data/x.jsonl")
    assert str(err).splitlines() == [
        "data/x.jsonl:2: invalid JSON: Expecting ',' delimiter (column 33)",
        "data/x.jsonl:3: row must be an object, got a list: [1, 2]",
        "data/x.jsonl:4: row must be an object, got a string: 'just a string'",
        "data/x.jsonl:5: duplicate case id 'a' (first at line 1)",
        "data/x.jsonl:6: invalid JSON: Expecting property name enclosed in double quotes "
        "(column 2)",
        "fix the rows above (or remove them) and run again",
    ]


def test_multiple_errors_across_rows_are_sorted_by_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "d.csv",
        "id,category,priority\nt1,bug,x\nt2,nope,1\nt1,bug,1\nt4,bug,1,extra\n",
    )
    err = errors_of(path, schema=Ticket)
    assert [(e.line, e.field) for e in err.errors] == [
        (2, "priority"),
        (3, "category"),
        (4, None),
        (5, None),
    ]


def test_json_syntax_error_line_and_earlier_rows_still_checked(tmp_path: Path) -> None:
    path = write(tmp_path, "d.json", '[\n  {"id": 1},\n  [],\n  {"id": 3\n  {"id": 4}\n]\n')
    err = errors_of(path)
    assert err.errors == [
        RowError(3, None, "row must be an object, got a list: []"),
        RowError(5, None, "invalid JSON: Expecting ',' delimiter (column 3)"),
    ]


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ('[{"a": 1},]', 1, "invalid JSON: Illegal trailing comma before end of array (column 10)"),
        ('[{"a": 1}\n', 2, "invalid JSON: Expecting ',' delimiter (column 1)"),
        ('[{"a": 1}]\n]', 2, "invalid JSON: Extra data (column 1)"),
        ('{"cases": [}', 1, "invalid JSON: Expecting value (column 12)"),
    ],
)
def test_json_structural_errors(tmp_path: Path, text: str, line: int, message: str) -> None:
    assert errors_of(write(tmp_path, "d.json", text)).errors == [RowError(line, None, message)]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('"text"', 'expected a JSON array of objects, or an object with a "cases" array; '
         "got a string: 'text'"),
        ('{"rows": []}', 'expected a JSON array of objects, or an object with a "cases" array; '
         "got an object with keys: 'rows'"),
        ('{"cases": {"a": 1}}', "\"cases\" must be an array of objects, got a dict: {'a': 1}"),
    ],
)  # fmt: skip
def test_json_wrong_top_level_type(tmp_path: Path, text: str, message: str) -> None:
    err = errors_of(write(tmp_path, "x.json", text), display_path="data/x.json")
    assert str(err) == f"data/x.json: {message}"
    assert err.errors == [RowError(0, None, message)]


def test_jsonl_holding_one_pretty_printed_document(tmp_path: Path) -> None:
    path = write(tmp_path, "d.jsonl", json.dumps([{"id": 1}, {"id": 2}], indent=2))
    (error,) = errors_of(path).errors
    assert error.line == 0
    assert "rename the file to .json" in error.message


def test_yaml_syntax_error_reports_problem_line(tmp_path: Path) -> None:
    text = "- id: a\n  q: fine\n- id: b\n  q: [unclosed, list\n- id: c\n"
    err = errors_of(write(tmp_path, "d.yaml", text), display_path="data/d.yaml")
    (error,) = err.errors
    assert error.line == 5
    # exact wording differs between libyaml and pure-Python PyYAML; the location does not
    assert error.message.startswith("invalid YAML: ")
    assert "while parsing a flow sequence at line 4" in error.message
    assert str(err).startswith("data/d.yaml:5: invalid YAML: ")


def test_yaml_bad_indentation_and_second_document(tmp_path: Path) -> None:
    err = errors_of(write(tmp_path, "a.yaml", "- id: a\n  q: 1\n q2: 2\n"))
    assert err.errors[0].line == 3
    assert err.errors[0].message.startswith("invalid YAML: ")
    err = errors_of(write(tmp_path, "b.yaml", "- id: a\n---\n- id: b\n"))
    assert err.errors == [
        RowError(2, None, "a second YAML document ('---') starts here; put all cases in one list")
    ]


def test_yaml_row_errors_keep_going(tmp_path: Path) -> None:
    text = '- id: a\n  n: !!int "x"\n- [1, 2]\n- yes: 1\n- !!python/object:os.system {}\n- id: ok\n'
    err = errors_of(write(tmp_path, "d.yaml", text))
    assert [e.line for e in err.errors] == [1, 3, 4, 5]
    assert (
        err.errors[0].message == "invalid YAML value: invalid literal for int() with base 10: 'x'"
    )
    assert err.errors[1].message == "row must be an object, got a list: [1, 2]"
    assert err.errors[2].message.startswith("field name True is not a string (YAML reads")
    assert "could not determine a constructor" in err.errors[3].message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("just a string\n", "expected a list of cases (mappings), or a mapping with a 'cases:' "
         "list; got a single value"),
        ("a: 1\nb: 2\n", "expected a list of cases, or a mapping with a 'cases:' list; "
         "got a mapping with keys: 'a', 'b'"),
        ("cases:\n  a: 1\n", "'cases' must be a list of mappings; got a mapping"),
    ],
)  # fmt: skip
def test_yaml_wrong_top_level_type(tmp_path: Path, text: str, message: str) -> None:
    assert errors_of(write(tmp_path, "d.yaml", text)).errors == [RowError(0, None, message)]


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("e.jsonl", ""),
        ("e.jsonl", "\n  \n\n"),
        ("e.json", ""),
        ("e.json", " [ ] "),
        ("e.json", '{"cases": []}'),
        ("e.yaml", ""),
        ("e.yaml", "# only a comment\n"),
        ("e.yml", "cases:\n"),
        ("e.yaml", "[]"),
        ("e.csv", ""),
        ("e.csv", "id,question\n"),
    ],
)
def test_empty_dataset(tmp_path: Path, name: str, text: str) -> None:
    err = errors_of(write(tmp_path, name, text), display_path=f"data/{name}")
    assert err.errors == [RowError(0, None, "no cases: the dataset is empty")]
    assert str(err) == f"data/{name}: no cases: the dataset is empty"  # no row hint


def test_missing_file(tmp_path: Path) -> None:
    err = errors_of(tmp_path / "nope.jsonl", display_path="data/nope.jsonl")
    (error,) = err.errors
    assert error.line == 0
    assert str(err) == f"data/nope.jsonl: file not found (looked for {tmp_path / 'nope.jsonl'})"


def test_directory_is_not_a_dataset(tmp_path: Path) -> None:
    (tmp_path / "dir.json").mkdir()
    assert "is a directory" in errors_of(tmp_path / "dir.json").errors[0].message


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("d.txt", "unsupported dataset format '.txt': use .jsonl, .json, .yaml, .yml or .csv"),
        ("data", "unsupported dataset format (the file has no extension): use .jsonl, .json, "
         ".yaml, .yml or .csv"),
    ],
)  # fmt: skip
def test_unknown_extension(tmp_path: Path, name: str, message: str) -> None:
    err = errors_of(write(tmp_path, name, '{"id": 1}\n'))
    assert err.errors == [RowError(0, None, message)]


def test_extension_is_case_insensitive(tmp_path: Path) -> None:
    assert load_cases(write(tmp_path, "D.JSONL", '{"id": 1}\n'))[0].id == "1"


def test_invalid_utf8_reports_the_line(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_bytes(b'{"id": 1}\n{"id": "\xff"}\n')
    assert errors_of(path).errors == [
        RowError(2, None, "not valid UTF-8 text (byte 0xff): save the file as UTF-8")
    ]


def test_error_output_is_capped_but_all_errors_are_kept(tmp_path: Path) -> None:
    path = write(tmp_path, "d.jsonl", "[]\n" * 80)
    err = errors_of(path, display_path="d.jsonl")
    assert len(err.errors) == 80
    lines = str(err).splitlines()
    assert len(lines) == 52
    assert lines[-2] == "d.jsonl: ... and 30 more problems not shown"
    assert lines[-1] == "fix the rows above (or remove them) and run again"


def test_dataset_error_pickles(tmp_path: Path) -> None:
    err = errors_of(write(tmp_path, "d.jsonl", "[]\n"))
    copy = pickle.loads(pickle.dumps(err))
    assert (copy.path, copy.errors, str(copy)) == (err.path, err.errors, str(err))


def test_base_dir_display_path_and_source(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    write(tmp_path / "data", "d.jsonl", '{"id": 1}\n[]\n')
    os_path = os.path.join("data", "d.jsonl")
    err = errors_of(os_path, base_dir=tmp_path)
    assert str(err).startswith(f"{os_path}:2: row must be an object")
    err = errors_of(os_path, base_dir=tmp_path, display_path="tests/data/d.jsonl")
    assert str(err).startswith("tests/data/d.jsonl:2: ")
    write(tmp_path / "data", "ok.jsonl", '{"id": 1}\n')
    (case,) = load_cases(os.path.join("data", "ok.jsonl"), base_dir=str(tmp_path))
    assert case.source == os.path.join("data", "ok.jsonl")


def test_case_is_read_only_but_copyable(tmp_path: Path) -> None:
    (case,) = load_cases(write(tmp_path, "d.jsonl", '{"id": "a", "q": 1}\n'))
    with pytest.raises(TypeError, match="read-only"):
        case["q"] = 2
    with pytest.raises(TypeError, match="read-only"):
        case.update(q=2)
    with pytest.raises(TypeError, match="read-only"):
        del case["q"]
    mine = dict(case)
    mine["q"] = 2
    assert case["q"] == 1
    clone = pickle.loads(pickle.dumps(case))
    assert isinstance(clone, Case)
    assert (clone, clone.id, clone.line, clone.source) == (case, "a", 1, case.source)
    assert repr(case) == f"Case('a' at {case.source}:1, {{'id': 'a', 'q': 1}})"


def test_cache_returns_same_list_and_invalidates_on_change(tmp_path: Path) -> None:
    path = write(tmp_path, "d.jsonl", '{"id": "a"}\n')
    first = load_cases(path)
    assert load_cases(path) is first
    assert load_cases(str(path)) is first

    write(tmp_path, "d.jsonl", '{"id": "a"}\n{"id": "b"}\n')  # size changes
    second = load_cases(path)
    assert second is not first
    assert [c.id for c in second] == ["a", "b"]

    write(tmp_path, "d.jsonl", '{"id": "x"}\n{"id": "y"}\n')  # same size...
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))  # ...newer mtime
    assert [c.id for c in load_cases(path)] == ["x", "y"]


def test_cache_is_per_schema(tmp_path: Path) -> None:
    path = write(tmp_path, "d.csv", "id,category,priority\nt1,bug,3\n")
    raw = load_cases(path)
    typed = load_cases(path, schema=Ticket)
    assert raw[0]["priority"] == "3"
    assert typed[0]["priority"] == 3
    assert load_cases(path, schema=Ticket) is typed


def test_cached_errors_are_raised_again_as_fresh_exceptions(tmp_path: Path) -> None:
    path = write(tmp_path, "d.jsonl", "[]\n")
    first = errors_of(path)
    second = errors_of(path)
    assert first is not second
    assert first.errors == second.errors
    write(tmp_path, "d.jsonl", '{"id": 1}\n')
    assert load_cases(path)[0].id == "1"


def test_fifty_thousand_jsonl_rows_load(tmp_path: Path) -> None:
    """Large datasets load whole and in order (speed is measured in benchmarks/, not here)."""
    path = tmp_path / "big.jsonl"
    with path.open("w", encoding="utf-8") as out:
        for i in range(50_000):
            row = {"question": f"what is {i}?", "answer": str(i), "tags": ["math"]}
            if i % 2:
                row["id"] = f"q{i}"
            out.write(json.dumps(row) + "\n")
    cases = load_cases(path)
    assert len(cases) == 50_000
    assert (cases[1].id, cases[-1].line) == ("q1", 50_000)
    assert len({case.id for case in cases}) == 50_000
