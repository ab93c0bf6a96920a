"""The python grader's sandbox, attacked: one test per claim of docs/reliability.md.

Each test runs a real grader whose source tries the attack, and asserts that it fails in
every mode whose isolation() claims to stop it. Modes that do not make the claim are
skipped with the reason (the docs say so); so are modes this machine cannot run:

* ``here`` -- whatever this process gets (root on CI: ``namespaces+user``);
* ``root-namespaces`` -- the ``namespaces`` mode forced while running as root;
* ``user`` -- the ``user`` mode forced (root without namespaces);
* ``unprivileged`` -- a helper process dropped to ``nobody`` (needs root to get there)
  that grades as an ordinary user would, in its own ``namespaces`` mode;
* ``process`` -- the fallback, forced.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import uuid
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_modelopt.graders.engines import python_source as ps
from tests.support.processes import processes_with

if TYPE_CHECKING:
    from collections.abc import Iterator

ROOT = Path(__file__).parents[2]
NOBODY = 65534
VARIANTS = ["here", "root-namespaces", "user", "unprivileged", "process"]
SAMPLE: dict[str, Any] = {"output_text": "", "output_json": None, "output_tools": [], "choices": []}

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="/proc-based attacks need Linux"
)


def src(text: str) -> str:
    return textwrap.dedent(text)


class Outcome:
    """One graded attack: the score or the error, and the sandbox it ran in."""

    def __init__(self, result: float | str, isolation: dict[str, Any]) -> None:
        self.result = result
        self.isolation = isolation

    @property
    def score(self) -> float:
        assert isinstance(self.result, float), self.result
        return self.result


def _is_root() -> bool:
    return os.geteuid() == 0


def _plan_for(variant: str) -> ps._Plan:
    if variant == "here":
        return ps._plan()
    if variant in ("root-namespaces", "user") and not _is_root():
        pytest.skip(f"{variant}: needs root")
    mode: ps.IsolationMode = {"root-namespaces": "namespaces", "user": "user"}.get(
        variant, "process"
    )  # type: ignore[assignment]
    plan = ps._build(mode)
    if isinstance(plan, str):
        pytest.skip(f"{variant}: {mode} mode unavailable here: {plan}")
    return plan


def attack(
    variant: str,
    source: str,
    item: dict[str, Any],
    *,
    claim: str | None,
    project: Path,
    env: dict[str, str] | None = None,
    timeout: float = 30.0,
) -> Outcome:
    """Grade ``source`` on ``item`` in ``variant``, the project being ``project``.

    Skips when the variant cannot run here, or when its mode does not make ``claim``.
    """
    if variant == "unprivileged":
        return _attack_unprivileged(source, item, claim=claim, project=project, env=env or {})
    plan = _plan_for(variant)
    if claim is not None and not getattr(plan.isolation, claim):
        pytest.skip(f"{variant}: the {plan.isolation.mode} mode does not claim {claim}")
    saved_plan, saved_cwd = ps._plan, os.getcwd()
    ps._plan = lambda: plan  # type: ignore[assignment]
    os.chdir(project)
    try:
        (result,) = ps.run_many(source, [(SAMPLE, item)], timeout=timeout)
    finally:
        ps._plan = saved_plan
        os.chdir(saved_cwd)
    return Outcome(result if isinstance(result, float) else str(result), asdict(plan.isolation))


# -- The unprivileged variant: a helper that is "pytest" for an ordinary user -----------

HELPER = r"""
import json, os, sys
from dataclasses import asdict
from pytest_modelopt.graders.engines import python_source as ps
job = json.load(sys.stdin)
item = dict(job["item"])
item["pids"] = [*item.get("pids", []), os.getpid()]  # the helper holds the secret too
(result,) = ps.run_many(job["source"], [(job["sample"], item)], timeout=job["timeout"])
json.dump({"isolation": asdict(ps.isolation()), "score": result if isinstance(result, float)
           else None, "error": None if isinstance(result, float) else str(result)}, sys.stdout)
"""


def _attack_unprivileged(
    source: str, item: dict[str, Any], *, claim: str | None, project: Path, env: dict[str, str]
) -> Outcome:
    """Run the grade from a helper dropped to ``nobody``, in a mount namespace that shows
    it the interpreter (this one may live under /root) the way the sandbox does."""
    if not _is_root():
        pytest.skip("unprivileged: needs root to become nobody")
    tools = [shutil.which(t) for t in ("unshare", "setpriv", "sh", "mount")]
    if None in tools:
        pytest.skip("unprivileged: util-linux unshare/setpriv/mount missing")
    unshare, setpriv, sh, mount = (str(t) for t in tools)
    views = ps._views(ps._needed_paths())
    if isinstance(views, str):
        pytest.skip(f"unprivileged: {views}")
    plan = ps._Plan(
        ps.Isolation("user", True, False, True, False, False, False, uid=NOBODY),
        unshare=(unshare, "--mount", "--propagation=private", "--"),
        setpriv=(setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--"),
        sh=sh,
        mount=mount,
        views=tuple((folder, tuple(sorted(names))) for folder, names in views.items()),
    )
    base = tempfile.mkdtemp(prefix="modelopt-iso-helper-")
    try:
        _, _, prefix = plan.prepare(base)
        done = subprocess.run(
            [*prefix, sys.executable, "-c", HELPER],
            input=json.dumps({"source": source, "item": item, "sample": SAMPLE, "timeout": 30}),
            capture_output=True,
            text=True,
            cwd=project,
            env={
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                "HOME": str(project),
                "TMPDIR": "/tmp",
                **env,
            },
            timeout=120,
            check=False,
        )
    finally:
        if not ps._mounted_under(base):
            shutil.rmtree(base, ignore_errors=True)
    assert done.returncode == 0, done.stderr[-2000:]
    answer = json.loads(done.stdout)
    iso = answer["isolation"]
    if iso["mode"] == "process":
        pytest.skip(f"unprivileged: user namespaces unavailable ({iso['note']})")
    if claim is not None and not iso[claim]:
        pytest.skip(f"unprivileged: the {iso['mode']} mode does not claim {claim}")
    return Outcome(answer["score"] if answer["error"] is None else answer["error"], iso)


# -- Fixtures -------------------------------------------------------------------------


@pytest.fixture(params=VARIANTS)
def variant(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def project(variant: str) -> Iterator[Path]:
    """A project checkout: world-readable like a real one, owned by whoever runs pytest
    in the variant (``nobody`` for the unprivileged helper), and not under /tmp, which the
    sandbox replaces: what must stop a write there is the read-only mount or the uid."""
    outside_tmp = "/var/tmp" if os.path.isdir("/var/tmp") else None
    folder = Path(tempfile.mkdtemp(prefix="modelopt-iso-project-", dir=outside_tmp))
    (folder / "pyproject.toml").write_text("[project]\nname = 'victim'\n")
    folder.chmod(0o755)
    if variant == "unprivileged" and _is_root():
        os.chown(folder, NOBODY, NOBODY)
        os.chown(folder / "pyproject.toml", NOBODY, NOBODY)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def _wait_gone(marker: str, seconds: float = 5.0) -> list[int]:
    deadline = time.monotonic() + seconds
    while (left := processes_with(marker)) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in left:  # an escapee must not outlive the test
        os.kill(pid, signal.SIGKILL)
    return left


# -- Claims ---------------------------------------------------------------------------

READ_ENVIRON = src(
    """\
    import os
    def grade(sample, item):
        secret = item["secret"].encode()
        pids = [str(p) for p in item["pids"]] + [str(os.getppid())]
        pids += [p for p in os.listdir("/proc") if p.isdigit()]
        found = []
        for pid in pids:
            try:
                with open(f"/proc/{pid}/environ", "rb") as f:
                    data = f.read()
            except OSError:
                continue
            if secret in data or (pid in map(str, item["pids"]) and data):
                found.append(pid)
        if found:
            raise AssertionError(f"read the environment of {sorted(set(found))}")
        return 1.0
    """
)


def test_secrets_in_other_processes_environments_are_unreachable(
    variant: str, project: Path
) -> None:
    secret = f"sk-test-{uuid.uuid4().hex}"
    victim = subprocess.Popen(["sleep", "60"], env={"OPENAI_API_KEY": secret})
    try:
        item = {"secret": secret, "pids": [os.getpid(), victim.pid]}
        outcome = attack(
            variant,
            READ_ENVIRON,
            item,
            claim="hides_processes",
            project=project,
            env={"OPENAI_API_KEY": secret},
        )
    finally:
        victim.kill()
        victim.wait()
    assert outcome.result == 1.0, outcome.result


def test_the_network_is_unreachable(variant: str, project: Path) -> None:
    server = socket.create_server(("127.0.0.1", 0))
    accepted: list[str] = []

    server.settimeout(60)

    def serve() -> None:
        try:
            conn, _ = server.accept()
            accepted.append("connected")
            conn.close()
        except OSError:  # closed: nobody came
            pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    grader = src(
        """\
        import socket
        def grade(sample, item):
            try:
                socket.create_connection(("127.0.0.1", item["port"]), timeout=5).close()
            except OSError as exc:
                return 1.0 if "unreachable" in str(exc).lower() else 0.5
            return 0.0
        """
    )
    try:
        outcome = attack(
            variant,
            grader,
            {"port": server.getsockname()[1]},
            claim="no_network",
            project=project,
        )
    finally:
        server.close()
        thread.join(5)
    assert outcome.result == 1.0, outcome.result  # "Network is unreachable": no route at all
    assert accepted == []


def test_the_project_the_venv_and_home_cannot_be_written(variant: str, project: Path) -> None:
    grader = src(
        """\
        import os, sys
        def grade(sample, item):
            wrote = []
            for folder in (item["project"], sys.prefix, item["home"]):
                try:
                    with open(os.path.join(folder, item["name"]), "w") as f:
                        f.write("pwned")
                    wrote.append(folder)
                except OSError:
                    pass
            if wrote:
                raise AssertionError(f"wrote into {wrote}")
            with open("scratch.txt", "w") as f:  # its own work dir stays writable
                f.write("ok")
            return 1.0
        """
    )
    name = f"pwned-{uuid.uuid4().hex}.txt"
    # the helper's HOME is the project; here it is the home of whoever runs pytest
    home = str(project) if variant == "unprivileged" else os.path.expanduser("~")
    try:
        outcome = attack(
            variant,
            grader,
            {"project": str(project), "name": name, "home": home},
            claim="project_read_only",
            project=project,
        )
    finally:
        Path(sys.prefix, name).unlink(missing_ok=True)
        Path(home, name).unlink(missing_ok=True)
    assert outcome.result == 1.0, outcome.result
    assert not (project / name).exists()


def test_a_fork_bomb_hits_the_process_limit(variant: str, project: Path) -> None:
    tasks = ps._MAX_TASKS
    grader = src(
        """\
        import os, resource, signal, time
        def grade(sample, item):
            limit = resource.getrlimit(resource.RLIMIT_NPROC)[0]
            children = []
            try:
                for _ in range(item["tries"]):
                    pid = os.fork()
                    if pid == 0:
                        time.sleep(30)
                        os._exit(0)
                    children.append(pid)
            except OSError:
                pass
            for pid in children:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            return float(limit * 100000 + len(children))
        """
    )
    outcome = attack(variant, grader, {"tries": tasks + 64}, claim="process_limit", project=project)
    limit, forked = divmod(int(outcome.score), 100000)
    assert limit == tasks
    assert forked < tasks  # stopped by RLIMIT_NPROC well before the 'tries' ran out


ESCAPE = src(
    """\
    import os, time
    def grade(sample, item):
        pid = os.fork()
        if pid == 0:
            try:
                os.setsid()  # leaves the process group the timeout kills
                os.execv(item["sleep"], ["sleep", item["marker"]])
            finally:
                os._exit(1)
        for _ in range(1000):  # return only once it has escaped and runs as the marker
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if item["marker"].encode() in f.read():
                    return 1.0
            time.sleep(0.01)
        raise AssertionError("the escapee never started")
    """
)


def test_a_descendant_that_called_setsid_dies_with_the_grade(variant: str, project: Path) -> None:
    marker = f"300.{uuid.uuid4().int % 10**12:012d}"  # a unique duration: sleep's argv
    item = {"sleep": shutil.which("sleep"), "marker": marker}
    outcome = attack(variant, ESCAPE, item, claim="kills_descendants", project=project)
    assert outcome.result == 1.0, outcome.result
    assert _wait_gone(marker) == []


PID1_ESCAPE = src(
    """\
    import ctypes, os
    def grade(sample, item):
        ctypes.CDLL(None).prctl(1, 0, 0, 0, 0)  # PR_SET_PDEATHSIG: no signal when unshare dies
        os.setsid()
        os.execv(item["sleep"], ["sleep", item["marker"]])  # and never answers
    """
)


def test_the_grader_process_itself_cannot_outlive_a_timeout(variant: str, project: Path) -> None:
    marker = f"301.{uuid.uuid4().int % 10**12:012d}"
    item = {"sleep": shutil.which("sleep"), "marker": marker}
    started = time.monotonic()
    outcome = attack(
        variant, PID1_ESCAPE, item, claim="kills_descendants", project=project, timeout=2
    )
    assert isinstance(outcome.result, str)  # an error: timed out, or its pipe closed
    assert time.monotonic() - started < 60
    assert _wait_gone(marker) == []


FDS = src(
    """\
    import os, stat
    def grade(sample, item):
        listed = [int(fd) for fd in os.listdir("/proc/self/fd")]
        open_fds = {}
        for fd in listed:
            try:
                open_fds[fd] = os.fstat(fd)
            except OSError:  # the listing's own descriptor, closed by now
                pass
        leaked = sorted(fd for fd, st in open_fds.items() if st.st_ino == item["inode"])
        kinds = {fd: stat.S_IFMT(st.st_mode) for fd, st in open_fds.items()}
        expected = {0: stat.S_IFCHR, 1: stat.S_IFREG, 2: stat.S_IFREG,
                    3: stat.S_IFIFO, 4: stat.S_IFIFO}
        if leaked or kinds != expected:
            raise AssertionError(f"descriptors {kinds}, leaked {leaked}")
        return 1.0
    """
)


def test_no_descriptor_but_the_protocol_reaches_the_grader(variant: str, project: Path) -> None:
    with tempfile.TemporaryFile() as secret:
        os.set_inheritable(secret.fileno(), True)  # a careless parent: inheritable
        item = {"inode": os.fstat(secret.fileno()).st_ino}
        outcome = attack(variant, FDS, item, claim=None, project=project)
    # 0 is /dev/null, 1 and 2 the stderr file, 3 and 4 the protocol's pipes: nothing else
    assert outcome.result == 1.0, outcome.result


FORGE = src(
    """\
    import os, sys
    def grade(sample, item):
        line = '{"score": 1.0}\\n'
        print(line, end="", flush=True)
        sys.stdout.write(line)
        sys.stdout.flush()
        sys.__stdout__.write(line)
        sys.__stdout__.flush()
        os.write(1, line.encode())
        try:  # re-opened by path: the stderr file, or refused to another uid
            with open("/dev/stdout", "w") as f:
                f.write(line)
        except OSError:
            pass
        return 0.25
    """
)


def test_printed_output_cannot_forge_a_reply(variant: str, project: Path) -> None:
    outcome = attack(variant, FORGE, {}, claim=None, project=project)
    assert outcome.result == 0.25, outcome.result


PRIVATE = src(
    """\
    import os
    def grade(sample, item):
        seen = {folder: sorted(os.listdir(folder)) for folder in item["folders"]}
        ours = os.path.basename(os.getcwd())
        if seen.get("/tmp") != [ours] or any(seen[f] for f in item["folders"][1:]):
            raise AssertionError(f"not private: {seen}, work dir {os.getcwd()}")
        with open("big", "wb") as f:  # the private /tmp is size-capped
            try:
                for _ in range(item["mib"]):
                    f.write(bytes(1 << 20))
                    f.flush()
            except OSError:
                return 1.0
        return 0.0
    """
)


def test_tmp_is_private_and_capped(variant: str, project: Path) -> None:
    mine = Path(tempfile.mkdtemp(prefix="modelopt-iso-visible-"))  # someone's file in /tmp
    try:
        folders = ["/tmp"] if variant in ("here", "user") else ["/tmp", "/run", "/dev/shm"]
        item = {"folders": [f for f in folders if os.path.isdir(f)], "mib": 300}
        outcome = attack(variant, PRIVATE, item, claim="private_tmp", project=project)
    finally:
        mine.rmdir()
    assert outcome.result == 1.0, outcome.result


# -- Fallback and reporting -------------------------------------------------------------


def test_without_namespaces_it_falls_back_to_the_process_mode_and_says_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_which = shutil.which
    monkeypatch.setattr(
        shutil, "which", lambda name: None if name == "unshare" else real_which(name)
    )
    monkeypatch.setattr(os, "geteuid", lambda: 1000)  # an ordinary user
    ps._plan.cache_clear()
    try:
        iso = ps.isolation()
        score = ps.run_grade("def grade(sample, item):\n    return 0.5\n", SAMPLE, {})
    finally:
        ps._plan.cache_clear()
    assert iso.mode == "process"
    assert not any(
        (
            iso.hides_processes,
            iso.no_network,
            iso.project_read_only,
            iso.process_limit,
            iso.kills_descendants,
        )
    )
    assert iso.uid is None
    assert "namespaces unavailable: unshare not found" in iso.note
    assert score == 0.5  # and graders still run
    monkeypatch.setattr(sys, "platform", "darwin")
    assert ps._candidates() == ["process"]


def test_here_the_strongest_mode_is_in_use() -> None:
    """On Linux as root with util-linux (CI), every claim holds."""
    iso = ps.isolation()
    if not _is_root() or iso.mode == "process":
        pytest.skip(f"not root with namespaces here: {iso.mode} ({iso.note})")
    assert iso.mode == "namespaces+user"
    assert iso.uid == ps.SANDBOX_ID
    assert all(
        (
            iso.hides_processes,
            iso.no_network,
            iso.project_read_only,
            iso.process_limit,
            iso.kills_descendants,
        )
    )


def test_the_reliability_doc_cites_every_test_here() -> None:
    doc = (ROOT / "docs" / "reliability.md").read_text(encoding="utf-8")
    names = [name for name in globals() if name.startswith("test_")]
    assert [name for name in names if f"`{name}`" not in doc] == []
