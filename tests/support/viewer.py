"""The run viewer's data, read back from the HTML page a run wrote."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

_DATA = re.compile(r'<script type="application/json" id="viewer-data">(.*?)</script>', re.S)


def viewer_document(path: Path) -> dict[str, Any]:
    """The JSON document the page embeds (reports/viewer.py), as the page's script reads it."""
    found = _DATA.findall(path.read_text(encoding="utf-8"))
    assert len(found) == 1, f"{path}: no viewer data"
    data: dict[str, Any] = json.loads(found[0])
    return data
