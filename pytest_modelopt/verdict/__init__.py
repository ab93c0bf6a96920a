"""Stages 5-6, compare and gate: statistics, summaries, comparisons, gates, and the one
function that decides a run's verdict. Pure: no pytest, no network."""
