"""What must never be written: API keys, tokens, header values and URL credentials.

A leaf that every stage may import. Text that may carry a secret passes through
:func:`redact` before it reaches a file, a log or a comment: error messages, and model
output too, since a model or a proxy that echoes a key must not make it persist.

Two kinds of secret are removed:

- **known values**: the API key and the GitHub token from the environment
  (``OPENAI_API_KEY``, ``GITHUB_TOKEN``), and every value registered with
  :func:`register` (the configured request headers' values), wherever they appear, with or
  without their well-known prefix (``sk-``, ``ghp_``...);
- **shapes**: anything that looks like an OpenAI key (``sk-...``), a bearer header, a GitHub
  token (classic or fine-grained), the password of a URL (``https://user:pw@host``) or a
  credential in a URL's query string (``?api-key=...``).

Redaction comes before any escaping (HTML, Markdown, terminal), so that escaping cannot
split a secret into pieces the redactor would miss.
"""

from __future__ import annotations

import os
import re

# API keys, bearer headers and GitHub tokens (classic and fine-grained)
SECRET_PATTERN = re.compile(
    r"\b(sk-[A-Za-z0-9_\-*]{6,}|Bearer\s+\S+"
    r"|gh[pousr]_[A-Za-z0-9]{16,}|github_pat_[A-Za-z0-9_]{16,})"
)
_TELLTALES = ("sk-", "Bearer", "ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_")
# https://user:password@host -> https://user:***@host
_URL_PASSWORD = re.compile(r"(?<=://)([^/\s:@]*):([^/\s@]+)@")
# ?api-key=..., &token=..., &sig=... in a URL's query string
_URL_QUERY_SECRET = re.compile(
    r"(?i)([?&](?:api[-_]?key|key|token|access[-_]?token|secret|sig|signature|password"
    r"|pwd|auth|code)=)[^&#\s]+"
)
_ENVIRONMENT_SECRETS = ("OPENAI_API_KEY", "GITHUB_TOKEN", "GH_TOKEN")
# a value echoed without its well-known prefix is still the secret: its body is one too
_PREFIXES = ("sk-proj-", "sk-svcacct-", "sk-admin-", "sk-", "github_pat_", "ghp_", "ghs_", "gho_")
_SHORTEST_BODY = 12
_registered: set[str] = set()
# what the known secrets were worked out from, and the secrets
_known_key: list[object] = [None]
_known_values: list[tuple[str, ...]] = [()]
SHORTEST_SECRET = 6  # shorter values would redact ordinary words


def register(*values: str) -> None:
    """Make these values (configured header values...) known secrets of this process."""
    _registered.update(v for v in values if v and len(v) >= SHORTEST_SECRET)


def known_secrets() -> tuple[str, ...]:
    """The secret values this process knows of, longest first (a key may contain another).
    Worked out again only when the environment's secrets or the registered ones change:
    every recorded output passes through here."""
    environment = tuple(os.environ.get(name) for name in _ENVIRONMENT_SECRETS)
    key = (environment, len(_registered))
    if _known_key[0] != key:
        found = set(_registered)
        found.update(value for value in environment if value and len(value) >= SHORTEST_SECRET)
        for value in list(found):
            for prefix in _PREFIXES:
                if value.startswith(prefix) and len(value) - len(prefix) >= _SHORTEST_BODY:
                    found.add(value[len(prefix) :])
                    break
        _known_key[0] = key
        _known_values[0] = tuple(sorted(found, key=len, reverse=True))
    return _known_values[0]


def redact(text: str, secrets: tuple[str, ...] = ()) -> str:
    """Text with every known secret value and every secret-shaped string replaced by ***.

    A value shorter than six characters is not treated as a secret, given or known: a
    placeholder key such as ``x`` would otherwise be cut out of every word and JSON key
    (``"index"`` -> ``"inde***"``), corrupting recorded responses, and protects nothing."""
    for secret in (*secrets, *known_secrets()):
        if len(secret) >= SHORTEST_SECRET and secret in text:
            text = text.replace(secret, "***")
    # each pattern only where its telltale is: every recorded output comes through here
    if "://" in text:
        text = _URL_PASSWORD.sub(r"\1:***@", text)
    if "=" in text:
        text = _URL_QUERY_SECRET.sub(r"\1***", text)
    if any(telltale in text for telltale in _TELLTALES):
        text = SECRET_PATTERN.sub("***", text)
    return text


def redact_url(url: str | None) -> str | None:
    """A URL without its password or query-string credentials (a base URL kept in a run)."""
    return None if url is None else redact(url)


def redact_token(text: str, token: str | None) -> str:
    """The token (and anything shaped like a GitHub token or an API key) replaced by ***."""
    return redact(text, (token,) if token else ())
