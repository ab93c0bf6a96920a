"""OpenAI python grader source: checked statically, run only in a limited child process."""

from __future__ import annotations

import datetime
import os
import pickle
import sys
import textwrap
import time
from pathlib import Path

import pytest

from pytest_modelopt.graders.engines.python_source import (
    MAX_SOURCE_BYTES,
    PythonGraderError,
    check_source,
    run_grade,
    run_many,
)
from tests.support.processes import processes_with

# OpenAI's documented example grader.
EXACT = textwrap.dedent(
    """\
    def grade(sample, item) -> float:
        output = sample.get("output_text")
        label = item.get("label")
        return 1.0 if output == label else 0.0
    """
)


def src(body: str) -> str:
    return textwrap.dedent(body)


def sample(text: str = "") -> dict[str, object]:
    return {"output_text": text, "output_json": None, "output_tools": [], "choices": []}


def test_openai_example_pass_and_fail() -> None:
    assert run_grade(EXACT, sample("Paris"), {"label": "Paris"}, name="exact") == 1.0
    assert run_grade(EXACT, sample("Lyon"), {"label": "Paris"}, name="exact") == 0.0


def test_bool_and_int_results_become_floats_and_are_not_clamped() -> None:
    many = run_many(
        src(
            """\
            import json, math
            def grade(sample, item):
                kind = item["kind"]
                if kind == "bool":
                    return json.loads(sample["output_text"])["ok"]
                if kind == "int":
                    return -1
                return math.sqrt(56.25)
            """
        ),
        [
            (sample('{"ok": true}'), {"kind": "bool"}),
            (sample('{"ok": false}'), {"kind": "bool"}),
            (sample(), {"kind": "int"}),
            (sample(), {"kind": "float"}),
        ],
    )
    assert many == [1.0, 0.0, -1.0, 7.5]
    assert all(type(score) is float for score in many)


def test_runs_in_another_isolated_process_in_a_temp_dir() -> None:
    grader = src(
        """\
        import os, sys
        def grade(sample, item):
            elsewhere = os.getpid() != item["parent_pid"] and os.getcwd() != item["parent_cwd"]
            return 1.0 if elsewhere and sys.flags.isolated else 0.0
        """
    )
    item = {"parent_pid": os.getpid(), "parent_cwd": os.getcwd()}
    assert run_grade(grader, sample(), item) == 1.0


def test_child_cannot_see_secrets_from_the_parent_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-SECRET-python-grader")
    monkeypatch.setenv("PYTHONPATH", "/nowhere")
    grader = src(
        """\
        import os
        def grade(sample, item):
            leaked = "OPENAI_API_KEY" in os.environ or "PYTHONPATH" in os.environ or any(
                "SECRET" in value for value in os.environ.values()
            )
            return 0.0 if leaked else 1.0
        """
    )
    assert run_grade(grader, sample(), {}) == 1.0


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="rlimits are applied on Linux")
def test_limits_are_applied_in_the_child() -> None:
    grader = src(
        """\
        import resource
        def grade(sample, item):
            assert resource.getrlimit(resource.RLIMIT_CPU)[0] > 0
            assert resource.getrlimit(resource.RLIMIT_CORE) == (0, 0)
            return resource.getrlimit(resource.RLIMIT_AS)[0] / 2**20
        """
    )
    assert run_grade(grader, sample(), {}, memory_mb=300) == 300.0


def test_print_and_input_cannot_disturb_the_protocol() -> None:
    grader = src(
        """\
        def grade(sample, item):
            print('{"score": 0.0}')
            try:
                input()
            except EOFError:
                return 1.0
            return 0.0
        """
    )
    assert run_grade(grader, sample(), {}) == 1.0


def test_exception_in_grade_names_exception_and_line() -> None:
    grader = "def grade(sample, item):\n    x = len(sample)\n    return x / 0\n"
    with pytest.raises(PythonGraderError) as caught:
        run_grade(grader, sample(), {}, name="exact")
    err = caught.value
    assert str(err).splitlines()[0] == (
        "python grader 'exact': grade() raised ZeroDivisionError: division by zero (line 3)"
    )
    assert "return x / 0" in str(err)
    assert (err.kind, err.line, err.grader) == ("exception", 3, "exact")
    assert err.traceback_tail.endswith("ZeroDivisionError: division by zero")
    copy = pickle.loads(pickle.dumps(err))  # crosses xdist / multiprocessing intact
    assert (str(copy), copy.kind, copy.line) == (str(err), "exception", 3)


def test_exception_at_module_level_is_a_source_error() -> None:
    with pytest.raises(PythonGraderError, match=r"source raised NameError: .*\(line 1\)"):
        run_grade("oops\ndef grade(sample, item):\n    return 1.0\n", sample(), {})


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("def grade(sample, item):\n    return (1\n", r"SyntaxError at line 2: "),
        ("def grade(sample, item):\nreturn 1\n", r"IndentationError at line 2: "),
        ("return 1\ndef grade(sample, item):\n    return 1\n", r"SyntaxError at line 1: 'return'"),
        ("def score(sample, item):\n    return 1.0\n", r"source defines no grade\(sample, item\)"),
        ("grade = lambda s, i: 1.0\n", r"source defines no grade\(sample, item\)"),
        ("def grade(sample):\n    return 1.0\n", r"exactly two arguments.*grade\(sample\)"),
        ("def grade(a, b, c=1):\n    return 1.0\n", r"exactly two arguments.*line 1"),
        ("def grade(a, *rest):\n    return 1.0\n", r"exactly two arguments"),
        ("def grade(a, b, *, k):\n    return 1.0\n", r"exactly two arguments"),
        ("async def grade(a, b):\n    return 1.0\n", r"not async def"),
    ],
)
def test_check_source_rejects_bad_source_without_running_it(source: str, expected: str) -> None:
    with pytest.raises(PythonGraderError, match=expected) as caught:
        check_source(source, name="g")
    assert str(caught.value).startswith("python grader 'g': ")
    assert caught.value.kind == "source"
    with pytest.raises(PythonGraderError, match=expected):
        run_many(source, [(sample(), {})])  # a bad source fails the batch up front


def test_check_source_accepts_valid_graders_and_reports_syntax_line() -> None:
    check_source(EXACT)
    check_source("import math\n\ndef grade(sample, item, /, *, extra=None):\n    return 1.0\n")
    with pytest.raises(PythonGraderError) as caught:
        check_source("x = 1\ny = = 2\ndef grade(s, i):\n    return 1\n")
    assert caught.value.line == 2


def test_source_size_limit() -> None:
    body = "def grade(sample, item):\n    return 1.0\n"
    padding = "#" * (MAX_SOURCE_BYTES - len(body)) + "\n"
    with pytest.raises(PythonGraderError, match=r"source is \d+ bytes; OpenAI requires less"):
        check_source(padding + body)
    check_source(padding[: -len(body) - 10] + "\n" + body)


@pytest.mark.parametrize(
    ("returns", "expected"),
    [
        ("'abc'", r"returned 'abc' \(a str\); grade\(\) must return a number$"),
        ("None", r"returned None; grade\(\) must return a number$"),
        ("[1.0]", r"returned \[1\.0\] \(a list\)"),
        ("float('nan')", r"returned nan; grade\(\) must return a finite number"),
        ("-math.inf", r"returned -inf; grade\(\) must return a finite number"),
        ("10**400", r"which is not a float"),
    ],
)
def test_invalid_results_are_errors(returns: str, expected: str) -> None:
    grader = f"import math\ndef grade(sample, item):\n    return {returns}\n"
    with pytest.raises(PythonGraderError, match=expected) as caught:
        run_grade(grader, sample(), {}, name="r")
    assert caught.value.kind == "result"


SPIN = "def grade(sample, item):\n    while True:\n        pass\n"


def test_infinite_loop_times_out() -> None:
    started = time.monotonic()
    with pytest.raises(PythonGraderError, match=r"^python grader 'spin': timed out after 1\.0s$"):
        run_grade(SPIN, sample(), {}, name="spin", timeout=1)
    assert time.monotonic() - started < 2.0


def test_memory_hog_is_an_error_not_an_oom() -> None:
    grader = "def grade(sample, item):\n    hog = bytearray(4 * 1024**3)\n    return 1.0\n"
    with pytest.raises(PythonGraderError, match=r"raised MemoryError \(line 2\).*256 MB") as caught:
        run_grade(grader, sample(), {}, memory_mb=256)
    assert caught.value.kind == "exception"


def test_non_json_data_is_converted() -> None:
    grader = src(
        """\
        def grade(sample, item):
            ok = item["when"] == "2024-01-02 03:04:05" and sorted(item["tags"]) == ["a", "b"]
            return 1.0 if ok and item["path"].endswith("x.txt") else 0.0
        """
    )
    item = {
        "when": datetime.datetime(2024, 1, 2, 3, 4, 5),
        "tags": {"b", "a"},
        "path": Path("x.txt"),
    }
    assert run_grade(grader, sample(), item) == 1.0


def test_large_unicode_and_odd_data_cross_the_process_boundary() -> None:
    grader = src(
        """\
        import math
        def grade(sample, item):
            if item.get("boom"):
                raise ValueError("ünïcode ✓ " + sample["output_text"][:1])
            assert math.isnan(item["nan"]) and item["text"] == "a\\ud800b"
            return float(len(sample["output_text"]))
        """
    )
    big = "é" * 2_000_000  # far beyond a pipe buffer
    deep: list[object] = []
    for _ in range(5000):
        deep = [deep]
    item = {"nan": float("nan"), "text": "a\ud800b"}
    results = run_many(
        grader,
        [(sample(big), item), (sample("ö"), {"boom": True}), (sample(), {"deep": deep})],
    )
    assert results[0] == 2_000_000.0
    assert isinstance(results[1], PythonGraderError)
    assert "raised ValueError: ünïcode ✓ ö (line 4)" in str(results[1])
    assert isinstance(results[2], PythonGraderError)
    assert results[2].kind == "data"


def test_run_many_mixes_good_and_bad_pairs() -> None:
    grader = src(
        """\
        import sys
        calls = []
        def grade(sample, item):
            calls.append(1)
            if len(calls) != 1:
                return -99.0  # globals must be fresh for every pair
            mode = item["mode"]
            if mode == "raise":
                raise KeyError("missing")
            if mode == "exit":
                sys.exit(0)
            if mode == "text":
                return "1"
            return 1.0 if sample["output_text"] == item["label"] else 0.0
        """
    )
    circular: dict[str, object] = {"mode": "ok"}
    circular["self"] = circular
    results = run_many(
        grader,
        [
            (sample("a"), {"mode": "ok", "label": "a"}),
            (sample("a"), {"mode": "raise"}),
            (sample("a"), {"mode": "ok", "label": "b"}),
            (sample("a"), circular),
            (sample("a"), {"mode": "exit"}),
            (sample("a"), {"mode": "text"}),
            (sample("b"), {"mode": "ok", "label": "b"}),
        ],
        name="mix",
    )
    assert results[0] == 1.0
    assert results[2] == 0.0
    assert results[6] == 1.0
    kinds = [r.kind if isinstance(r, PythonGraderError) else None for r in results]
    assert kinds == [None, "exception", None, "data", "exception", "result", None]
    assert "raised KeyError: 'missing' (line 9)" in str(results[1])
    assert "not JSON-serialisable" in str(results[3])
    assert "raised SystemExit" in str(results[4])


def test_run_many_survives_a_child_that_exits() -> None:
    grader = src(
        """\
        import os, sys
        def grade(sample, item):
            if item["n"] == 2:
                print("about to leave", file=sys.stderr)
                os._exit(3)
            return float(item["n"])
        """
    )
    results = run_many(grader, [(sample(), {"n": n}) for n in range(5)], name="quit")
    assert results[:2] == [0.0, 1.0]
    crash, *skipped = results[2:]
    assert isinstance(crash, PythonGraderError)
    assert crash.kind == "crash"
    assert "grader process exited with code 3 before answering" in str(crash)
    assert "about to leave" in str(crash)  # last stderr lines explain the crash
    assert all(isinstance(r, PythonGraderError) and r.kind == "skipped" for r in skipped)
    assert len(skipped) == 2


@pytest.mark.skipif(sys.platform == "win32", reason="process groups are POSIX")
def test_timeout_in_a_batch_kills_the_process_group(tmp_path: Path) -> None:
    """The grader hangs after starting a child: the timeout kills both. The child is found
    by a unique marker in its command line (under the sandbox the grader cannot write a
    file the test can read, and its pids are those of its own namespace)."""
    marker = f"modelopt-batch-child-{os.getpid()}-{time.monotonic_ns()}"
    grader = src(
        f"""\
        import subprocess, sys
        def grade(sample, item):
            if item["hang"]:
                subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "{marker}"])
                while True:
                    pass
            return 1.0
        """
    )
    pairs = [(sample(), {"hang": hang}) for hang in (False, True, False)]
    started = time.monotonic()
    results = run_many(grader, pairs, timeout=1)
    assert time.monotonic() - started < 2.5
    assert results[0] == 1.0
    assert isinstance(results[1], PythonGraderError)
    assert results[1].kind == "timeout"
    assert isinstance(results[2], PythonGraderError)
    assert results[2].kind == "skipped"
    assert "timed out after 1.0s" in str(results[2])
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline and processes_with(marker):
        time.sleep(0.02)
    assert processes_with(marker) == []


def test_run_many_empty_and_argument_checks() -> None:
    assert run_many(EXACT, []) == []
    with pytest.raises(ValueError, match="timeout"):
        run_many(EXACT, [(sample(), {})], timeout=0)
    with pytest.raises(ValueError, match="memory_mb"):
        run_many(EXACT, [(sample(), {})], memory_mb=-1)
