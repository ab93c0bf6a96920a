"""Evals as pytest tests: parametrization, verdicts, thresholds, samples, pending prompts."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from pytest_modelopt.collect.marker import MARKER_KEYS

if TYPE_CHECKING:
    from tests.conftest import Project
    from tests.support.fake_openai import FakeOpenAI


ROWS = [
    {"id": "t1", "text": "billing", "label": "billing"},
    {"id": "t2", "text": "bug", "label": "billing"},
    {"id": "t3", "text": "account", "label": "account"},
    {"id": "t4", "text": "billing", "label": "billing"},
]


def triage(project: Project, marker: str = "", body: str | None = None) -> None:
    project.dataset("data/tickets.jsonl", ROWS)
    project.file("prompts/triage.j2", "{{ text }}")
    project.test(
        f"""
        import pytest
        from pytest_modelopt import graders

        pytestmark = pytest.mark.eval(
            prompt="prompts/triage.j2", dataset="data/tickets.jsonl"{marker}
        )

        def test_category(completion, case, grade):
            {body or 'grade(completion, graders.string_check(reference=case["label"]))'}
        """
    )


def test_marker_is_registered_for_strict_markers(project: Project, mode: list[str]) -> None:
    result = project.run(*mode, "--markers")
    result.stdout.fnmatch_lines(
        ["@pytest.mark.eval(prompt=None, agent=None, agent_api='responses', dataset=None, *"]
    )
    line = next(x for x in result.stdout.lines if x.startswith("@pytest.mark.eval("))
    signature = line.split("): ", 1)[0]
    listed = [
        part.split("=")[0] for part in signature.removeprefix("@pytest.mark.eval(").split(", ")
    ]
    assert listed == list(MARKER_KEYS)  # every keyword the marker takes, none twice


def test_one_item_per_model_and_case_with_readable_ids(project: Project, mode: list[str]) -> None:
    triage(project)
    result = project.run("--eval-models", "gpt-4.1-mini,gpt-4.1", *mode)
    result.assert_outcomes(passed=6, failed=2)
    result.stdout.fnmatch_lines(["*FAILED test_suite.py::test_category[[]gpt-4.1-mini-t2[]]*"])
    result.stdout.fnmatch_lines(["*FAILED test_suite.py::test_category[[]gpt-4.1-t2[]]*"])
    assert {c["model"] for c in project.cases()} == {"gpt-4.1-mini", "gpt-4.1"}


def test_failed_grade_without_threshold_fails_the_test_with_its_reason(
    project: Project, mode: list[str]
) -> None:
    triage(project)
    result = project.run(*mode)
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*eval test_suite::test_category on gpt-4.1-mini, case t2:*",
            "*string_check: score 0 - not: 'bug' equals 'billing'*",
            "*output: 'bug'*",
        ]
    )
    assert result.ret == 1


def test_threshold_met_tolerates_failing_cases(project: Project, mode: list[str]) -> None:
    triage(project, ", threshold=0.75")
    result = project.run("-v", *mode)
    assert result.ret == 0
    result.assert_outcomes(passed=3)
    assert result.parseoutcomes()["tolerated"] == 1
    result.stdout.re_match_lines(
        [r".*(EVAL-FAILED.*test_category.*t2|test_category.*t2.*EVAL-FAILED)"]
    )
    result.stdout.fnmatch_lines(["*test_suite::test_category*75.0%*PASS (>= 0.75)*"])


def test_threshold_missed_fails_the_session_and_says_what_to_look_at(
    project: Project, mode: list[str]
) -> None:
    triage(project, ", threshold=0.9")
    result = project.run(*mode)
    assert result.ret == 1
    result.stdout.fnmatch_lines(
        [
            "*test_suite::test_category*gpt-4.1-mini*75.0%*FAIL (< 0.9)*",
            "FAILED eval test_suite::test_category on gpt-4.1-mini: pass rate 75.0% is 15.0% "
            "below its threshold 90% (3 of 4 cases passed)",
            "  see the failing cases: modelopt show .modelopt/runs/* "
            "--eval 'test_suite::test_category' --failed",
        ]
    )
    assert "failed" not in result.parseoutcomes()


def test_plain_assert_is_a_grade(project: Project, mode: list[str]) -> None:
    triage(project, ", threshold=0.5", body='assert completion.text == case["label"], "wrong"')
    result = project.run(*mode)
    assert result.ret == 0
    cases = {c["case_id"]: c for c in project.cases()}
    assert cases["t1"]["grades"] == [
        {
            "name": "assert",
            "score": 1.0,
            "passed": True,
            "reason": "",
            "error": None,
            "sub_scores": {},
            "grader": None,  # a plain assert has no grader to export
            "identity": None,  # nor an identity for labels to bind to
        }
    ]
    failed = cases["t2"]["grades"][0]
    assert failed["name"] == "assert"
    assert not failed["passed"]
    assert failed["reason"].startswith("wrong")


def test_several_grades_all_recorded_and_all_must_pass(project: Project, mode: list[str]) -> None:
    triage(
        project,
        body=(
            'grade(completion, graders.string_check(reference="b", operation="like"), name="has_b")'
            '\n            grade(completion, graders.string_check(reference=case["label"]))'
        ),
    )
    result = project.run(*mode)
    # t1/t4 "billing": both pass; t2 "bug": has_b passes, label fails; t3 "account": both fail
    result.assert_outcomes(passed=2, failed=2)
    cases = {c["case_id"]: c for c in project.cases()}
    assert [(g["name"], g["passed"]) for g in cases["t2"]["grades"]] == [
        ("has_b", True),
        ("string_check", False),
    ]
    assert cases["t2"]["status"] == "failed"


def test_samples_run_each_case_n_times_and_average_per_case(
    project: Project, server: FakeOpenAI, mode: list[str]
) -> None:
    project.test(
        """
        import pytest
        from pytest_modelopt import graders

        @pytest.mark.eval(threshold=0.5, samples=3)
        @pytest.mark.parametrize("q,a", [("2+2", "4"), ("3*3", "9")])
        def test_math(llm, grade, q, a):
            out = llm.chat([{"role": "user", "content": q}])
            grade(out, graders.string_check(reference=a))
        """
    )
    server.reply("4", contains="2+2")
    result = project.run("-v", *mode)
    assert result.ret == 0
    result.stdout.fnmatch_lines(["PASSED test_suite.py::test_math[[]gpt-4.1-mini-s0-2+2-4[]]"])
    cases = project.cases()
    assert [(c["case_id"], c["sample"], c["status"]) for c in cases] == [
        ("2+2-4", 0, "passed"),
        ("2+2-4", 1, "passed"),
        ("2+2-4", 2, "passed"),
        ("3*3-9", 0, "failed"),
        ("3*3-9", 1, "failed"),
        ("3*3-9", 2, "failed"),
    ]
    (row,) = project.summary()["evals"]
    assert (row["cases"], row["samples"], row["pass_rate"], row["verdict"]) == (2, 6, 0.5, "pass")


def test_samples_with_dataset_share_the_case_id(project: Project, mode: list[str]) -> None:
    triage(project, ", samples=2, threshold=0.5")
    result = project.run(*mode)
    assert result.ret == 0
    cases = project.cases()
    assert len(cases) == 8
    assert {c["case_id"] for c in cases} == {"t1", "t2", "t3", "t4"}
    (row,) = project.summary()["evals"]
    assert (row["cases"], row["samples"], row["pass_rate"]) == (4, 8, 0.75)


def test_missing_prompt_is_pending_not_failed(project: Project, mode: list[str]) -> None:
    project.dataset("data/tickets.jsonl", ROWS)
    project.test(
        """
        import pytest

        @pytest.mark.eval(prompt="prompts/not_yet.j2", dataset="data/tickets.jsonl", threshold=1)
        def test_future(completion):
            assert completion.text
        """
    )
    result = project.run("-v", *mode)
    assert result.ret == 0
    assert result.parseoutcomes()["pending"] == 4
    result.stdout.re_match_lines([r".*(PENDING.*test_future|test_future.*PENDING)"])
    result.stdout.fnmatch_lines(
        [
            "*test_suite::test_future*PENDING*",
            "PENDING eval test_suite::test_future: prompt not written yet: prompts/not_yet.j2",
        ]
    )
    assert {c["status"] for c in project.cases()} == {"pending"}


def test_pending_reason_names_the_prompt_path(project: Project, mode: list[str]) -> None:
    project.test(
        """
        import pytest

        @pytest.mark.eval(prompt="prompts/later.yaml")
        def test_future(completion):
            pass
        """
    )
    result = project.run(*mode)
    result.stdout.fnmatch_lines(
        ["PENDING eval test_suite::test_future: prompt not written yet: prompts/later.yaml"]
    )
    (case,) = project.cases()
    assert (case["status"], case["note"]) == (
        "pending",
        "prompt not written yet: prompts/later.yaml",
    )


def test_marker_models_narrow_the_selection(project: Project, mode: list[str]) -> None:
    project.test(
        """
        import pytest

        @pytest.mark.eval(models=["gpt-4.1"])
        def test_only_big(llm):
            assert llm.name == "gpt-4.1"

        @pytest.mark.eval(models=["o3"])
        def test_not_selected(llm):
            pass

        @pytest.mark.eval()
        def test_all(llm):
            pass
        """
    )
    result = project.run(*mode, "--eval-models", "gpt-4.1-mini,gpt-4.1", "-rs")
    result.assert_outcomes(passed=3, skipped=1)
    result.stdout.fnmatch_lines(
        ["*eval test_suite::test_not_selected runs only on o3, which is not among the selected*"]
    )


def test_no_model_selected_is_a_clear_collection_error(project: Project, mode: list[str]) -> None:
    project.config()
    triage(project)
    result = project.run(*mode)
    assert result.ret == (1 if "-n" in mode else 2)  # xdist: a collection error fails
    result.stdout.fnmatch_lines(["*no model selected: pass --eval-models MODEL*"])


def test_eval_name_and_class_level_marker(project: Project, mode: list[str]) -> None:
    project.test(
        """
        import pytest

        @pytest.mark.eval(name="triage/short", threshold=0.0)
        class TestTriage:
            @pytest.mark.eval(samples=2)
            def test_a(self, llm):
                assert llm.chat([{"role": "user", "content": "hi"}]).text == "hi"
        """
    )
    result = project.run(*mode)
    assert result.ret == 0
    (row,) = project.summary()["evals"]
    assert (row["eval"], row["samples"], row["threshold"]) == ("triage/short", 2, 0.0)


def test_unknown_marker_argument_is_reported(project: Project, mode: list[str]) -> None:
    project.test(
        """
        import pytest

        @pytest.mark.eval(treshold=0.9)
        def test_x(llm):
            pass
        """
    )
    result = project.run(*mode)
    assert result.ret == (1 if "-n" in mode else 2)  # xdist: a collection error fails
    result.stdout.fnmatch_lines(["*unknown eval marker argument(s) treshold; known: *threshold*"])


@pytest.mark.parametrize(
    ("marker", "message"),
    [
        ("threshold=1.5", "threshold must be within [[]0, 1[]], got 1.5"),
        ("samples=0", "samples must be a whole number >= 1, got 0"),
        ("models='gpt-4.1', prompt=3", "prompt must be a path, got 3"),
    ],
)
def test_bad_marker_values(project: Project, marker: str, message: str, mode: list[str]) -> None:
    project.test(
        f"""
        import pytest

        @pytest.mark.eval({marker})
        def test_x(llm):
            pass
        """
    )
    result = project.run(*mode)
    assert result.ret == (1 if "-n" in mode else 2)  # xdist: a collection error fails
    result.stdout.fnmatch_lines([f"*{message}*"])


def test_non_eval_tests_are_untouched(project: Project, mode: list[str]) -> None:
    project.test(
        """
        def test_plain():
            assert 1 + 1 == 2
        """
    )
    result = project.run(*mode)
    result.assert_outcomes(passed=1)
    assert "modelopt: evals" not in result.stdout.str()
    assert not (project.path / ".modelopt").exists()
