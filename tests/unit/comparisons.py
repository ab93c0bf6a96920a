"""A known pair of runs for the comparison, gate and report tests: one eval truly
regresses, one only wobbles.
"""

from __future__ import annotations

import random

from pytest_modelopt.records.models import CaseRecord, GradeRecord, RunInfo


def run_cases(
    eval_name: str,
    rate: float,
    n: int,
    *,
    seed: int,
    model: str = "m",
    swaps: int = 0,
    base: list[bool] | None = None,
    output: str = "answer",
) -> tuple[list[CaseRecord], list[bool]]:
    """n cases passing at ``rate``; or, given ``base``, the same cases changed: ``swaps``
    passing cases fail and as many failing ones pass (noise, no net change), and with a
    negative ``rate`` that share of the passing cases fails (a real regression)."""
    rng = random.Random(seed)
    passed = base[:] if base is not None else [rng.random() < rate for _ in range(n)]
    if base is not None:
        ups = rng.sample([i for i, p in enumerate(passed) if not p], swaps)
        downs = rng.sample([i for i, p in enumerate(passed) if p], swaps)
        for i in ups + downs:
            passed[i] = not passed[i]
        if rate < 0:
            passed = [p and rng.random() > -rate for p in passed]
    records = [
        CaseRecord(
            eval=eval_name,
            nodeid=f"t::{eval_name}[{i}]",
            model=model,
            case_id=f"c{i:03d}",
            status="passed" if ok else "failed",
            output=f"{output} {i}",
            grades=[
                GradeRecord(name="g", score=float(ok), passed=ok, reason="" if ok else "wrong")
            ],
            latency_s=0.5,
            calls=1,
            cost=0.001,
        )
        for i, ok in enumerate(passed)
    ]
    return records, passed


def info(run_id: str) -> RunInfo:
    return RunInfo(run_id=run_id, started_at="2026-11-22T00:00:00+00:00", plugin_version="0")


Run = tuple[RunInfo, list[CaseRecord]]


def known_pair() -> tuple[Run, Run]:
    """'accuracy' truly drops (30% of its passing cases fail); 'tone' only wobbles (six
    cases fail that passed and six pass that failed)."""
    acc_base, acc = run_cases("accuracy", 0.9, 200, seed=1)
    tone_base, tone = run_cases("tone", 0.8, 200, seed=2)
    acc_cand, _ = run_cases("accuracy", -0.3, 200, seed=3, base=acc, output="worse")
    tone_cand, _ = run_cases("tone", 0.0, 200, seed=4, base=tone, swaps=6)
    return (info("base"), acc_base + tone_base), (info("cand"), acc_cand + tone_cand)


def suite() -> tuple[Run, Run]:
    """20 evals x 3 models, a family of 60 comparisons: a fifth of the pairs truly drop (by
    10 to 50% of their passing cases), the rest are the same cases with a few outcomes
    swapped both ways (noise)."""
    base, cand = [], []
    for i in range(20):
        for j, model in enumerate(("model-a", "model-b", "model-c")):
            seed = 100 * i + j
            records, passed = run_cases(f"e{i:02d}", 0.7, 30, seed=seed, model=model)
            drop = -0.1 * (1 + i % 5) if (i + j) % 5 == 0 else 0.0
            changed, _ = run_cases(
                f"e{i:02d}", drop, 30, seed=seed + 1, model=model, base=passed, swaps=2
            )
            base += records
            cand += changed
    return (info("base"), base), (info("cand"), cand)
