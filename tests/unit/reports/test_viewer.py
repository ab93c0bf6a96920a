"""The run viewer in a real browser (headless Chromium): filters, search, the before/after
diff, review marks and the labels file they download, and hostile data staying inert.

The runs are real run directories (written with the store's writer) and the page is the
one ``--eval-html`` writes (``write_reports``), so what is tested is what a user opens.
"""

from __future__ import annotations

import hashlib
import json
import re
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from pytest_modelopt import images
from pytest_modelopt.records.labels import Label, merge_labels, read_labels
from pytest_modelopt.records.models import CaseRecord, ErrorRecord, GradeRecord, RunInfo
from pytest_modelopt.records.store import RunWriter, read_cases, read_run_info, write_run_info
from pytest_modelopt.records.trajectory import Item, Trajectory
from pytest_modelopt.reports.html import run_headline
from pytest_modelopt.reports.viewer import script_json
from pytest_modelopt.reports.write import write_reports
from pytest_modelopt.verdict.judge import Policy, compare_with, judge
from pytest_modelopt.verdict.summary import summarize
from tests.support.browser import CHROMIUM_ARGS, chromium, watch
from tests.support.images import png

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    import pytest
    from playwright.sync_api import BrowserContext, Page

REPLY = "tests/test_triage.py::test_reply"
SUMMARY = "tests/test_summary.py::test_summary"
ESC = "\x1b[31mRED\x1b[0m\x07"
EVIL = (
    'Escalate. <script>window.__pwned = 1</script><img src=x onerror="window.__pwned=2">'
    f" </script><!-- {ESC} cc @octocat"
)
#: the labels format agreed for issue 17 (docs/viewer.md), field by field, in order
LABEL_FIELDS = [
    "schema_version",
    "eval",
    "case_id",
    "model",
    "sample",
    "grader",
    "grader_identity",
    "verdict",
    "note",
    "reviewer",
    "labelled_at",
    "run_id",
    "output_sha256",
]


def _case(
    eval: str, model: str, case_id: str, output: str | None, passed: bool, **kw: Any
) -> CaseRecord:
    grades = [
        GradeRecord(
            name="queue",
            score=1.0 if passed else 0.0,
            passed=passed,
            reason="" if passed else "expected queue 'billing', got 'tier2'",
        ),
        GradeRecord(name="tone", score=0.9, passed=True, reason="polite and specific"),
    ]
    values: dict[str, Any] = {
        "eval": eval,
        "nodeid": f"{eval}[{model}-{case_id}-{kw.get('sample', 0)}]",
        "model": model,
        "case_id": case_id,
        "status": "passed" if passed else "failed",
        "input": [
            {"role": "system", "content": "You triage support tickets."},
            {"role": "user", "content": f"Ticket {case_id}: my invoice is wrong"},
        ],
        "output": output,
        "grades": grades if output is not None else [],
        "latency_s": 0.5,
        "cost": 0.0001,
        "calls": 1,
    }
    values.update(kw)
    return CaseRecord(**values)


def _run(runs: Path, run_id: str, records: list[CaseRecord]) -> Path:
    run_dir = runs / run_id
    write_run_info(
        run_dir,
        RunInfo(
            run_id=run_id,
            started_at="2026-12-07T17:00:00Z",
            plugin_version="0",
            models=sorted({r.model for r in records}),
        ),
    )
    writer = RunWriter(run_dir, "main")
    for record in records:
        writer.append(record)
    writer.close()
    return run_dir


#: an agent's run whose every text is hostile: the page shows it as text
EVIL_RUN = Trajectory(
    items=[
        Item(
            kind="tool_call",
            agent="support",
            name="lookup<i>",
            call_id="c1",
            arguments={"order_id": EVIL},
        ),
        Item(
            kind="tool_output",
            agent="support",
            call_id="c1",
            output=EVIL,
            error="ValueError: <b>no</b> order",
        ),
        Item(kind="message", agent="support", role="assistant", content=EVIL),
    ],
    turns=2,
    final_output=EVIL,
)

BASELINE = [
    _case(REPLY, "gpt-4o-mini", "c1-refund", '{"queue": "billing"}', True),
    _case(REPLY, "gpt-4o-mini", "c2-login", '{"queue": "general"}', False),
    _case(REPLY, "gpt-4o-mini", "c3-outage", '{"queue": "incident"}', True),
    _case(SUMMARY, "gpt-4.1-nano", "s1", "The customer wants a refund.", True),
]
CANDIDATE = [
    _case(REPLY, "gpt-4o-mini", "c1-refund", '{"queue": "tier2"}', False),
    _case(REPLY, "gpt-4o-mini", "c2-login", '{"queue": "auth"}', True),
    _case(REPLY, "gpt-4o-mini", "c3-outage", '{"queue": "incident"}', True),
    _case(REPLY, "gpt-4o-mini", "c4-<b>new</b>", EVIL, False, trajectory=EVIL_RUN),
    _case(
        REPLY,
        "gpt-4o-mini",
        "c5-timeout",
        None,
        False,
        status="error",
        error=ErrorRecord(kind="timeout", message="the model did not answer in 30s"),
    ),
    _case(SUMMARY, "gpt-4.1-nano", "s1", "The customer wants a refund.", True),
    _case(SUMMARY, "gpt-4.1-nano", "s1", "The customer asks for a refund.", True, sample=1),
]


def _page_for(tmp_path: Path, *, baseline: bool) -> tuple[Path, str]:
    runs = tmp_path / "runs"
    cand = _run(runs, "20261207-171000-pr", CANDIDATE)
    base = _run(runs, "20261207-170000-main", BASELINE) if baseline else None
    cases = list(read_cases(cand, slim=True))
    summary = summarize(read_run_info(cand), cases)
    policy = Policy()
    against = None if base is None else (read_run_info(base), list(read_cases(base, slim=True)))
    report = judge(summary, compare_with(summary, cases, policy, baseline=against), policy)
    out = tmp_path / "viewer.html"
    written = write_reports(report, html_path=out, run_dir=cand, baseline_dir=base)
    assert written.problems == []
    assert written.files == [out]
    return out, "20261207-171000-pr"


def _open(page: Page, path: Path) -> None:
    page.goto(path.as_uri())
    page.wait_for_selector("body[data-viewer=ready]")


def _rows(page: Page) -> list[str]:
    """The case ids of the rows drawn, in order (every row fits on screen here)."""
    return [
        page.locator("#v-list .vrow .cid").nth(i).inner_text()
        for i in range(page.locator("#v-list .vrow").count())
    ]


def _select(page: Page, case_id: str) -> None:
    page.locator("#v-list .vrow", has=page.locator(".cid", has_text=case_id)).first.click()
    assert page.locator("#v-title").inner_text() == case_id.split(" #")[0]


@contextmanager
def _browser(path: Path) -> Iterator[tuple[BrowserContext, list[str]]]:
    """A fresh browser context (its own local storage) and the problems its pages report."""
    from playwright.sync_api import sync_playwright

    executable = chromium()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_ARGS
        )
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 900})
            problems: list[str] = []
            context.on("page", lambda page: watch(page, path, problems))
            yield context, problems
        finally:
            browser.close()


def test_viewer_without_a_baseline(tmp_path: Path) -> None:
    path, _ = _page_for(tmp_path, baseline=False)
    with _browser(path) as (context, problems):
        page = context.new_page()
        _open(page, path)
        # the per-eval summary, with intervals; no comparison, no change filter
        summary = page.locator("#run-summary tbody tr")
        assert summary.count() == 2
        assert re.search(r"\d+\.\d% \[\d+(\.\d)?%, \d+(\.\d)?%\]", summary.nth(0).inner_text())
        assert page.locator("#summary-section").count() == 0
        # c5-timeout is one error in five cases: over the default 10% error-rate gate
        assert page.locator("#headline").inner_text() == "✗ 1 gate failed"
        assert page.locator("#gates tbody tr").count() == 1
        assert page.locator("#v-change").is_hidden()
        assert page.locator("#v-count").inner_text() == "showing 7 of 7"
        assert len(_rows(page)) == 7

        # filters: eval, model, status, grader; each narrows, and clearing restores
        page.select_option("#v-eval", SUMMARY)
        assert _rows(page) == ["s1", "s1 #1"]
        page.select_option("#v-eval", "")
        page.select_option("#v-model", "gpt-4o-mini")
        assert len(_rows(page)) == 5
        page.select_option("#v-status", "failed")
        assert sorted(_rows(page)) == ["c1-refund", "c4-<b>new</b>"]
        page.select_option("#v-status", "error")
        assert _rows(page) == ["c5-timeout"]
        page.select_option("#v-status", "")
        page.select_option("#v-model", "")
        page.select_option("#v-grader", label="✗ queue failed")
        assert sorted(_rows(page)) == ["c1-refund", "c4-<b>new</b>"]
        page.select_option("#v-grader", label="✓ tone passed")
        assert len(_rows(page)) == 6  # every graded case
        page.select_option("#v-grader", "")

        # search: case-insensitive, over outputs, inputs, reasons and errors
        page.fill("#v-search", "TIER2")
        assert sorted(_rows(page)) == ["c1-refund", "c4-<b>new</b>"]  # output / reason
        page.fill("#v-search", "did not answer")
        assert _rows(page) == ["c5-timeout"]
        page.fill("#v-search", "ticket s1")
        assert _rows(page) == ["s1", "s1 #1"]
        page.fill("#v-search", "no such text anywhere")
        assert _rows(page) == []
        assert page.locator("#v-empty").is_visible()
        assert page.locator("#v-count").inner_text() == "showing 0 of 7"
        page.fill("#v-search", "")
        assert len(_rows(page)) == 7

        # a case: input messages, output, grades with reasons, cost, latency; samples
        _select(page, "c1-refund")
        detail = page.locator("#v-detail")
        text = detail.inner_text()
        assert "You triage support tickets." in text
        assert "Ticket c1-refund: my invoice is wrong" in text
        assert page.locator("#v-output").inner_text() == '{"queue": "tier2"}'
        assert "expected queue 'billing', got 'tier2'" in text
        assert "polite and specific" in text
        assert "$0.000100" in text
        assert "0.50s" in text
        _select(page, "c5-timeout")
        assert "timeout: the model did not answer in 30s" in detail.inner_text()
        _select(page, "s1 #1")
        samples = page.locator("#v-detail .samples button")
        assert samples.count() == 2
        samples.nth(0).click()
        assert page.locator("#v-output").inner_text() == "The customer wants a refund."

        # hostile data is text: no element, no script, no request; the escapes stay text
        _select(page, "c4-<b>new</b>")
        assert page.locator("#v-output").inner_text().startswith("Escalate. <script>")
        assert page.locator("#v-title").inner_text() == "c4-<b>new</b>"
        assert page.locator("#v-detail script, #v-detail img, #v-list b").count() == 0
        assert page.evaluate("document.getElementById('v-output').textContent").find(ESC) > 0
        assert page.evaluate("typeof window.__pwned") == "undefined"
        assert problems == []


def test_a_case_shows_its_agents_trajectory_as_text(tmp_path: Path) -> None:
    path, _ = _page_for(tmp_path, baseline=False)
    with _browser(path) as (context, problems):
        page = context.new_page()
        _open(page, path)
        _select(page, "c1-refund")
        assert page.locator("#v-trajectory").count() == 0  # no agent ran in this case
        _select(page, "c4-<b>new</b>")
        assert "Trajectory (2 model calls)" in page.locator("#v-detail").inner_text()
        steps = page.locator("#v-trajectory li")
        assert [steps.nth(i).get_attribute("data-kind") for i in range(3)] == [
            "tool_call",
            "tool_output",
            "message",
        ]
        call, output, message = (steps.nth(i).inner_text() for i in range(3))
        assert call.startswith("tool_call lookup<i> (support)")
        assert json.dumps({"order_id": EVIL}, ensure_ascii=False) in call
        assert EVIL in output
        assert "raised ValueError: <b>no</b> order" in output
        assert EVIL in message
        assert page.locator("#v-trajectory script, #v-trajectory img, #v-trajectory b").count() == 0
        assert page.locator("#v-trajectory i").count() == 0
        # the search reads the trajectory: the exception a tool raised finds its case
        page.fill("#v-search", "<b>no</b> order")
        assert page.locator("#v-count").inner_text() == "showing 1 of 7"
        page.fill("#v-search", "lookup<i>")
        assert page.locator("#v-count").inner_text() == "showing 1 of 7"
        assert page.evaluate("typeof window.__pwned") == "undefined"
        assert problems == []


def _label_lines(text: str) -> list[dict[str, Any]]:
    """The downloaded labels, each line checked against the agreed format by hand (the
    field order too) and then read by the labels format's own reader."""
    assert text.endswith("\n")
    lines = [json.loads(line) for line in text.splitlines()]
    for line in lines:
        assert list(line) == LABEL_FIELDS
        assert line["schema_version"] == 1
        assert isinstance(line["sample"], int)
        assert line["grader"] is None or isinstance(line["grader"], str)
        assert line["verdict"] in ("pass", "fail")
        assert isinstance(line["note"], str)
        assert isinstance(line["reviewer"], str)
        assert line["reviewer"]
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", line["labelled_at"])
        sha = line["output_sha256"]
        assert sha is None or re.fullmatch(r"[0-9a-f]{64}", sha)
    return lines


def test_review_marks_download_as_labels(tmp_path: Path) -> None:
    path, run_id = _page_for(tmp_path, baseline=False)
    with _browser(path) as (context, problems):
        page = context.new_page()
        _open(page, path)
        _select(page, "c1-refund")
        case_review = page.locator('#v-detail .review[data-mark=""]')
        # no reviewer name: no mark, and the page says why
        case_review.locator("button[data-verdict=pass]").click()
        assert "Enter your name" in page.locator("#v-review-msg").inner_text()
        assert page.locator("#v-marks").inner_text() == "0 labels"
        assert page.locator("#v-download").is_disabled()

        page.fill("#v-reviewer", "Ada <Lovelace>")
        case_review.locator("input.note").fill("the ticket is about billing")
        case_review.locator("button[data-verdict=fail]").click()
        assert case_review.locator("button[data-verdict=fail]").get_attribute("aria-pressed") == (
            "true"
        )
        grade_review = page.locator('#v-detail .review[data-mark="queue"]')
        grade_review.locator("button[data-verdict=pass]").click()  # the judge was wrong
        _select(page, "c4-<b>new</b>")
        page.locator('#v-detail .review[data-mark=""] button[data-verdict=pass]').click()
        page.locator('#v-detail .review[data-mark=""] button[data-verdict=pass]').click()  # undo
        page.locator('#v-detail .review[data-mark=""] button[data-verdict=fail]').click()
        assert page.locator("#v-marks").inner_text() == "3 labels"
        assert page.locator("#v-list .vrow .badge.fail").count() == 2  # reviewed rows

        with page.expect_download() as info:
            page.click("#v-download")
        download = info.value
        assert download.suggested_filename == f"labels-{run_id}.jsonl"
        saved = tmp_path / "labels.jsonl"
        download.save_as(saved)
        lines = _label_lines(saved.read_text(encoding="utf-8"))
        # the labels format reads the download as is, and merging it with a reviewer who
        # disagrees on one case is a conflict on exactly that case
        read = read_labels(saved)
        assert [label.model_dump(mode="json") for label in read] == lines
        other = read[0].model_copy(
            update={"reviewer": "Grace", "verdict": "pass" if read[0].verdict == "fail" else "fail"}
        )
        merged, conflicts, _ = merge_labels([*read, Label.model_validate(other.model_dump())])
        assert [c.labels[0].case_id for c in conflicts] == [read[0].case_id]
        assert len(merged) == len(read) - 1
        by = {(line["case_id"], line["grader"]): line for line in lines}
        assert set(by) == {("c1-refund", None), ("c1-refund", "queue"), ("c4-<b>new</b>", None)}
        whole = by[("c1-refund", None)]
        assert whole == {
            "schema_version": 1,
            "eval": REPLY,
            "case_id": "c1-refund",
            "model": "gpt-4o-mini",
            "sample": 0,
            "grader": None,
            "grader_identity": None,  # this run's grades have no identity
            "verdict": "fail",
            "note": "the ticket is about billing",
            "reviewer": "Ada <Lovelace>",
            "labelled_at": whole["labelled_at"],
            "run_id": run_id,
            "output_sha256": hashlib.sha256(b'{"queue": "tier2"}').hexdigest(),
        }
        assert by[("c1-refund", "queue")]["verdict"] == "pass"
        assert by[("c1-refund", "queue")]["note"] == ""
        evil = by[("c4-<b>new</b>", None)]
        assert evil["output_sha256"] == hashlib.sha256(EVIL.encode()).hexdigest()

        # the marks outlive a reload (local storage, keyed by the run id)
        again = context.new_page()
        _open(again, path)
        assert again.locator("#v-marks").inner_text() == "3 labels"
        assert again.locator("#v-reviewer").input_value() == "Ada <Lovelace>"
        _select(again, "c1-refund")
        review = again.locator('#v-detail .review[data-mark=""]')
        assert review.locator("button[data-verdict=fail]").get_attribute("aria-pressed") == "true"
        assert review.locator("input.note").input_value() == "the ticket is about billing"
        again.click("#v-clear")
        assert again.locator("#v-marks").inner_text() == "0 labels"
        assert page.evaluate("typeof window.__pwned") == "undefined"
        assert problems == []


def test_with_a_baseline_the_diff_and_changed_only(tmp_path: Path) -> None:
    path, _ = _page_for(tmp_path, baseline=True)
    with _browser(path) as (context, problems):
        page = context.new_page()
        _open(page, path)
        # today's comparison view is still there, above the viewer
        assert page.locator("#summary tbody tr").count() == 2
        assert page.locator("figure.rate-chart").count() == 2
        assert page.locator("#v-change").is_visible()
        page.select_option("#v-change", "changed")
        assert sorted(_rows(page)) == ["c1-refund", "c2-login"]
        assert page.locator("#v-list .vrow[data-change=regressed] .cid").inner_text() == (
            "c1-refund"
        )
        page.select_option("#v-change", "regressed")
        assert _rows(page) == ["c1-refund"]
        page.select_option("#v-change", "new")
        assert sorted(_rows(page)) == ["c4-<b>new</b>", "c5-timeout", "s1 #1"]
        page.select_option("#v-change", "")
        assert len(_rows(page)) == 7

        _select(page, "c1-refund")
        diff = page.locator("#v-diff")
        assert diff.locator("del").all_inner_texts() == ['"billing"}']
        assert diff.locator("ins").all_inner_texts() == ['"tier2"}']
        assert diff.inner_text() == '{"queue": "billing"}"tier2"}'
        text = page.locator("#v-detail").text_content() or ""  # as written, not as styled
        assert "baseline: passed, score 0.95" in text
        assert "this run: failed, score 0.45" in text
        assert "(baseline: pass, 1)" in text  # the queue grade before
        _select(page, "c3-outage")
        assert "The output is the same as the baseline's." in page.locator("#v-detail").inner_text()
        assert page.locator("#v-diff").count() == 0
        _select(page, "c4-<b>new</b>")
        assert "The baseline has no such case." in page.locator("#v-detail").inner_text()
        assert problems == []


def test_data_cannot_close_its_script_element() -> None:
    text = script_json({"x": "</script><script>alert(1)</script><!-- & \u2028"})
    assert "<" not in text
    assert ">" not in text
    assert "&" not in text
    assert json.loads(text) == {"x": "</script><script>alert(1)</script><!-- & \u2028"}


def test_the_headline_of_a_run_without_a_baseline(tmp_path: Path) -> None:
    passing = [_case(REPLY, "m", f"c{i}", "ok", True) for i in range(3)]
    run = _run(tmp_path / "runs", "r", passing)
    summary = summarize(read_run_info(run), list(read_cases(run)))
    assert run_headline(summary, []) == (
        "none",
        "1 eval ran; no threshold or gate decides a verdict",
    )
    gated = judge(summary, None, Policy(fail_on=("pass_rate>=0.5",)))
    assert run_headline(summary, gated.gates) == ("good", "✓ 1 eval, none failed")
    failing = judge(summary, None, Policy(fail_on=("pass_rate>=1.5",)))
    assert run_headline(summary, failing.gates) == ("bad", "✗ 1 gate failed")
    assert run_headline(summary.model_copy(update={"evals": []}), []) == ("none", "No eval ran")


def test_a_case_shows_its_input_images_from_their_own_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A referenced file is drawn from a data URL of its bytes (the CSP allows nothing
    else); an https image is named and never fetched."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "cat.png").write_bytes(png(4, 3))
    ref = images.resolve("img/cat.png", tmp_path)

    def look(url: str) -> list[dict[str, Any]]:
        image = {"type": "image_url", "image_url": {"url": url}}
        return [{"role": "user", "content": [{"type": "text", "text": "Which animal?"}, image]}]

    records = [
        _case(REPLY, "gpt-4o-mini", "i1-file", "cat", True, input=look(ref)),
        _case(REPLY, "gpt-4o-mini", "i2-web", "dog", True, input=look("https://x.test/d.png")),
    ]
    run_dir = _run(tmp_path / "runs", "20261207-180000-img", records)
    cases = list(read_cases(run_dir, slim=True))
    policy = Policy()
    summary = summarize(read_run_info(run_dir), cases)
    report = judge(summary, compare_with(summary, cases, policy, baseline=None), policy)
    path = tmp_path / "viewer.html"
    assert write_reports(report, html_path=path, run_dir=run_dir).problems == []
    with _browser(path) as (context, problems):
        page = context.new_page()
        _open(page, path)
        _select(page, "i1-file")
        assert "[image: img/cat.png (sha256 " in page.locator("#v-detail").inner_text()
        img = page.locator("#v-images img")
        assert img.count() == 1
        assert page.evaluate("document.querySelector('#v-images img').naturalWidth") == 4
        assert img.get_attribute("src", timeout=1000).startswith("data:image/png;base64,")
        _select(page, "i2-web")
        assert page.locator("#v-images img").count() == 0
        caption = page.locator("#v-images figcaption").inner_text()
        assert "https://x.test/d.png" in caption
        assert "not fetched" in caption
        assert problems == []
