"""The ``eval`` marker's keywords and their defaults, in one table.

``spec.py`` checks a marker against it and the plugin documents the marker from it
(``pytest --markers``), so the help cannot name fewer keywords than the marker takes. No
imports: the plugin reads this in every pytest run, evals or not.
"""

from __future__ import annotations

#: Every keyword the ``eval`` marker takes, with its default as the help shows it.
MARKER_ARGUMENTS: tuple[tuple[str, str], ...] = (
    ("prompt", "None"),
    ("agent", "None"),
    ("agent_api", "'responses'"),
    ("dataset", "None"),
    ("threshold", "None"),
    ("samples", "1"),
    ("name", "None"),
    ("models", "None"),
    ("schema", "None"),
    ("graders", "()"),
    ("fail_on", "()"),
    ("strict", "False"),
    ("calibration", "None"),
    ("params", "None"),
    ("sweep", "()"),
)

MARKER_KEYS = tuple(name for name, _ in MARKER_ARGUMENTS)


def marker_doc() -> str:
    """The marker's line in ``pytest --markers``: its signature with every keyword."""
    signature = ", ".join(f"{name}={default}" for name, default in MARKER_ARGUMENTS)
    return (
        f"eval({signature}): an LLM eval, run once per selected model (and per dataset case "
        "and sample). See pytest-modelopt's docs/reference.md."
    )
