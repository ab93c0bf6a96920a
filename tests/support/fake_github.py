"""A local fake of the GitHub REST API: what the bundled action's ``modelopt github`` calls.

No test may reach the internet, so ``pytest_modelopt.github`` is pointed (``GITHUB_API_URL``)
at this aiohttp server on 127.0.0.1, run in a daemon thread like the fake OpenAI server. Its
state is in memory and seeded from tests: repositories, PR comments (listed with pagination
and a ``Link`` header, created, updated; each records who wrote it and when), workflow runs
(filtered by branch, status and event), and artifacts whose download answers 302 to a
second path on this server that serves the bytes and records any ``Authorization`` header
that reached it (GitHub's signed blob URLs must never see the token).

Tokens are checked like GitHub checks them (``Authorization: Bearer|token <t>``); a
read-only token (a fork's pull request) gets 403 on every write. ``GET /user`` names a
personal token's user and answers an installation token (the job's own) 403, as GitHub
does. ``echo_token_in_errors`` makes error bodies quote the credential, to prove the client
redacts what a server echoes. Faults: an error status instead of the work (``fault``), or
after it (``fault(..., landed=True)``: a 502 to a POST that did create the comment), and
a slow answer to work already done (``slow``: the timeout that once made four comments).
Pull requests (``add_pull``) are listed by ``head=owner:branch`` and read by number.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import secrets
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from aiohttp import web

from tests.support.threaded_server import ThreadedServer

__all__ = [
    "Artifact",
    "Comment",
    "FakeGitHub",
    "GitHubRequest",
    "Pull",
    "Token",
    "WorkflowRun",
]

EPOCH = datetime(2026, 1, 1, tzinfo=timezone.utc)
NOT_ACCESSIBLE = "Resource not accessible by integration"


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class GitHubRequest:
    """One request as the server saw it."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


@dataclass(frozen=True)
class Token:
    value: str
    login: str = "github-actions[bot]"
    user_type: str = "Bot"
    write: bool = True
    #: An installation token (the job's own): ``GET /user`` is 403 for it.
    installation: bool = True


@dataclass
class Pull:
    number: int
    repo: str
    head_sha: str
    head_owner: str
    head_branch: str
    state: str = "open"


@dataclass
class Comment:
    id: int
    repo: str
    issue: int
    body: str
    login: str
    user_type: str
    created_at: str
    updated_at: str
    #: (login, action, timestamp) for every write: "created", then one "updated" per edit.
    history: list[tuple[str, str, str]] = field(default_factory=list)


@dataclass
class WorkflowRun:
    id: int
    repo: str
    workflow: str
    branch: str
    event: str
    status: str
    conclusion: str | None
    created_at: str


@dataclass
class Artifact:
    id: int
    repo: str
    run_id: int
    name: str
    data: bytes
    expired: bool
    created_at: str


class FakeGitHub(ThreadedServer):
    """The GitHub REST endpoints the action uses, on 127.0.0.1, with seedable state."""

    name = "fake-github"
    # a client that gave up on a slow answer frees its handler (no task left sleeping)
    runner_options = {"handler_cancellation": True}  # noqa: RUF012 - read only

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(host, port)
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """A clean slate: no repos, tokens, comments, runs, artifacts, faults or requests."""
        self.repos: dict[str, str] = {}  # full name -> default branch
        self.tokens: dict[str, Token] = {}
        self.comments_by_id: dict[int, Comment] = {}
        self.runs: dict[int, WorkflowRun] = {}
        self.artifacts: dict[int, Artifact] = {}
        self.pulls: dict[tuple[str, int], Pull] = {}
        self.requests: list[GitHubRequest] = []
        #: Every request to the blob path that carried an Authorization header.
        self.blob_auth_leaks: list[GitHubRequest] = []
        self.max_per_page = 100
        self.echo_token_in_errors = False
        self.web_url = "https://github.com"
        self._faults: list[tuple[str, str, int, dict[str, str], str, bool]] = []
        self._slow: list[tuple[str, str, float]] = []
        self._ids = itertools.count(1001)
        self._clock = itertools.count(1)
        self._signatures: dict[str, int] = {}

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def api_url(self) -> str:
        """What ``GITHUB_API_URL`` is set to."""
        return f"http://{self._host}:{self._port}"

    # -- seeding ---------------------------------------------------------------------------

    def _now(self) -> str:
        return _stamp(EPOCH + timedelta(minutes=next(self._clock)))

    def add_token(
        self,
        value: str,
        *,
        login: str = "github-actions[bot]",
        user_type: str = "Bot",
        write: bool = True,
        installation: bool | None = None,
    ) -> Token:
        """A token; ``installation`` defaults to whether it is a bot's (the job's token)."""
        kind = user_type == "Bot" if installation is None else installation
        token = Token(value, login, user_type, write, kind)
        with self._lock:
            self.tokens[value] = token
        return token

    def add_repo(self, full_name: str, default_branch: str = "main") -> None:
        with self._lock:
            self.repos[full_name] = default_branch

    def add_comment(
        self,
        repo: str,
        issue: int,
        body: str,
        *,
        login: str = "octocat",
        user_type: str = "User",
    ) -> Comment:
        with self._lock:
            return self._new_comment(repo, issue, body, login, user_type)

    def _new_comment(self, repo: str, issue: int, body: str, login: str, kind: str) -> Comment:
        now = self._now()
        comment = Comment(next(self._ids), repo, issue, body, login, kind, now, now)
        comment.history.append((login, "created", now))
        self.comments_by_id[comment.id] = comment
        return comment

    def add_run(
        self,
        repo: str,
        workflow: str,
        branch: str = "main",
        *,
        event: str = "push",
        status: str = "completed",
        conclusion: str | None = "success",
        run_id: int | None = None,
    ) -> WorkflowRun:
        with self._lock:
            run = WorkflowRun(
                run_id or next(self._ids),
                repo,
                workflow,
                branch,
                event,
                status,
                conclusion,
                self._now(),
            )
            self.runs[run.id] = run
            return run

    def add_pull(self, repo: str, number: int, head_sha: str, *, owner: str, branch: str) -> Pull:
        with self._lock:
            pull = Pull(number, repo, head_sha, owner, branch)
            self.pulls[(repo, number)] = pull
            return pull

    def add_artifact(
        self, repo: str, run_id: int, name: str, data: bytes, *, expired: bool = False
    ) -> Artifact:
        with self._lock:
            artifact = Artifact(next(self._ids), repo, run_id, name, data, expired, self._now())
            self.artifacts[artifact.id] = artifact
            return artifact

    def fault(
        self,
        method: str,
        path_contains: str,
        status: int,
        *,
        times: int = 1,
        headers: dict[str, str] | None = None,
        message: str = "Server Error",
        landed: bool = False,
    ) -> None:
        """Answer the next ``times`` matching requests with ``status`` (before any auth check);
        ``landed``: do the work first, then answer the error all the same."""
        with self._lock:
            for _ in range(times):
                self._faults.append((method, path_contains, status, headers or {}, message, landed))

    def slow(self, method: str, path_contains: str, seconds: float, *, times: int = 1) -> None:
        """Do the next ``times`` matching requests' work at once, then answer ``seconds`` late."""
        with self._lock:
            self._slow += [(method, path_contains, seconds)] * times

    # -- inspection ------------------------------------------------------------------------

    def comments(self, repo: str, issue: int) -> list[Comment]:
        with self._lock:
            return [c for c in self.comments_by_id.values() if (c.repo, c.issue) == (repo, issue)]

    def calls(self, method: str, path_contains: str = "") -> list[GitHubRequest]:
        with self._lock:
            return [r for r in self.requests if r.method == method and path_contains in r.path]

    # -- serving ---------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        seen = GitHubRequest(
            request.method,
            request.path,
            dict(request.query),
            {k.lower(): v for k, v in request.headers.items()},
            body,
        )
        delay = 0.0
        with self._lock:
            self.requests.append(seen)
            for index, (method, part, seconds) in enumerate(self._slow):
                if method == seen.method and part in seen.path:
                    del self._slow[index]
                    delay = seconds
                    break
            response = self._route(request, seen)
        if delay:
            await asyncio.sleep(delay)
        return response

    def _error(self, status: int, message: str, credential: str | None = None) -> web.Response:
        if self.echo_token_in_errors and credential:
            message = f"{message} (the credential {credential!r} was used)"
        return web.json_response(
            {"message": message, "documentation_url": "https://docs.github.com/rest"},
            status=status,
        )

    def _route(self, request: web.Request, seen: GitHubRequest) -> web.StreamResponse:
        for index, (method, part, status, headers, message, landed) in enumerate(self._faults):
            if method == seen.method and part in seen.path:
                del self._faults[index]
                if landed:
                    self._serve(request, seen)
                response = self._error(status, message)
                response.headers.update(headers)
                return response
        return self._serve(request, seen)

    def _serve(self, request: web.Request, seen: GitHubRequest) -> web.StreamResponse:
        parts = [p for p in seen.path.split("/") if p]
        if parts[:1] == ["_blob"]:
            return self._blob(request, seen, parts)
        if "user-agent" not in seen.headers:
            return self._error(403, "Request forbidden by administrative rules: no User-Agent")
        credential = seen.headers.get("authorization", "")
        scheme, _, value = credential.partition(" ")
        if not credential:
            return self._error(401, "Requires authentication")
        token = self.tokens.get(value) if scheme.lower() in ("bearer", "token") else None
        if token is None:
            return self._error(401, "Bad credentials", value or credential)
        if parts == ["user"] and seen.method == "GET":
            if token.installation:
                return self._error(403, NOT_ACCESSIBLE)
            return web.json_response({"login": token.login, "id": 583231, "type": token.user_type})
        if len(parts) < 3 or parts[0] != "repos":
            return self._error(404, "Not Found")
        repo = f"{parts[1]}/{parts[2]}"
        if repo not in self.repos:
            return self._error(404, "Not Found")
        rest = parts[3:]
        if seen.method in ("POST", "PATCH", "PUT", "DELETE") and not token.write:
            return self._error(403, NOT_ACCESSIBLE, value)
        return self._repo_route(request, seen, repo, rest, token)

    def _repo_route(
        self,
        request: web.Request,
        seen: GitHubRequest,
        repo: str,
        rest: list[str],
        token: Token,
    ) -> web.StreamResponse:
        method = seen.method
        if not rest and method == "GET":
            return web.json_response(
                {"full_name": repo, "default_branch": self.repos[repo], "private": False}
            )
        if len(rest) == 3 and rest[0] == "issues" and rest[2] == "comments":
            issue = int(rest[1])
            if method == "GET":
                return self._list_comments(request, seen, repo, issue)
            if method == "POST":
                text = seen.body.get("body") if isinstance(seen.body, dict) else None
                if not isinstance(text, str) or not text:
                    return self._error(422, "Validation Failed: body is required")
                if len(text) > 65_536:
                    return self._error(422, "Body is too long (maximum is 65536 characters)")
                comment = self._new_comment(repo, issue, text, token.login, token.user_type)
                return web.json_response(self._comment_json(comment), status=201)
        if len(rest) == 3 and rest[:2] == ["issues", "comments"] and method == "PATCH":
            comment = self.comments_by_id.get(int(rest[2]))
            if comment is None or comment.repo != repo:
                return self._error(404, "Not Found")
            text = seen.body.get("body") if isinstance(seen.body, dict) else None
            if not isinstance(text, str) or not text:
                return self._error(422, "Validation Failed: body is required")
            comment.body = text
            comment.updated_at = self._now()
            comment.history.append((token.login, "updated", comment.updated_at))
            return web.json_response(self._comment_json(comment))
        if rest[:1] == ["actions"] and method == "GET":
            return self._actions(request, seen, repo, rest[1:])
        if rest[:1] == ["pulls"] and method == "GET":
            return self._pulls(request, seen, repo, rest[1:])
        return self._error(404, "Not Found")

    def _pull_json(self, pull: Pull) -> dict[str, Any]:
        return {
            "number": pull.number,
            "state": pull.state,
            "head": {
                "sha": pull.head_sha,
                "ref": pull.head_branch,
                "label": f"{pull.head_owner}:{pull.head_branch}",
                "repo": {"full_name": f"{pull.head_owner}/{pull.repo.split('/')[1]}"},
            },
            "base": {"ref": self.repos[pull.repo], "repo": {"full_name": pull.repo}},
        }

    def _pulls(
        self, request: web.Request, seen: GitHubRequest, repo: str, rest: list[str]
    ) -> web.StreamResponse:
        if len(rest) == 1:
            pull = self.pulls.get((repo, int(rest[0])))
            if pull is None:
                return self._error(404, "Not Found")
            return web.json_response(self._pull_json(pull))
        if rest:
            return self._error(404, "Not Found")
        head = seen.query.get("head")
        state = seen.query.get("state", "open")
        found = [
            self._pull_json(p)
            for p in sorted(self.pulls.values(), key=lambda p: p.number)
            if p.repo == repo
            and (state == "all" or p.state == state)
            and (head is None or head == f"{p.head_owner}:{p.head_branch}")
        ]
        return web.json_response(found)

    def _comment_json(self, comment: Comment) -> dict[str, Any]:
        return {
            "id": comment.id,
            "node_id": f"IC_{comment.id}",
            "url": f"{self.api_url}/repos/{comment.repo}/issues/comments/{comment.id}",
            "html_url": (
                f"{self.web_url}/{comment.repo}/pull/{comment.issue}#issuecomment-{comment.id}"
            ),
            "body": comment.body,
            "user": {"login": comment.login, "id": 41898282, "type": comment.user_type},
            "created_at": comment.created_at,
            "updated_at": comment.updated_at,
            "author_association": "NONE",
        }

    def _page(self, request: web.Request, seen: GitHubRequest) -> tuple[int, int]:
        per_page = min(int(seen.query.get("per_page", "30")), self.max_per_page)
        return max(1, per_page), max(1, int(seen.query.get("page", "1")))

    def _link(self, request: web.Request, seen: GitHubRequest, page: int, last: int) -> str:
        links = []
        for rel, number in (("prev", page - 1), ("next", page + 1), ("first", 1), ("last", last)):
            if (rel in ("prev", "first") and page > 1) or (rel in ("next", "last") and page < last):
                query = {**seen.query, "page": str(number)}
                url = request.url.with_query(query)
                links.append(f'<{self.api_url}{url.path_qs}>; rel="{rel}"')
        return ", ".join(links)

    def _list_comments(
        self, request: web.Request, seen: GitHubRequest, repo: str, issue: int
    ) -> web.Response:
        items = [
            self._comment_json(c)
            for c in sorted(self.comments_by_id.values(), key=lambda c: c.id)
            if (c.repo, c.issue) == (repo, issue)
        ]
        per_page, page = self._page(request, seen)
        last = max(1, -(-len(items) // per_page))
        response = web.json_response(items[(page - 1) * per_page : page * per_page])
        link = self._link(request, seen, page, last)
        if link:
            response.headers["Link"] = link
        return response

    def _artifact_json(self, artifact: Artifact) -> dict[str, Any]:
        base = f"{self.api_url}/repos/{artifact.repo}/actions/artifacts/{artifact.id}"
        run = self.runs.get(artifact.run_id)
        return {
            "id": artifact.id,
            "node_id": f"MDg6QXJ0aWZhY3Q{artifact.id}",
            "name": artifact.name,
            "size_in_bytes": len(artifact.data),
            "url": base,
            "archive_download_url": f"{base}/zip",
            "expired": artifact.expired,
            "created_at": artifact.created_at,
            "expires_at": artifact.created_at,
            "workflow_run": {"id": artifact.run_id, "head_branch": run.branch if run else None},
        }

    def _actions(
        self, request: web.Request, seen: GitHubRequest, repo: str, rest: list[str]
    ) -> web.StreamResponse:
        if len(rest) == 3 and rest[0] == "workflows" and rest[2] == "runs":
            query = seen.query
            runs = [
                r
                for r in sorted(self.runs.values(), key=lambda r: r.id, reverse=True)
                if r.repo == repo
                and r.workflow == rest[1]
                and ("branch" not in query or r.branch == query["branch"])
                and ("event" not in query or r.event == query["event"])
                and (
                    "status" not in query
                    or query["status"] in (r.status, r.conclusion)  # status or conclusion
                )
            ]
            per_page, page = self._page(request, seen)
            shown = runs[(page - 1) * per_page : page * per_page]
            return web.json_response(
                {
                    "total_count": len(runs),
                    "workflow_runs": [
                        {
                            "id": r.id,
                            "name": r.workflow,
                            "head_branch": r.branch,
                            "event": r.event,
                            "status": r.status,
                            "conclusion": r.conclusion,
                            "created_at": r.created_at,
                            "path": f".github/workflows/{r.workflow}",
                            "html_url": f"{self.web_url}/{repo}/actions/runs/{r.id}",
                        }
                        for r in shown
                    ],
                }
            )
        if len(rest) == 3 and rest[0] == "runs" and rest[2] == "artifacts":
            if int(rest[1]) not in self.runs:
                return self._error(404, "Not Found")
            found = [
                self._artifact_json(a)
                for a in self.artifacts.values()
                if a.repo == repo
                and a.run_id == int(rest[1])
                and ("name" not in seen.query or a.name == seen.query["name"])
            ]
            return web.json_response({"total_count": len(found), "artifacts": found})
        if len(rest) == 3 and rest[0] == "artifacts" and rest[2] == "zip":
            artifact = self.artifacts.get(int(rest[1]))
            if artifact is None or artifact.repo != repo:
                return self._error(404, "Not Found")
            if artifact.expired:
                return self._error(410, "Artifact has expired")
            signature = secrets.token_hex(8)
            self._signatures[signature] = artifact.id
            location = f"{self.api_url}/_blob/{artifact.id}?sig={signature}"
            return web.Response(status=302, headers={"Location": location})
        return self._error(404, "Not Found")

    def _blob(
        self, request: web.Request, seen: GitHubRequest, parts: list[str]
    ) -> web.StreamResponse:
        """The signed blob-store URL: a token arriving here is a leak (recorded, refused)."""
        if "authorization" in seen.headers:
            self.blob_auth_leaks.append(seen)
            return web.Response(status=400, text="Authorization header sent to blob storage")
        artifact_id = self._signatures.pop(seen.query.get("sig", ""), None)
        if len(parts) != 2 or artifact_id is None or str(artifact_id) != parts[1]:
            return web.Response(status=403, text="signature invalid or used")
        artifact = self.artifacts[artifact_id]
        return web.Response(body=artifact.data, content_type="application/zip")
