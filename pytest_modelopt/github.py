"""GitHub Actions glue: the baseline artifact, the job summary, the sticky PR comment, outputs.

The bundled action's logic lives here, not in action.yml, so that it is unit-tested in Python;
action.yml only wires its inputs to ``modelopt github baseline|summary|comment|outputs|
replay-note``. Everything reads the runner's standard environment (``GITHUB_*``). The REST API
is spoken with urllib (no extra dependency). The token comes from ``GITHUB_TOKEN`` only, is
never an argument, and is redacted from every message printed and every file written.

None of these commands fails a check on its own account: a missing baseline is a notice, a
comment that cannot be posted (a fork's read-only token) is a warning; gates decide the check.
"""

from __future__ import annotations

import contextlib
import email.utils
import http.client
import json
import os
import re
import secrets
import stat
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol

from . import __version__
from .client import redact

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable, Iterable, Sequence

    from .records import CaseRecord

DEFAULT_API_URL = "https://api.github.com"
API_VERSION = "2022-11-28"
BOT_LOGIN = "github-actions[bot]"
DEFAULT_ARTIFACT = "modelopt-baseline"
DEFAULT_MARKER = "evals"
PR_EVENTS = ("pull_request", "pull_request_target")
#: GitHub's limit on an issue comment's body ("maximum is 65536 characters").
COMMENT_LIMIT = 65_536
#: GitHub refuses a step's summary over 1 MiB (and then shows none of it).
SUMMARY_LIMIT = 1024 * 1024
#: Largest uncompressed baseline artifact we unpack (a run is JSON; this is a zip-bomb guard).
MAX_ARTIFACT_BYTES = 1024 * 1024 * 1024
MAX_ARTIFACT_MEMBERS = 100_000
MAX_PAGES = 50
MAX_REDIRECTS = 5
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
NOTE_LIMIT = 10
REPLAY_HEADING = "**Cases not run: no recorded response**"
TRUNCATED_NOTE = (
    "*(the report was cut to fit GitHub's 65,536-character comment limit; the job summary "
    "has all of it)*"
)

_MENTION = re.compile(r"@(?=[A-Za-z0-9_-])")
_FORGED_MARKER = re.compile(r"<!--(\s*pytest-modelopt:)", re.IGNORECASE)
_MARKER_KEY = re.compile(r"[A-Za-z0-9_.]+(-[A-Za-z0-9_.]+)*")
_LINK = re.compile(r"<([^>]*)>\s*((?:;\s*[^,;]+)*)")
_LINK_REL = re.compile(r'rel\s*=\s*"?([^";]+)"?')
_ERROR_BODY = 64 * 1024


# -- secrets and workflow commands -----------------------------------------------------------


def redact_token(text: str, token: str | None) -> str:
    """The token (and anything shaped like a GitHub token or an API key) replaced by ***."""
    return redact(text, (token,) if token else ())


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def workflow_command(kind: str, message: str, title: str | None = None) -> str:
    """``::notice title=T::message``, escaped so a message cannot inject another command."""
    props = f" title={_escape_property(title)}" if title else ""
    return f"::{kind}{props}::{_escape_data(message)}"


class Console:
    """Prints annotations and lines with the token redacted: the only way this module speaks."""

    def __init__(self, token: str | None) -> None:
        self.token = token

    def clean(self, text: str) -> str:
        return redact_token(text, self.token)

    def line(self, text: str, *, err: bool = False) -> None:
        print(self.clean(text), file=sys.stderr if err else sys.stdout, flush=True)

    def annotate(self, kind: str, message: str, title: str | None = None) -> None:
        print(workflow_command(kind, self.clean(message), title), flush=True)

    def notice(self, message: str, title: str | None = None) -> None:
        self.annotate("notice", message, title)

    def warning(self, message: str, title: str | None = None) -> None:
        self.annotate("warning", message, title)

    def error(self, message: str, title: str | None = None) -> None:
        self.annotate("error", message, title)

    def outputs(self, path: str, values: Mapping[str, str]) -> None:
        """Step outputs; without ``GITHUB_OUTPUT`` (a local run) they go to stderr."""
        cleaned = {name: self.clean(value) for name, value in values.items()}
        if path:
            write_outputs(Path(path), cleaned)
        else:
            for name, value in cleaned.items():
                self.line(f"output {name}={value}", err=True)


def write_outputs(path: Path, values: Mapping[str, str]) -> None:
    """Append ``name<<DELIM`` blocks: safe for any value, newlines included."""
    with path.open("a", encoding="utf-8") as handle:
        for name, value in values.items():
            delimiter = f"ghadelimiter_{secrets.token_hex(16)}"
            while delimiter in value:  # pragma: no cover - 128 random bits
                delimiter = f"ghadelimiter_{secrets.token_hex(16)}"
            handle.write(f"{name}<<{delimiter}\n{value}\n{delimiter}\n")


# -- the REST client -------------------------------------------------------------------------


class GitHubError(Exception):
    """A GitHub API call that failed, with its status (None: GitHub was not reached)."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def _advice(status: int | None) -> str:
    if status == 401:
        return (
            "The token was refused: check the action's `github-token` input "
            "(default: the job's own token)."
        )
    if status == 403:
        return (
            "The token may not do this: give the job `permissions:` `pull-requests: write` "
            "(the comment) and `actions: read` (the baseline). A pull request from a fork "
            "gets a read-only token."
        )
    if status == 404:
        return (
            "Not found, or the token cannot see it (a private repository needs "
            "`contents: read` and `actions: read`)."
        )
    if status == 410:
        return "It is gone (an artifact past its retention period)."
    if status is None or status == 429 or status >= 500:
        return "GitHub is unavailable or rate-limiting; re-run the job later."
    return ""


@dataclass(frozen=True)
class Response:
    status: int
    headers: Mapping[str, str]  # names lower-cased
    body: bytes
    url: str

    def json(self) -> Any:
        try:
            return json.loads(self.body or b"null")
        except ValueError as exc:
            raise GitHubError(
                f"GitHub answered {self.status} with a body that is not JSON", status=self.status
            ) from exc

    def links(self) -> dict[str, str]:
        return parse_link(self.headers.get("link", ""))


def parse_link(header: str) -> dict[str, str]:
    """``<url>; rel="next", <url>; rel="last"`` as {"next": url, "last": url}."""
    links: dict[str, str] = {}
    for url, params in _LINK.findall(header):
        match = _LINK_REL.search(params)
        if match:
            for rel in match.group(1).split():
                links.setdefault(rel, url)
    return links


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Redirects come back as responses, so the caller decides which headers follow them."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _lower(headers: Any) -> dict[str, str]:
    return {str(k).lower(): str(v) for k, v in (headers.items() if headers else ())}


class _Reader(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


def _copy(source: _Reader, sink: IO[bytes], limit: int) -> None:
    total = 0
    while chunk := source.read(1024 * 1024):
        total += len(chunk)
        if total > limit:
            raise GitHubError(f"the download is larger than {limit} bytes; refusing it")
        sink.write(chunk)


class GitHubClient:
    """A small GitHub REST client: JSON calls, pagination, bounded retries, safe downloads.

    Retries 429 and 5xx (and 403s that are rate limits) at most ``retries`` times, honouring
    ``Retry-After``; a wait longer than ``max_wait`` is not slept but reported. Redirects are
    followed without the token: GitHub sends artifact downloads to a signed blob-store URL.
    """

    def __init__(
        self,
        token: str | None,
        api_url: str = DEFAULT_API_URL,
        *,
        timeout: float = 30.0,
        retries: int = 3,
        backoff: float = 1.0,
        max_wait: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.api_url = (api_url or DEFAULT_API_URL).rstrip("/")
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.max_wait = max_wait
        self._token = token or None
        self._sleep = sleep
        self._opener = urllib.request.build_opener(_NoRedirect())

    @property
    def has_token(self) -> bool:
        return self._token is not None

    def clean(self, text: str) -> str:
        return redact_token(text, self._token)

    def url(self, path: str, params: Mapping[str, Any] | None = None) -> str:
        url = path if path.startswith(("http://", "https://")) else self.api_url + path
        if params:
            query = urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
            url += ("&" if "?" in url else "?") + query
        return url

    def _headers(self, *, auth: bool, json_body: bool = False) -> dict[str, str]:
        headers = {"User-Agent": f"pytest-modelopt/{__version__}"}
        if auth:
            headers["Accept"] = "application/vnd.github+json"
            headers["X-GitHub-Api-Version"] = API_VERSION
            if self._token:
                headers["Authorization"] = f"Bearer {self._token}"
        if json_body:
            headers["Content-Type"] = "application/json"
        return headers

    # -- transport ---------------------------------------------------------------------------

    def _send(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        data: bytes | None,
        sink: IO[bytes] | None,
        limit: int,
    ) -> Response:
        request = urllib.request.Request(url, data=data, headers=dict(headers), method=method)
        try:
            response = self._opener.open(request, timeout=self.timeout)
        except urllib.error.HTTPError as exc:
            with contextlib.closing(exc):
                body = exc.read(_ERROR_BODY) if exc.fp is not None else b""
            return Response(exc.code, _lower(exc.headers), body, url)
        with response:
            status, found = response.status, _lower(response.headers)
            if sink is not None and 200 <= status < 300:
                sink.seek(0)
                sink.truncate()
                _copy(response, sink, limit)
                return Response(status, found, b"", url)
            return Response(status, found, response.read(), url)

    def _wait(self, response: Response, attempt: int) -> float:
        retry_after = response.headers.get("retry-after")
        if retry_after is not None:
            try:
                return max(0.0, float(retry_after))
            except ValueError:
                with contextlib.suppress(TypeError, ValueError):
                    when = email.utils.parsedate_to_datetime(retry_after).timestamp()
                    return max(0.0, when - time.time())
        reset = response.headers.get("x-ratelimit-reset")
        if response.headers.get("x-ratelimit-remaining") == "0" and reset:
            with contextlib.suppress(ValueError):
                return max(0.0, float(reset) - time.time())
        return float(self.backoff * 2**attempt)

    @staticmethod
    def _retryable(response: Response, method: str = "GET") -> bool:
        """429, 5xx and rate-limit 403s; a POST only when GitHub cannot have acted on it.

        A 500/502/504 to a POST may still have created the comment: retrying it could make
        a second one, so that is left to the next run (which finds and updates it).
        """
        if method == "POST" and response.status in (500, 502, 504):
            return False
        if response.status in RETRY_STATUSES:
            return True
        limited = "retry-after" in response.headers or (
            response.headers.get("x-ratelimit-remaining") == "0"
        )
        return response.status == 403 and limited

    def _attempt(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        data: bytes | None = None,
        sink: IO[bytes] | None = None,
        limit: int = 256 * 1024 * 1024,
    ) -> Response:
        where = self._where(url)
        attempt = 0
        while True:
            try:
                response = self._send(method, url, headers, data, sink, limit)
            except (OSError, http.client.HTTPException) as exc:  # URLError, timeouts, resets
                if attempt >= self.retries:
                    raise GitHubError(
                        f"could not reach GitHub for {method} {where}: {self.clean(str(exc))}. "
                        + _advice(None)
                    ) from None
                wait = self.backoff * 2**attempt
            else:
                if not self._retryable(response, method) or attempt >= self.retries:
                    return response
                wait = self._wait(response, attempt)
                if wait > self.max_wait:
                    return response
            attempt += 1
            self._sleep(wait)

    def _where(self, url: str) -> str:
        """A URL fit for a message: the path on the API, the bare host elsewhere (signed URLs)."""
        if url.startswith(self.api_url + "/"):
            return url[len(self.api_url) :].split("?")[0]
        return urllib.parse.urlsplit(url).netloc or "?"

    def check(self, response: Response, method: str) -> Response:
        """Raise a GitHubError that says what happened and what to do, for a status >= 400."""
        if response.status < 400:
            return response
        detail = ""
        with contextlib.suppress(ValueError, UnicodeDecodeError, AttributeError):
            data = json.loads(response.body)
            detail = str(data.get("message") or "")
        if not detail:
            detail = response.body[:300].decode("utf-8", "replace").strip()
        detail = " ".join(detail.split())[:300]
        limited = response.status == 429 or (response.status == 403 and self._retryable(response))
        limited_text = " (rate-limited)" if limited else ""
        text = f"GitHub answered {response.status}{limited_text} to {method}"
        text += f" {self._where(response.url)}"
        text += f": {detail}." if detail else "."
        advice = _advice(response.status)
        raise GitHubError(self.clean(f"{text} {advice}".strip()), status=response.status)

    # -- calls -------------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
    ) -> Response:
        data = None if body is None else json.dumps(body).encode("utf-8")
        headers = self._headers(auth=True, json_body=data is not None)
        url = self.url(path, params)
        return self.check(self._attempt(method, url, headers, data), method)

    def get_json(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        return self.request("GET", path, params=params).json()

    def paginate(self, path: str, params: Mapping[str, Any] | None = None) -> list[Any]:
        """Every item of a list endpoint, following ``Link: rel="next"`` on the API's host."""
        items: list[Any] = []
        url: str | None = self.url(path, params)
        origin = urllib.parse.urlsplit(self.api_url)[:2]
        for _ in range(MAX_PAGES):
            if url is None:
                return items
            if urllib.parse.urlsplit(url)[:2] != origin:
                raise GitHubError("GitHub's next-page link points at another host; not following")
            response = self.request("GET", url)
            page = response.json()
            if not isinstance(page, list):
                raise GitHubError(f"GitHub answered {self._where(url)} with no list")
            items += page
            url = response.links().get("next")
        return items

    def download(self, path: str, sink: IO[bytes], *, limit: int = MAX_ARTIFACT_BYTES) -> None:
        """GET a file, following redirects; the token is sent to the API only, never beyond."""
        url = self.url(path)
        headers = self._headers(auth=True)
        for _ in range(MAX_REDIRECTS + 1):
            response = self._attempt("GET", url, headers, sink=sink, limit=limit)
            if response.status in (301, 302, 303, 307, 308):
                location = response.headers.get("location")
                if not location:
                    raise GitHubError(f"GitHub redirected {self._where(url)} to nowhere")
                url = urllib.parse.urljoin(url, location)
                if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
                    raise GitHubError("GitHub redirected the download to a non-HTTP URL")
                headers = self._headers(auth=False)
                continue
            self.check(response, "GET")
            return
        raise GitHubError(f"more than {MAX_REDIRECTS} redirects downloading {path}")

    # -- endpoints ---------------------------------------------------------------------------

    def default_branch(self, repo: str) -> str | None:
        data = self.get_json(f"/repos/{repo}")
        branch = data.get("default_branch") if isinstance(data, dict) else None
        return str(branch) if branch else None

    def workflow_runs(self, repo: str, workflow: str, branch: str) -> list[dict[str, Any]]:
        """The newest successful push runs of a workflow on a branch (one page of 20)."""
        data = self.get_json(
            f"/repos/{repo}/actions/workflows/{urllib.parse.quote(workflow, safe='')}/runs",
            {"branch": branch, "status": "success", "event": "push", "per_page": 20},
        )
        runs = data.get("workflow_runs") if isinstance(data, dict) else None
        return [r for r in runs or [] if isinstance(r, dict)]

    def run_artifacts(self, repo: str, run_id: int | str) -> list[dict[str, Any]]:
        data = self.get_json(f"/repos/{repo}/actions/runs/{run_id}/artifacts", {"per_page": 100})
        artifacts = data.get("artifacts") if isinstance(data, dict) else None
        return [a for a in artifacts or [] if isinstance(a, dict)]

    def list_comments(self, repo: str, number: int) -> list[dict[str, Any]]:
        comments = self.paginate(f"/repos/{repo}/issues/{number}/comments", {"per_page": 100})
        return [c for c in comments if isinstance(c, dict)]

    def create_comment(self, repo: str, number: int, body: str) -> dict[str, Any]:
        data = self.request(
            "POST", f"/repos/{repo}/issues/{number}/comments", body={"body": body}
        ).json()
        return data if isinstance(data, dict) else {}

    def update_comment(self, repo: str, comment_id: int | str, body: str) -> dict[str, Any]:
        data = self.request(
            "PATCH", f"/repos/{repo}/issues/comments/{comment_id}", body={"body": body}
        ).json()
        return data if isinstance(data, dict) else {}


# -- the runner's environment ----------------------------------------------------------------


@dataclass(frozen=True)
class RunnerEnv:
    """What a GitHub Actions step sees: the ``GITHUB_*`` variables and the event payload."""

    api_url: str = DEFAULT_API_URL
    repository: str = ""
    event_name: str = ""
    event: Mapping[str, Any] = field(default_factory=dict)
    workflow_ref: str = ""
    run_id: str = ""
    server_url: str = "https://github.com"
    step_summary: str = ""
    output: str = ""
    token: str | None = field(default=None, repr=False)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> RunnerEnv:
        env = os.environ if environ is None else environ
        return cls(
            api_url=env.get("GITHUB_API_URL") or DEFAULT_API_URL,
            repository=env.get("GITHUB_REPOSITORY", ""),
            event_name=env.get("GITHUB_EVENT_NAME", ""),
            event=_read_event(env.get("GITHUB_EVENT_PATH", "")),
            workflow_ref=env.get("GITHUB_WORKFLOW_REF", ""),
            run_id=env.get("GITHUB_RUN_ID", ""),
            server_url=env.get("GITHUB_SERVER_URL") or "https://github.com",
            step_summary=env.get("GITHUB_STEP_SUMMARY", ""),
            output=env.get("GITHUB_OUTPUT", ""),
            token=env.get("GITHUB_TOKEN") or None,
        )

    def client(self, **options: Any) -> GitHubClient:
        return GitHubClient(self.token, self.api_url, **options)

    @property
    def workflow_file(self) -> str | None:
        """``ci.yml`` from ``owner/name/.github/workflows/ci.yml@refs/heads/main``."""
        path = self.workflow_ref.split("@", 1)[0]
        marker = ".github/workflows/"
        if marker not in path:
            return None
        name = path.split(marker, 1)[1]
        return name or None

    @property
    def pr_number(self) -> int | None:
        pr = self.event.get("pull_request")
        number = pr.get("number") if isinstance(pr, Mapping) else None
        number = number if number is not None else self.event.get("number")
        try:
            return int(number) if number is not None else None
        except (TypeError, ValueError):
            return None

    def base_branch(self) -> str | None:
        """The branch whose baseline a run compares with: the PR's base, else the default."""
        pr = self.event.get("pull_request")
        if self.event_name in PR_EVENTS and isinstance(pr, Mapping):
            base = pr.get("base")
            if isinstance(base, Mapping) and base.get("ref"):
                return str(base["ref"])
        group = self.event.get("merge_group")
        if self.event_name == "merge_group" and isinstance(group, Mapping):
            ref = str(group.get("base_ref") or "")
            if ref:
                return ref.removeprefix("refs/heads/")
        repo = self.event.get("repository")
        if isinstance(repo, Mapping) and repo.get("default_branch"):
            return str(repo["default_branch"])
        return None


def _read_event(path: str) -> dict[str, Any]:
    if not path:
        return {}
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


# -- baseline --------------------------------------------------------------------------------


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
                    _copy(source, sink, budget)
            except (zipfile.BadZipFile, GitHubError) as exc:
                raise UnsafeArchive(f"member {info.filename!r}: {exc}") from None
            budget -= target.stat().st_size
            written.append(target)
    return written


def find_run(files: Iterable[Path]) -> Path | None:
    """The run directory among unpacked files: the one ``latest`` names, else the newest."""
    from pydantic import ValidationError

    from .records import read_run_info

    found = []
    for path in files:
        if path.name != "run.json":
            continue
        try:
            found.append((read_run_info(path.parent), path.parent))
        except (OSError, ValueError, ValidationError):
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


def cmd_baseline(args: argparse.Namespace) -> int:
    env = RunnerEnv.from_environ()
    console = Console(env.token)
    try:
        run_dir = fetch_baseline(env, Path(args.out), artifact=args.artifact, branch=args.branch)
    except NoBaseline as exc:
        console.outputs(env.output, {"found": "false", "baseline-dir": ""})
        if args.require:
            console.error(exc.reason, title="No baseline")
            return 1
        console.annotate(exc.level, exc.reason, title="No baseline")
        return 0
    resolved = str(run_dir.resolve())
    console.line(resolved)
    console.outputs(env.output, {"found": "true", "baseline-dir": resolved})
    return 0


# -- job summary -----------------------------------------------------------------------------


def _cut(text: str, units: int) -> str:
    """``text`` shortened to at most ``units`` UTF-16 code units, at a line end if near."""
    cut = text[:units]
    while (excess := _units(cut) - units) > 0:
        cut = cut[: len(cut) - excess]
    newline = cut.rfind("\n")
    return cut[:newline] if newline > len(cut) * 3 // 4 else cut


def _units(text: str) -> int:
    """Length as GitHub counts it, conservatively (UTF-16 code units)."""
    return len(text.encode("utf-16-le")) // 2


def append_summary(path: Path, markdown: str, token: str | None = None) -> None:
    """Append to the step summary, kept under GitHub's 1 MiB so it is not dropped whole."""
    text = redact_token(markdown, token).rstrip("\n") + "\n"
    existing = path.stat().st_size if path.exists() else 0
    prefix = "\n" if existing else ""
    room = SUMMARY_LIMIT - existing - len(prefix) - 1024
    if len(text.encode("utf-8")) > room:
        note = "\n\n*(the report was cut to fit GitHub's 1 MiB job-summary limit)*\n"
        encoded = text.encode("utf-8")[: max(0, room - len(note))]
        text = encoded.decode("utf-8", "ignore") + note
    with path.open("a", encoding="utf-8") as handle:
        handle.write(prefix + text)


def _read_markdown(path: str, console: Console) -> str | None:
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        console.warning(f"No report to show: cannot read {path} ({exc.__class__.__name__}).")
        return None


def cmd_summary(args: argparse.Namespace) -> int:
    env = RunnerEnv.from_environ()
    console = Console(env.token)
    markdown = _read_markdown(args.file, console)
    if markdown is None:
        return 0
    if not env.step_summary:
        console.notice("GITHUB_STEP_SUMMARY is not set (not in GitHub Actions): no job summary.")
        return 0
    append_summary(Path(env.step_summary), markdown, env.token)
    console.line(f"appended {args.file} to the job summary")
    return 0


# -- sticky PR comment -----------------------------------------------------------------------


def marker_line(key: str = DEFAULT_MARKER) -> str:
    """The hidden line that finds the comment again; the key cannot end the HTML comment."""
    if not _MARKER_KEY.fullmatch(key) or len(key) > 64:
        raise ValueError(f"marker key {key!r}: use letters, digits, '_', '.', single '-'")
    return f"<!-- pytest-modelopt:{key} -->"


def comment_body(markdown: str, key: str = DEFAULT_MARKER, token: str | None = None) -> str:
    """Marker line + the report, with mentions neutralised, forged markers defused, capped."""
    marker = marker_line(key)
    text = redact_token(markdown, token).strip("\n")
    text = _MENTION.sub("@\u200d", text)
    text = _FORGED_MARKER.sub(r"&lt;!--\1", text)
    room = COMMENT_LIMIT - _units(marker) - 1
    if _units(text) > room:
        text = _cut(text, room - _units(TRUNCATED_NOTE) - 2).rstrip() + "\n\n" + TRUNCATED_NOTE
    return f"{marker}\n{text}"


def pick_comment(comments: Sequence[Mapping[str, Any]], marker: str) -> Mapping[str, Any] | None:
    """The first comment with the marker: github-actions[bot]'s, then any bot's, then any."""
    carrying = [c for c in comments if marker in str(c.get("body") or "")]

    def rank(comment: Mapping[str, Any]) -> int:
        user = comment.get("user")
        user = user if isinstance(user, Mapping) else {}
        return 0 if user.get("login") == BOT_LOGIN else 1 if user.get("type") == "Bot" else 2

    return min(carrying, key=rank, default=None)  # min keeps the first of equal rank


@dataclass(frozen=True)
class CommentResult:
    action: str  # created, updated, unchanged
    id: int
    html_url: str


def upsert_comment(
    client: GitHubClient, repo: str, number: int, body: str, marker: str
) -> CommentResult:
    """Update the marked comment in place, or create it: one comment per PR, ever."""
    existing = pick_comment(client.list_comments(repo, number), marker)
    if existing is not None:
        if existing.get("body") == body:
            return CommentResult("unchanged", int(existing["id"]), str(existing.get("html_url")))
        try:
            data = client.update_comment(repo, existing["id"], body)
            return CommentResult("updated", int(data.get("id", existing["id"])), _url(data))
        except GitHubError as exc:
            if exc.status != 404:  # deleted since we listed it: create a new one
                raise
    data = client.create_comment(repo, number, body)
    return CommentResult("created", int(data.get("id", 0)), _url(data))


def _url(data: Mapping[str, Any]) -> str:
    return str(data.get("html_url") or "")


def cmd_comment(args: argparse.Namespace) -> int:
    env = RunnerEnv.from_environ()
    console = Console(env.token)
    if env.event_name not in PR_EVENTS:
        console.notice(
            f"No PR comment on a {env.event_name or 'non-GitHub'} event (pull requests only); "
            "the job summary has the report."
        )
        return 0
    try:
        marker = marker_line(args.marker)
    except ValueError as exc:
        console.error(str(exc))
        return 2
    markdown = _read_markdown(args.file, console)
    if markdown is None:
        return 0
    number = env.pr_number
    unable = "The PR comment could not be posted"
    if number is None or not env.repository:
        console.warning(f"{unable}: the event payload names no pull request. {_SEE_SUMMARY}")
        return 0
    if not env.token:
        console.warning(
            f"{unable}: no GITHUB_TOKEN (the action's `github-token` input). {_SEE_SUMMARY}"
        )
        return 0
    body = comment_body(markdown, args.marker, env.token)
    try:
        result = upsert_comment(env.client(), env.repository, number, body, marker)
    except GitHubError as exc:
        console.warning(f"{unable}: {exc} {_SEE_SUMMARY}", title="No PR comment")
        return 0
    console.line(f"{result.action} the PR comment {result.html_url}")
    console.outputs(env.output, {"comment-url": result.html_url})
    return 0


_SEE_SUMMARY = "The job summary has the report."


# -- outputs ---------------------------------------------------------------------------------


def report_outputs(report_json: Path, md: Path | None = None) -> dict[str, str]:
    """``verdict``, ``pass-rate`` (pooled over evals' graded cases), and the report paths."""
    from pydantic import ValidationError

    from .reports.document import EvalReport

    verdict, rate = "none", ""
    report = None
    with contextlib.suppress(OSError, ValueError, ValidationError):
        report = EvalReport.model_validate_json(report_json.read_bytes())
    if report is not None:
        graded = sum(row.graded for row in report.summary.evals)
        passed = sum(row.passed for row in report.summary.evals)
        if graded:
            rate = f"{passed / graded:.4f}"
        verdict = "fail" if report.verdict == "fail" else ("pass" if graded else "none")
    return {
        "verdict": verdict,
        "pass-rate": rate,
        "report-json": str(report_json.resolve()) if report is not None else "",
        "report-md": str(md.resolve()) if md is not None and md.is_file() else "",
    }


def cmd_outputs(args: argparse.Namespace) -> int:
    env = RunnerEnv.from_environ()
    console = Console(env.token)
    values = report_outputs(Path(args.report_json), Path(args.md) if args.md else None)
    if not values["report-json"]:
        console.warning(f"No readable report at {args.report_json}: verdict is none.")
    console.outputs(env.output, values)
    console.line(f"verdict={values['verdict']} pass-rate={values['pass-rate'] or '-'}")
    return 0


# -- replay note -----------------------------------------------------------------------------


def replay_note(cases: Iterable[CaseRecord], limit: int = NOTE_LIMIT) -> str | None:
    """The section listing cases replay mode could not run (no key, no recording), if any."""
    from .reports.markdown import escape

    missing = sorted(
        {
            (c.eval, c.case_id)
            for c in cases
            if c.status == "error" and c.error is not None and c.error.kind == "not_recorded"
        }
    )
    if not missing:
        return None
    n = len(missing)
    head = (
        f"{n} cases need a live model call and were not run"
        if n != 1
        else "1 case needs a live model call and was not run"
    )
    lines = [
        REPLAY_HEADING,
        "",
        f"{head}: this run had no API key (a fork's pull request, or no `openai-api-key` "
        f"input), so it replayed recorded responses only. "
        + ("They are not counted as failures." if n != 1 else "It is not counted as a failure."),
        "",
    ]
    lines += [f"- {escape(e, 120)}: case {escape(c, 80)}" for e, c in missing[:limit]]
    if n > limit:
        lines.append(f"- … and {n - limit} more")
    return "\n".join(lines)


def cmd_replay_note(args: argparse.Namespace) -> int:
    console = Console(os.environ.get("GITHUB_TOKEN") or None)
    try:
        from .config import load_settings
        from .records import read_cases, resolve_run

        run_dir = resolve_run(args.run, load_settings(Path.cwd()).dir / "runs")
        note = replay_note(read_cases(run_dir))
    except Exception as exc:  # a note is optional: never fail the job over it
        console.notice(f"No replay note: {exc}")
        return 0
    if note is None:
        return 0
    md = Path(args.md)
    existing = md.read_text(encoding="utf-8") if md.is_file() else ""
    if REPLAY_HEADING in existing:
        return 0
    separator = "" if not existing.strip() else "\n" if existing.endswith("\n") else "\n\n"
    with md.open("a", encoding="utf-8") as handle:
        handle.write(separator + note + "\n")
    console.line(f"added the replay note to {md}")
    return 0


# -- the CLI ---------------------------------------------------------------------------------


def add_commands(sub: Any) -> None:
    """``modelopt github ...``: what the bundled action's steps call."""
    parser = sub.add_parser(
        "github",
        help="GitHub Actions steps: baseline, summary, comment, outputs, replay-note",
        description=(
            "The bundled GitHub Action's steps. They read the runner's GITHUB_* variables and "
            "the event payload, and the token from GITHUB_TOKEN only; none of them fails the "
            "job for a missing baseline or a comment it could not post."
        ),
    )
    commands = parser.add_subparsers(dest="github_cmd", required=True)

    baseline = commands.add_parser(
        "baseline", help="download the base branch's saved run (the baseline artifact)"
    )
    baseline.add_argument("--out", required=True, help="unpack the artifact into this directory")
    baseline.add_argument("--artifact", default=DEFAULT_ARTIFACT, help="the artifact's name")
    baseline.add_argument("--branch", help="the branch to look on (default: the PR's base)")
    baseline.add_argument("--require", action="store_true", help="exit 1 when there is no baseline")
    baseline.set_defaults(fn=cmd_baseline)

    summary = commands.add_parser("summary", help="append a Markdown file to the job summary")
    summary.add_argument("file")
    summary.set_defaults(fn=cmd_summary)

    comment = commands.add_parser("comment", help="post or update the sticky PR comment")
    comment.add_argument("file")
    comment.add_argument(
        "--marker", default=DEFAULT_MARKER, help="key of the hidden marker (one comment per key)"
    )
    comment.set_defaults(fn=cmd_comment)

    outputs = commands.add_parser("outputs", help="write verdict, pass-rate and report paths")
    outputs.add_argument("report_json", metavar="REPORT_JSON")
    outputs.add_argument("--md", help="the Markdown report (its path becomes report-md)")
    outputs.set_defaults(fn=cmd_outputs)

    note = commands.add_parser(
        "replay-note", help="note the cases replay mode could not run in the Markdown report"
    )
    note.add_argument("run", metavar="RUN", help="run directory, run id or 'latest'")
    note.add_argument("--md", required=True, help="the Markdown file to append the note to")
    note.set_defaults(fn=cmd_replay_note)


__all__ = [
    "Console",
    "GitHubClient",
    "GitHubError",
    "NoBaseline",
    "RunnerEnv",
    "UnsafeArchive",
    "append_summary",
    "comment_body",
    "fetch_baseline",
    "find_run",
    "marker_line",
    "parse_link",
    "pick_comment",
    "replay_note",
    "report_outputs",
    "safe_extract",
    "upsert_comment",
    "workflow_command",
    "write_outputs",
]
