"""How a runner reads GITHUB_OUTPUT, for the tests that check what the steps write."""

from __future__ import annotations


def parse_github_output(text: str) -> dict[str, str]:
    """The runner's reading of GITHUB_OUTPUT: ``name=value`` and ``name<<DELIM ... DELIM``."""
    values: dict[str, str] = {}
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line:
            i += 1
            continue
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delimiter = line.split("<<", 1)
            assert delimiter, "an empty delimiter"
            end = lines.index(delimiter, i + 1)  # ValueError: the block never ends
            values[name] = "\n".join(lines[i + 1 : end])
            i = end + 1
        else:
            name, value = line.split("=", 1)
            values[name] = value
            i += 1
    return values
