"""How fast pytest-modelopt generates declared completions, beside the physical limit.

Run from the repository root (venv active)::

    python benchmarks/bench_generation.py [--cases 1000] [--latency 0.1] [--concurrency 64]
                                          [--rss-cases 10000] [--json out.json]

It builds a throwaway eval project in a temporary directory, starts the repository's fake
OpenAI server (``tests/support/fake_openai.py``) in a separate process, and runs every
scenario in a fresh subprocess, one after another:

cold      the plugin, N declared cases, empty cache, ``--eval-concurrency C``
warm      the same again: every completion comes from the cache, 0 requests may be sent
xdist     cold again (fresh cache) with ``-n 4``
naive     plain pytest (``-p no:modelopt``) + one synchronous SDK call per test
floor     a bare asyncio script: N requests through ``openai.AsyncOpenAI``, semaphore C
floor-aio the same on the SDK's aiohttp transport (``DefaultAioHttpClient``), as the
          plugin sends
trivial   plain pytest (``-p no:modelopt``), N trivial parametrized tests
idle      the same trivial tests with the plugin loaded (no eval): the cost of loading it
rss-*     peak RSS of the plugin warm at ``--rss-cases`` cases vs plain pytest at as many
          trivial tests (``rss-cold`` only fills the cache for ``rss-warm``)
serial-X  the plugin, N cases, ``--eval-record X`` for X in off, all, new (an empty cache)
          and none (a cache filled by an untimed run first)
xdist-X   the same with ``-n 2``, right before or after its serial twin: ``-n 2`` must
          never be slower, and the server must answer each request once (none for none)
storm-fit N cold cases against a server that admits ``--storm-capacity`` (16) requests at
          once and answers any more 429 at once, told that concurrency: no 429 to meet
storm     the same server, ``--eval-concurrency C``: 429 storms, no Retry-After header
storm-ra  the same with ``Retry-After: --storm-retry-after`` (0.1 s) on each 429
noeval    ``--noeval-tests`` (200) ordinary tests in a project with no ``[tool.modelopt]``,
          the plugin loaded (asleep), in back-to-back pairs with
noeval-plain the same tests with ``-p no:modelopt``

``--only`` names rows, or the groups ``modes`` and ``storms``; naming a row brings its
baseline (``xdist-X`` its ``serial-X``, the storms ``storm-fit``, ``noeval`` its plain
twin). The four scenarios above were measured at ``--cases 400`` (docs/benchmarks.md).
``--plugin-from DIR`` measures another checkout's ``pytest_modelopt/`` (an older commit)
with this script and this repository's fake server, so before and after are measured
in one session by one harness.

Each row shows the wall time, the physical limit ``requests x latency / concurrency``
(concurrency: min(N, C); 4 x C under xdist, whose workers each send C, 2 x C for
``xdist-X``; 1 for naive; the server's capacity for the storms), the requests that
reached the server and how many of them it refused (429) for its capacity, the most
requests the server saw at once, the CPU time of the run (its process and every
descendant) and of the server, and the peak RSS. Wall time, CPU and RSS come from
``os.wait4`` on the child, so they are per run.

The server is this same file run with ``--serve``: the standalone ``fake_openai.py``
command prints its URL but offers no way to read the request count from outside, and
that file is not ours to edit. The ``--serve`` process wraps the same ``FakeOpenAI``
class and answers ``stats`` / ``reset`` / ``capacity N [RETRY_AFTER]`` on its stdin, so
the server still runs in its own
process (its CPU is not charged to the driver, and it is measured apart).

Others may edit ``pytest_modelopt/`` while this runs, so by default the children import a
copy of it taken at the start (first on ``PYTHONPATH``; ``--live-sources`` turns that
off), and one untimed warm-up run writes pytest's rewritten ``.pyc`` of that copy first
(``PYTHONDONTWRITEBYTECODE`` is dropped from the children's environment for that).
See docs/benchmarks.md for what each row means and the figures measured so far.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib.metadata
import json
import os
import platform
import resource
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

REPO = Path(__file__).resolve().parent.parent
MODEL = "gpt-4.1-mini"
PROMPT = "Answer in one word. Question {{ id }}: what is {{ a }} + {{ b }}?\n"
MODEL_PATHS = ("/v1/chat/completions", "/v1/responses", "/v1/embeddings")
MB = 1024.0  # ru_maxrss is in KiB on Linux
RECORD_MODES = ("off", "all", "new", "none")  # the modes rows, serial-X and xdist-X
# --only NAME also runs the rows NAME is measured against (its same-run baseline), and a
# group name stands for its rows.
PARTNERS: dict[str, tuple[str, ...]] = {
    **{f"xdist-{mode}": (f"serial-{mode}",) for mode in RECORD_MODES},
    "storm": ("storm-fit",),
    "storm-ra": ("storm-fit",),
    "noeval": ("noeval-plain",),
}
GROUPS: dict[str, tuple[str, ...]] = {
    "modes": tuple(f"{how}-{mode}" for mode in RECORD_MODES for how in ("serial", "xdist")),
    "storms": ("storm-fit", "storm", "storm-ra"),
}


def selection(text: str) -> set[str]:
    """``--only``: the named rows, groups expanded and baselines added."""
    names: set[str] = set()
    for name in filter(None, (part.strip() for part in text.split(","))):
        names.update(GROUPS.get(name, (name,)))
    for name in list(names):
        names.update(PARTNERS.get(name, ()))
    return names


# -- the server process ----------------------------------------------------------------


def serve(latency: float) -> int:
    """``--serve``: FakeOpenAI in this process; ``stats`` / ``reset`` lines on stdin."""
    sys.path.insert(0, str(REPO))
    from tests.support.fake_openai import FakeOpenAI

    def on_term(signum: int, frame: Any) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, on_term)
    server = FakeOpenAI(latency).start()
    try:
        print(f"BASE_URL={server.base_url}", flush=True)
        for line in sys.stdin:  # EOF (the driver died or closed it): stop
            command = line.strip()
            if command == "reset":
                server.reset()
                reply: dict[str, Any] = {"ok": True}
            elif command.startswith("capacity "):  # capacity N [RETRY_AFTER]
                _, count, *after = command.split()
                server.capacity = int(count)
                server.capacity_retry_after = float(after[0]) if after else None
                reply = {"ok": True}
            elif command == "stats":
                requests = server.requests
                usage = resource.getrusage(resource.RUSAGE_SELF)
                reply = {
                    "requests": len(requests),
                    "model_requests": sum(r.path in MODEL_PATHS for r in requests),
                    "max_in_flight": server.max_in_flight,
                    "rejected": server.capacity_rejections,
                    "cpu_s": usage.ru_utime + usage.ru_stime,
                }
            else:
                reply = {"error": f"unknown command {command!r}"}
            print(json.dumps(reply), flush=True)
    finally:
        server.stop()
    return 0


class ServerProcess:
    """The ``--serve`` child, driven over its stdin/stdout."""

    def __init__(self, latency: float) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--serve", "--latency", str(latency)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        line = self._readline(30.0)
        if not line.startswith("BASE_URL="):
            self.close()
            raise RuntimeError(f"fake server did not start: {line!r}")
        self.base_url = line.removeprefix("BASE_URL=").strip()

    def _readline(self, timeout: float) -> str:
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            raise RuntimeError("fake server did not answer in time")
        return self.proc.stdout.readline()

    def ask(self, command: str) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        answer: dict[str, Any] = json.loads(self._readline(60.0))
        return answer

    def close(self) -> None:
        if self.proc.poll() is not None:
            return
        with contextlib.suppress(OSError):
            assert self.proc.stdin is not None
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# -- the throwaway projects ------------------------------------------------------------


def write_rows(path: Path, n: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for i in range(n):
            f.write(json.dumps({"id": f"c{i:05d}", "a": i % 97, "b": i % 89}) + "\n")


def pyproject(path: Path, modelopt: bool) -> None:
    text = '[tool.pytest.ini_options]\naddopts = ["--strict-markers"]\n'
    if modelopt:
        text += f'\n[tool.modelopt]\nmodels = ["{MODEL}"]\n'
    (path / "pyproject.toml").write_text(text, encoding="utf-8")


def eval_project(path: Path, n: int) -> Path:
    """pyproject + JSONL dataset + .j2 prompt + one eval test using ``completion``."""
    (path / "tests").mkdir(parents=True)
    (path / "prompts").mkdir()
    pyproject(path, modelopt=True)
    write_rows(path / "data" / "cases.jsonl", n)
    (path / "prompts" / "ask.j2").write_text(PROMPT, encoding="utf-8")
    (path / "tests" / "test_eval.py").write_text(
        textwrap.dedent(
            """\
            import pytest

            pytestmark = pytest.mark.eval(prompt="prompts/ask.j2", dataset="data/cases.jsonl")


            def test_answer(completion):
                assert completion.text
            """
        ),
        encoding="utf-8",
    )
    return path


def naive_project(path: Path, n: int) -> Path:
    """Plain pytest + the SDK: one synchronous call per parametrized test."""
    (path / "tests").mkdir(parents=True)
    pyproject(path, modelopt=False)
    write_rows(path / "data" / "cases.jsonl", n)
    (path / "prompts").mkdir()
    (path / "prompts" / "ask.j2").write_text(PROMPT, encoding="utf-8")
    (path / "tests" / "test_naive.py").write_text(
        textwrap.dedent(
            f"""\
            import json
            from pathlib import Path

            import jinja2
            import openai
            import pytest

            ROOT = Path(__file__).parent.parent
            CASES = [json.loads(line) for line in open(ROOT / "data" / "cases.jsonl")]
            TEMPLATE = jinja2.Template((ROOT / "prompts" / "ask.j2").read_text())
            client = openai.OpenAI()


            @pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
            def test_naive(case):
                response = client.chat.completions.create(
                    model={MODEL!r},
                    messages=[{{"role": "user", "content": TEMPLATE.render(case)}}],
                )
                assert response.choices[0].message.content
            """
        ),
        encoding="utf-8",
    )
    return path


def trivial_project(path: Path, n: int) -> Path:
    (path / "tests").mkdir(parents=True)
    pyproject(path, modelopt=False)
    (path / "tests" / "test_trivial.py").write_text(
        textwrap.dedent(
            f"""\
            import pytest


            @pytest.mark.parametrize("i", range({n}))
            def test_trivial(i):
                assert i >= 0
            """
        ),
        encoding="utf-8",
    )
    return path


FLOOR_SCRIPT = f"""\
import asyncio, json, sys, time
from pathlib import Path

import jinja2
import openai

async def main(root, concurrency, transport):
    rows = [json.loads(line) for line in open(root / "data" / "cases.jsonl")]
    template = jinja2.Template((root / "prompts" / "ask.j2").read_text())
    # "aiohttp": the SDK's own aiohttp transport, as the plugin uses it (floor-aio)
    http = openai.DefaultAioHttpClient() if transport == "aiohttp" else None
    client = openai.AsyncOpenAI(http_client=http)
    semaphore = asyncio.Semaphore(concurrency)

    async def one(row):
        async with semaphore:
            response = await client.chat.completions.create(
                model={MODEL!r}, messages=[{{"role": "user", "content": template.render(row)}}]
            )
            assert response.choices[0].message.content

    started = time.perf_counter()
    await asyncio.gather(*(one(row) for row in rows))
    print(json.dumps({{"send_s": time.perf_counter() - started, "sent": len(rows)}}))
    await client.close()

asyncio.run(main(Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]))
"""


# -- running one scenario --------------------------------------------------------------


@dataclass
class Row:
    name: str
    what: str
    cases: int
    wall_s: float | None = None
    limit_s: float = 0.0  # requests x latency / concurrency: the best any client could do
    concurrency: int = 1  # what the limit assumes
    server_requests: int | None = None  # everything that reached the server
    model_requests: int | None = None  # of which chat/responses/embeddings calls
    rejected: int | None = None  # of which answered 429 at once for the server's capacity
    max_in_flight: int | None = None
    cpu_s: float | None = None  # user + sys of the run and all its descendants
    server_cpu_s: float | None = None
    peak_rss_mb: float | None = None  # largest single process of the run
    returncode: int | None = None
    outcome: str = ""  # pytest's last line, or the floor's own timing
    load_1min: float | None = None  # the machine's load average as the run started
    plugin_sources: str = ""  # plugin_sources() as the run started
    round: int = 1  # which of the --repeat rounds (the 1000-case rows run in each)
    pair: int = 0  # warm and trivial run back to back in --pairs pairs per round (0: neither)
    notes: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float | None:
        """Completions (or tests) delivered per second of wall time."""
        return self.cases / self.wall_s if self.wall_s else None


class ChildTimeout(Exception):
    pass


def run_child(
    cmd: list[str], cwd: Path, env: dict[str, str], timeout: float, log: Path
) -> tuple[float, int, resource.struct_rusage, str]:
    """Run ``cmd`` in its own session; (wall s, returncode, rusage, output).

    ``os.wait4`` gives this child's own rusage (its descendants included once reaped), so
    ru_maxrss is this run's peak, not the maximum over every earlier child.
    """
    with log.open("wb") as out:
        started = time.perf_counter()
        proc = subprocess.Popen(
            cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = started + timeout
        try:
            while True:
                pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    wall = time.perf_counter() - started
                    break
                if time.perf_counter() > deadline:
                    raise ChildTimeout(f"{cmd[2:4]} timed out after {timeout:.0f}s")
                time.sleep(0.002)
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(proc.pid, 0)
            proc.returncode = -9
            raise
    proc.returncode = os.waitstatus_to_exitcode(status)
    return wall, proc.returncode, usage, log.read_text(encoding="utf-8", errors="replace")


def last_line(output: str) -> str:
    lines = [line.strip("= ") for line in output.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


class Bench:
    def __init__(
        self,
        args: argparse.Namespace,
        workdir: Path,
        server: ServerProcess,
        snapshot: Path | None = None,
    ) -> None:
        self.args = args
        self.workdir = workdir
        self.server = server
        # a frozen copy of the plugin (or --plugin-from's tree), imported instead of the repo's
        self.snapshot = snapshot
        self.sources_root = snapshot or REPO
        self.rows: list[Row] = []
        self.round = 1
        self.pair = 0
        self.env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("MODELOPT_", "PYTEST_", "OPENAI_"))
        }
        # Python writes .pyc files unless told not to; a machine that sets this (as some
        # sandboxes do) would compile the plugin snapshot from source in every run (~0.6 s
        # here), a cost no user pays twice. The warm-up run writes them.
        self.env.pop("PYTHONDONTWRITEBYTECODE", None)
        self.env |= {
            "OPENAI_BASE_URL": server.base_url,
            "OPENAI_API_KEY": "sk-bench-0123456789",
            "PYTHONUNBUFFERED": "1",
        }
        if snapshot is not None:  # ahead of the editable install's path entry
            self.env["PYTHONPATH"] = os.pathsep.join(
                p for p in (str(snapshot), os.environ.get("PYTHONPATH", "")) if p
            )

    def plugin_origin(self) -> str:
        """Where the children import the plugin from."""
        probe = "import pytest_modelopt; print(pytest_modelopt.__file__)"
        done = subprocess.run(
            [sys.executable, "-c", probe],
            env=self.env,
            cwd=self.workdir,
            capture_output=True,
            text=True,
            timeout=60,
        )
        return done.stdout.strip() or done.stderr.strip()[-200:]

    def warm_up(self) -> None:
        """One small untimed plugin run: pytest writes its rewritten .pyc of the plugin,
        and the OS caches the site-packages files, so the first timed run pays neither."""
        print("  warm-up (untimed) ...", end="", flush=True)
        project = eval_project(self.workdir / "warm-up", min(self.args.cases, 20))
        try:
            _, _, _, output = run_child(
                self.pytest(), project, self.env, self.args.timeout, self.workdir / "warm-up.log"
            )
        except ChildTimeout:
            output = "TIMEOUT"
        print(f" {last_line(output)}", flush=True)

    def run(
        self,
        row: Row,
        cmd: list[str],
        cwd: Path,
        *,
        timeout: float | None = None,
        expect_passed: int | None = None,
        expect_answered: int | None = None,
        server: tuple[str, ...] = (),
    ) -> Row:
        """``expect_answered``: the model requests the server must answer (429s aside), no
        more: a request sent twice is a failure. ``server``: commands for the server
        process after its reset (``capacity 16 0.1``)."""
        if not self.wanted(row.name):
            return row
        row.round, row.pair = self.round, self.pair
        print(f"  {row.name:<12} {row.what} ...", end="", flush=True)
        self.server.ask("reset")
        for command in server:
            self.server.ask(command)
        before = self.server.ask("stats")
        log = self.workdir / f"{row.name}.log"
        row.load_1min = os.getloadavg()[0]  # other work on the machine skews the wall times
        row.plugin_sources = plugin_sources(self.sources_root)
        try:
            wall, code, usage, output = run_child(
                cmd, cwd, self.env, timeout or self.args.timeout, log
            )
        except ChildTimeout as exc:
            row.notes.append(str(exc))
            row.outcome = "TIMEOUT"
            self.rows.append(row)
            print(" TIMEOUT", flush=True)
            return row
        after = self.server.ask("stats")
        row.wall_s, row.returncode = wall, code
        row.cpu_s = usage.ru_utime + usage.ru_stime
        row.peak_rss_mb = usage.ru_maxrss / MB
        row.server_requests = after["requests"]
        row.model_requests = after["model_requests"]
        row.rejected = after["rejected"]
        row.max_in_flight = after["max_in_flight"]
        row.server_cpu_s = after["cpu_s"] - before["cpu_s"]
        row.outcome = last_line(output)
        with contextlib.suppress(ValueError, KeyError, TypeError):  # the floor's own timing
            timing = json.loads(row.outcome)
            row.outcome = f"{timing['sent']} sent; the send loop alone {timing['send_s']:.2f}s"
        if code != 0:
            row.notes.append(f"exit code {code}; see the tail of {log.name}:")
            row.notes.extend(output.strip().splitlines()[-15:])
        if expect_passed is not None and f"{expect_passed} passed" not in output:
            row.notes.append(f"expected '{expect_passed} passed' in the output")
        answered = row.model_requests - row.rejected
        if expect_answered is not None and answered != expect_answered:
            row.notes.append(
                f"FAIL: the server answered {answered} model requests, not {expect_answered}"
            )
        self.rows.append(row)
        print(
            f" {wall:.2f}s (limit {row.limit_s:.2f}s, {row.model_requests} requests, "
            f"cpu {row.cpu_s:.1f}s, rss {row.peak_rss_mb:.0f} MB) {row.outcome}",
            flush=True,
        )
        return row

    def pytest(self, *extra: str) -> list[str]:
        return [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *extra]

    def cold_then_warm(
        self,
        prefix: str,
        what: tuple[str, str],
        project: Path,
        cases: int,
        *,
        pairs_with: Callable[[], None] | None = None,
    ) -> None:
        """``cold`` on an empty cache, then ``warm`` on the cache it filled (0 requests).

        ``pairs_with``: ``--pairs`` pairs of ``warm`` and that run, back to back, taking
        turns at going first (the first ``warm`` right after ``cold``): drift cancels.
        """
        c = self.args.concurrency
        plugin = self.pytest("--eval-concurrency", str(c))
        self.run(
            Row(
                f"{prefix}cold",
                what[0],
                cases,
                limit_s=cases * self.args.latency / min(cases, c),
                concurrency=min(cases, c),
            ),
            plugin,
            project,
            expect_passed=cases,
        )

        def warm() -> None:
            row = Row(f"{prefix}warm", what[1], cases, concurrency=c)
            self.run(row, plugin, project, expect_passed=cases)
            if row.server_requests:
                row.notes.append(f"FAIL: {row.server_requests} requests reached the server")

        if pairs_with is None:
            warm()
            return
        for pair in range(1, self.args.pairs + 1):
            self.pair = pair
            for run in (warm, pairs_with) if pair % 2 else (pairs_with, warm):
                run()
        self.pair = 0

    def wanted(self, name: str) -> bool:
        return self.args.only is None or name in self.args.only

    def modes(self) -> None:
        """Each record mode serially and with ``-n 2``, back to back (the pairs take turns
        at going first): ``-n 2`` must never be slower than its serial twin, and the server
        must answer each request once (none at all for ``none``)."""
        a = self.args
        n, c, lat = a.cases, a.concurrency, a.latency
        for mode in RECORD_MODES:
            names = (f"serial-{mode}", f"xdist-{mode}")
            if not any(self.wanted(name) for name in names):
                continue
            replay = mode == "none"
            recorded = self.recorded_project(n) if replay else None
            self.pair = 1
            runs = []
            for name, extra, concurrency in ((names[0], (), c), (names[1], ("-n", "2"), 2 * c)):
                what = f"--eval-record {mode}" + (" -n 2" if extra else "")
                what += ", cache filled" if replay else ", empty cache" if mode == "new" else ""
                row = Row(
                    name,
                    what,
                    n,
                    limit_s=0.0 if replay else n * lat / min(n, concurrency),
                    concurrency=min(n, concurrency),
                )
                cmd = self.pytest("--eval-concurrency", str(c), "--eval-record", mode, *extra)
                project = recorded or self.workdir / f"modes-{self.round}" / name
                runs.append((row, cmd, project))
            for row, cmd, project in runs if self.round % 2 else runs[::-1]:
                if not self.wanted(row.name):
                    continue
                if not project.exists():  # an empty cache for every run that may write one
                    eval_project(project, n)
                self.run(row, cmd, project, expect_passed=n, expect_answered=0 if replay else n)
            self.pair = 0

    def recorded_project(self, n: int) -> Path:
        """The project the ``none`` rows replay: its cache filled once, by an untimed run."""
        project = self.workdir / "modes-recorded"
        if not project.exists():
            eval_project(project, n)
            print("  (untimed) filling the cache for the none rows ...", end="", flush=True)
            cmd = self.pytest("--eval-concurrency", str(self.args.concurrency))
            self.server.ask("reset")
            _, code, _, output = run_child(
                cmd, project, self.env, self.args.timeout, self.workdir / "modes-recorded.log"
            )
            print(f" {last_line(output)}" + (f" (exit code {code})" if code else ""), flush=True)
        return project

    def storms(self) -> None:
        """A server that admits ``--storm-capacity`` requests at once and answers any more
        429 at once, against ``--eval-concurrency C``; beside the plugin told the capacity
        (``storm-fit``, which meets no 429) and the physical limit."""
        a = self.args
        n, c, lat, cap = a.cases, a.concurrency, a.latency, a.storm_capacity
        after = f"{a.storm_retry_after:g}"
        for name, what, concurrency, command in (
            ("storm-fit", f"--eval-concurrency {cap}, capacity {cap}", cap, f"capacity {cap}"),
            ("storm", f"--eval-concurrency {c}, capacity {cap}", c, f"capacity {cap}"),
            (
                "storm-ra",
                f"--eval-concurrency {c}, capacity {cap}, Retry-After {after}",
                c,
                f"capacity {cap} {after}",
            ),
        ):
            if not self.wanted(name):
                continue
            self.run(
                Row(name, what, n, limit_s=n * lat / min(n, cap), concurrency=min(n, cap)),
                self.pytest("--eval-concurrency", str(concurrency)),
                eval_project(self.workdir / f"storm-{self.round}-{name}", n),
                expect_passed=n,
                expect_answered=n,
                server=(command,),
            )

    def noeval(self) -> None:
        """Ordinary tests in a project that does not configure the plugin: loaded, it must
        stay asleep. Against ``-p no:modelopt``, in back-to-back pairs taking turns."""
        if not (self.wanted("noeval") or self.wanted("noeval-plain")):
            return
        m = self.args.noeval_tests
        project = self.workdir / "noeval"
        if not project.exists():
            trivial_project(project, m)  # no [tool.modelopt] table
        for pair in range(1, self.args.noeval_pairs + 1):
            self.pair = pair
            plugin = (Row("noeval", "ordinary tests, no [tool.modelopt], plugin loaded", m), ())
            plain = (Row("noeval-plain", "the same, -p no:modelopt", m), ("-p", "no:modelopt"))
            for row, extra in (plugin, plain) if pair % 2 else (plain, plugin):
                self.run(row, self.pytest(*extra), project, expect_passed=m)
        self.pair = 0

    def scenarios(self) -> None:
        a = self.args
        n, c, lat = a.cases, a.concurrency, a.latency
        cc = min(n, c)  # the concurrency a client can use with N requests
        limit = n * lat / cc
        w = self.workdir
        plugin = ["--eval-concurrency", str(c)]
        no_plugin = ["-p", "no:modelopt"]

        floor_dir = naive_project(w / "naive", n)  # the floor reads the same data/prompt
        floor_script = w / "floor.py"
        floor_script.write_text(FLOOR_SCRIPT, encoding="utf-8")
        trivial_dir = trivial_project(w / "trivial", n)

        def trivial() -> None:
            pyproject(trivial_dir, modelopt=False)
            self.run(
                Row("trivial", "plain pytest, trivial tests", n),
                self.pytest(*no_plugin),
                trivial_dir,
                expect_passed=n,
            )

        for round_ in range(1, a.repeat + 1):  # rounds interleave: a slow spell hits them all
            self.round = round_
            for name, transport, what in (
                ("floor", "httpx", "bare AsyncOpenAI script"),
                ("floor-aio", "aiohttp", "the same script on the SDK's aiohttp transport"),
            ):
                self.run(
                    Row(name, f"{what}, semaphore {c}", n, limit_s=limit, concurrency=cc),
                    [sys.executable, str(floor_script), str(floor_dir), str(c), transport],
                    floor_dir,
                )
            self.cold_then_warm(
                "",
                (f"plugin, empty cache, --eval-concurrency {c}", "plugin, same again (cache hits)"),
                eval_project(w / f"eval-{round_}", n),  # an empty cache each round
                n,
                pairs_with=trivial,
            )
            xdist_c = min(n, 4 * c)  # each of the 4 workers sends up to C at once
            self.run(
                Row(
                    "xdist",
                    "plugin, empty cache, -n 4",
                    n,
                    limit_s=n * lat / xdist_c,
                    concurrency=xdist_c,
                ),
                self.pytest(*plugin, "-n", "4"),
                eval_project(w / f"eval-xdist-{round_}", n),
                expect_passed=n,
            )
            pyproject(trivial_dir, modelopt=True)  # the same tests, the plugin loaded but unused
            self.run(
                Row("idle", "trivial tests, plugin loaded (no eval)", n),
                self.pytest(*plugin),
                trivial_dir,
                expect_passed=n,
            )
            self.modes()
            self.storms()
            self.noeval()
        self.round = 1
        if not a.skip_naive:
            self.run(
                Row(
                    "naive",
                    "plain pytest + sync SDK call per test",
                    n,
                    limit_s=n * lat,
                    concurrency=1,
                ),
                self.pytest(*no_plugin),
                floor_dir,
                timeout=max(a.timeout, 3 * n * lat + 120),
                expect_passed=n,
            )

        m = a.rss_cases
        self.cold_then_warm(
            "rss-",
            ("plugin, empty cache (fills the cache)", "plugin, cache hits"),
            eval_project(w / "eval-rss", m),
            m,
        )
        self.run(
            Row("rss-plain", "plain pytest, trivial tests", m),
            self.pytest(*no_plugin),
            trivial_project(w / "trivial-rss", m),
            expect_passed=m,
        )

    def paired(self, first: str, second: str) -> list[float]:
        """first / second for each pair of runs made back to back (same round and pair).

        On a shared machine a 1-2 s run moves by 20-40% from one minute to the next, and
        both runs of a pair move together: the ratio of a pair varies far less than either.
        """
        walls: dict[tuple[str, int, int], float] = {}
        for r in self.rows:
            if r.pair and r.wall_s is not None and r.returncode == 0:
                walls[(r.name, r.round, r.pair)] = r.wall_s
        return [
            walls[(first, rnd, pair)] / walls[(second, rnd, pair)]
            for (name, rnd, pair) in sorted(walls)
            if name == first and (second, rnd, pair) in walls
        ]

    def ratios(self) -> list[dict[str, Any]]:
        def runs(name: str) -> list[Row]:
            return [r for r in self.rows if r.name == name]

        def wall(name: str) -> float | None:
            """The median wall time of the row's successful runs (None if any failed)."""
            done = runs(name)
            if not done or any(r.wall_s is None or r.returncode != 0 for r in done):
                return None
            return statistics.median(r.wall_s for r in done if r.wall_s is not None)

        def rss(name: str) -> float | None:
            done = runs(name)
            if not done or any(r.returncode != 0 for r in done):
                return None
            return max(r.peak_rss_mb or 0.0 for r in done)

        def ratio(
            key: str, text: str, value: float | None, target: str, met: bool | None
        ) -> dict[str, Any]:
            return {"key": key, "what": text, "value": value, "target": target, "met": met}

        cold, warm, floor = wall("cold"), wall("warm"), wall("floor")
        trivial, naive = wall("trivial"), wall("naive")
        out = []
        sent = [r.server_requests for r in self.rows if r.name in ("warm", "rss-warm")]
        known = [n for n in sent if n is not None]
        count = sum(known) if known else None
        out.append(
            ratio(
                "warm_requests",
                "requests reaching the server, warm",
                count,
                "== 0",
                None if count is None else count == 0,
            )
        )
        v = (cold - trivial) / floor if cold and trivial and floor else None
        out.append(
            ratio(
                "overhead_vs_floor",
                "(cold - trivial) / floor",
                v,
                "<= 1.5",
                None if v is None else v <= 1.5,
            )
        )
        v = cold / floor if cold and floor else None
        out.append(ratio("cold_vs_floor", "cold / floor", v, "(info)", None))
        floor_aio = wall("floor-aio")
        v = cold / floor_aio if cold and floor_aio else None
        out.append(ratio("cold_vs_floor_aio", "cold / floor-aio", v, "(info)", None))
        v = naive / cold if naive and cold else None
        out.append(
            ratio(
                "naive_vs_cold",
                "naive / cold (speed-up)",
                v,
                ">= 20",
                None if v is None else v >= 20,
            )
        )
        v = naive / floor if naive and floor else None
        out.append(ratio("naive_vs_floor", "naive / floor (bare SDK speed-up)", v, "(info)", None))
        paired = self.paired("warm", "trivial")
        v = statistics.median(paired) if paired else None
        out.append(
            ratio(
                "warm_vs_trivial",
                f"warm / trivial (median of {len(paired)} pairs)",
                v,
                "<= 1.5",
                None if v is None else v <= 1.5,
            )
        )
        v = warm / trivial if warm and trivial else None
        out.append(
            ratio("warm_vs_trivial_medians", "warm / trivial (row medians)", v, "(info)", None)
        )
        idle = wall("idle")
        v = warm / idle if warm and idle else None
        out.append(ratio("warm_vs_idle", "warm / idle (plugin loaded)", v, "(info)", None))
        for mode in RECORD_MODES:
            paired = self.paired(f"xdist-{mode}", f"serial-{mode}")
            v = statistics.median(paired) if paired else None
            out.append(
                ratio(
                    f"xdist_vs_serial_{mode}",
                    f"xdist-{mode} / serial-{mode} ({len(paired)} pairs)",
                    v,
                    "<= 1",
                    None if v is None else v <= 1,
                )
            )
        for name in ("storm", "storm-ra"):
            storm = wall(name)
            limit = runs(name)[0].limit_s if runs(name) else None
            v = storm / limit if storm and limit else None
            out.append(
                ratio(
                    f"{name}_vs_limit".replace("-", "_"),
                    f"{name} / physical limit",
                    v,
                    "<= 2",
                    None if v is None else v <= 2,
                )
            )
            fit = wall("storm-fit")
            v = storm / fit if storm and fit else None
            out.append(
                ratio(f"{name}_vs_fit".replace("-", "_"), f"{name} / storm-fit", v, "(info)", None)
            )
        paired = self.paired("noeval", "noeval-plain")
        v = statistics.median(paired) if paired else None
        out.append(
            ratio(
                "noeval_vs_plain",
                f"noeval / noeval-plain ({len(paired)} pairs)",
                v,
                "<= 1.05",
                None if v is None else v <= 1.05,
            )
        )
        noeval, plain = wall("noeval"), wall("noeval-plain")
        v = noeval / plain if noeval and plain else None
        out.append(
            ratio(
                "noeval_vs_plain_medians", "noeval / noeval-plain (row medians)", v, "(info)", None
            )
        )
        rw, rp = rss("rss-warm"), rss("rss-plain")
        v = rw / rp if rw and rp else None
        out.append(
            ratio(
                "rss_warm_vs_plain",
                f"peak RSS warm / plain at {self.args.rss_cases}",
                v,
                "<= 2",
                None if v is None else v <= 2,
            )
        )
        return out


# -- reporting -------------------------------------------------------------------------


def plugin_sources(root: Path = REPO) -> str:
    """A hash of the plugin's source files under ``root`` (others may edit the repo's)."""
    sources = hashlib.sha256()
    for path in sorted((root / "pytest_modelopt").rglob("*.py")):
        with contextlib.suppress(OSError):
            sources.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return sources.hexdigest()[:12]


def machine(origin: Path = REPO) -> dict[str, Any]:
    """``origin``: the repository whose plugin is measured (its commit is reported)."""
    cpu = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    versions: dict[str, str | None] = {}
    for dist in ("pytest", "openai", "pytest-xdist", "pytest-modelopt", "aiohttp", "httpx2"):
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = None
    commit = None
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],  # read-only
            cwd=origin,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": versions,
        "git_commit": commit,
        # the plugin's working tree may hold uncommitted edits: this names what was measured
        "plugin_sources": plugin_sources(origin),
        "loadavg_start": os.getloadavg(),
    }


def fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def table(rows: list[Row]) -> str:
    head = (
        "run", "#", "wall s", "limit s", "wall/limit", "cases/s", "requests", "429s",
        "in flight", "cpu s", "server cpu s", "peak RSS MB", "load", "result",
    )  # fmt: skip
    lines = [head]
    for r in rows:
        over = r.wall_s / r.limit_s if r.wall_s and r.limit_s else None
        other = (r.server_requests or 0) - (r.model_requests or 0)  # e.g. GET /v1/models
        lines.append(
            (
                r.name,
                f"{r.round}.{r.pair}" if r.pair else str(r.round),
                fmt(r.wall_s, ".2f"),
                fmt(r.limit_s, ".2f") + (f" (c={r.concurrency})" if r.limit_s else ""),
                fmt(over, ".1f") + ("x" if over else ""),
                fmt(r.rate, ",.0f"),
                fmt(r.model_requests, "d") + (f" (+{other})" if other else ""),
                fmt(r.rejected, "d"),
                fmt(r.max_in_flight, "d"),
                fmt(r.cpu_s, ".1f"),
                fmt(r.server_cpu_s, ".1f"),
                fmt(r.peak_rss_mb, ".0f"),
                fmt(r.load_1min, ".1f"),
                r.outcome[:60],
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    out = []
    for index, line in enumerate(lines):
        cells = [
            c.ljust(w) if i in (0, len(head) - 1) else c.rjust(w)
            for i, (c, w) in enumerate(zip(line, widths, strict=True))
        ]
        out.append("  ".join(cells).rstrip())
        if index == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def report(bench: Bench, info: dict[str, Any]) -> dict[str, Any]:
    a = bench.args
    print()
    print(
        f"machine: {info['nproc']} cores ({info['cpu_model']}), Python {info['python']}, "
        + ", ".join(f"{k} {v}" for k, v in info["versions"].items())
        + f", commit {info['git_commit']}"
    )
    print(f"plugin sources {info['plugin_sources']} imported from {info['plugin_origin']}")
    print(
        f"load average at start {info['loadavg_start'][0]:.2f}, at end {info['loadavg_end'][0]:.2f}"
    )
    print(
        f"N={a.cases} cases, latency {a.latency}s, concurrency {a.concurrency}, "
        f"rss cases {a.rss_cases}"
    )
    print()
    print(table(bench.rows))
    print()
    if a.repeat > 1:
        print(
            f"ratios use the median wall time of each row's runs over {a.repeat} rounds (# is "
            "the round, and round.pair for warm and trivial runs made back to back)"
        )
    ratios = bench.ratios()
    for r in ratios:
        verdict = {True: "MET", False: "MISSED", None: ""}[r["met"]]
        spec = "d" if isinstance(r["value"], int) else ".2f"
        print(f"{r['what']:<40} {fmt(r['value'], spec):>7}   target {r['target']:<7} {verdict}")
    notes = [(row.name, note) for row in bench.rows for note in row.notes]
    changed = [row.name for row in bench.rows if row.plugin_sources != info["plugin_sources"]]
    if changed:
        notes.append(("warning", f"the plugin's sources changed during the benchmark: {changed}"))
    if notes:
        print()
        for name, note in notes:
            print(f"{name}: {note}")
    return {
        "machine": info,
        "args": {
            k: sorted(v) if isinstance(v, set) else str(v) if isinstance(v, Path) else v
            for k, v in vars(a).items()
            if k not in ("serve", "json")
        },
        "rows": [asdict(row) | {"rate": row.rate} for row in bench.rows],
        "ratios": ratios,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--cases", type=int, default=1000, help="N declared cases (default 1000)")
    parser.add_argument("--latency", type=float, default=0.1, help="server seconds per request")
    parser.add_argument("--concurrency", type=int, default=64, help="--eval-concurrency C")
    parser.add_argument("--rss-cases", type=int, default=10000, help="cases for the RSS rows")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per run")
    parser.add_argument("--skip-naive", action="store_true", help="skip the slow serial run")
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="rounds of the 1000-case rows other than naive (default 3; the ratios take "
        "each row's median: one run of a 2 s row moves by 10-20%% on a shared machine)",
    )
    parser.add_argument(
        "--pairs",
        type=int,
        default=3,
        help="warm and trivial runs back to back per round (default 3); warm / trivial is "
        "the median of the pairs' ratios",
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument(
        "--only",
        type=selection,
        help="comma-separated runs to do (e.g. floor,cold,warm,trivial); a run that another"
        " needs first (cold for warm, rss-cold for rss-warm) must be named too. The groups"
        " modes (serial-X and xdist-X for each record mode) and storms (storm-fit, storm,"
        " storm-ra) name their rows, and xdist-X, storm, storm-ra and noeval bring their"
        " baselines (serial-X, storm-fit, noeval-plain)",
    )
    parser.add_argument(
        "--storm-capacity",
        type=int,
        default=16,
        help="requests the server admits at once in the storm rows (default 16)",
    )
    parser.add_argument(
        "--storm-retry-after",
        type=float,
        default=0.1,
        help="the Retry-After of the storm-ra row's 429s, in seconds (default 0.1)",
    )
    parser.add_argument(
        "--noeval-tests", type=int, default=200, help="ordinary tests in the noeval rows"
    )
    parser.add_argument(
        "--noeval-pairs",
        type=int,
        default=5,
        help="noeval and noeval-plain runs back to back per round (default 5)",
    )
    parser.add_argument(
        "--plugin-from",
        type=Path,
        default=REPO,
        help="the repository whose pytest_modelopt/ is measured (default: this one), e.g. a"
        " checkout of an older commit; the server and the script stay this one's",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary projects")
    parser.add_argument(
        "--live-sources",
        action="store_true",
        help="import the plugin from the repository as it changes (default: a copy taken at "
        "the start, so every run measures the same code)",
    )
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        return serve(args.latency)

    def on_term(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)  # unwinds through the finally blocks below

    signal.signal(signal.SIGTERM, on_term)
    origin = args.plugin_from.resolve()
    info = machine(origin)
    workdir = Path(tempfile.mkdtemp(prefix="modelopt-bench-"))
    print(f"projects in {workdir}")
    snapshot = None
    if not args.live_sources:
        snapshot = workdir / "plugin-snapshot"
        shutil.copytree(
            origin / "pytest_modelopt",
            snapshot / "pytest_modelopt",
            ignore=shutil.ignore_patterns("__pycache__"),
        )
        info["plugin_sources"] = plugin_sources(snapshot)
    server = ServerProcess(args.latency)
    try:
        print(f"fake server at {server.base_url} (pid {server.proc.pid}, latency {args.latency}s)")
        bench = Bench(args, workdir, server, snapshot or (None if origin == REPO else origin))
        info["plugin_origin"] = bench.plugin_origin()
        print(f"plugin {info['plugin_sources']} from {info['plugin_origin']}")
        try:
            bench.warm_up()
            bench.scenarios()
        finally:
            info["loadavg_end"] = os.getloadavg()
            result = report(bench, info)
            if args.json is not None:
                args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
                print(f"\nwrote {args.json}")
    finally:
        server.close()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
