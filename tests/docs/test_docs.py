"""README.md and docs/*.md run: every fenced block does what its page says (blocks.py)."""

from __future__ import annotations

import os
import subprocess
import time
from typing import TYPE_CHECKING

import pytest

from tests.conftest import TEST_KEY
from tests.docs import blocks
from tests.support.processes import processes_with

if TYPE_CHECKING:
    from pathlib import Path

    from tests.support.fake_openai import FakeOpenAI

#: Blocks a test cannot run (a real fine-tune, `./scripts/test` itself, ...), each marked
#: with its reason; more than this many fails, so the list stays short.
NOT_RUN_BUDGET = 12
#: Records of dated measurements (benchmark tables): not run again, their commands checked.
#: A page that grows more should rather show one command at small scale.
RECORD_BUDGET = 16


def _env(server: FakeOpenAI, home: Path) -> dict[str, str]:
    # The pages show what a user sees at a terminal. pytest prints whole failure messages in
    # its short summary when CI or BUILD_NUMBER is set, so the machine's CI markers go too.
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("MODELOPT_", "OPENAI_", "PYTEST_", "GITHUB_"))
        and k not in ("CI", "BUILD_NUMBER")
    }
    env.update(
        PATH=f"{blocks.VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
        OPENAI_BASE_URL=server.base_url,
        OPENAI_API_KEY=TEST_KEY,
        COLUMNS="200",
        PYTHONDONTWRITEBYTECODE="1",
    )
    return env


@pytest.mark.parametrize("page", blocks.PAGES, ids=lambda p: str(p.relative_to(blocks.ROOT)))
def test_page_runs_as_written(page: Path, server: FakeOpenAI, tmp_path: Path) -> None:
    failures, _ = blocks.run_page(page, tmp_path, _env(server, tmp_path))
    assert not failures, "\n\n".join(failures)


def test_every_block_is_run_or_says_why_not() -> None:
    problems = []
    for page in blocks.PAGES:
        _, found = blocks.plan(blocks.parse(page))
        problems += [f"{p.where}: {p.message}" for p in found]
    assert not problems, "\n".join(problems)


def test_the_blocks_not_run_stay_few() -> None:
    skipped = blocks.not_run_blocks()
    assert len(skipped) <= NOT_RUN_BUDGET, "\n".join(
        f"{p.block.where}: {p.not_run}" for p in skipped
    )


def _page(tmp_path: Path, text: str) -> Path:
    page = tmp_path / "page.md"
    page.write_text(text)
    (tmp_path / "run").mkdir()
    return page


def test_a_transcript_that_drifts_fails(server: FakeOpenAI, tmp_path: Path) -> None:
    """Only what legitimately varies is normalised: a signed latency change and the
    project's path (shown as the reader's) match; a changed count does not."""
    page = _page(
        tmp_path,
        "```console\n$ echo 'd p95 -0.01s'; pwd\nd p95 +0.02s\n/home/me/myproject\n"
        "$ echo '3 passed'\n2 passed\n```\n",
    )
    failures, _ = blocks.run_page(page, tmp_path / "run", _env(server, tmp_path))
    assert len(failures) == 1
    assert "$ echo '3 passed'" in failures[0]
    assert "-2 passed" in failures[0]
    assert "+3 passed" in failures[0]


def test_an_init_project_is_what_modelopt_init_writes(server: FakeOpenAI, tmp_path: Path) -> None:
    page = _page(
        tmp_path,
        "<!-- docs: project init -->\n```console\n$ ls tests/evals\nAGENTS.md\ndata\n"
        "test_triage.py\n$ pytest -q tests/evals\n...\n5 pending in 0.1s\n```\n",
    )
    failures, _ = blocks.run_page(page, tmp_path / "run", _env(server, tmp_path))
    assert not failures, "\n\n".join(failures)


def test_the_records_stay_few() -> None:
    records = blocks.record_blocks()
    assert len(records) <= RECORD_BUDGET, "\n".join(f"{p.block.where}: {p.record}" for p in records)


def test_a_block_that_times_out_stops_what_it_started(tmp_path: Path) -> None:
    """A timed-out block leaves no process behind (a trainer, a server it started)."""
    marker = f"docs-timeout-{os.getpid()}"
    page = blocks.Page("page.md", tmp_path, dict(os.environ))
    with pytest.raises(subprocess.TimeoutExpired):
        page.run(f"(exec -a {marker} sleep 60) & echo $! > started; sleep 61", timeout=2)
    assert (page.project / "started").read_text().strip().isdigit()  # it did start one
    deadline = time.monotonic() + 5
    while processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.05)  # SIGKILL is delivered, not yet reaped
    assert processes_with(marker) == []
