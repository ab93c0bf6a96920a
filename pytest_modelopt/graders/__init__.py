"""Graders: OpenAI's grader vocabulary, run locally."""

from __future__ import annotations

from .base import Grade, Grader, GraderError, sample_namespace
from .string_check import StringCheck, string_check

__all__ = ["Grade", "Grader", "GraderError", "StringCheck", "sample_namespace", "string_check"]
