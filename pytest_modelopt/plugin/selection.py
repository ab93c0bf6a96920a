"""Keeping evals out of an ordinary test run: with ``run = "on-request"`` eval tests are
deselected unless the session asks for them (``--eval-run``, ``MODELOPT_RUN=always``, or a
``-m`` expression that selects the ``eval`` marker). Evals make paid calls: a team chooses
when they run, and a unit-test run that happens to collect them stays free.

The ``-m`` expression is read by a small evaluator of pytest's marker grammar written here:
pytest's own (``_pytest.mark.expression``) is private API, whose matcher protocol gained
keyword arguments with pytest-dev/pytest#12500; all this needs is "does the expression
select a test with only the eval marker", which the grammar's five token kinds answer.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..config import Settings


def held_back_line(count: int, settings: Settings) -> str:
    return (
        f"modelopt: {count} eval tests deselected: evals run on request "
        f"(run = on-request, from {settings.source_of('run')}); run them with "
        "pytest --eval-run, or pytest -m eval"
    )


def evals_requested(settings: Settings, markexpr: str) -> bool:
    """Whether this session runs its evals: always, unless the settings say on-request and
    neither ``--eval-run`` (or MODELOPT_RUN=always) nor a ``-m`` expression asks for them."""
    return settings.run == "always" or selects_evals(markexpr)


_MARK_TOKEN = re.compile(r"\s*(\(|\)|,|=|\"[^\"]*\"|'[^']*'|[\w:+\-.\[\]\\/]+)")


def selects_evals(markexpr: str) -> bool:
    """Whether a ``-m`` expression asks for evals: it selects a test that carries only the
    ``eval`` marker and not a test with no marker (``-m eval``, ``-m "eval and not slow"``;
    not ``-m "not slow"``). pytest's grammar: or, and, not, parentheses, and names, with
    keyword arguments that are taken as matching. An expression that does not parse asks
    for nothing (pytest reports it)."""
    tokens = _MARK_TOKEN.findall(markexpr or "")
    if not tokens:
        return False
    try:
        return _evaluate(tokens, {"eval"}) and not _evaluate(tokens, set())
    except (IndexError, ValueError):
        return False


def _evaluate(tokens: list[str], marks: set[str]) -> bool:
    position = 0

    def expr() -> bool:
        nonlocal position
        value = and_expr()
        while position < len(tokens) and tokens[position] == "or":
            position += 1
            value = and_expr() or value
        return value

    def and_expr() -> bool:
        nonlocal position
        value = not_expr()
        while position < len(tokens) and tokens[position] == "and":
            position += 1
            value = not_expr() and value
        return value

    def not_expr() -> bool:
        nonlocal position
        token = tokens[position]
        position += 1
        if token == "not":
            return not not_expr()
        if token == "(":
            value = expr()
            if tokens[position] != ")":
                raise ValueError(markexpr_error)
            position += 1
            return value
        if token in (")", ",", "=", "and", "or"):
            raise ValueError(markexpr_error)
        if position < len(tokens) and tokens[position] == "(":  # name(key=value, ...)
            while tokens[position] != ")":
                position += 1
            position += 1
        return token in marks

    markexpr_error = "not a marker expression"
    value = expr()
    if position != len(tokens):
        raise ValueError(markexpr_error)
    return value
