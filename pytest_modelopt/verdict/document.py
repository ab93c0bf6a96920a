"""The report document: one run's summary, its comparison with a baseline, and its gates.

This is what ``--eval-json`` writes and what the Markdown and HTML reports render; it is
versioned and documented in docs/reference.md.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ..records.models import RunSummary
from .calibration import JudgeCalibration
from .compare import Comparison
from .gates import GateResult

SCHEMA_VERSION = 1


class EvalReport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    schema_version: int = SCHEMA_VERSION
    verdict: Literal["pass", "fail"]
    summary: RunSummary
    comparison: Comparison | None = None
    gates: list[GateResult] = Field(default_factory=list)
    # each LLM judge against the human labels; an uncalibrated one makes its eval
    # inconclusive (verdict/calibration.py)
    calibration: list[JudgeCalibration] = Field(default_factory=list)
    fail_inconclusive: bool = False  # whether an inconclusive eval failed the run

    @property
    def uncalibrated(self) -> list[JudgeCalibration]:
        return [c for c in self.calibration if c.calibrated is False]

    @property
    def failed_gates(self) -> list[GateResult]:
        return [g for g in self.gates if not g.passed and not g.inconclusive]
