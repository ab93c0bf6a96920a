"""The python grader's child process: runs one grader's source on pairs of (sample, item).

Started by ``python_source.py`` as ``python -I <this file> MEMORY_BYTES CPU_SECONDS
FILE_BYTES TASKS`` (0 memory: no limit; 0 tasks: no ``RLIMIT_NPROC``, which the parent
sets only where it counts the grader's processes alone), by path and in isolated mode, so
it imports nothing of the package and nothing from the project -- possibly as another uid
inside namespaces that the parent's sandbox set up (see ``python_source.py``). Before
anything of the grader runs it sets its resource limits and closes every inherited file
descriptor above stderr, so the protocol is the only channel out even if something up the
chain leaked one.

Protocol: in, length-prefixed ``marshal`` frames on stdin (``{"source"}`` first, then one
``{"sample", "item"}`` per pair; marshal only ever flows parent -> child, from trusted
code); out, one JSON line per frame on stdout: ``{"ready": true}``, then ``{"score"}`` or
``{"error", "message", "line", "code", "tail"}``. The grader's own stdout goes to stderr
and its stdin is ``/dev/null``, so nothing it prints can forge a reply.

It avoids importing json, re, traceback and typing on the happy path: that halves a cold
start (~35 -> ~20 ms). It must stay valid on the oldest Python the package supports (3.10).
"""

from __future__ import annotations

import builtins
import marshal
import math
import numbers
import os
import sys

TYPE_CHECKING = False  # not typing's: importing typing costs this process ~12 ms

try:
    from _json import encode_basestring_ascii as _quote
except ImportError:  # pragma: no cover - CPython has the C encoder
    from json.encoder import encode_basestring_ascii as _quote

if TYPE_CHECKING:
    from types import CodeType, TracebackType
    from typing import IO, Any

    Reply = dict[str, Any]

if sys.path and os.path.dirname(os.path.abspath(__file__)) == os.path.abspath(sys.path[0]):
    del sys.path[0]  # Python 3.10's -I still puts this folder first: grader imports stay clean


def _limit() -> None:
    try:
        import resource  # not on every platform
    except ImportError:  # pragma: no cover - not on Windows
        return
    mem, cpu, fsize = (int(a) for a in sys.argv[1:4])
    tasks = int(sys.argv[4]) if len(sys.argv) > 4 else 0
    wanted = [("RLIMIT_CORE", 0, 0), ("RLIMIT_FSIZE", fsize, fsize)]
    if mem > 0:
        wanted.append(("RLIMIT_AS", mem, mem))
    if cpu > 0:
        wanted.append(("RLIMIT_CPU", cpu, cpu + 1))
    if tasks > 0:
        wanted.append(("RLIMIT_NPROC", tasks, tasks))
    for attr, soft, hard in wanted:
        which = getattr(resource, attr, None)
        if which is None:
            continue
        try:
            old_hard = resource.getrlimit(which)[1]
            if old_hard != resource.RLIM_INFINITY:
                hard = min(hard, old_hard)
                soft = min(soft, hard)
            resource.setrlimit(which, (soft, hard))
        except (ValueError, OSError):
            pass


def _close_inherited() -> None:
    try:
        fds = [int(name) for name in os.listdir("/proc/self/fd")]  # Linux: only open ones
    except (OSError, ValueError):
        os.closerange(3, 256)
        return
    for fd in fds:
        if fd > 2:
            try:  # noqa: SIM105 - contextlib would cost this process an import
                os.close(fd)
            except OSError:
                pass


def _enter_home() -> None:
    """Work in ``HOME``, creating it: in a namespace mode it lies in a private /tmp that
    only exists in here, so the parent could not make it."""
    home = os.environ.get("HOME")
    if home:
        try:  # noqa: SIM105 - contextlib would cost this process an import
            os.mkdir(home, 0o700)
        except FileExistsError:
            pass
        os.chdir(home)


def _own_pipes() -> tuple[IO[bytes], IO[bytes]]:
    """The protocol's pipes, kept apart: the grader's stdout becomes stderr, its stdin
    /dev/null."""
    pipe_in = os.fdopen(os.dup(0), "rb")
    pipe_out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    return pipe_in, pipe_out


FILE = "<grader>"
MEM_MB = 0
LINES: list[str] = []
SOURCE = ""
_IN: IO[bytes] = sys.stdin.buffer
_OUT: IO[bytes] = sys.stdout.buffer


def _encode(value: object) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if isinstance(value, str):
        return str(_quote(value))
    if isinstance(value, float):
        return repr(value)  # always finite here
    return str(int(value))  # type: ignore[call-overload]


def send(obj: Reply) -> None:
    body = ",".join(_quote(k) + ":" + _encode(v) for k, v in obj.items())
    _OUT.write(("{" + body + "}\n").encode("ascii"))
    _OUT.flush()


def receive() -> Any:
    size = _IN.read(8)
    if len(size) < 8:
        return None
    body = _IN.read(int.from_bytes(size, "big"))
    return marshal.loads(body)


def short(value: object, limit: int = 120) -> str:
    try:
        text = repr(value)
    except BaseException:
        text = f"<unrepresentable {type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def failure(kind: str, message: str, line: int | None = None, tail: str = "") -> Reply:
    code = None
    if line and 0 < line <= len(LINES):
        code = LINES[line - 1].strip()[:200] or None
    return {"error": kind, "message": message, "line": line, "code": code, "tail": tail}


def _grader_frames(tb: TracebackType | None) -> tuple[TracebackType | None, int | None]:
    """The traceback from the grader's first frame on, and its last line in the grader."""
    while tb is not None and tb.tb_frame.f_code.co_filename != FILE:
        tb = tb.tb_next
    line = None
    walk = tb
    while walk is not None:
        if walk.tb_frame.f_code.co_filename == FILE:
            number = walk.tb_lineno
            if isinstance(number, int) and number > 0:
                line = number
        walk = walk.tb_next
    return tb, line


def describe(exc: BaseException, where: str) -> Reply:
    tb, line = _grader_frames(exc.__traceback__)
    try:
        import linecache  # only when a grader raises: a cold start stays cheap
        import traceback

        linecache.cache[FILE] = (len(SOURCE), None, [x + "\n" for x in LINES], FILE)
        tail = "".join(traceback.format_exception(type(exc), exc, tb))
        tail = "\n".join(tail.rstrip().splitlines()[-12:])[-4000:]
    except BaseException:
        tail = ""
    try:
        text = str(exc).strip()
    except BaseException:
        text = ""
    first = text.splitlines()[0] if text else ""
    if len(first) > 200:
        first = first[:197] + "..."
    elif "\n" in text:
        first += " ..."
    message = f"{where} raised {type(exc).__name__}" + (": " + first if first else "")
    if line:
        message += f" (line {line})"
    if isinstance(exc, MemoryError) and MEM_MB:
        message += f"; the grader's memory limit is {MEM_MB} MB"
    return failure("exception" if where == "grade()" else "source", message, line, tail)


def convert(result: object) -> Reply:
    if type(result).__module__ == "numpy" and getattr(result, "ndim", None) == 0:
        try:
            result = result.item()  # type: ignore[attr-defined]
        except BaseException:  # contextlib would cost an import: keep the numpy value
            result = result
    if isinstance(result, bool):
        return {"score": 1.0 if result else 0.0}
    if isinstance(result, numbers.Real):
        try:
            score = float(result)
        except BaseException:
            return failure(
                "result",
                f"returned {short(result)}, which is not a float; grade() must return a "
                "finite number",
            )
        if not math.isfinite(score):
            return failure(
                "result", f"returned {short(score)}; grade() must return a finite number"
            )
        return {"score": score}
    if result is None:
        what = "returned None"
    else:
        kind = type(result).__name__
        article = "an" if kind[:1].lower() in "aeiou" else "a"
        what = f"returned {short(result)} ({article} {kind})"
    return failure("result", what + "; grade() must return a number")


def grade_one(code: CodeType, sample: Any, item: Any) -> Reply:
    namespace: dict[str, Any] = {"__name__": "__grader__", "__builtins__": builtins}
    where = "source"
    try:
        exec(code, namespace)
        fn = namespace.get("grade")
        if not callable(fn):
            return failure("source", "source defines no grade(sample, item) function")
        where = "grade()"
        result = fn(sample, item)
    except BaseException as exc:
        return describe(exc, where)
    return convert(result)


def main() -> None:
    global LINES, SOURCE, MEM_MB, _IN, _OUT
    _limit()  # before anything of the grader's runs
    _close_inherited()
    _enter_home()
    MEM_MB = int(sys.argv[1]) // (1024 * 1024)
    _IN, _OUT = _own_pipes()
    header = receive()
    if header is None:
        return
    source = SOURCE = header["source"]
    LINES = source.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    try:
        code = compile(source, FILE, "exec", dont_inherit=True)
    except BaseException as exc:
        send(failure("source", f"source does not compile: {type(exc).__name__}: {exc}"))
        return
    send({"ready": True})
    while True:
        request = receive()
        if request is None:
            return
        try:
            reply = grade_one(code, request["sample"], request["item"])
        except BaseException as exc:
            reply = failure("exception", f"grader runner failed: {short(exc)}")
        send(reply)


if __name__ == "__main__":
    main()
