"""Run OpenAI ``python`` grader source in a child process, never in the test process.

OpenAI's python grader is ``{"type": "python", "name", "source", "pass_threshold"?,
"image_tag"?}`` where ``source`` defines ``grade(sample, item) -> float``. ``sample`` is
``{"output_text", "output_json", "output_tools", "choices"}`` and ``item`` is the dataset
row. Source strings come from config files, shared suites and exported evals: whoever wrote
them is not necessarily whoever runs pytest, with the API key in its environment. So the
source is parsed (never run) here, and runs only in a child process, sandboxed as far as
the platform allows, because grader code may be hostile.

Always, on every platform:

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
* A wall-clock ``timeout`` per grade (OpenAI's limit is 2 minutes); on expiry the child is
  killed with everything it started (how completely depends on the mode, below).
* No file descriptor but the protocol's: ``close_fds`` here, and the child closes anything
  above stderr again before the grader runs. Its own stdin/stdout carry the protocol; the
  grader's ``print()`` goes to stderr and ``input()`` reads ``/dev/null``, so nothing the
  grader prints (model output, say) can forge a reply. Grader *code* can still reach the
  protocol pipe -- it runs in that process -- but it decides its score anyway.

On top of that, isolation() picks the strongest of these modes that works here, once per
process, by starting a probe child in each until one comes up sound (an interpreter that
cannot read its own standard library under another uid is not sound):

``namespaces+user`` (Linux, root)
    ``unshare`` puts the child in new pid, network, mount, IPC and UTS namespaces with its
    own ``/proc``, then ``setpriv`` drops it to uid/gid 65533 (no account owns it) with no
    capabilities, no supplementary groups and ``no_new_privs``. Other processes, their
    ``/proc/<pid>/environ`` included, do not exist for it; the only network is a loopback
    that is down; it can write only where "others" may (not the project, not the venv),
    and its work dir is a private, size-capped ``/tmp``; ``RLIMIT_NPROC`` caps its
    processes; killing the namespace's first process kills every descendant, ``setsid()``
    or not. Directories uid 65533 may not enter but the interpreter needs (a pyenv under
    ``/root``) are shown to it in its mount namespace through a stand-in directory that
    holds only those entries.
``namespaces`` (Linux, user namespaces allowed; or root when the above fails)
    The same namespaces inside a new user namespace, as your own uid, so permissions
    cannot protect your files: the project (its root: the nearest ancestor of the cwd with
    ``pyproject.toml``, ``.git``...), the venv, the interpreter's prefix and ``$HOME`` are
    re-mounted read-only in the child's mount namespace, ``/tmp``, ``/run`` and
    ``/dev/shm`` (your sockets, your shared memory) are replaced by empty private ones,
    and capabilities are dropped before the grader runs. ``RLIMIT_NPROC`` counts only the
    namespace's processes, so it is set -- except as root, whose processes the kernel
    never counts.
``user`` (root without namespaces, e.g. a container without ``CAP_SYS_ADMIN``)
    Only ``setpriv``'s uid 65533: secrets and the project are out of reach by permissions
    and ``RLIMIT_NPROC`` is shared by every grader running at once; the network is open
    and a descendant that calls ``setsid()`` escapes the kill of the process group.
``process`` (anything else: not Linux, user namespaces disabled, no util-linux)
    Containment only: the grader runs as you, can read other processes of yours
    (``/proc/<pid>/environ``) and reach the network and your files; the process group is
    killed on timeout, which ``setsid()`` escapes. No ``RLIMIT_NPROC``: it would count all
    your processes, not the grader's.

The sandbox is util-linux's ``unshare``/``setpriv``/``mount`` driven from here rather
than a Python library: no maintained Python package sandboxes a process (those that
restrict Python itself are escapable by design, and bubblewrap, nsjail or firejail are C
tools most machines lack), while util-linux ships with every Linux distribution and the
kernel does the enforcing. Filesystem *reads* stay governed by permissions alone, and
memory is capped per process, not in total (no cgroup). docs/reliability.md has the table
of what each mode enforces and the test that shows it
(tests/faults/test_python_grader_isolation.py).

Scores are returned exactly as ``grade()`` gives them (``bool`` becomes 1.0/0.0); they
are *not* clamped to [0, 1] -- applying ranges and ``pass_threshold`` is the caller's job.
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import functools
import json
import marshal
import math
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

__all__ = [
    "MAX_SOURCE_BYTES",
    "SANDBOX_ID",
    "ErrorKind",
    "Isolation",
    "IsolationMode",
    "PythonGraderError",
    "check_source",
    "isolation",
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
        self.plan = _plan()
        self._dir = tempfile.TemporaryDirectory(
            prefix="modelopt-pygrader-", ignore_cleanup_errors=True
        )
        # Lives as long as the child (closed in close()); a file, not a pipe, so a chatty
        # grader can never block on a full stderr pipe.
        self._stderr: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115

    def start(self, source: str) -> None:
        try:
            cwd, home, prefix = self.plan.prepare(self._dir.name)
        except OSError as exc:
            reason = f"could not prepare the grader's sandbox: {exc}"
            raise _ChildDied(self._error(reason, "crash"), reason) from None
        argv = [
            *prefix,
            sys.executable,
            "-I",
            str(_CHILD),
            str(self.memory_mb * 1024 * 1024),
            str(self.cpu_seconds),
            str(_MAX_FILE_BYTES),
            str(self.plan.nproc),
        ]
        try:
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._stderr,
                cwd=cwd,
                env=_child_env(home),
                close_fds=True,  # the default, said aloud: no other channel reaches the child
                start_new_session=True,  # own process group: a timeout kills all of it
            )
        except OSError as exc:
            reason = f"could not start {argv[0]!r}: {exc}"
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
        """Kill the child with everything it started, as completely as the mode allows."""
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return  # reaped: its pid may belong to someone else now
        if self.plan.isolation.kills_descendants:
            _kill_namespace(proc.pid)
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
            self._kill()  # also ends anything the grader left running
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5.0)
            if proc.stdout is not None:
                proc.stdout.close()
        self._stderr.close()
        if self.plan.views and _mounted_under(self._dir.name):
            return  # never rmtree through a bind mount (namespaces keep them private anyway)
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


def _child_env(home: str) -> dict[str, str]:
    env = {key: os.environ[key] for key in _ENV_KEEP if key in os.environ}
    env.update(HOME=home, TMPDIR=home, TMP=home, TEMP=home)
    return env


# -- The sandbox: which mode, and the command line that sets it up ---------------------

SANDBOX_ID = 65533
"""The uid and gid grader code runs as when pytest runs as root: one below ``nobody``, so no
account's or daemon's files and processes are the grader's to touch."""

IsolationMode = Literal["namespaces+user", "namespaces", "user", "process"]

# RLIMIT_NPROC counts threads too: a numpy import starts a BLAS thread per core.
_MAX_TASKS = max(256, 4 * (os.cpu_count() or 1))
_PROJECT_MARKERS = ("pyproject.toml", "setup.py", "setup.cfg", "pytest.ini", "tox.ini", ".git")
# Per-mount flags a re-mount must repeat: in a user namespace the kernel refuses to drop them.
_MOUNT_FLAGS = frozenset(
    ("nosuid", "nodev", "noexec", "noatime", "nodiratime", "relatime", "nosymfollow")
)
_ESCAPE = re.compile(r"\\([0-7]{3})")

# Run by sh as root of the child's new namespaces, before capabilities are dropped: the
# mounts it makes exist only there. Operations come as argument triples (no quoting to get
# wrong): "bind SRC DST", "ro FLAGS DIR" (DIR made read-only), "sub FLAGS MOUNTPOINT" (a
# submount's copy under such a DIR made read-only too), "tmpfs OPTIONS DIR" (DIR replaced
# by an empty private one); then "--" and the command to exec.
_SETUP = r"""
m=$1; shift
fail() { echo "python grader sandbox: could not $1 $2" >&2; exit 125; }
while [ "$1" != -- ]; do
  case $1 in
    bind) "$m" --rbind -- "$2" "$3" || fail bind "$2" ;;
    ro) { "$m" --rbind -- "$3" "$3" && "$m" -o "remount,bind,ro$2" -- "$3"; } ||
      fail protect "$3" ;;
    sub) "$m" -o "remount,bind,ro$2" -- "$3" || fail protect "$3" ;;
    tmpfs) "$m" -t tmpfs -o "$2" -- tmpfs "$3" || fail hide "$3" ;;
    *) fail parse "$1" ;;
  esac
  shift 3
done
shift
exec "$@"
"""

# Directories replaced by empty private ones in the namespace modes, with their tmpfs
# options. /tmp: the grader's work dir lives there, size-capped (RLIMIT_FSIZE caps one
# file, not how many), and other users' files and sockets (ssh-agent, tmux) are out of
# sight. /run and /dev/shm only when the grader keeps your uid: they hold your sockets
# (session bus, docker, runtime dir) and shared memory, which permissions cannot hide.
_PRIVATE = {  # /run last: mount(8) leaves its bookkeeping in /run/mount
    "/tmp": "size=256m,mode=1777,nosuid,nodev",
    "/dev/shm": "size=64m,mode=1777,nosuid,nodev",
    "/run": "size=1m,mode=755,nosuid,nodev",
}
_HOME_IN_SANDBOX = "/tmp/grader"

# Run in each candidate mode by the probe: what a grader would see, as JSON.
_PROBE = r"""
import json, os, sys
paths = sys.argv[1:]
print(json.dumps({
    "version": sys.version, "prefix": sys.prefix, "uid": os.getuid(), "pid": os.getpid(),
    "unreadable": [p for p in paths if not os.access(p, os.R_OK)],
}))
"""


@dataclasses.dataclass(frozen=True)
class Isolation:
    """What the python grader's sandbox enforces in this process: see isolation().

    Each flag is one claim of docs/reliability.md, true only where this mode enforces it,
    so tests and reports can state exactly what a run was protected by.
    """

    mode: IsolationMode
    hides_processes: bool
    """No other process is reachable: not its ``/proc/<pid>/environ``, memory or signals."""
    no_network: bool
    """No network at all: a new network namespace whose only loopback is down."""
    project_read_only: bool
    """The project, the venv, the interpreter and ``$HOME`` cannot be written to."""
    process_limit: bool
    """``RLIMIT_NPROC`` caps the grader's processes and threads (no fork bomb)."""
    kills_descendants: bool
    """Every descendant dies with the grade, including ones that called ``setsid()``."""
    private_tmp: bool
    """/tmp is the grader's own, empty and size-capped; so are /run and /dev/shm when it
    keeps your uid (they hold your sockets and shared memory)."""
    uid: int | None = None
    """Who grader code runs as, when that is not the user running pytest."""
    note: str = ""
    """Why no stronger mode is in use, or what this one leaves open."""


def isolation() -> Isolation:
    """What the python grader's sandbox enforces here, probed once per process.

    The probe starts a child in each mode, strongest first, and keeps the first whose
    interpreter comes up sound, so the answer is what graders actually get, not what the
    platform advertises.
    """
    return _plan().isolation


@dataclasses.dataclass(frozen=True)
class _Plan:
    """How to start a child in one mode: the argv before ``python`` and the set-up it needs."""

    isolation: Isolation
    unshare: tuple[str, ...] = ()
    setpriv: tuple[str, ...] = ()
    sh: str = ""
    mount: str = ""
    views: tuple[tuple[str, tuple[str, ...]], ...] = ()
    protect: bool = False
    private: tuple[str, ...] = ()
    nproc: int = 0

    def prepare(self, base: str) -> tuple[str, str, list[str]]:
        """Set up ``base`` for one child; return its cwd, its ``HOME`` and the argv prefix.

        With a private /tmp the child makes its work dir there itself (``HOME`` is then a
        path inside its mount namespace); otherwise the work dir is ``base/work``.
        """
        ops: list[str] = []
        for index, (blocked, names) in enumerate(self.views):
            stand_in = os.path.join(base, f"view{index}")
            os.mkdir(stand_in, 0o711)
            for name in names:
                point = os.path.join(stand_in, name)
                if os.path.isdir(os.path.join(blocked, name)):
                    os.mkdir(point, 0o700)
                else:
                    Path(point).touch(0o600)
                ops += ["bind", os.path.join(blocked, name), point]
            ops += ["bind", stand_in, blocked]
        if self.protect:
            ops += _protect_ops()
        for folder in self.private:
            ops += ["tmpfs", _PRIVATE[folder], folder]
        if "/tmp" in self.private:
            cwd, home = "/", _HOME_IN_SANDBOX  # the child enters it
        else:
            cwd = home = os.path.join(base, "work")
            os.mkdir(home, 0o700)
            uid = self.isolation.uid
            if uid is not None:
                os.chmod(base, 0o711)  # the grader may pass through to its work dir
                os.chown(home, uid, uid)
        prefix = list(self.unshare)
        if ops:
            prefix += [self.sh, "-c", _SETUP, "sh", self.mount, *ops, "--"]
        prefix += self.setpriv
        return cwd, home, prefix


@functools.lru_cache(maxsize=1)
def _plan() -> _Plan:
    """The strongest mode that works here; its note says why each stronger one did not."""
    notes: list[str] = []
    for mode in _candidates():
        plan = _build(mode)
        if isinstance(plan, _Plan):
            note = "; ".join(n for n in (plan.isolation.note, *notes) if n)
            return dataclasses.replace(
                plan, isolation=dataclasses.replace(plan.isolation, note=note)
            )
        notes.append(f"{mode} unavailable: {plan}")
    raise AssertionError("the process mode always works")  # pragma: no cover


def _candidates() -> list[IsolationMode]:
    if not sys.platform.startswith("linux"):
        return ["process"]
    if os.geteuid() == 0:
        # A root grader in namespaces but without its own uid still owns root's files,
        # devices included: a separate uid comes first, namespaces or not.
        return ["namespaces+user", "user", "namespaces", "process"]
    return ["namespaces", "process"]


def _build(mode: IsolationMode) -> _Plan | str:
    """The plan for ``mode``, probed; or why it does not work here."""
    if mode == "process":
        note = "" if sys.platform.startswith("linux") else f"no sandbox on {sys.platform}"
        return _Plan(Isolation("process", False, False, False, False, False, False, note=note))
    root = os.geteuid() == 0
    if mode in ("namespaces+user", "user") and not root:
        return "needs root"
    tools = {name: shutil.which(name) for name in ("unshare", "setpriv", "sh", "mount")}
    wanted = ("setpriv",) if mode == "user" else ("unshare", "setpriv", "sh", "mount")
    missing = [name for name in wanted if tools[name] is None]
    if missing:
        return f"{', '.join(missing)} not found"
    setpriv = [str(tools["setpriv"])]
    if mode != "namespaces":
        setpriv += [f"--reuid={SANDBOX_ID}", f"--regid={SANDBOX_ID}", "--clear-groups"]
    setpriv += ["--no-new-privs", "--bounding-set=-all", "--inh-caps=-all", "--"]
    unshare: list[str] = []
    if mode != "user":
        unshare = [str(tools["unshare"])]
        if mode == "namespaces":
            unshare += ["--user", "--map-root-user"]  # as root too: its own user namespace
        unshare += ["--pid", "--fork", "--kill-child", "--mount-proc", "--net", "--ipc"]
        unshare += ["--uts", "--mount", "--propagation=private", "--"]
    views: tuple[tuple[str, tuple[str, ...]], ...] = ()
    if mode == "namespaces+user":
        found = _views(_needed_paths())
        if isinstance(found, str):
            return found
        views = tuple((blocked, tuple(sorted(names))) for blocked, names in found.items())
    elif mode == "user":
        found = _views(_needed_paths())
        if isinstance(found, str):
            return found
        if found:  # only a mount namespace could show it the interpreter
            return f"uid {SANDBOX_ID} cannot enter {min(found)}"
    namespaces = mode != "user"
    needed = _needed_paths()
    private = tuple(
        folder
        for folder in (("/tmp",) if mode == "namespaces+user" else tuple(_PRIVATE))
        if namespaces
        and os.path.isdir(folder)
        and not any(p == folder or _within(p, folder) for p in needed)
    )
    notes = []
    if mode == "namespaces" and root:
        notes.append("grader code still owns root's files outside the protected folders")
    if namespaces and "/tmp" not in private:
        notes.append("/tmp is shared: the interpreter or its packages live there")
    iso = Isolation(
        mode,
        hides_processes=True,
        no_network=namespaces,
        project_read_only=True,
        process_limit=mode != "namespaces" or not root,
        kills_descendants=namespaces,
        private_tmp="/tmp" in private,
        uid=None if mode == "namespaces" else SANDBOX_ID,
        note="; ".join(notes),
    )
    plan = _Plan(
        iso,
        unshare=tuple(unshare),
        setpriv=tuple(setpriv),
        sh=str(tools["sh"] or ""),
        mount=str(tools["mount"] or ""),
        views=views,
        protect=mode == "namespaces",
        private=private,
        nproc=_MAX_TASKS if iso.process_limit else 0,
    )
    problem = _probe(plan)
    return problem if problem else plan


def _probe(plan: _Plan) -> str:
    """Start ``plan``'s sandbox around a tiny script; empty when the grader would be sound."""
    needed = sorted(_needed_paths())
    base = tempfile.mkdtemp(prefix="modelopt-pygrader-probe-")
    try:
        cwd, home, prefix = plan.prepare(base)
        done = subprocess.run(
            [*prefix, sys.executable, "-I", "-c", _PROBE, *needed],
            capture_output=True,
            cwd=cwd,
            env=_child_env(home),
            timeout=_STARTUP_SECONDS,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return str(exc)
    finally:
        if not (plan.views and _mounted_under(base)):  # never rmtree through a bind mount
            shutil.rmtree(base, ignore_errors=True)
    lines = done.stderr.decode("utf-8", "replace").strip().splitlines()
    if done.returncode != 0:
        return (lines[-1] if lines else f"exit status {done.returncode}")[:200]
    try:
        seen = json.loads(done.stdout)
    except ValueError:
        return "the probe sent no answer"
    iso = plan.isolation
    if seen.get("version") != sys.version or seen.get("prefix") != sys.prefix:
        return f"the interpreter comes up as {seen.get('version')!r} in {seen.get('prefix')!r}"
    if seen.get("unreadable"):
        return f"cannot read {seen['unreadable'][0]}"
    if iso.kills_descendants and seen.get("pid") != 1:
        return "no pid namespace"
    if iso.uid is not None and seen.get("uid") != iso.uid:
        return f"runs as uid {seen.get('uid')}"
    return ""


def _needed_paths() -> set[str]:
    """What the child's interpreter must read: its binary, its prefixes (standard library
    and venv) and the child script. Not the rest of our ``sys.path``: pytest's additions
    are not the child's, and a ``.pth`` entry it cannot read is merely skipped."""
    prefixes = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    paths = {sys.executable, str(_CHILD), *prefixes}
    return {os.path.realpath(p) for p in paths if os.path.exists(p)}


def _views(needed: Iterable[str]) -> dict[str, set[str]] | str:
    """Directories uid 65533 cannot enter, with the entries under them it needs.

    A pyenv or venv under ``/root`` (mode 700) is the common case: its mount namespace
    then gets, over ``/root``, a stand-in directory it may enter holding only those
    entries, bound from the real ones. Two such directories on one path are not handled.
    """
    views: dict[str, set[str]] = {}
    for path in needed:
        blocked: tuple[str, str] | None = None
        current = "/"
        for name in Path(path).parts[1:]:
            try:
                mode = os.stat(current).st_mode
            except OSError:
                break
            if not mode & stat.S_IXOTH:
                if blocked is not None:
                    return f"{path} lies under two directories uid {SANDBOX_ID} cannot enter"
                blocked = (current, name)
            current = os.path.join(current, name)
        if blocked is not None:
            views.setdefault(blocked[0], set()).add(blocked[1])
    temp = os.path.realpath(tempfile.gettempdir())
    for folder in views:
        if _within(temp, folder):
            return f"the temporary directory {temp} lies under {folder}"
    return views


def _protect_ops() -> list[str]:
    """Set-up operations re-mounting read-only what grader code could otherwise write.

    Only in a user namespace, where the grader keeps your uid: permissions cannot stop it
    there, so the project, the venv, the interpreter and ``$HOME`` become read-only in its
    mount namespace (their submounts too).
    """
    mounts = _mounts()
    try:
        project = _project_root(os.getcwd())
    except OSError:
        project = ""
    candidates = {project, sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.expanduser("~")}
    writable = sorted(
        {
            real
            for real in (os.path.realpath(c) for c in candidates if c)
            if real != "/" and os.path.isdir(real) and _writable(real)
        }
    )
    roots: list[str] = []
    for path in writable:  # sorted: a parent comes before what lies inside it
        if not any(_within(path, root) for root in roots):
            roots.append(path)
    ops: list[str] = []
    for root in roots:
        ops += ["ro", _flags_at(root, mounts), root]
        ops += [x for point, flags in mounts if _within(point, root) for x in ("sub", flags, point)]
    return ops


def _writable(path: str) -> bool:
    try:
        return os.access(path, os.W_OK) or os.stat(path).st_uid == os.geteuid()
    except OSError:
        return False


def _project_root(cwd: str) -> str:
    """The nearest ancestor of ``cwd`` that looks like a project's root, else ``cwd``."""
    here = Path(cwd)
    for folder in (here, *here.parents):
        if any((folder / marker).exists() for marker in _PROJECT_MARKERS):
            return str(folder)
    return cwd


def _mounts() -> list[tuple[str, str]]:
    """Mount points and the per-mount flags a re-mount must keep, from mountinfo."""
    try:
        text = Path("/proc/self/mountinfo").read_text(encoding="utf-8", errors="surrogateescape")
    except OSError:
        return []
    found: dict[str, str] = {}
    for line in text.splitlines():
        fields = line.split(" ")
        if len(fields) > 5:
            point = _ESCAPE.sub(lambda m: chr(int(m[1], 8)), fields[4])
            found[point] = "".join(f",{f}" for f in fields[5].split(",") if f in _MOUNT_FLAGS)
    return list(found.items())


def _flags_at(path: str, mounts: list[tuple[str, str]]) -> str:
    best, flags = "", ""
    for point, point_flags in mounts:
        if (point == path or _within(path, point)) and len(point) > len(best):
            best, flags = point, point_flags
    return flags


def _mounted_under(base: str) -> bool:
    real = os.path.realpath(base)
    return any(_within(point, real) for point, _ in _mounts())


def _within(path: str, folder: str) -> bool:
    """``path`` lies strictly inside ``folder``."""
    return path != folder and path.startswith(folder.rstrip("/") + "/")


def _kill_namespace(pid: int) -> None:
    """SIGKILL the first process of the child's pid namespace; the kernel kills the rest.

    ``pid`` is ``unshare``, our direct child, not yet reaped; the namespace's first
    process is its only child, whose pid is freed only once ``unshare`` reaps it (and
    reused only after the pid space wraps), so the lookup cannot hit a stranger. It is
    nearly always the next pid; otherwise /proc is scanned (kernels without the
    ``children`` file are common).
    Killing it directly, not through ``unshare``, is what catches a grader that left the
    process group with ``setsid()`` and cleared its parent-death signal.
    """
    candidates: Iterable[int] = range(pid + 1, pid + 4)
    for scan in (False, True):
        if scan:
            try:
                candidates = (int(n) for n in os.listdir("/proc") if n.isdigit())
            except OSError:
                return
        for candidate in candidates:
            try:
                with open(f"/proc/{candidate}/stat", "rb") as f:
                    parent = int(f.read().rsplit(b")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if parent == pid:
                with contextlib.suppress(OSError):
                    os.kill(candidate, signal.SIGKILL)
                return
