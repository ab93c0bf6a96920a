"""How fast pytest-modelopt runs agent evals, beside the physical limit and the in-test loop.

Run from the repository root (venv active, the ``agents`` extra installed)::

    python benchmarks/bench_agents.py [--cases 200] [--latency 0.1] [--concurrency 32]
                                      [--plugin-from DIR] [--only ROWS] [--json out.json]

It builds a throwaway project in a temporary directory: a support agent with two function
tools (``lookup_order``, ``refund_policy``) and a dataset of ``--cases`` cases. The
repository's fake OpenAI server (``tests/support/fake_openai``, in a thread of this
process, ``--latency`` seconds per request) scripts three model calls per case: the
first turn calls ``lookup_order``, the second ``refund_policy``, the third answers. Each
row is a fresh pytest subprocess, one after another:

cold          ``agent="support:agent"`` eval, empty cache (record mode ``new``)
warm          the same again: every model call replayed, none may reach the server
intest-cold   the same agent run by the ``run_agent`` fixture in the test body (each case
              in its own test, one after another: the baseline), empty cache
intest-warm   the same again, replayed
xdist-cold    ``cold`` with ``-n 2`` (an empty cache)

Each row prints the wall time, the model requests that reached the server, the most the
server saw at once, and the physical limit: ``requests x latency / concurrency`` with
concurrency min(cases, ``--concurrency``) for the plugin's rows and 1 for the in-test
rows (a test runs its agent to the end before the next test starts). The warm rows have
no limit to speak of (no request is sent); compare them with each other.

``--plugin-from DIR`` measures another checkout's ``pytest_modelopt/`` (e.g. main before a
change): the children import it first on ``PYTHONPATH``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.support.fake_openai import FakeOpenAI  # noqa: E402

MODEL = "gpt-4.1-mini"
ROWS = ("cold", "warm", "intest-cold", "intest-warm", "xdist-cold")

AGENT = '''
from agents import Agent, function_tool

@function_tool
def lookup_order(order_id: str) -> str:
    """The order's status."""
    return f"order {order_id}: shipped"

@function_tool
def refund_policy(order_id: str) -> str:
    """Whether the order can be refunded."""
    return f"order {order_id}: refundable within 30 days"

agent = Agent(
    name="support", instructions="Look the order up, then check the refund policy.",
    tools=[lookup_order, refund_policy],
)
'''

DECLARED = """
import pytest

@pytest.mark.eval(agent="support:agent", dataset="cases.jsonl")
def test_support(completion):
    assert "refundable" in completion.text
"""

IN_TEST = """
import pytest
from support import agent

@pytest.mark.eval(dataset="cases.jsonl")
def test_support(run_agent, case):
    run = run_agent(agent, case["input"])
    assert "refundable" in run.final_output
"""


def answer(body: dict[str, Any]) -> str:
    outputs = [i["output"] for i in body["input"] if i.get("type") == "function_call_output"]
    return f"Your {outputs[-1]}."


def script(server: FakeOpenAI) -> None:
    """Three model calls per case. The newest rule is tried first: turn 1 (no tool output
    yet) looks the order up, turn 2 (one output) checks the policy, turn 3 answers."""
    server.reset()
    server.reply(answer)
    server.reply_tool_call("refund_policy", {"order_id": "A1"}, until_tool_output=2)
    server.reply_tool_call("lookup_order", {"order_id": "A1"}, until_tool_output=1)


def project(root: Path, cases: int, concurrency: int, test: str) -> Path:
    root.mkdir(parents=True)
    (root / "pyproject.toml").write_text(
        f'[tool.modelopt]\nmodels = ["{MODEL}"]\nconcurrency = {concurrency}\n'
    )
    (root / "support.py").write_text(textwrap.dedent(AGENT).lstrip())
    rows = [{"id": f"c{i:04d}", "input": f"Can I return order A{i}?"} for i in range(cases)]
    (root / "cases.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (root / "test_support.py").write_text(textwrap.dedent(test).lstrip())
    return root


def run(root: Path, env: dict[str, str], *args: str) -> tuple[float, int, str]:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
    )
    return time.perf_counter() - started, done.returncode, done.stdout[-2000:]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", type=int, default=200)
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--plugin-from", type=Path, default=None)
    parser.add_argument("--only", default=",".join(ROWS))
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    only = [row for row in ROWS if row in args.only.split(",")]

    server = FakeOpenAI(args.latency).start()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELOPT_")}
    env.update(OPENAI_BASE_URL=server.base_url, OPENAI_API_KEY="sk-bench")
    pythonpath = [str(args.plugin_from)] if args.plugin_from else []
    env["PYTHONPATH"] = os.pathsep.join([*pythonpath, env.get("PYTHONPATH", "")]).strip(os.pathsep)
    limit_c = min(args.cases, args.concurrency)
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-agents-") as tmp:
        roots = {
            "declared": project(Path(tmp) / "declared", args.cases, args.concurrency, DECLARED),
            "intest": project(Path(tmp) / "intest", args.cases, args.concurrency, IN_TEST),
        }
        for row in only:
            kind = "intest" if row.startswith("intest") else "declared"
            root = roots[kind]
            extra: list[str] = ["-n", "2"] if row == "xdist-cold" else ["-p", "no:xdist"]
            if row.endswith("cold"):
                shutil.rmtree(root / ".modelopt", ignore_errors=True)
            script(server)
            wall, code, tail = run(root, env, *extra)
            sent = len([r for r in server.requests if r.path == "/v1/responses"])
            concurrency = 1 if kind == "intest" else limit_c
            limit = sent * args.latency / concurrency
            results.append(
                {
                    "row": row,
                    "wall_s": round(wall, 2),
                    "requests": sent,
                    "peak_in_flight": server.max_in_flight,
                    "limit_s": round(limit, 2),
                    "wall_over_limit": round(wall / limit, 2) if limit else None,
                    "exit": code,
                }
            )
            if code != 0:
                print(f"{row}: pytest exited {code}\n{tail}", file=sys.stderr)
    print(f"{'row':<12} {'wall s':>7} {'requests':>9} {'peak':>5} {'limit s':>8} {'/limit':>7}")
    for r in results:
        ratio = "" if r["wall_over_limit"] is None else f"{r['wall_over_limit']:.2f}"
        print(
            f"{r['row']:<12} {r['wall_s']:>7.2f} {r['requests']:>9} {r['peak_in_flight']:>5} "
            f"{r['limit_s']:>8.2f} {ratio:>7}"
        )
    by_row = {r["row"]: r for r in results}
    for row in ("warm", "intest-warm"):
        if row in by_row:
            sent = by_row[row]["requests"]
            print(f"requests reaching the server, {row} {sent} target == 0 {_met(sent == 0)}")
    if "cold" in by_row and "intest-cold" in by_row:
        ratio = by_row["intest-cold"]["wall_s"] / by_row["cold"]["wall_s"]
        print(f"intest-cold / cold: {ratio:.1f}")
    if args.json is not None:
        settings = {key: str(value) for key, value in vars(args).items()}
        args.json.write_text(json.dumps({"args": settings, "rows": results}, indent=2))
    return 0 if all(r["exit"] == 0 for r in results) else 1


def _met(ok: bool) -> str:
    return "MET" if ok else "MISSED"


if __name__ == "__main__":
    raise SystemExit(main())
