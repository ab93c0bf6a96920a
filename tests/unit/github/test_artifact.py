"""The baseline artifact: unsafe members are refused."""

from __future__ import annotations

import io
import stat
import zipfile
from typing import TYPE_CHECKING

import pytest

from pytest_modelopt.github.artifact import UnsafeArchive, safe_extract

if TYPE_CHECKING:
    from pathlib import Path


def _symlink_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        info = zipfile.ZipInfo("runs/link")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(info, "/etc/passwd")
    return buffer.getvalue()


def test_symlink_members_are_refused(tmp_path: Path) -> None:
    archive = tmp_path / "a.zip"
    archive.write_bytes(_symlink_zip())
    with pytest.raises(UnsafeArchive, match="symbolic link"):
        safe_extract(archive, tmp_path / "out")
