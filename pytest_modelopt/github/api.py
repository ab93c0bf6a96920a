"""A small GitHub REST client: pagination, redirects, retries and bounded downloads.

Spoken with urllib (no extra dependency). Errors are :class:`GitHubError`, one line that
says what failed and what to do, with the token redacted.
"""

from __future__ import annotations

import contextlib
import email.utils
import http.client
import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any, Protocol

from .. import __version__
from ..secrets import redact_token

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping


# an artifact (a zip of one run) larger than this is refused, downloaded or unpacked
MAX_ARTIFACT_BYTES = 1024 * 1024 * 1024

DEFAULT_API_URL = "https://api.github.com"


API_VERSION = "2022-11-28"


MAX_PAGES = 50


MAX_REDIRECTS = 5


RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


_LINK = re.compile(r"<([^>]*)>\s*((?:;\s*[^,;]+)*)")


_LINK_REL = re.compile(r'rel\s*=\s*"?([^";]+)"?')


_ERROR_BODY = 64 * 1024


#: Whose the job's own token is: its ``GET /user`` answers 403, so it cannot say itself.
ACTIONS_BOT = "github-actions[bot]"


#: Where the baseline can come from: runs a pull request cannot start on the base branch.
BASELINE_EVENTS = ("push", "schedule", "workflow_dispatch")


class GitHubError(Exception):
    """A GitHub API call that failed, with its status (None: GitHub was not reached).

    ``uncertain``: a write that may have been carried out all the same (it timed out after
    it was sent, or GitHub answered 500/502/504): repeating it blindly could do it twice.
    """

    def __init__(self, message: str, *, status: int | None = None, uncertain: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.uncertain = uncertain


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


def copy_limited(source: _Reader, sink: IO[bytes], limit: int) -> None:
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
                copy_limited(response, sink, limit)
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
                # urllib wraps what fails while connecting or sending in URLError: the
                # request never arrived whole. Anything later (a timeout waiting for the
                # answer, a reset) may follow a write GitHub carried out: a POST is then
                # not repeated here; the caller looks for what it wrote first.
                sent = not isinstance(exc, urllib.error.URLError)
                if method == "POST" and sent:
                    raise GitHubError(
                        f"no answer from GitHub to {method} {where} "
                        f"({self.clean(str(exc)) or exc.__class__.__name__}): it may or may "
                        "not have been carried out",
                        uncertain=True,
                    ) from None
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
        raise GitHubError(
            self.clean(f"{text} {advice}".strip()),
            status=response.status,
            uncertain=method == "POST" and response.status in (500, 502, 504),
        )

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

    def identity(self) -> str:
        """The login the token writes as, which alone may own the sticky comment.

        A personal token's ``GET /user`` names its user; the job's own token (an
        installation token) is refused there with 403 and writes as github-actions[bot].
        """
        try:
            data = self.get_json("/user")
        except GitHubError as exc:
            if exc.status == 403:
                return ACTIONS_BOT
            raise
        login = data.get("login") if isinstance(data, dict) else None
        if not isinstance(login, str) or not login:
            raise GitHubError("GitHub answered GET /user with no login")
        return login

    def workflow_runs(
        self, repo: str, workflow: str, branch: str, events: tuple[str, ...] = BASELINE_EVENTS
    ) -> list[dict[str, Any]]:
        """The newest successful runs of a workflow on a branch started by ``events``, newest
        first (20 of each: the API filters on one event at a time).

        The event is checked again here: a run a pull request started must never be taken
        for the base branch's, even from a server that ignored the filter.
        """
        path = f"/repos/{repo}/actions/workflows/{urllib.parse.quote(workflow, safe='')}/runs"
        found: dict[str, dict[str, Any]] = {}
        for event in events:
            data = self.get_json(
                path, {"branch": branch, "status": "success", "event": event, "per_page": 20}
            )
            runs = data.get("workflow_runs") if isinstance(data, dict) else None
            for run in runs or []:
                if (
                    isinstance(run, dict)
                    and run.get("event") == event
                    and isinstance(run.get("id"), (int, str))
                    and str(run.get("head_branch", branch)) == branch
                ):
                    found[str(run["id"])] = run
        return sorted(
            found.values(),
            key=lambda r: (str(r.get("created_at") or ""), str(r["id"]).zfill(20)),
            reverse=True,
        )

    def pull(self, repo: str, number: int) -> dict[str, Any]:
        data = self.get_json(f"/repos/{repo}/pulls/{number}")
        return data if isinstance(data, dict) else {}

    def pulls_from(self, repo: str, head: str) -> list[dict[str, Any]]:
        """Open pull requests whose head is ``owner:branch``."""
        pulls = self.paginate(
            f"/repos/{repo}/pulls", {"head": head, "state": "open", "per_page": 100}
        )
        return [p for p in pulls if isinstance(p, dict)]

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
