"""The baseline: the base branch's saved run, downloaded and unpacked safely.

An artifact is a zip from the network: members are checked (no absolute paths, no ``..``,
no links, bounded size and count) before anything is written.
"""

from __future__ import annotations

import contextlib
import re
import stat
import tempfile
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..records.store import RunUnreadable, read_run_info
from .api import MAX_ARTIFACT_BYTES, GitHubClient, GitHubError, copy_limited

if TYPE_CHECKING:
    from collections.abc import Iterable

    from .runner import RunnerEnv


DEFAULT_ARTIFACT = "modelopt-baseline"


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
    except (zipfile.BadZipFile, OSError) as exc:
        raise UnsafeArchive(f"the artifact is not a zip file ({exc})") from None
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
            except (zipfile.BadZipFile, GitHubError) as exc:
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


def _how_to_create(env: RunnerEnv, artifact: str, branch: str | None) -> str:
    where = f"`{branch}`" if branch else "the default branch"
    workflow = env.workflow_file or "this workflow"
    return (
        f"A pull request compares with the `{artifact}` artifact of the latest successful "
        f"push run of {workflow} on {where}: push to {where} (or re-run that workflow there) "
        "and its baseline job saves one. The evals ran; there is just nothing to compare with."
    )


def fetch_baseline(
    env: RunnerEnv,
    out: Path,
    *,
    artifact: str = DEFAULT_ARTIFACT,
    branch: str | None = None,
    client: GitHubClient | None = None,
) -> Path:
    """Download and unpack the baseline run; its directory, or NoBaseline saying why not."""
    if not env.repository:
        raise NoBaseline("GITHUB_REPOSITORY is not set: not running in GitHub Actions?")
    workflow = env.workflow_file
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
                f"No successful push run of {workflow} on `{branch}` yet. "
                + _how_to_create(env, artifact, branch)
            )
        for run in runs:
            usable = [
                a
                for a in client.run_artifacts(repo, run["id"])
                if a.get("name") == artifact and not a.get("expired")
            ]
            if usable:
                chosen = max(usable, key=lambda a: (str(a.get("created_at") or ""), a["id"]))
                break
        if chosen is None:
            raise NoBaseline(
                f"The latest {len(runs)} successful push runs of {workflow} on `{branch}` have "
                f"no unexpired `{artifact}` artifact (artifacts expire after the repository's "
                "retention period). " + _how_to_create(env, artifact, branch)
            )
        out.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".modelopt-baseline-", dir=out.parent) as tmp:
            archive = Path(tmp) / "artifact.zip"
            with archive.open("w+b") as sink:
                client.download(f"/repos/{repo}/actions/artifacts/{chosen['id']}/zip", sink)
            files = safe_extract(archive, out)
    except GitHubError as exc:
        raise NoBaseline(
            f"Could not fetch the baseline: {exc} " + _how_to_create(env, artifact, branch)
        ) from None
    except UnsafeArchive as exc:
        raise NoBaseline(
            f"Refused the `{artifact}` artifact (id {chosen and chosen.get('id')}): {exc}. "
            "Nothing outside the baseline directory was written.",
            level="warning",
        ) from None
    run_dir = find_run(files)
    if run_dir is None:
        raise NoBaseline(
            f"The `{artifact}` artifact holds no run (no readable run.json): upload the run "
            "directory (.modelopt/runs/<id>) as the artifact.",
            level="warning",
        )
    return run_dir
