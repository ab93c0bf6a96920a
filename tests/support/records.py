"""A case record with only what the summary and the store look at, for unit tests."""

from __future__ import annotations

from pytest_modelopt.records.models import CaseRecord, GradeRecord


def record(case: str, status: str, sample: int = 0, score: float = 1.0) -> CaseRecord:
    return CaseRecord(
        eval="e",
        nodeid=f"t[{case}-{sample}]",
        model="m",
        case_id=case,
        sample=sample,
        status=status,  # type: ignore[arg-type]
        grades=[GradeRecord(name="g", score=score, passed=status == "passed")],
        latency_s=0.1 * (sample + 1),
        calls=1,
        cost=0.01,
    )
