"""Trajectory graders inside pytest: by the grade fixture, by name from configuration and
in a marker; a case whose output carries no trajectory is an error, never a pass."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.conftest import Project


def test_trajectory_graders_grade_and_a_completion_without_one_errors(
    project: Project, mode: list[str]
) -> None:
    project.file(
        "pyproject.toml",
        """
        [tool.modelopt]
        models = ["gpt-4.1-mini"]

        [tool.modelopt.graders.searched]
        type = "tool_called"
        tool = "search"
        args = { q = "{{ not a template: arguments are data }}" }
        match = "subset"
        """,
    )
    project.dataset(
        "d.jsonl",
        [{"id": "right", "tool": "search", "q": "{{ not a template: arguments are data }}"},
         {"id": "wrong", "tool": "delete", "q": "x"}],
    )  # fmt: skip
    project.file("p.j2", "{{ q }}")
    project.test(
        """
        import pytest
        from pytest_modelopt import graders

        def agent(case):
            # what an agent adapter returns (records/trajectory.py's shape)
            call = {"kind": "tool_call", "name": case["tool"], "arguments": {"q": case["q"]}}
            trajectory = {"items": [call], "turns": 2, "final_output": "ok"}
            return {"output_text": "ok", "trajectory": trajectory}

        @pytest.mark.eval(dataset="d.jsonl", threshold=0.5)
        def test_agent(case, grade):
            result = agent(case)
            grade(result, "searched")
            grade(result, graders.trajectory(["search"], order="in_order"))
            grade(result, graders.max_turns(2))

        @pytest.mark.eval(prompt="p.j2", dataset="d.jsonl", graders=[graders.tool_called("x")])
        def test_plain_completion():
            pass
        """
    )
    result = project.run(*mode)
    cases = {(c["eval"].split("::")[1], c["case_id"]): c for c in project.cases()}
    right = cases[("test_agent", "right")]
    assert [(g["name"], g["passed"]) for g in right["grades"]] == [
        ("searched", True),
        ("trajectory", True),
        ("max_turns", True),
    ]
    assert right["grades"][0]["grader"]["type"] == "python"  # exported with its rule
    wrong = cases[("test_agent", "wrong")]
    assert [(g["passed"], g["score"]) for g in wrong["grades"]] == [
        (False, 0.0),
        (False, 0.0),
        (True, 1.0),
    ]
    assert wrong["grades"][0]["reason"] == (
        """'search' with subset args called 0 time(s), wanted at least once; """
        """calls: delete({"q": "x"})"""
    )
    for case_id in ("right", "wrong"):
        plain = cases[("test_plain_completion", case_id)]
        assert plain["status"] == "error"
        assert "the sample has no trajectory" in plain["error"]["message"]
    assert result.ret == 1
