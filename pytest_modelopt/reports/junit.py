"""What ``--junitxml`` consumers see of evals, as data: properties of each case, and each
eval's verdict as a global property of the report (``plugin/junit.py`` hands them over)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..records.models import CaseRecord
    from ..verdict.document import EvalReport


def case_properties(record: CaseRecord) -> list[tuple[str, object]]:
    """A case's eval, model, id, status and scores, as ``<property>`` elements."""
    props: list[tuple[str, object]] = [
        ("modelopt_eval", record.eval),
        ("modelopt_model", record.model),
        ("modelopt_case", record.case_id),
        ("modelopt_status", record.status),
    ]
    if record.score is not None:
        props.append(("modelopt_score", round(record.score, 6)))
    props += [(f"modelopt_grade_{g.name}", round(g.score, 6)) for g in record.grades]
    return props


def verdict_properties(report: EvalReport) -> list[tuple[str, str]]:
    """Each eval's verdict and pass rate, and its comparison's verdict with a baseline."""
    props: list[tuple[str, str]] = []
    for row in report.summary.evals:
        props.append((f"modelopt:{row.eval}:{row.model}:verdict", row.verdict))
        if row.pass_rate is not None:
            props.append((f"modelopt:{row.eval}:{row.model}:pass_rate", f"{row.pass_rate:.6f}"))
    if report.comparison is not None:
        for comparison in report.comparison.evals:
            props.append(
                (
                    f"modelopt:{comparison.eval}:{comparison.candidate.model}:comparison",
                    comparison.verdict,
                )
            )
    return props
