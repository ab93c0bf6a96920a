"""Validate request and response bodies against OpenAI's published OpenAPI spec.

The fake server only proves the plugin speaks *our* idea of the API; checking the bodies
against ``shared/data/openai-openapi.yaml`` (kept beside the repo, never copied into it)
proves it speaks OpenAI's. OpenAPI 3.1 schemas are JSON Schema 2020-12, so ``jsonschema``
validates them, with a ``referencing`` registry resolving ``#/components/schemas/...``.

Parsing the 3 MB YAML takes about a second, so the parsed spec is cached as JSON in the
temp dir, keyed by the spec's sha256, and loaded lazily once per process.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import re
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import quote

import yaml
from jsonschema import Draft202012Validator
from referencing import Registry
from referencing.jsonschema import DRAFT202012

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from jsonschema.exceptions import ValidationError
    from referencing import Resource

__all__ = [
    "SPEC_PATH",
    "request_schema_pointer",
    "spec_available",
    "validate_request",
    "validate_response",
]

#: ``<repo root>/../shared/data/openai-openapi.yaml``; this file is ``tests/support/openapi.py``.
SPEC_PATH: Final = Path(__file__).resolve().parents[3] / "shared" / "data" / "openai-openapi.yaml"
#: Base URI the whole spec is registered under, so JSON pointers into it resolve.
_BASE_URI: Final = "urn:openai-openapi"
#: Bump when the YAML -> JSON conversion changes, so stale caches are not reused.
_CACHE_VERSION: Final = "2"
_MAX_MESSAGE: Final = 300

_lock = threading.Lock()
_spec: dict[str, Any] | None = None


def spec_available() -> bool:
    """Whether the spec file is present, so tests can ``pytest.skip`` instead of failing."""
    return SPEC_PATH.is_file()


def _normalize(node: Any) -> Any:
    """Make the spec say in JSON Schema what OpenAI means, so valid bodies validate.

    - The spec is 3.1 but still has ~100 OpenAPI 3.0 ``nullable: true`` (e.g. in
      ``CreateChatCompletionRequest``), which JSON Schema ignores: ``None`` would be
      rejected where OpenAI accepts it. It becomes ``anyOf: [schema, {type: null}]``.
    - ``oneOf`` becomes ``anyOf``: many branches overlap (a Responses input item
      ``{"role": "user", "content": [...]}`` without ``type`` is both an
      ``EasyInputMessage`` and an ``InputMessage``), the API picks one by its
      ``discriminator``, and "exactly one" would reject what the API takes. Bodies
      that match no branch still fail.
    - OpenAPI 3.0's boolean ``exclusiveMinimum: true`` beside ``minimum: 0`` (e.g. the
      fine-tuning ``learning_rate_multiplier`` and DPO ``beta``) is, in JSON Schema, a
      bound of ``True`` == 1 that rejects 0.2; it becomes ``exclusiveMinimum: 0``.
    """
    if isinstance(node, list):
        return [_normalize(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _normalize(value) for key, value in node.items()}
    if isinstance(out.get("oneOf"), list):
        branches = out.pop("oneOf")
        if "anyOf" in out:  # both on one node: keep both constraints
            out["allOf"] = [*out.get("allOf", []), {"anyOf": branches}]
        else:
            out["anyOf"] = branches
    for bound, exclusive in (("minimum", "exclusiveMinimum"), ("maximum", "exclusiveMaximum")):
        # A false flag is just dropped; a true one takes over its bound's value.
        if isinstance(out.get(exclusive), bool) and out.pop(exclusive) and bound in out:
            out[exclusive] = out.pop(bound)
    nullable = out.get("nullable")
    if isinstance(nullable, bool):
        del out["nullable"]
        if nullable:
            return {"anyOf": [out, {"type": "null"}]}
    return out


def _parse_yaml(text: bytes) -> dict[str, Any]:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    spec = yaml.load(text, Loader=loader)
    if not isinstance(spec, dict):
        raise ValueError(f"{SPEC_PATH} is not an OpenAPI document")
    # YAML turns an unquoted 2024-10-01 (an example) into a date; JSON wants a string.
    normalized: dict[str, Any] = json.loads(json.dumps(_normalize(spec), default=str))
    return normalized


def _load_spec() -> dict[str, Any]:
    """The parsed spec, from the sha256-keyed JSON cache when possible."""
    global _spec
    with _lock:
        if _spec is not None:
            return _spec
        if not spec_available():
            raise FileNotFoundError(f"OpenAI OpenAPI spec not found at {SPEC_PATH}")
        text = SPEC_PATH.read_bytes()
        sha = hashlib.sha256(text).hexdigest()
        cache = (
            Path(tempfile.gettempdir()) / f"pytest-modelopt-openapi-v{_CACHE_VERSION}-{sha}.json"
        )
        spec: dict[str, Any] | None = None
        with contextlib.suppress(OSError, ValueError):
            spec = json.loads(cache.read_bytes())
        if not isinstance(spec, dict):
            spec = _parse_yaml(text)
            # Write then rename: concurrent xdist workers never see half a file.
            tmp = cache.with_name(f"{cache.name}.{os.getpid()}.{threading.get_ident()}.tmp")
            with contextlib.suppress(OSError):
                tmp.write_text(json.dumps(spec), encoding="utf-8")
                os.replace(tmp, cache)
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
        _spec = spec
        return spec


@functools.lru_cache(maxsize=1)
def _registry() -> Registry[Any]:
    resource: Resource[Any] = DRAFT202012.create_resource(_load_spec())
    registry: Registry[Any] = Registry().with_resource(_BASE_URI, resource)
    return registry


@functools.lru_cache(maxsize=256)
def _validator(pointer: str) -> Draft202012Validator:
    """A validator for the schema at ``pointer`` (a JSON pointer into the spec)."""
    ref = f"{_BASE_URI}#{quote(pointer, safe='/~')}"
    return Draft202012Validator({"$ref": ref}, registry=_registry())


def _escape(segment: str) -> str:
    return segment.replace("~", "~0").replace("/", "~1")


def _match_path(paths: dict[str, Any], path: str) -> str:
    """The spec's key for ``path``: exact first, then ``{param}`` templates."""
    candidates = [path]
    bare = path.split("?", 1)[0].rstrip("/") or "/"
    if bare.startswith("/v1/") or bare == "/v1":
        bare = bare[3:] or "/"
    if not bare.startswith("/"):
        bare = "/" + bare
    candidates.append(bare)
    for candidate in candidates:
        if candidate in paths:
            return candidate
    templated = []
    for key in paths:
        if "?" in key or "{" not in key:
            continue
        pattern = re.sub(r"\\\{[^}]*\\\}", "[^/]+", re.escape(key))
        if re.fullmatch(pattern, bare):
            templated.append(key)
    if not templated:
        raise LookupError(f"no path {path!r} in the OpenAI OpenAPI spec")
    # Prefer the most literal template: /responses/compact over /responses/{id}.
    return min(templated, key=lambda key: key.count("{"))


def request_schema_pointer(path: str, method: str = "post") -> str:
    """JSON pointer to the JSON requestBody schema of ``method path`` in the spec."""
    spec = _load_spec()
    key = _match_path(spec["paths"], path)
    method = method.lower()
    operation = spec["paths"][key].get(method)
    if operation is None:
        raise LookupError(f"the OpenAI OpenAPI spec has no {method.upper()} {key}")
    pointer = f"/paths/{_escape(key)}/{method}/requestBody"
    request_body = operation.get("requestBody")
    if isinstance(request_body, dict) and "$ref" in request_body:
        pointer = request_body["$ref"].removeprefix("#")
        request_body = _resolve(spec, pointer)
    content = (request_body or {}).get("content", {})
    if "application/json" not in content:
        raise LookupError(
            f"{method.upper()} {key} takes no JSON body (content types: {sorted(content)})"
        )
    return f"{pointer}/content/application~1json/schema"


def _resolve(spec: dict[str, Any], pointer: str) -> Any:
    node: Any = spec
    for segment in pointer.lstrip("/").split("/"):
        node = node[segment.replace("~1", "/").replace("~0", "~")]
    return node


def _where(error: ValidationError) -> str:
    where = "$"
    for part in error.absolute_path:
        where += f"[{part}]" if isinstance(part, int) else f".{part}"
    return where


def _short(message: str) -> str:
    return message if len(message) <= _MAX_MESSAGE else message[: _MAX_MESSAGE - 3] + "..."


def _report(what: str, errors: Iterable[ValidationError]) -> str | None:
    """A readable multi-line list of errors, or None when there are none."""
    ordered = sorted(errors, key=lambda e: [str(p) for p in e.absolute_path])
    if not ordered:
        return None
    lines = [f"{what} does not match the OpenAI OpenAPI spec ({len(ordered)} error(s)):"]
    for error in ordered:
        lines.append(f"  - at {_where(error)}: {_short(error.message)}")
        for closest in _closest(error):
            lines.append(f"      closest: at {_where(closest)}: {_short(closest.message)}")
    return "\n".join(lines)


def _leaves(error: ValidationError) -> Iterator[ValidationError]:
    if not error.context:
        yield error
    for sub in error.context:
        yield from _leaves(sub)


def _closest(error: ValidationError, limit: int = 3) -> list[ValidationError]:
    """For an anyOf/oneOf failure, the few branch errors most likely to be the real problem.

    jsonschema's ``best_match`` often picks "is not of type 'null'" from a nullable
    union; a branch whose type did match and that failed deeper in is the useful one.
    """
    if not error.context:
        return []
    leaves = sorted(
        _leaves(error),
        key=lambda e: (e.validator != "type", len(e.absolute_path)),
        reverse=True,
    )
    seen: set[str] = set()
    picked: list[ValidationError] = []
    for leaf in leaves:
        key = f"{_where(leaf)}: {leaf.message}"
        if key not in seen:
            seen.add(key)
            picked.append(leaf)
        if len(picked) == limit:
            break
    return picked


def validate_request(path: str, body: Any, *, method: str = "post") -> None:
    """Assert ``body`` is a valid JSON request body for ``method path`` (``/v1`` optional)."""
    pointer = request_schema_pointer(path, method)
    report = _report(f"{method.upper()} {path} body", _validator(pointer).iter_errors(body))
    if report is not None:
        raise AssertionError(report)


def validate_response(schema_name: str, body: Any) -> None:
    """Assert ``body`` matches ``#/components/schemas/<schema_name>``, e.g. ``Response``."""
    if schema_name not in _load_spec()["components"]["schemas"]:
        raise LookupError(f"no schema {schema_name!r} in the OpenAI OpenAPI spec")
    validator = _validator(f"/components/schemas/{_escape(schema_name)}")
    report = _report(schema_name, validator.iter_errors(body))
    if report is not None:
        raise AssertionError(report)
