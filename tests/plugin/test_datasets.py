"""Datasets inside pytest: bad rows fail collection clearly, the case fixture gives
validated rows, paths resolve from the rootdir too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.conftest import Project


def test_bad_dataset_row_fails_collection_naming_file_line_and_field(
    project: Project, mode: list[str]
) -> None:
    project.file(
        "data/d.jsonl",
        '{"id": "a", "label": "billing"}\n{"id": "b", "label": "biling"}\n{"id": "c"\n',
    )
    project.file(
        "schemas.py",
        """
        from typing import Literal
        from pydantic import BaseModel

        class Ticket(BaseModel):
            id: str
            label: Literal["billing", "bug"]
        """,
    )
    project.test(
        """
        import pytest
        from schemas import Ticket

        @pytest.mark.eval(dataset="data/d.jsonl", schema=Ticket)
        def test_p(case):
            pass
        """
    )
    result = project.run(*mode)
    assert result.ret == (1 if "-n" in mode else 2)  # xdist: a collection error fails
    result.stdout.fnmatch_lines(
        [
            "test_suite.py::test_p: data/d.jsonl:2: field 'label': Input should be 'billing' "
            "or 'bug' (got 'biling')",
            "data/d.jsonl:3: invalid JSON*",
            "fix the rows above (or remove them) and run again",
        ]
    )
    assert "Traceback" not in result.stdout.str()


def test_case_fixture_gives_validated_rows(project: Project, mode: list[str]) -> None:
    project.file("data/d.csv", "id,n\nx,1\ny,2\n")
    project.file(
        "schemas.py",
        """
        from pydantic import BaseModel

        class Row(BaseModel):
            id: str
            n: int
        """,
    )
    project.test(
        """
        import pytest
        from schemas import Row

        @pytest.mark.eval(dataset="data/d.csv", schema=Row)
        def test_p(case):
            assert isinstance(case["n"], int)
            assert case.model.n == case["n"]
        """
    )
    project.run(*mode).assert_outcomes(passed=2)


def test_dataset_found_relative_to_rootdir_too(project: Project, mode: list[str]) -> None:
    project.dataset("data/d.jsonl", [{"id": "a", "q": "x"}])
    project.file(
        "tests/evals/test_nested.py",
        """
        import pytest

        @pytest.mark.eval(dataset="data/d.jsonl")
        def test_p(case):
            assert case["q"] == "x"
        """,
    )
    project.run(*mode).assert_outcomes(passed=1)
