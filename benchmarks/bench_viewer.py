"""How fast the run viewer (``--eval-html``) opens and filters a large run in Chromium.

Run from the repository root (venv active, Debian's ``chromium`` installed)::

    python benchmarks/bench_viewer.py [--cases 10000] [--repeat 5] [--json out.json]

It writes two runs of ``--cases`` cases each (a baseline and a candidate: 20 evals x 2
models x cases/40 case ids, chat input of three messages, outputs of about 60 words,
two grades per case with reasons, a few errors), makes the HTML page of the candidate
alone and of the candidate against the baseline with the same code as ``--eval-html``
(``write_reports``), then opens each page ``--repeat`` times in headless Chromium (a fresh
page each time) through Playwright and measures, inside the page with
``performance.now()``:

load      navigation start to the viewer being ready (data parsed, filters filled, first
          rows drawn: ``performance.mark("viewer-ready")``)
render    the page's own time to first render (``responseEnd`` → ``domContentLoaded``)
filter    selecting a status (``failed``) until the list is redrawn and painted (the next
          animation frame)
eval      selecting one eval, the same way
search    typing a word into the search box (the first search also builds the index)
search2   a second search (the index is built)
changed   the "changed only" filter (with a baseline)
scroll    scrolling to the middle of the list until the rows there are drawn

Each figure is the median of the repeats, in milliseconds; the page size is in MB.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pytest_modelopt.records.models import (  # noqa: E402
    CaseRecord,
    ErrorRecord,
    GradeRecord,
    RunInfo,
    UsageRecord,
)
from pytest_modelopt.records.store import (  # noqa: E402
    RunWriter,
    read_cases,
    read_run_info,
    write_run_info,
)
from pytest_modelopt.reports.write import write_reports  # noqa: E402
from pytest_modelopt.verdict.judge import Policy, compare_with, judge  # noqa: E402
from pytest_modelopt.verdict.summary import summarize  # noqa: E402

WORDS = [
    *("refund", "invoice", "billing", "queue", "priority", "customer", "escalate"),
    *("tier", "agent", "outage", "login", "password", "reset", "charge", "duplicate"),
    *("callback", "account", "region", "latency", "timeout", "shipping"),
]


def make_run(runs: Path, run_id: str, cases: int, *, seed: int, hostile: str | None = None) -> Path:
    """A run directory of ``cases`` records (deterministic for a seed)."""
    rng = random.Random(seed)
    run_dir = runs / run_id
    models = ["gpt-4o-mini", "gpt-4.1-nano"]
    evals = [f"tests/test_support.py::test_eval_{i:02d}" for i in range(20)]
    per = max(cases // (len(evals) * len(models)), 1)
    write_run_info(
        run_dir,
        RunInfo(
            run_id=run_id, started_at="2026-12-07T17:00:00Z", plugin_version="0", models=models
        ),
    )
    writer = RunWriter(run_dir, "main")
    words = random.Random(1)  # the same text on both sides, changed here and there below
    n = 0
    for name in evals:
        for model in models:
            for i in range(per):
                if n >= cases:
                    break
                text = " ".join(words.choice(WORDS) for _ in range(60))
                if rng.random() < 0.15:
                    text = text.replace("refund", "credit note", 1) + " (rephrased)"
                if hostile is not None and n == 0:
                    text = hostile
                exact = rng.random() < 0.8
                error = rng.random() < 0.01
                writer.append(
                    CaseRecord(
                        eval=name,
                        nodeid=f"{name}[{model}-case-{i:05d}]",
                        model=model,
                        case_id=f"case-{i:05d}",
                        status="error" if error else ("passed" if exact else "failed"),
                        input=[
                            {"role": "system", "content": "You triage support tickets."},
                            {"role": "user", "content": f"Ticket {i}: " + text[:200]},
                            {"role": "assistant", "content": "Noted."},
                        ],
                        output=None if error else text,
                        grades=[]
                        if error
                        else [
                            GradeRecord(
                                name="queue",
                                score=1.0 if exact else 0.0,
                                passed=exact,
                                reason="" if exact else "expected queue 'billing', got 'tier2'",
                            ),
                            GradeRecord(
                                name="tone",
                                score=0.9,
                                passed=True,
                                reason="polite and specific",
                            ),
                        ],
                        error=ErrorRecord(kind="timeout", message="the model did not answer")
                        if error
                        else None,
                        latency_s=rng.uniform(0.2, 2.0),
                        usage=UsageRecord(prompt_tokens=120, completion_tokens=80),
                        cost=0.00012,
                        calls=1,
                    )
                )
                n += 1
    writer.close()
    return run_dir


def write_page(out: Path, run_dir: Path, baseline_dir: Path | None = None) -> tuple[Path, float]:
    """The page ``--eval-html`` writes for the run (against the baseline when given), and
    the seconds it took."""
    started = time.perf_counter()
    cases = list(read_cases(run_dir, slim=True))
    summary = summarize(read_run_info(run_dir), cases)
    baseline = None
    if baseline_dir is not None:
        baseline = (read_run_info(baseline_dir), list(read_cases(baseline_dir, slim=True)))
    policy = Policy()
    report = judge(summary, compare_with(summary, cases, policy, baseline=baseline), policy)
    written = write_reports(report, html_path=out, run_dir=run_dir, baseline_dir=baseline_dir)
    if written.problems:
        raise SystemExit("\n".join(written.problems))
    return out, time.perf_counter() - started


MEASURE = """async ([kind]) => {
  const frame = () => new Promise((r) => requestAnimationFrame(() => setTimeout(r, 0)));
  const t0 = performance.now();
  if (kind === "filter") {
    const s = document.getElementById("v-status"); s.value = "failed";
    s.dispatchEvent(new Event("change"));
  } else if (kind === "eval") {
    const s = document.getElementById("v-eval"); s.value = s.options[3].value;
    s.dispatchEvent(new Event("change"));
  } else if (kind === "search" || kind === "search2") {
    const s = document.getElementById("v-search");
    s.value = kind === "search" ? "credit" : "case-0001";
    s.dispatchEvent(new Event("input"));
  } else if (kind === "changed") {
    const s = document.getElementById("v-change"); s.value = "changed";
    s.dispatchEvent(new Event("change"));
  } else if (kind === "scroll") {
    const l = document.getElementById("v-list"); l.scrollTop = l.scrollHeight / 2;
  } else if (kind === "reset") {
    for (const id of ["v-status", "v-eval", "v-change"]) {
      const s = document.getElementById(id);
      s.value = ""; s.dispatchEvent(new Event("change"));
    }
    const s = document.getElementById("v-search");
    s.value = ""; s.dispatchEvent(new Event("input"));
    return 0;
  }
  await frame();
  return performance.now() - t0;
}"""


def measure(chromium: str, page_path: Path, repeat: int, paired: bool) -> dict[str, float]:
    from playwright.sync_api import sync_playwright

    figures: dict[str, list[float]] = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium,
            headless=True,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"],
        )
        try:
            for _ in range(repeat):
                page = browser.new_page(viewport={"width": 1400, "height": 900})
                page.goto(page_path.as_uri())
                page.wait_for_selector("body[data-viewer=ready]")
                page.wait_for_timeout(50)
                ready = page.evaluate("performance.getEntriesByName('viewer-ready')[0].startTime")
                nav = page.evaluate("performance.getEntriesByType('navigation')[0].toJSON()")
                figures.setdefault("load", []).append(ready)
                figures.setdefault("render", []).append(
                    nav["domContentLoadedEventEnd"] - nav["responseEnd"]
                )
                kinds = ["filter", "reset", "eval", "reset", "search", "reset", "search2"]
                kinds += ["reset", "changed", "reset"] if paired else ["reset"]
                kinds += ["scroll"]
                for kind in kinds:
                    took = page.evaluate(MEASURE, [kind])
                    if kind != "reset":
                        figures.setdefault(kind, []).append(took)
                page.close()
        finally:
            browser.close()
    return {name: statistics.median(values) for name, values in figures.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    chromium = shutil.which("chromium")
    if chromium is None:
        raise SystemExit("Debian's chromium is not installed (scripts/system-packages)")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        runs = Path(tmp) / "runs"
        base = make_run(runs, "20261207-170000-base", args.cases, seed=1)
        cand = make_run(runs, "20261207-171000-cand", args.cases, seed=2)
        for name, baseline in (("run", None), ("with baseline", base)):
            page, seconds = write_page(Path(tmp) / f"{name}.html", cand, baseline)
            figures = measure(chromium, page, args.repeat, baseline is not None)
            figures["write_s"] = seconds
            figures["size_mb"] = page.stat().st_size / 1e6
            results[name] = figures
    columns = ["load", "render", "filter", "eval", "search", "search2", "changed", "scroll"]
    print(f"{args.cases} cases, median of {args.repeat} page loads (ms)")
    print(f"{'page':<14}{'MB':>6}{'write s':>9}" + "".join(f"{c:>9}" for c in columns))
    for name, figures in results.items():
        cells = "".join(f"{figures[c]:>9.1f}" if c in figures else f"{'-':>9}" for c in columns)
        print(f"{name:<14}{figures['size_mb']:>6.1f}{figures['write_s']:>9.2f}{cells}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
