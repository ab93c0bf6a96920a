"""Hands the eval verdicts to pytest's ``--junitxml`` report (see ``reports/junit.py``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..reports.junit import verdict_properties

if TYPE_CHECKING:
    import pytest

    from ..verdict.document import EvalReport


def add_verdicts(config: pytest.Config, report: EvalReport) -> None:
    """Each eval's verdict as a global property of the --junitxml report."""
    # pytest offers no public handle on its LogXML object: its stash key is the documented
    # way in (junitxml.py stores it under xml_key), so this is the one _pytest import.
    from _pytest.junitxml import xml_key

    xml = config.stash.get(xml_key, None)
    if xml is None:
        return
    for name, value in verdict_properties(report):
        xml.add_global_property(name, value)
