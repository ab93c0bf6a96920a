"""Hostile output cannot drive a terminal or a CI log: model output and server messages are
printed with their control characters and escape sequences shown, never sent raw."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from pytest_modelopt.untrusted import for_terminal, one_line

if TYPE_CHECKING:
    from tests.conftest import Project
    from tests.support.fake_openai import FakeOpenAI

HOSTILE = (
    "ok\x1b]52;c;ZXZpbA==\x07"  # OSC 52: write the clipboard
    "\x1b]8;;https://evil.example\x1b\\click\x1b]8;;\x1b\\"  # OSC 8: a hyperlink
    "\x1b[2J\x1b[1;1H"  # CSI: clear the screen, move the cursor
    "\rFAKE: all evals passed"  # a bare carriage return overwrites the line
    "\x9b31m"  # C1 CSI
    "\u202egnp.exe"  # right-to-left override
)
RAW = ("\x1b", "\x07", "\r", "\x9b", "\u202e")


@pytest.mark.parametrize("fn", [for_terminal, one_line])
def test_every_control_and_escape_sequence_is_shown_not_sent(fn: object) -> None:
    shown = fn(HOSTILE)  # type: ignore[operator]
    assert not any(raw in shown for raw in RAW)
    assert "\\x1b]52;c;ZXZpbA==\\x07" in shown
    assert "\\x0dFAKE" in shown
    assert "\\u202egnp.exe" in shown


def test_tabs_and_newlines_survive_a_terminal_but_not_one_line() -> None:
    assert for_terminal("a\tb\nc") == "a\tb\nc"
    assert one_line("a\nb\u2028c", 100) == "a\\nb\\u2028c"
    assert one_line("x" * 50, 10) == "x" * 9 + "…"


SUITE = """
import pytest
from pytest_modelopt import graders

@pytest.mark.eval(prompt="p.j2", dataset="d.jsonl")
def test_answer(completion, case, grade):
    grade(completion, graders.string_check(reference="expected"))
"""


def test_a_hostile_reply_reaches_neither_pytest_output_nor_modelopt_show(
    project: Project, server: FakeOpenAI, mode: list[str]
) -> None:
    server.reply(HOSTILE)
    project.dataset("d.jsonl", [{"id": "c1", "q": "q"}])
    project.file("p.j2", "{{ q }}")
    project.test(SUITE)
    result = project.run(*mode)
    assert result.ret == 1
    output = result.stdout.str()
    assert "FAKE: all evals passed" in output  # shown...
    assert not any(raw in output for raw in RAW)  # ...but never as raw control
    shown = project.modelopt("show", "latest", "--failed")
    assert "FAKE: all evals passed" in shown.stdout
    assert not any(raw in shown.stdout for raw in RAW)
