"""The fine-tune loop, proven: the driver behind ``./scripts/optimize-demo``.

It runs, in a copy of ``examples/finetune``, the commands a user would type, printing each
one (``$ ...``) with its output, so its transcript is the documentation's
(docs/optimize.md):

1. the base model's run, replayed from its recordings: ``test_intent`` misses its 80%;
2. ``modelopt finetune base --answers-from label``: SFT on the training cases' labels with
   the ``local`` backend, followed to the end; then the loss curve;
3. the trained model served by ``pytest_modelopt.optimize.serve_hf`` on 127.0.0.1 and
   measured (the plugin scores it only on the cases it did not train on), with
   ``--eval-distill-to``: when its gates pass, its answers to the unlabelled messages become
   the next training set (the gate-triggered path, launched with the ``export`` backend);
4. ``modelopt compare base student``, and the before/after table on the held-out cases.

The full run then checks its own claims (base fails, fine-tuned passes, the comparison
says improved, the distillation launched) and exits 1 if one does not hold. ``--tiny``
runs the same path on a few cases and steps and checks only that every step ran.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "finetune"
BIN = Path(sys.executable).parent
BASE = "smollm2-135m-instruct"
TINY_CASES = {"tickets.jsonl": 60, "unlabelled.jsonl": 20}


def machine() -> str:
    model = "unknown CPU"
    with open("/proc/cpuinfo", encoding="utf-8") as info:
        for line in info:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} cores ({model}), Python {platform.python_version()}"


def run(cmd: list[str], cwd: Path, env: dict[str, str], shown: str | None = None) -> str:
    """Run a command as the user would, echoing it and its output; return the output."""
    print(f"\n$ {shown or ' '.join(cmd)}", flush=True)
    proc = subprocess.Popen(
        cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        print(line, end="", flush=True)
        lines.append(line)
    code = proc.wait()
    if code:  # as the documentation's transcripts show it
        print(f"[exit {code}]", flush=True)
    return "".join(lines) + f"\n[exit {code}]"


def copy_project(dest: Path, tiny: bool) -> None:
    shutil.copytree(
        EXAMPLE, dest, ignore=shutil.ignore_patterns("runs", "saved", "finetune", "__pycache__")
    )
    if not tiny:
        return
    for name, keep in TINY_CASES.items():  # the first cases by id: recorded like the rest
        path = dest / "data" / name
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        rows = sorted(rows, key=lambda row: str(row["id"]))[:keep]
        path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    pyproject = dest / "pyproject.toml"
    text = pyproject.read_text()
    pyproject.write_text(
        text.replace("[tool.modelopt.finetune]\n", "[tool.modelopt.finetune]\nmax_steps = 3\n")
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(url: str, server: subprocess.Popen[bytes], timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"optimize-demo: the model server exited ({server.returncode})")
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except OSError:
            time.sleep(1)
    raise SystemExit(f"optimize-demo: the model server did not answer at {url}")


def loss_curve(events: Path, width: int = 40) -> list[tuple[int, float]]:
    """The training loss by step from the job's events, printed as a bar chart."""
    points = []
    for line in events.read_text().splitlines():
        data = json.loads(line).get("data") or {}
        if "loss" in data:
            points.append((int(data["step"]), float(data["loss"])))
    print(f"\ntraining loss ({len(points)} steps):")
    top = max((loss for _, loss in points), default=1.0) or 1.0
    every = max(1, len(points) // 20)
    for index, (step, loss) in enumerate(points):
        if index % every == 0 or index == len(points) - 1:
            print(f"  step {step:4d}  {loss:7.4f}  {'#' * max(1, round(width * loss / top))}")
    return points


def before_after(base_run: Path, student_run: Path) -> dict[str, tuple[int, float, float]]:
    """Per eval: (cases, base pass rate, fine-tuned pass rate) on the cases the fine-tuned
    model was scored on, the ones it never trained on."""
    sys.path.insert(0, str(ROOT))
    from pytest_modelopt.records.store import read_cases

    def outcomes(run_dir: Path) -> dict[tuple[str, str], bool]:
        return {(r.eval, r.case_id): r.status == "passed" for r in read_cases(run_dir)}

    base, student = outcomes(base_run), outcomes(student_run)
    table = {}
    print("\nbefore and after, on the cases the fine-tuned model never trained on:")
    print(f"  {'eval':<26} {'cases':>5}  {'base':>6}  {'fine-tuned':>10}")
    for eval_name in sorted({e for e, _ in student}):
        keys = [k for k in student if k[0] == eval_name and k in base]
        rate_base = sum(base[k] for k in keys) / max(len(keys), 1)
        rate_student = sum(student[k] for k in keys) / max(len(keys), 1)
        table[eval_name] = (len(keys), rate_base, rate_student)
        print(f"  {eval_name:<26} {len(keys):>5}  {rate_base:>6.1%}  {rate_student:>10.1%}")
    return table


def claims(
    outputs: dict[str, str], table: dict[str, tuple[int, float, float]], points: list[Any]
) -> list[str]:
    """What the full run shows, each checked on what the commands printed and saved."""
    intent = "test_router::test_intent"
    checks = {
        "the base model misses test_intent's threshold": f"FAILED eval {intent} on {BASE}:"
        in outputs["base"],
        "the fine-tuned model passes it on held-out cases": "FAILED eval" not in outputs["student"]
        and "[exit 0]" in outputs["student"],
        "modelopt compare calls test_intent improved": any(
            line.startswith(intent) and "IMPROVED" in line.upper()
            for line in outputs["compare"].splitlines()
        ),
        "the held-out pass rate rose": intent in table and table[intent][2] > table[intent][1],
        "the training loss fell": len(points) > 1 and points[-1][1] < points[0][1],
        "the passing run distilled itself (--eval-distill-to)": "export job" in outputs["student"],
    }
    return [claim for claim, held in checks.items() if not held]


def saved_run(project: Path, name: str) -> Path:
    saved = project / ".modelopt" / "saved" / name
    if not saved.exists():
        raise SystemExit(f"optimize-demo: no run saved as {name!r} ({saved})")
    return saved.resolve()


def main() -> int:
    parser = argparse.ArgumentParser(description="the fine-tune loop, end to end")
    parser.add_argument("--tiny", action="store_true", help="a few cases and steps (CI)")
    parser.add_argument("--keep", type=Path, help="work in this directory and keep it")
    args = parser.parse_args()
    started = time.monotonic()
    print(f"optimize-demo on {machine()}")
    work = args.keep or Path(tempfile.mkdtemp(prefix="optimize-demo-"))
    project = work / "finetune"
    if project.exists():
        raise SystemExit(f"optimize-demo: {project} exists; give --keep an empty directory")
    copy_project(project, args.tiny)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MODELOPT_", "OPENAI_"))}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["COLUMNS"] = "200"
    outputs: dict[str, str] = {}
    times: dict[str, float] = {}

    def step(name: str, cmd: list[str], shown: str | None = None, **extra: str) -> str:
        begun = time.monotonic()
        outputs[name] = run(cmd, project, {**env, **extra}, shown)
        times[name] = time.monotonic() - begun
        return outputs[name]

    step(
        "base",
        ["pytest", "-q", "--eval-record", "none", "--eval-save", "base"],
    )
    step(
        "finetune",
        [
            "modelopt",
            "finetune",
            "base",
            "--base-model",
            BASE,
            "--answers-from",
            "label",
            "--eval",
            "test_router::test_intent",
            "--follow",
        ],
    )
    jobs = [p.parent for p in (project / ".modelopt" / "finetune").glob("*/job.json")]
    job = json.loads((jobs[0] / "job.json").read_text()) if len(jobs) == 1 else {}
    if job.get("status") != "succeeded":
        print(f"optimize-demo: no trained model ({job.get('status', 'no job')})", file=sys.stderr)
        return 1
    launch = jobs[0]
    points = loss_curve(launch / "local" / "events.jsonl")
    name = job["id"]  # the name it is served under; the plugin knows it trained
    port = free_port()
    serve = [
        str(BIN / "python"),
        "-m",
        "pytest_modelopt.optimize.serve_hf",
        str(launch / "local" / "model"),
        "--model-name",
        name,
        "--port",
        str(port),
    ]
    model_dir = os.path.relpath(launch / "local" / "model", project)
    print(f"\n$ python -m pytest_modelopt.optimize.serve_hf {model_dir} ", end="")
    print(f"--model-name {name} --port {port} &", flush=True)
    with open(work / "serve.log", "wb") as log:
        server = subprocess.Popen(serve, cwd=project, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(f"http://127.0.0.1:{port}/v1/models", server)
        base_url = f"http://127.0.0.1:{port}/v1"
        student_cmd = [
            "pytest",
            "-q",
            "--eval-models",
            name,
            "--eval-record",
            "off",
            "--eval-save",
            "student",
            "--eval-distill-to",
            BASE,
            "--eval-finetune-backend",
            "export",
        ]
        step(
            "student",
            student_cmd,
            f"OPENAI_BASE_URL={base_url} " + " ".join(student_cmd),
            OPENAI_BASE_URL=base_url,
            OPENAI_API_KEY="local",
        )
    finally:
        server.terminate()
        server.wait(timeout=60)
    step("compare", ["modelopt", "compare", "base", "student"])

    table = before_after(saved_run(project, "base"), saved_run(project, "student"))
    print(
        "\ntimes: "
        + ", ".join(f"{k} {v:.0f} s" for k, v in times.items())
        + f"; total {time.monotonic() - started:.0f} s"
    )
    failed = [] if args.tiny else claims(outputs, table, points)
    for claim in failed:
        print(f"optimize-demo: did not hold: {claim}", file=sys.stderr)
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
