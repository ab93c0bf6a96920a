"""pytest-modelopt: eval-driven development for LLM applications, the pytest way."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from . import graders
    from .model.types import Completion, ModelCallError, Usage

__all__ = ["Completion", "ModelCallError", "Usage", "__version__", "graders"]
_LAZY = {"graders": "", "Completion": "client", "ModelCallError": "client", "Usage": "client"}


def __getattr__(name: str) -> Any:
    """Imported on first use, so that loading the plugin (and its helper processes) is cheap."""
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = _LAZY[name]
    value = (
        importlib.import_module(f"{__name__}.{name}")
        if not module
        else getattr(importlib.import_module(f"{__name__}.{module}"), name)
    )
    globals()[name] = value
    return value
