"""The runner's checks of blocks that are not run as commands: a ``tree`` and a ``record``
catch what drifted (a file not drawn, an option a script no longer takes, an undated
record)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.docs import blocks

if TYPE_CHECKING:
    from pathlib import Path


def _block(kind: str, source: str) -> blocks.Block:
    return blocks.Block("docs/x.md", 1, kind, source)


def test_a_tree_reads_directories_continuations_and_undrawn_subdirectories() -> None:
    drawn = blocks.drawn_tree(
        "pkg/\n  a.py   b.py\n  sub/    c.py\n          d.py\n    deep/  e.py\n  f.py  data/\n"
    )
    assert drawn == {
        "pkg/": {"a.py", "b.py", "sub/", "f.py", "data/"},
        "pkg/sub/": {"c.py", "d.py", "deep/"},
        "pkg/sub/deep/": {"e.py"},
    }


def test_a_tree_that_misses_a_module_or_names_a_gone_one_fails() -> None:
    source = "pytest_modelopt/\n  collect/  spec.py  prompts.py  gone.py\n"
    with pytest.raises(blocks.DocError) as caught:
        blocks._tree(_block("tree", source))
    message = str(caught.value)
    assert "pytest_modelopt/collect/ has datasets.py" in message
    assert "pytest_modelopt/collect/ has no gone.py" in message


def test_a_record_needs_a_date() -> None:
    _, problems = blocks.plan(
        [
            blocks.Directive("docs/x.md", 1, 'record "run 9"'),
            _block("console", "$ python benchmarks/bench_generation.py\n"),
        ]
    )
    assert [p.message for p in problems] == [
        'a record says what and when: <!-- docs: record "what, YYYY-MM-DD" -->'
    ]


def test_a_record_checks_its_scripts_and_their_options(tmp_path: Path) -> None:
    page = blocks.Page("docs/x.md", tmp_path, {})
    ok = "machine: 2 cores\n$ python benchmarks/bench_generation.py --cases 400 \\\n  --keep\n"
    blocks.check_record(_block("console", ok), page)
    with pytest.raises(blocks.DocError, match="--help lists no --no-such-flag"):
        blocks.check_record(
            _block("console", "$ python benchmarks/bench_generation.py --no-such-flag\n"), page
        )
    with pytest.raises(blocks.DocError, match=r"no script benchmarks/gone\.py"):
        blocks.check_record(_block("console", "$ python benchmarks/gone.py\n"), page)
