"""pytest-modelopt: eval-driven development for LLM applications, the pytest way."""

from __future__ import annotations

__version__ = "0.1.0"

from . import graders
from .client import Completion, ModelCallError, Usage

__all__ = ["Completion", "ModelCallError", "Usage", "__version__", "graders"]
