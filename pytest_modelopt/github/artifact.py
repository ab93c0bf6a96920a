"""The baseline: the base branch's saved run, downloaded and unpacked safely.

An artifact is a zip from the network: members are checked (no absolute paths, no ``..``,
no links, bounded size and count) before anything is written.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import stat
import tempfile
import zipfile
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..records.store import RunUnreadable, read_cases, read_run_info
from .api import BASELINE_EVENTS, MAX_ARTIFACT_BYTES, GitHubClient, GitHubError, copy_limited

if TYPE_CHECKING:
    from collections.abc import Iterable

    from .runner import RunnerEnv


DEFAULT_ARTIFACT = "modelopt-baseline"


REPORT_ARTIFACT = "modelopt-report"
VIEWER_ARTIFACT = "modelopt-viewer"  # the run viewer (report.html) of every run


#: What a broken zip raises while it is read (a corrupt or truncated member, an encrypted
#: one, a compression method zipfile lacks).
_ZIP_ERRORS = (zipfile.BadZipFile, RuntimeError, NotImplementedError, EOFError, zlib.error)


#: Characters upload-artifact refuses in a name.
_BAD_NAME = re.compile(r'[":<>|*?\\/\r\n]')


def artifact_name(base: str, job: str = "", matrix: str = "", working_directory: str = ".") -> str:
    """The name a run is uploaded under: ``base``, made unique per job and matrix leg.

    Names must not collide within one workflow run (upload-artifact v4 refuses a second
    artifact of the same name), and a pull request's leg must find the baseline of the same
    leg: ``<base>-<job id>``, plus ``-<8 hex digits>`` of the matrix values and the
    working directory when there is a matrix or the project is not at the root. Both are
    the same on the base branch and in the pull request, so the names match.
    """
    name = base
    if job:
        name += f"-{job}"
    try:
        values = json.loads(matrix) if matrix.strip() else None
    except ValueError:
        values = matrix
    where = working_directory.strip().rstrip("/") or "."
    if values or where not in (".", "./"):
        key = json.dumps({"matrix": values, "working-directory": where}, sort_keys=True)
        name += "-" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:8]
    return _BAD_NAME.sub("_", name)


#: Largest uncompressed baseline artifact we unpack (a run is JSON; this is a zip-bomb guard).


MAX_ARTIFACT_MEMBERS = 100_000


class NoBaseline(Exception):
    """Why there is no baseline to compare with; ``level`` is the annotation to show."""

    def __init__(self, reason: str, *, level: str = "notice") -> None:
        super().__init__(reason)
        self.reason = reason
        self.level = level


class UnsafeArchive(Exception):
    """An artifact that would write outside its directory (zip-slip), or a zip bomb."""


class MalformedArchive(UnsafeArchive):
    """An artifact that is not a readable zip: broken, not hostile."""


def _check_member(info: zipfile.ZipInfo) -> None:
    name = info.filename
    if not name or "\x00" in name or "\\" in name:
        raise UnsafeArchive(f"member {name!r} has an unsafe name")
    if name.startswith("/") or re.match(r"[A-Za-z]:", name):
        raise UnsafeArchive(f"member {name!r} is an absolute path")
    if ".." in name.split("/"):
        raise UnsafeArchive(f"member {name!r} climbs out of the directory")
    if stat.S_ISLNK(info.external_attr >> 16):
        raise UnsafeArchive(f"member {name!r} is a symbolic link")


def safe_extract(archive_path: Path, dest: Path, *, limit: int = MAX_ARTIFACT_BYTES) -> list[Path]:
    """Unzip into ``dest``, refusing the whole archive if any member could escape it."""
    try:
        archive = zipfile.ZipFile(archive_path)
    except (*_ZIP_ERRORS, OSError, ValueError) as exc:
        raise MalformedArchive(f"the artifact is not a zip file ({exc})") from None
    with archive:
        members = archive.infolist()
        if len(members) > MAX_ARTIFACT_MEMBERS:
            raise UnsafeArchive(f"the artifact has more than {MAX_ARTIFACT_MEMBERS} files")
        for info in members:
            _check_member(info)
        if sum(info.file_size for info in members) > limit:
            raise UnsafeArchive(f"the artifact unpacks to more than {limit} bytes")
        dest.mkdir(parents=True, exist_ok=True)
        root = dest.resolve()
        written: list[Path] = []
        budget = limit
        for info in members:
            target = (root / info.filename).resolve()
            if target != root and root not in target.parents:
                raise UnsafeArchive(f"member {info.filename!r} resolves outside {dest}")
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                with archive.open(info) as source, target.open("wb") as sink:
                    copy_limited(source, sink, budget)
            except _ZIP_ERRORS as exc:
                raise MalformedArchive(f"member {info.filename!r}: {exc}") from None
            except GitHubError as exc:
                raise UnsafeArchive(f"member {info.filename!r}: {exc}") from None
            budget -= target.stat().st_size
            written.append(target)
    return written


def find_run(files: Iterable[Path]) -> Path | None:
    """The run directory among unpacked files: the one ``latest`` names, else the newest."""

    found = []
    for path in files:
        if path.name != "run.json":
            continue
        try:
            found.append((read_run_info(path.parent), path.parent))
        except RunUnreadable:
            continue
    for _, run_dir in found:
        pointer = run_dir.parent / "latest"
        with contextlib.suppress(OSError, UnicodeDecodeError):
            if pointer.is_file() and pointer.read_text(encoding="utf-8").strip() == run_dir.name:
                return run_dir
    if not found:
        return None
    return max(found, key=lambda item: (item[0].started_at, str(item[1])))[1]


_EVENTS_TEXT = ", ".join(BASELINE_EVENTS[:-1]) + " or " + BASELINE_EVENTS[-1]


def _how_to_create(
    artifact: str, branch: str | None, workflow: str | None, *, required: bool = False
) -> str:
    where = f"`{branch}`" if branch else "the default branch"
    workflow = workflow or "this workflow"
    outcome = (
        "`require-baseline` is true, so the evals did not run."
        if required
        else "The evals run all the same; there is just nothing to compare with."
    )
    return (
        f"A pull request compares with the `{artifact}` artifact of the latest successful "
        f"{_EVENTS_TEXT} run of {workflow} on {where}: push to {where} (or run that "
        f"workflow there by hand) and it saves one. {outcome}"
    )


def _pick_artifact(
    artifacts: list[dict[str, Any]], names: tuple[str, ...]
) -> dict[str, Any] | None:
    """The newest unexpired artifact of the first of ``names`` the run has, if any."""
    for name in names:
        usable = [
            a
            for a in artifacts
            if a.get("name") == name
            and not a.get("expired")
            and isinstance(a.get("id"), (int, str))
            and re.fullmatch(r"[0-9]+", str(a["id"]))
        ]
        if usable:
            return max(usable, key=lambda a: (str(a.get("created_at") or ""), int(a["id"])))
    return None


def fetch_baseline(
    env: RunnerEnv,
    out: Path,
    *,
    artifact: str = DEFAULT_ARTIFACT,
    fallback: str | None = None,
    branch: str | None = None,
    workflow: str | None = None,
    required: bool = False,
    client: GitHubClient | None = None,
) -> Path:
    """Download and unpack the baseline run; its directory, or NoBaseline saying why not.

    ``fallback``: an older name to take when a run has no ``artifact`` (the bare name
    earlier releases uploaded under), so upgrading does not lose the baseline.
    """
    if not env.repository:
        raise NoBaseline("GITHUB_REPOSITORY is not set: not running in GitHub Actions?")
    workflow = workflow or env.workflow_file
    if workflow is None:
        raise NoBaseline(
            "GITHUB_WORKFLOW_REF does not name a workflow file, so there are no runs to look in."
        )
    if not env.token:
        raise NoBaseline(
            "No GITHUB_TOKEN: the action's `github-token` input (default: the job's token) "
            "is needed to download the baseline artifact."
        )
    client = client or env.client()
    repo = env.repository
    names = (artifact,) if not fallback or fallback == artifact else (artifact, fallback)
    chosen: dict[str, Any] | None = None
    try:
        branch = branch or env.base_branch() or client.default_branch(repo)
        if not branch:
            raise NoBaseline("Could not tell which branch holds the baseline; pass --branch.")
        runs = [
            r
            for r in client.workflow_runs(repo, workflow, branch)
            if str(r.get("id")) != env.run_id and r.get("conclusion", "success") == "success"
        ]
        if not runs:
            raise NoBaseline(
                f"No successful {_EVENTS_TEXT} run of {workflow} on `{branch}` yet. "
                + _how_to_create(artifact, branch, workflow, required=required)
            )
        for run in runs:
            chosen = _pick_artifact(client.run_artifacts(repo, run["id"]), names)
            if chosen is not None:
                break
        if chosen is None:
            raise NoBaseline(
                f"The latest {len(runs)} successful {_EVENTS_TEXT} runs of {workflow} on "
                f"`{branch}` have no unexpired `{artifact}` artifact (artifacts expire after "
                "the repository's retention period). "
                + _how_to_create(artifact, branch, workflow, required=required)
            )
        out.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".modelopt-baseline-", dir=out.parent) as tmp:
            archive = Path(tmp) / "artifact.zip"
            with archive.open("w+b") as sink:
                client.download(f"/repos/{repo}/actions/artifacts/{chosen['id']}/zip", sink)
            files = safe_extract(archive, out)
    except GitHubError as exc:
        raise NoBaseline(
            f"Could not fetch the baseline: {exc} "
            + _how_to_create(artifact, branch, workflow, required=required)
        ) from None
    except MalformedArchive as exc:
        raise NoBaseline(
            f"The `{chosen and chosen.get('name')}` artifact (id {chosen and chosen.get('id')}) "
            f"cannot be read: {exc}. " + _outcome(required)
        ) from None
    except UnsafeArchive as exc:
        raise NoBaseline(
            f"Refused the `{chosen and chosen.get('name')}` artifact (id "
            f"{chosen and chosen.get('id')}): {exc}. Nothing outside the baseline directory "
            "was written.",
            level="warning",
        ) from None
    name = chosen.get("name")
    run_dir = find_run(files)
    if run_dir is None:
        raise NoBaseline(
            f"The `{name}` artifact holds no run (no readable run.json): upload the run "
            "directory (.modelopt/runs/<id>) as the artifact. " + _outcome(required),
        )
    try:  # read it whole now: a run that breaks the evals later is no baseline
        sum(1 for _ in read_cases(run_dir, slim=True))
    except (RunUnreadable, OSError, ValueError) as exc:
        raise NoBaseline(
            f"The `{name}` artifact's run {run_dir.name} cannot be read ({exc}). "
            + _outcome(required)
        ) from None
    return run_dir


def _outcome(required: bool) -> str:
    if required:
        return "`require-baseline` is true, so the evals did not run."
    return "The evals run without a comparison."
