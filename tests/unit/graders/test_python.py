"""``python``: OpenAI grader source, run in a subprocess."""

from __future__ import annotations

import pytest

from pytest_modelopt import graders
from pytest_modelopt.graders import GraderError

PYTHON_SOURCE = (
    "def grade(sample, item):\n    return 1.0 if sample['output_text'] == item['label'] else 0.0\n"
)


def test_python_grader_runs_in_a_subprocess() -> None:
    grader = graders.python(PYTHON_SOURCE)
    assert grader.grade("bug", {"label": "bug"}).passed
    assert not grader.grade("bug", {"label": "billing"}).passed
    broken = graders.python("def grade(sample, item):\n    return 1 / 0\n", name="broken")
    with pytest.raises(GraderError, match="ZeroDivisionError"):
        broken.grade("x", {})
