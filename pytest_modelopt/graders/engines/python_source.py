"""Run OpenAI ``python`` grader source in a child process, never in the test process.

OpenAI's python grader is ``{"type": "python", "name", "source", "pass_threshold"?,
"image_tag"?}`` where ``source`` defines ``grade(sample, item) -> float``. ``sample`` is
``{"output_text", "output_json", "output_tools", "choices"}`` and ``item`` is the dataset
row. Source strings come from config files and datasets, so they are treated as
untrusted-ish: they are parsed (never run) here, and run only in a child interpreter.

What the child gets, and why:

* ``python -I`` (isolated mode): no user site-packages, no cwd on ``sys.path``, every
  ``PYTHON*`` variable ignored, so the grader cannot pick up project code by accident.
  The venv's installed packages stay importable (OpenAI's image has e.g. numpy).
* A minimal environment (``PATH`` and locale variables; ``HOME``/``TMPDIR`` set to a
  fresh temporary directory, which is also its cwd and is deleted afterwards), so API
  keys and other secrets in ``os.environ`` never reach grader code.
* On POSIX, resource limits applied before the grader's code runs: ``RLIMIT_AS``
  (``memory_mb``, OpenAI's limit is 2 GB; ``0`` disables it), ``RLIMIT_CPU`` (a backstop
  for a child orphaned inside an endless loop), ``RLIMIT_FSIZE`` (64 MiB, so a runaway
  writer cannot fill the disk) and no core dumps. Limits the platform lacks are skipped.
* A wall-clock ``timeout`` per grade (OpenAI's limit is 2 minutes); on expiry the child's
  whole process group is killed, so processes the grader started die with it.
* Its own stdin/stdout carry the protocol; the grader's ``print()`` goes to stderr
  and ``input()`` reads ``/dev/null``, so grader output cannot forge a reply.

What is *not* enforced: **network access** (no portable unprivileged way to cut it) and
**filesystem reads** (the child runs as the same user). This is containment against
accidents -- endless loops, memory blow-ups, leaked environment secrets, crashes taking
pytest down -- not a security sandbox against hostile code.

Scores are returned exactly as ``grade()`` gives them (``bool`` becomes 1.0/0.0); they
are *not* clamped to [0, 1] -- applying ranges and ``pass_threshold`` is the caller's job.
"""

from __future__ import annotations

import ast
import contextlib
import json
import marshal
import math
import os
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "MAX_SOURCE_BYTES",
    "ErrorKind",
    "PythonGraderError",
    "check_source",
    "run_grade",
    "run_many",
]

MAX_SOURCE_BYTES = 256 * 1024

ErrorKind = Literal["source", "data", "exception", "result", "timeout", "crash", "skipped"]

_FILENAME = "<grader>"
_CHILD = Path(__file__).with_name("python_child.py")  # run by path: it imports no package code
_STARTUP_SECONDS = 30.0  # interpreter start + compile; separate from the per-grade budget
_MAX_FILE_BYTES = 64 * 1024 * 1024
_MAX_REPLY_BYTES = 1024 * 1024
_ENV_KEEP = (
    "PATH",
    "LANG",
    "LANGUAGE",
    "LC_ALL",
    "LC_CTYPE",
    "LC_MESSAGES",
    "TZ",
    "SYSTEMROOT",  # Windows: needed for sockets/randomness in the child
    "WINDIR",
    "COMSPEC",
    "PATHEXT",
)


class PythonGraderError(Exception):
    """A python grader could not score a sample; reported as an error, never as a 0.

    ``kind`` says what went wrong (``source``, ``data``, ``exception``, ``result``,
    ``timeout``, ``crash``, ``skipped``), ``line`` is the grader source line when known
    and ``traceback_tail`` the end of the child's traceback, for a detailed report.
    """

    def __init__(
        self,
        message: str,
        *,
        grader: str = "python",
        kind: ErrorKind = "source",
        line: int | None = None,
        traceback_tail: str = "",
    ) -> None:
        super().__init__(message)
        self.grader = grader
        self.kind: ErrorKind = kind
        self.line = line
        self.traceback_tail = traceback_tail


def _prefix(name: str) -> str:
    return f"python grader {name!r}"


def _source_error(name: str, message: str, line: int | None = None) -> PythonGraderError:
    return PythonGraderError(f"{_prefix(name)}: {message}", grader=name, kind="source", line=line)


def check_source(source: str, *, name: str = "python") -> None:
    """Validate grader source without running it, so a bad grader fails at definition time.

    Checks the size limit, that it compiles, and that it defines a top-level
    ``def grade(sample, item)`` taking exactly two positional arguments.
    """
    if not isinstance(source, str):
        raise _source_error(name, f"source must be a string, not {type(source).__name__}")
    size = len(source.encode("utf-8", "surrogatepass"))
    if size >= MAX_SOURCE_BYTES:
        raise _source_error(
            name, f"source is {size} bytes; OpenAI requires less than {MAX_SOURCE_BYTES} (256 kB)"
        )
    try:
        tree = ast.parse(source, filename=_FILENAME)
        # Some errors (return outside function, duplicate arguments...) only the compiler finds.
        compile(tree, _FILENAME, "exec", dont_inherit=True)
    except SyntaxError as exc:
        where = f" at line {exc.lineno}" if exc.lineno else ""
        raise _source_error(name, f"{type(exc).__name__}{where}: {exc.msg}", exc.lineno) from None
    except (ValueError, RecursionError, MemoryError) as exc:  # null bytes, absurd nesting
        raise _source_error(name, f"source does not compile: {type(exc).__name__}: {exc}") from None
    defs = [
        node
        for node in tree.body
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == "grade"
    ]
    if not defs:
        raise _source_error(name, "source defines no grade(sample, item) function")
    fn = defs[-1]  # the last definition is the one that wins at run time
    if isinstance(fn, ast.AsyncFunctionDef):
        raise _source_error(
            name, f"grade() must be a plain def, not async def (line {fn.lineno})", fn.lineno
        )
    args = fn.args
    positional = len(args.posonlyargs) + len(args.args)
    required_kwonly = [
        a for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=False) if d is None
    ]
    if positional != 2 or args.vararg is not None or required_kwonly:
        raise _source_error(
            name,
            "grade() must take exactly two arguments (sample, item); "
            f"line {fn.lineno} defines grade({ast.unparse(args)})",
            fn.lineno,
        )


def run_grade(
    source: str,
    sample: Mapping[str, Any],
    item: Mapping[str, Any],
    *,
    name: str = "python",
    timeout: float = 120.0,
    memory_mb: int = 2048,
) -> float:
    """Grade one sample in a fresh child process; any failure raises PythonGraderError.

    Costs one interpreter start (tens of ms): use run_many() for many samples.
    """
    result = run_many(source, [(sample, item)], name=name, timeout=timeout, memory_mb=memory_mb)[0]
    if isinstance(result, PythonGraderError):
        raise result
    return result


def run_many(
    source: str,
    pairs: Sequence[tuple[Mapping[str, Any], Mapping[str, Any]]],
    *,
    name: str = "python",
    timeout: float = 120.0,
    memory_mb: int = 2048,
) -> list[float | PythonGraderError]:
    """Grade many (sample, item) pairs in one child process, one result per pair.

    Each pair gets ``timeout`` seconds and a fresh globals dict (the source is re-executed
    per pair; imported modules stay loaded). Failures are per pair; if the child times
    out or dies, that pair and all later ones are errors, earlier scores are kept.
    Raises PythonGraderError only when the source itself fails check_source().
    """
    check_source(source, name=name)
    if not (isinstance(timeout, (int, float)) and math.isfinite(timeout) and timeout > 0):
        raise ValueError(f"timeout must be a positive number of seconds, not {timeout!r}")
    if not isinstance(memory_mb, int) or memory_mb < 0:
        raise ValueError(f"memory_mb must be a non-negative int (0 = no limit), not {memory_mb!r}")
    todo = list(pairs)
    if not todo:
        return []
    results: list[float | PythonGraderError] = []
    child = _Child(name, float(timeout), memory_mb, len(todo))
    try:
        child.start(source)
        for sample, item in todo:
            results.append(child.grade(sample, item))
    except _ChildDied as died:
        results.append(died.error)
        skipped = PythonGraderError(
            f"{_prefix(name)}: not graded: an earlier sample stopped the grader process "
            f"({died.reason})",
            grader=name,
            kind="skipped",
        )
        results.extend(skipped for _ in range(len(todo) - len(results)))
    finally:
        child.close()
    return results


class _ChildDied(Exception):
    """The child timed out or exited: the current pair gets ``error``, later pairs skip."""

    def __init__(self, error: PythonGraderError, reason: str) -> None:
        super().__init__(str(error))
        self.error = error
        self.reason = reason


class _Child:
    """One grader process: marshal frames in on its stdin, JSON lines out on its stdout."""

    def __init__(self, name: str, timeout: float, memory_mb: int, calls: int) -> None:
        self.name = name
        self.timeout = timeout
        self.memory_mb = memory_mb
        self.cpu_seconds = math.ceil(timeout * calls + _STARTUP_SECONDS) + 1
        self.proc: subprocess.Popen[bytes] | None = None
        self._dir = tempfile.TemporaryDirectory(
            prefix="modelopt-pygrader-", ignore_cleanup_errors=True
        )
        # Lives as long as the child (closed in close()); a file, not a pipe, so a chatty
        # grader can never block on a full stderr pipe.
        self._stderr: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115

    def start(self, source: str) -> None:
        work = self._dir.name
        env = {key: os.environ[key] for key in _ENV_KEEP if key in os.environ}
        env.update(HOME=work, TMPDIR=work, TMP=work, TEMP=work)
        argv = [
            sys.executable,
            "-I",
            str(_CHILD),
            str(self.memory_mb * 1024 * 1024),
            str(self.cpu_seconds),
            str(_MAX_FILE_BYTES),
        ]
        try:
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._stderr,
                cwd=work,
                env=env,
                start_new_session=True,  # own process group: a timeout kills all of it
            )
        except OSError as exc:
            reason = f"could not start {sys.executable!r}: {exc}"
            raise _ChildDied(self._error(reason, "crash"), reason) from None
        header = _frame({"source": source})
        reply = self._call(header, _STARTUP_SECONDS, "did not start within")
        if reply.get("ready") is not True:
            error = self._reply_error(reply)
            raise _ChildDied(error, str(error).split(": ", 1)[-1])

    def grade(
        self, sample: Mapping[str, Any], item: Mapping[str, Any]
    ) -> float | PythonGraderError:
        try:
            # JSON round trip: the grader sees exactly what OpenAI would send it.
            text = json.dumps({"sample": dict(sample), "item": dict(item)}, default=_jsonable)
            request = _frame(json.loads(text))
        except (TypeError, ValueError, RecursionError) as exc:
            return self._error(f"sample/item is not JSON-serialisable: {exc}", "data")
        reply = self._call(request, self.timeout, "timed out after")
        if "score" in reply:
            score = reply["score"]
            if (
                isinstance(score, (int, float))
                and not isinstance(score, bool)
                and math.isfinite(score)
            ):
                return float(score)
            return self._error(f"grader process sent a malformed score {score!r}", "crash")
        return self._reply_error(reply)

    def _call(self, data: bytes, seconds: float, expired: str) -> dict[str, Any]:
        """Send one request and read one reply, killing the child when ``seconds`` pass."""
        proc = self.proc
        assert proc is not None
        assert proc.stdin is not None
        assert proc.stdout is not None
        fired = threading.Event()

        def expire() -> None:
            fired.set()
            self._kill()

        timer = threading.Timer(seconds, expire)
        timer.daemon = True
        timer.start()
        try:
            try:
                proc.stdin.write(data)
                proc.stdin.flush()
                line = proc.stdout.readline(_MAX_REPLY_BYTES)
            except OSError:  # broken pipe: the child is gone
                line = b""
        finally:
            timer.cancel()
            timer.join()  # after this the timer can no longer kill, so reaping is safe
        if fired.is_set():
            reason = f"{expired} {seconds}s"
            raise _ChildDied(self._error(reason, "timeout"), reason)
        if not line:
            reason = self._death()
            raise _ChildDied(self._error(reason, "crash"), reason.split("\n", 1)[0])
        reply: object = None
        if line.endswith(b"\n"):
            try:
                reply = json.loads(line)
            except ValueError:
                reply = None
        if not isinstance(reply, dict):
            self._kill()
            reason = "grader process sent a malformed reply"
            raise _ChildDied(self._error(reason, "crash"), reason)
        return reply

    def _reply_error(self, reply: Mapping[str, Any]) -> PythonGraderError:
        message = str(reply.get("message") or "grader process sent a malformed reply")
        kind = reply.get("error")
        line = reply.get("line")
        code = reply.get("code")
        if isinstance(code, str) and code and isinstance(line, int):
            message += f"\n  {line} | {code}"
        return PythonGraderError(
            f"{_prefix(self.name)}: {message}",
            grader=self.name,
            kind=kind if kind in ("source", "exception", "result") else "crash",
            line=line if isinstance(line, int) else None,
            traceback_tail=str(reply.get("tail") or ""),
        )

    def _error(self, message: str, kind: ErrorKind) -> PythonGraderError:
        return PythonGraderError(f"{_prefix(self.name)}: {message}", grader=self.name, kind=kind)

    def _death(self) -> str:
        """Why the child stopped answering: exit code or signal, plus its last stderr lines."""
        assert self.proc is not None
        try:
            code = self.proc.wait(timeout=2.0)
        except subprocess.TimeoutExpired:  # it closed its reply pipe but kept running
            self._kill()
            code = self.proc.wait()
        if code < 0:
            try:
                how = f"was killed by {signal.Signals(-code).name}"
            except ValueError:
                how = f"was killed by signal {-code}"
            if getattr(signal, "SIGXCPU", None) == -code:
                how += " (CPU time limit)"
        else:
            how = f"exited with code {code}"
        reason = f"grader process {how} before answering"
        tail = self._stderr_tail()
        return reason + "".join(f"\n  {line}" for line in tail)

    def _stderr_tail(self, lines: int = 3) -> list[str]:
        try:
            self._stderr.seek(0, os.SEEK_END)
            size = self._stderr.tell()
            self._stderr.seek(max(0, size - 4096))
            text = self._stderr.read().decode("utf-8", "replace")
        except OSError:
            return []
        kept = [line.strip() for line in text.splitlines() if line.strip()][-lines:]
        return [line if len(line) <= 200 else line[:199] + "…" for line in kept]

    def _kill(self) -> None:
        """Kill the child's process group (or just the child where groups don't exist)."""
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return  # reaped: its pid may belong to someone else now
        if sys.platform != "win32":
            try:
                os.killpg(proc.pid, signal.SIGKILL)
                return
            except OSError:
                pass
        with contextlib.suppress(OSError):
            proc.kill()

    def close(self) -> None:
        proc = self.proc
        if proc is not None:
            if proc.stdin is not None:
                with contextlib.suppress(OSError):
                    proc.stdin.close()
            self._kill()  # also ends anything the grader left running in its group
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5.0)
            if proc.stdout is not None:
                proc.stdout.close()
        self._stderr.close()
        self._dir.cleanup()


def _frame(message: dict[str, Any]) -> bytes:
    """Length-prefixed marshal: plain JSON data, loadable in the child without importing json.

    marshal only ever flows parent -> child (trusted data); replies come back as JSON.
    """
    body = marshal.dumps(message)
    return len(body).to_bytes(8, "big") + body


def _jsonable(value: object) -> object:
    """JSON fallback: mappings and sets keep their shape, anything else becomes str()."""
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, (set, frozenset)):
        return list(value)
    return str(value)
