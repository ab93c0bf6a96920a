"""Names that become paths are validated: nothing outside ``.modelopt/saved/NAME`` is ever
written or deleted by ``--eval-save``."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.conftest import Project
    from tests.support.fake_openai import FakeOpenAI

SUITE = """
import pytest

@pytest.mark.eval(models=["gpt-4.1-mini"])
def test_eval(model):
    assert model.chat([{"role": "user", "content": "hi"}]).text
"""


@pytest.mark.parametrize("name", ["../runs", "/tmp/x", "..", "a/b", ".hidden", "a..b", ""])
def test_a_save_name_that_is_a_path_is_refused_before_anything_runs(
    project: Project, server: FakeOpenAI, name: str
) -> None:
    project.test(SUITE)
    victim = project.path / ".modelopt" / "runs" / "keep.txt"
    victim.parent.mkdir(parents=True)
    victim.write_text("precious")
    result = project.run("--eval-save", name)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    if name:
        result.stderr.fnmatch_lines(["*--eval-save: save: must be a plain name*"])
    assert victim.read_text() == "precious"
    assert server.requests == []


def test_a_plain_save_name_is_kept(project: Project, server: FakeOpenAI, mode: list[str]) -> None:
    project.test(SUITE)
    assert project.run(*mode, "--eval-save", "nightly-2026.12").ret == 0
    assert (project.path / ".modelopt" / "saved" / "nightly-2026.12" / "run.json").is_file()
