"""The rules behind the local graders (regex, contains, numeric, length, json_*).

Self-contained on purpose (standard library, plus jsonschema for ``json_schema``): the same
source text runs locally and is shipped verbatim inside the OpenAI ``python`` grader that
``to_openai()`` exports, so a local grader scores identically wherever it runs. Templates
here are OpenAI's path form only (``{{ sample.output_text }}``, ``{{ item.a.b }}``,
``{{ sample.output_tools[0].function.name }}``).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

Result = tuple[float, bool, str]

_FIELD = re.compile(r"\{\{\s*([A-Za-z_][\w]*(?:\.[A-Za-z_]\w*|\[\d+\])*)\s*\}\}")
_NUMBER = re.compile(r"[-+]?(?:\d+(?:[.,]\d+)*(?:\.\d+)?|\.\d+)(?:[eE][-+]?\d+)?")


def lookup(path: str, sample: Any, item: Any) -> Any:
    """Resolve ``sample.x.y`` / ``item.z[0]`` against the two namespaces."""
    parts = re.findall(r"[A-Za-z_]\w*|\[\d+\]", path)
    roots = {"sample": sample, "item": item}
    if not parts or parts[0] not in roots:
        raise KeyError(f"{path!r}: templates may use only sample.* and item.*")
    value = roots[parts[0]]
    for part in parts[1:]:
        try:
            value = value[int(part[1:-1])] if part.startswith("[") else value[part]
        except (KeyError, IndexError, TypeError):
            raise KeyError(f"{path!r}: no {part!r} in the {parts[0]}") from None
    return value


def fill(template: Any, sample: Any, item: Any) -> Any:
    """A template with every ``{{ path }}`` replaced; a whole-template field keeps its type."""
    if not isinstance(template, str):
        return template
    whole = _FIELD.fullmatch(template.strip())
    if whole:
        return lookup(whole.group(1), sample, item)

    def text(match: re.Match[str]) -> str:
        value = lookup(match.group(1), sample, item)
        return value if isinstance(value, str) else json.dumps(value)

    return _FIELD.sub(text, template)


def as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def parse_number(text: Any) -> float | None:
    """The number a text states: all of it when it is a number, else its first number."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return float(text)
    stripped = as_text(text).strip().replace("_", "")
    try:
        return float(stripped)
    except ValueError:
        pass
    match = _NUMBER.search(stripped)
    if match is None:
        return None
    token = match.group(0)
    if token.count(",") and "." not in token:
        token = token.replace(",", "")
    return float(token.replace(",", ""))


def rule_regex(spec: Any, text: str) -> Result:
    flags = 0
    for letter in spec.get("flags") or "":
        flags |= {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL, "x": re.VERBOSE}[letter]
    pattern = re.compile(spec["pattern"], flags)
    found = pattern.fullmatch(text) if spec.get("mode") == "fullmatch" else pattern.search(text)
    verb = "matches" if spec.get("mode") == "fullmatch" else "contains a match of"
    if found:
        return 1.0, True, f"output {verb} /{spec['pattern']}/"
    return 0.0, False, f"no match of /{spec['pattern']}/ in the output"


def rule_contains(spec: Any, text: str, values: list[str]) -> Result:
    haystack = text if spec.get("case_sensitive") else text.lower()
    found = [v for v in values if (v if spec.get("case_sensitive") else v.lower()) in haystack]
    missing = [v for v in values if v not in found]
    if spec["type"] == "contains_any":
        ok = bool(found)
        reason = f"found {found[0]!r}" if ok else f"none of {values!r} found"
        return (1.0 if ok else 0.0), ok, reason
    score = len(found) / len(values) if values else 1.0
    reason = "all found" if not missing else f"missing {missing!r}"
    return score, not missing, reason


def rule_numeric(spec: Any, text: Any, reference: Any) -> Result:
    got = parse_number(text)
    want = parse_number(reference)
    if want is None:
        raise ValueError(f"reference {reference!r} is not a number")
    if got is None:
        return 0.0, False, f"no number in the output (expected {want:g})"
    tolerances = {"rel_tol": spec.get("rel_tol") or 0.0, "abs_tol": spec.get("abs_tol") or 0.0}
    ok = math.isclose(got, want, **tolerances)
    return (1.0 if ok else 0.0), ok, f"{got:g} {'==' if ok else '!='} {want:g}"


def rule_length(spec: Any, text: str, completion_tokens: Any) -> Result:
    sizes: dict[str, Any] = {
        "words": len(text.split()),
        "chars": len(text),
        "tokens": completion_tokens,
    }
    problems = []
    for unit in ("words", "chars", "tokens"):
        low, high = spec.get(f"min_{unit}"), spec.get(f"max_{unit}")
        if low is None and high is None:
            continue
        size = sizes[unit]
        if size is None:
            raise ValueError(f"{unit} are only known when grading a Completion (usage)")
        if low is not None and size < low:
            problems.append(f"{size} {unit} < {low}")
        if high is not None and size > high:
            problems.append(f"{size} {unit} > {high}")
    reason = "; ".join(problems) or ", ".join(
        f"{sizes[u]} {u}" for u in ("words", "chars") if sizes[u] is not None
    )
    return (0.0 if problems else 1.0), not problems, reason


def _values_match(got: Any, want: Any, tolerance: Any) -> bool:
    if isinstance(want, (int, float)) and not isinstance(want, bool):
        if isinstance(got, bool) or not isinstance(got, (int, float)):
            return False
        return math.isclose(got, want, rel_tol=0.0, abs_tol=float(tolerance or 0.0))
    if isinstance(want, str) and isinstance(got, str) and tolerance == "ignore_case":
        return got.strip().lower() == want.strip().lower()
    return bool(got == want)


def rule_json_match(spec: Any, output: Any, expected: Any) -> Result:
    if not isinstance(expected, dict):
        raise ValueError(f"expected must be a JSON object, got {type(expected).__name__}")
    if not isinstance(output, dict):
        return 0.0, False, "the output is not a JSON object"
    fields = spec.get("fields") or sorted(expected)
    tolerances = spec.get("tolerance") or {}
    wrong = []
    for name in fields:
        if name not in output:
            wrong.append(f"{name}: missing")
        elif not _values_match(output[name], expected.get(name), tolerances.get(name)):
            wrong.append(f"{name}: {output[name]!r} != {expected.get(name)!r}")
    score = (len(fields) - len(wrong)) / len(fields) if fields else 1.0
    return score, not wrong, "; ".join(wrong) or f"{len(fields)} fields match"


def rule_json_schema(spec: Any, output: Any, text: str) -> Result:
    if output is None:
        return 0.0, False, f"the output is not JSON: {text[:60]!r}"
    import jsonschema  # in OpenAI's python grader image too

    validator = jsonschema.Draft202012Validator(spec["json_schema"])
    errors = sorted(validator.iter_errors(output), key=lambda e: list(e.path))
    if errors:
        where = "/".join(str(p) for p in errors[0].path) or "(root)"
        return 0.0, False, f"{where}: {errors[0].message}"
    return 1.0, True, "valid JSON for the schema"


def evaluate(spec: Any, sample: Any, item: Any) -> Result:
    """(score, passed, reason) of one local rule on one sample."""
    kind = spec["type"]
    value = fill(spec.get("input", "{{ sample.output_text }}"), sample, item)
    text = as_text(value)
    if kind == "regex":
        return rule_regex(spec, text)
    if kind in ("contains_all", "contains_any"):
        values = [as_text(fill(v, sample, item)) for v in spec["values"]]
        return rule_contains(spec, text, values)
    if kind == "numeric":
        return rule_numeric(spec, value, fill(spec["reference"], sample, item))
    if kind == "length":
        return rule_length(spec, text, (sample.get("usage") or {}).get("completion_tokens"))
    output = value if not isinstance(value, str) else _json_or_none(value)
    if kind == "json_match":
        return rule_json_match(spec, output, fill(spec["expected"], sample, item))
    if kind == "json_schema":
        return rule_json_schema(spec, output, text)
    raise ValueError(f"unknown local rule {kind!r}")


def _json_or_none(text: str) -> Any:
    stripped = text.strip()
    fence = re.match(r"^```[\w-]*\s*\n(.*?)\n?```$", stripped, re.DOTALL)
    if fence:
        stripped = fence.group(1)
    try:
        return json.loads(stripped)
    except ValueError:
        return None
