"""The sticky PR comment and the Markdown notes the Action adds to its report.

One comment per marker key, found among the comments and updated in place; untrusted text
(model output, names) cannot forge a marker or mention anyone.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..reports.markdown import escape
from ..secrets import redact_token
from .api import GitHubClient, GitHubError
from .runner import cut_to_units, utf16_units

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

    from ..records.models import CaseRecord


DEFAULT_MARKER = "evals"


#: GitHub's limit on an issue comment's body ("maximum is 65536 characters").
COMMENT_LIMIT = 65_536


NOTE_LIMIT = 10


REPLAY_HEADING = "**Cases not run: no recorded response**"


VIEWER_LINK = "[Open every case in the run viewer]"


#: what an artifact's address may hold: nothing that ends a Markdown link or starts markup
_ARTIFACT_URL = re.compile(r"https://[A-Za-z0-9.-]+(:[0-9]+)?/[A-Za-z0-9._~/%-]+")


TRUNCATED_NOTE = (
    "*(the report was cut to fit GitHub's 65,536-character comment limit; the job summary "
    "has all of it)*"
)


_MENTION = re.compile(r"@(?=[A-Za-z0-9_-])")


_FORGED_MARKER = re.compile(r"<!--(\s*pytest-modelopt:)", re.IGNORECASE)


_MARKER_KEY = re.compile(r"[A-Za-z0-9_.]+(-[A-Za-z0-9_.]+)*")


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
    room = COMMENT_LIMIT - utf16_units(marker) - 1
    if utf16_units(text) > room:
        text = (
            cut_to_units(text, room - utf16_units(TRUNCATED_NOTE) - 2).rstrip()
            + "\n\n"
            + TRUNCATED_NOTE
        )
    return f"{marker}\n{text}"


def pick_comment(
    comments: Sequence[Mapping[str, Any]], marker: str, login: str
) -> Mapping[str, Any] | None:
    """The oldest comment that ``login`` wrote and that opens with the marker.

    Only the token's own comments count: anyone can paste the marker into a comment of
    theirs, and editing that one would put the report under their name, or fail.
    """
    for comment in comments:
        user = comment.get("user")
        author = user.get("login") if isinstance(user, Mapping) else None
        body = str(comment.get("body") or "")
        if author == login and body.startswith(marker) and comment.get("id") is not None:
            return comment
    return None


@dataclass(frozen=True)
class CommentResult:
    action: str  # created, updated, unchanged
    id: int
    html_url: str


#: Posts tried at most, each after looking for the comment a post that timed out may
#: have made.
CREATE_ATTEMPTS = 3


def upsert_comment(
    client: GitHubClient,
    repo: str,
    number: int,
    body: str,
    marker: str,
    *,
    login: str | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> CommentResult:
    """Update the token's marked comment in place, or create it: one comment per PR.

    An update that fails (deleted since it was listed, locked, edited away) falls back to a
    new comment. A post that may have landed (no answer, or 500/502/504) is not repeated
    blindly: the comments are read again first, so one slow answer makes one comment.
    """
    login = login or client.identity()
    existing = pick_comment(client.list_comments(repo, number), marker, login)
    if existing is not None:
        result = _update(client, repo, existing, body)
        if result is not None:
            return result
    for attempt in range(CREATE_ATTEMPTS):
        if attempt:
            sleep(client.backoff * 2**attempt)  # give a slow write time to show up
            landed = pick_comment(client.list_comments(repo, number), marker, login)
            if landed is not None and landed.get("body") == body:
                return CommentResult("created", int(landed["id"]), _url(landed))
            if landed is not None and (updated := _update(client, repo, landed, body)):
                return updated
        try:
            data = client.create_comment(repo, number, body)
        except GitHubError as exc:
            if not exc.uncertain or attempt == CREATE_ATTEMPTS - 1:
                raise
            continue
        return CommentResult("created", int(data.get("id", 0)), _url(data))
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises


def _update(
    client: GitHubClient, repo: str, existing: Mapping[str, Any], body: str
) -> CommentResult | None:
    """The comment brought up to date, or None when it cannot be (then a new one is made)."""
    if existing.get("body") == body:
        return CommentResult("unchanged", int(existing["id"]), _url(existing))
    try:
        data = client.update_comment(repo, existing["id"], body)
    except GitHubError:
        return None
    return CommentResult("updated", int(data.get("id", existing["id"])), _url(data))


def _url(data: Mapping[str, Any]) -> str:
    return str(data.get("html_url") or "")


_SEE_SUMMARY = "The job summary has the report."


def replay_note(cases: Iterable[CaseRecord], limit: int = NOTE_LIMIT) -> str | None:
    """The section listing cases replay mode could not run (no key, no recording), if any."""

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


def with_viewer_link(markdown: str, url: str) -> str:
    """The report with a link to the run viewer's artifact under its headline (so that a
    comment cut to GitHub's limit keeps it). The address comes from upload-artifact; one
    that is not a plain https path is refused (ValueError), never put into a link."""
    if not _ARTIFACT_URL.fullmatch(url):
        raise ValueError(f"not an artifact address: {url[:200]!r}")
    line = (
        f"**{VIEWER_LINK}({url})**: every case with its input, output and grades, filters "
        "and review (a zip holding `report.html`: unzip it and open it in a browser; it loads "
        "nothing from the network)."
    )
    if VIEWER_LINK in markdown:
        return markdown
    head, newline, rest = markdown.partition("\n")
    if head.startswith("#"):
        return f"{head}\n\n{line}\n{newline}{rest}" if rest.strip() else f"{head}\n\n{line}\n"
    return f"{line}\n\n{markdown}"
