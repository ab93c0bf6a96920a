"""``string_check``: OpenAI's exact and contains comparisons."""

from __future__ import annotations

import pytest

from pytest_modelopt import graders


@pytest.mark.parametrize(
    ("operation", "output", "reference", "passed"),
    [
        ("eq", "billing", "billing", True),
        ("eq", "Billing", "billing", False),
        ("ne", "bug", "billing", True),
        ("like", "it is billing.", "billing", True),
        ("like", "it is Billing.", "billing", False),
        ("ilike", "it is Billing.", "billing", True),
        ("ilike", "it is a bug.", "billing", False),
    ],
)
def test_string_check_semantics(operation: str, output: str, reference: str, passed: bool) -> None:
    grade = graders.string_check(reference=reference, operation=operation).grade(output, {})
    assert (grade.passed, grade.score) == (passed, float(passed))
