"""The training child's module imports no training library until it trains."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path


def test_the_module_imports_no_training_library(tmp_path: Path) -> None:
    import subprocess

    code = (
        "import sys; import pytest_modelopt.optimize.backends.local.trainer; "
        "print(sorted(m for m in ('torch', 'transformers', 'trl', 'peft', 'datasets') "
        "if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path
    )
    assert out.stdout.strip() == "[]"
