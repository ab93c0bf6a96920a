"""Eval datasets: rows of ``.jsonl``/``.json``/``.yaml``/``.csv`` files turned into test cases.

Every problem in a file is collected and reported in one go, each with ``file:line`` and the
field, so fixing a dataset is one edit-run cycle instead of one per bad row. Pure logic with
no pytest import: the plugin glue turns a :class:`DatasetError` into a collection error.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, NoReturn

from pydantic import BaseModel, ValidationError

from ..untrusted import as_data

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

    import yaml  # imported when a YAML dataset is read: PyYAML costs ~12 ms to import

__all__ = ["Case", "DatasetError", "RowError", "load_cases"]

_HINT = "fix the rows above (or remove them) and run again"
_MAX_SHOWN = 50  # a schema mismatch can fail every row; str() must stay readable
_REPR_LIMIT = 60
_SUFFIXES = ".jsonl, .json, .yaml, .yml or .csv"
_JSON_WS = re.compile(r"[ \t\n\r]*")
# Bounds on what one row may be, so that a hostile or broken file is one clear error, not a
# hung or crashed run: YAML aliases can expand a few lines into billions of values.
MAX_DEPTH = 64  # nesting of lists and objects
MAX_VALUES = 100_000  # values in one row, aliases expanded
MAX_LINE = 10_000_000  # characters on one line of the file
_SURROGATE = re.compile("[\ud800-\udfff]")


class RowError(NamedTuple):
    """One problem, located precisely enough to jump to it (``line`` 0 = the whole file)."""

    line: int
    field: str | None
    message: str


class DatasetError(Exception):
    """All problems found in one dataset file, reported together."""

    path: str
    errors: list[RowError]

    def __init__(self, path: str, errors: Iterable[RowError]) -> None:
        self.path = path
        self.errors = list(errors)
        # Both values in args so the exception survives pickling (e.g. across xdist workers).
        super().__init__(path, self.errors)

    def __str__(self) -> str:
        lines = [_format_error(self.path, error) for error in self.errors[:_MAX_SHOWN]]
        hidden = len(self.errors) - _MAX_SHOWN
        if hidden > 0:
            lines.append(f"{self.path}: ... and {hidden} more problems not shown")
        if any(error.line > 0 for error in self.errors):
            lines.append(_HINT)
        return "\n".join(lines)


def _format_error(path: str, error: RowError) -> str:
    where = f"{path}:{error.line}" if error.line > 0 else path
    field = f"field '{error.field}': " if error.field else ""
    return f"{where}: {field}{error.message}"


class Case(dict[str, Any]):
    """One dataset row, as a dict of its (validated) fields plus where it came from.

    Read-only because ``load_cases`` caches and shares the very same objects between every
    test that uses the file: a test mutating its case would silently change the others'.
    Use ``dict(case)`` for a private, mutable copy.

    Its strings are :class:`~pytest_modelopt.untrusted.DataText`: a grader compares them
    literally, never as templates.
    """

    __slots__ = ("id", "line", "model", "source")

    id: str
    source: str
    line: int
    model: BaseModel | None

    def __init__(
        self,
        fields: Mapping[str, Any],
        /,
        *,
        id: str,
        source: str,
        line: int,
        model: BaseModel | None = None,
    ) -> None:
        super().__init__({key: as_data(value) for key, value in fields.items()})
        self.id = id
        self.source = source
        self.line = line
        self.model = model

    def __repr__(self) -> str:
        return f"Case({self.id!r} at {self.source}:{self.line}, {dict.__repr__(self)})"

    def __reduce__(self) -> tuple[Any, ...]:
        # The default dict-subclass protocol rebuilds via __setitem__, which is blocked.
        return (_rebuild_case, (dict(self), self.id, self.source, self.line, self.model))

    def _read_only(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise TypeError(
            "Case is read-only: the same object is shared by every test using this dataset; "
            "make a copy with dict(case)"
        )

    __setitem__ = _read_only
    __delitem__ = _read_only
    __ior__ = _read_only
    clear = _read_only
    pop = _read_only
    popitem = _read_only
    setdefault = _read_only
    update = _read_only


def _rebuild_case(
    fields: dict[str, Any], id: str, source: str, line: int, model: BaseModel | None
) -> Case:
    return Case(fields, id=id, source=source, line=line, model=model)


class _FileProblem(Exception):
    """A problem with the file as a whole; aborts parsing of that file."""


_Rows = list[tuple[int, Any]]
_CacheKey = tuple[str, "type[BaseModel] | None", str, str]
_CACHE: dict[_CacheKey, tuple[tuple[int, int], list[Case] | DatasetError]] = {}


def load_cases(
    path: str | os.PathLike[str],
    *,
    schema: type[BaseModel] | None = None,
    base_dir: str | os.PathLike[str] | None = None,
    display_path: str | None = None,
) -> list[Case]:
    """Load every row of a dataset file as a :class:`Case`, or raise one :class:`DatasetError`.

    Results are cached per (file, mtime, size, schema) because the plugin calls this once
    per test function at collection, usually for the same few files. The returned list is
    shared between callers: treat it as read-only.
    """
    if schema is not None and not (isinstance(schema, type) and issubclass(schema, BaseModel)):
        raise TypeError(f"schema must be a pydantic BaseModel subclass, got {schema!r}")
    source = os.fspath(path)
    shown = display_path if display_path is not None else source

    def fail(message: str) -> NoReturn:
        raise DatasetError(shown, [RowError(0, None, message)])

    file_path = Path(source)
    if base_dir is not None and not file_path.is_absolute():
        file_path = Path(base_dir) / file_path
    suffix = file_path.suffix.lower()
    parse = PARSERS.get(suffix)
    if parse is None:
        what = f"format {suffix!r}" if suffix else "format (the file has no extension)"
        fail(f"unsupported dataset {what}: use {_SUFFIXES}")

    resolved = file_path.resolve()
    try:
        st = resolved.stat()
    except FileNotFoundError:
        fail(f"file not found (looked for {resolved})")
    except OSError as exc:
        fail(f"cannot read file: {exc.strerror or exc}")
    if stat.S_ISDIR(st.st_mode):
        fail(f"is a directory, not a dataset file ({resolved})")

    key: _CacheKey = (str(resolved), schema, source, shown)
    signature = (st.st_mtime_ns, st.st_size)
    cached = _CACHE.get(key)
    if cached is not None and cached[0] == signature:
        result = cached[1]
    else:
        try:
            data = resolved.read_bytes()
        except OSError as exc:
            fail(f"cannot read file: {exc.strerror or exc}")
        result = _load(data, parse, source=source, shown=shown, schema=schema)
        _CACHE[key] = (signature, result)
    if isinstance(result, DatasetError):
        # A fresh exception each time: re-raising one instance would pile up tracebacks.
        raise DatasetError(result.path, result.errors)
    return result


def _load(
    data: bytes,
    parse: Callable[[str, list[RowError]], _Rows],
    *,
    source: str,
    shown: str,
    schema: type[BaseModel] | None,
) -> list[Case] | DatasetError:
    errors: list[RowError] = []
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        message = "the file is UTF-16 (it starts with a UTF-16 byte order mark): save it as UTF-8"
        return DatasetError(shown, [RowError(0, None, message)])
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = exc.object.count(b"\n", 0, exc.start) + 1
        bad = exc.object[exc.start : exc.start + 1].hex()
        message = f"not valid UTF-8 text (byte 0x{bad}): save the file as UTF-8"
        return DatasetError(shown, [RowError(line, None, message)])
    long_line = _long_line(text)
    if long_line is not None:
        message = f"the line is longer than {MAX_LINE:,} characters: split the case up"
        return DatasetError(shown, [RowError(long_line, None, message)])
    try:
        rows = parse(text, errors)
    except _FileProblem as exc:
        return DatasetError(shown, [RowError(0, None, str(exc))])
    except RecursionError:
        message = f"nested too deeply to read (more than {MAX_DEPTH} levels are refused)"
        return DatasetError(shown, [RowError(0, None, message)])
    if not rows and not errors:
        return DatasetError(shown, [RowError(0, None, "no cases: the dataset is empty")])
    cases = _build_cases(rows, errors, source=source, schema=schema)
    if errors:
        errors.sort(key=lambda error: error.line)  # stable: keeps per-row order
        return DatasetError(shown, errors)
    return cases


def _long_line(text: str) -> int | None:
    """The number of the first line longer than MAX_LINE, if any."""
    if len(text) <= MAX_LINE:
        return None
    start, number = 0, 1
    while True:
        end = text.find("\n", start)
        if (len(text) if end < 0 else end) - start > MAX_LINE:
            return number
        if end < 0:
            return None
        start, number = end + 1, number + 1


# --------------------------------------------------------------------------- rows -> cases


def _build_cases(
    rows: _Rows, errors: list[RowError], *, source: str, schema: type[BaseModel] | None
) -> list[Case]:
    cases: list[Case] = []
    # id -> (first line, content digest for hashed ids / None for explicit ones)
    seen: dict[str, tuple[int, str | None]] = {}
    for line, row in rows:
        if not isinstance(row, dict):
            errors.append(RowError(line, None, f"row must be an object, got {_describe(row)}"))
            continue
        problem = _value_problem(row)
        if problem is not None:
            errors.append(RowError(line, problem[0], problem[1]))
            continue
        if not all(type(key) is str for key in row):
            errors.extend(_bad_keys(line, row))
            continue
        n_errors = len(errors)
        case_id = _case_id(line, row, seen, errors)
        model: BaseModel | None = None
        fields: dict[str, Any] = row
        if schema is not None:
            id_reported = any(error.field == "id" for error in errors[n_errors:])
            model = _validate(line, row, schema, errors, skip_id_error=id_reported)
            if model is not None:
                try:
                    fields = model.model_dump(mode="json")
                except Exception as exc:
                    message = f"cannot serialize the validated row: {type(exc).__name__}: {exc}"
                    errors.append(RowError(line, None, message))
        if case_id is None or len(errors) > n_errors:
            continue
        cases.append(Case(fields, id=case_id, source=source, line=line, model=model))
    return cases


def _value_problem(row: dict[str, Any]) -> tuple[str | None, str] | None:
    """The first way a row breaks the bounds: too deep, too many values (aliases expanded),
    a value that contains itself, or text that is not Unicode (a lone surrogate from a
    ``\\ud800`` escape, which no file can be written with). (field, message) or None."""
    count = 0
    stack: list[tuple[Any, str | None, int, frozenset[int]]] = [(row, None, 0, frozenset())]
    while stack:
        value, field, depth, parents = stack.pop()
        count += 1
        if count > MAX_VALUES:
            top = None if field is None else re.split(r"[.\[]", field, maxsplit=1)[0]
            return top, (
                f"the row holds more than {MAX_VALUES:,} values (YAML aliases count each time "
                "they are used): make it smaller"
            )
        if isinstance(value, str):
            if _SURROGATE.search(value):
                return field, "contains a lone surrogate (an invalid \\u escape): not text"
            continue
        if not isinstance(value, (dict, list)):
            continue
        if id(value) in parents:
            return field, "a value that contains itself (a recursive YAML alias)"
        if depth >= MAX_DEPTH:
            return field, f"nested more than {MAX_DEPTH} levels deep"
        inner = parents | {id(value)}
        if isinstance(value, dict):
            for key, item in value.items():
                if isinstance(key, str) and _SURROGATE.search(key):
                    return field, "a field name contains a lone surrogate: not text"
                stack.append((item, key if field is None else f"{field}.{key}", depth + 1, inner))
        else:
            for index, item in enumerate(value):
                where = f"{field}[{index}]" if field is not None else f"[{index}]"
                stack.append((item, where, depth + 1, inner))
    return None


def _bad_keys(line: int, row: dict[Any, Any]) -> list[RowError]:
    problems = []
    for key in row:
        if type(key) is str:
            continue
        message = f"field name {key!r} is not a string"
        if isinstance(key, bool):
            message += " (YAML reads unquoted yes/no/on/off/true/false as booleans: quote it)"
        problems.append(RowError(line, None, message))
    return problems


def _case_id(
    line: int,
    row: dict[str, Any],
    seen: dict[str, tuple[int, str | None]],
    errors: list[RowError],
) -> str | None:
    digest: str | None = None
    if "id" in row:
        raw = row["id"]
        if isinstance(raw, (dict, list, tuple, set, frozenset)):
            errors.append(RowError(line, "id", f"must be a string or number, got {_describe(raw)}"))
            return None
        if raw is None:
            errors.append(RowError(line, "id", "must not be null (remove it to use a hashed id)"))
            return None
        case_id = str(raw)
        if not case_id.strip():
            errors.append(RowError(line, "id", "must not be empty (remove it to use a hashed id)"))
            return None
    else:
        try:
            canonical = _CANONICAL.encode(row)
        except (TypeError, ValueError) as exc:
            message = f"cannot hash this row for an id ({exc}): give it an explicit 'id'"
            errors.append(RowError(line, None, message))
            return None
        digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
        width = 8
        case_id = "c" + digest[:width]
        # Two *different* rows sharing 8 hex chars is likely in big files (birthday bound):
        # lengthen the later id rather than report a duplicate that is not there.
        while (other := seen.get(case_id)) and other[1] not in (None, digest) and width < 64:
            width += 4
            case_id = "c" + digest[:width]
    first = seen.get(case_id)
    if first is None:
        seen[case_id] = (line, digest)
        return case_id
    message = f"duplicate case id {case_id!r} (first at line {first[0]})"
    if digest is not None and first[1] == digest:
        message += ": the rows are identical; remove one or give them distinct 'id' values"
    errors.append(RowError(line, None, message))
    return None


def _jsonable(value: Any) -> Any:
    if isinstance(value, (set, frozenset)):
        return sorted(map(str, value))  # set order varies between runs; ids must not
    return str(value)


# The id hash is a documented contract: canonical JSON of the row, sha256, "c" + 8 hex chars.
_CANONICAL = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_jsonable
)


def _validate(
    line: int,
    row: dict[str, Any],
    schema: type[BaseModel],
    errors: list[RowError],
    *,
    skip_id_error: bool,
) -> BaseModel | None:
    try:
        return schema.model_validate(row)
    except ValidationError as exc:
        for err in exc.errors(include_url=False):
            field = ".".join(str(part) for part in err["loc"]) or None
            if skip_id_error and field == "id":
                continue  # already reported by the id check
            message = err["msg"]
            value = err.get("input")
            if not isinstance(value, (dict, list, tuple, set, frozenset, BaseModel)):
                message += f" (got {_short_repr(value)})"
            errors.append(RowError(line, field, message))
    except Exception as exc:  # a user validator crashed: still a problem with this row
        message = f"{schema.__name__} validation raised {type(exc).__name__}: {exc}"
        errors.append(RowError(line, None, message))
    return None


def _short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _REPR_LIMIT else text[: _REPR_LIMIT - 3] + "..."


def _describe(value: Any) -> str:
    if isinstance(value, list):
        kind = "a list"
    elif isinstance(value, bool):
        kind = "a boolean"
    elif isinstance(value, (int, float)):
        kind = "a number"
    elif isinstance(value, str):
        kind = "a string"
    elif value is None:
        return "null"
    else:
        kind = f"a {type(value).__name__}"
    return f"{kind}: {_short_repr(value)}"


# --------------------------------------------------------------------------- parsers


class _DuplicateKey(ValueError):
    """A JSON object with the same key twice: one of the values would be lost silently."""


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise _DuplicateKey(
                f"the key {key!r} appears twice in one object: a value would be lost"
            )
        found[key] = value
    return found


def _parse_jsonl(text: str, errors: list[RowError]) -> _Rows:
    rows: _Rows = []
    loads = json.JSONDecoder(object_pairs_hook=_no_duplicate_keys).decode
    # Split on "\n" only: JSON strings may legally hold U+2028 etc., which splitlines() breaks.
    for number, line in enumerate(text.split("\n"), 1):
        if not line or line.isspace():
            continue
        try:
            rows.append((number, loads(line)))
        except json.JSONDecodeError as exc:
            errors.append(RowError(number, None, f"invalid JSON: {exc.msg} (column {exc.colno})"))
        except _DuplicateKey as exc:
            errors.append(RowError(number, None, str(exc)))
        except RecursionError:
            message = f"nested too deeply to read (more than {MAX_DEPTH} levels are refused)"
            errors.append(RowError(number, None, message))
    if any(error.message.startswith("invalid JSON") for error in errors):
        try:
            json.loads(text)
        except ValueError:
            pass
        else:
            raise _FileProblem(
                "this is one JSON document spread over several lines, but .jsonl needs one "
                "object per line: rename the file to .json, or put each case on its own line"
            )
    return rows


def _parse_json(text: str, errors: list[RowError]) -> _Rows:
    decoder = json.JSONDecoder(object_pairs_hook=_no_duplicate_keys)
    start = _skip_ws(text, 0)
    if start == len(text):
        return []
    if text[start] == "[":
        return _walk_array(text, start, decoder, errors)
    try:
        document, end = json.JSONDecoder().raw_decode(text, start)
    except json.JSONDecodeError as exc:
        errors.append(_json_error(exc))
        return []
    end = _skip_ws(text, end)
    if end != len(text):
        errors.append(_json_error(json.JSONDecodeError("Extra data", text, end)))
        return []
    expected = 'expected a JSON array of objects, or an object with a "cases" array'
    if not isinstance(document, dict):
        raise _FileProblem(f"{expected}; got {_describe(document)}")
    if "cases" not in document:
        keys = ", ".join(map(repr, list(document)[:10])) or "none"
        raise _FileProblem(f"{expected}; got an object with keys: {keys}")
    if not isinstance(document["cases"], list):
        raise _FileProblem(
            f'"cases" must be an array of objects, got {_describe(document["cases"])}'
        )
    return _walk_array(text, _find_cases_array(text, start, decoder), decoder, errors)


def _walk_array(text: str, start: int, decoder: json.JSONDecoder, errors: list[RowError]) -> _Rows:
    """Decode a JSON array element by element, noting the line each element starts on."""
    rows: _Rows = []
    line, counted_to = 1, 0
    pos = _skip_ws(text, start + 1)
    if pos < len(text) and text[pos] == "]":
        pos += 1
    else:
        while True:
            try:
                value, end = decoder.raw_decode(text, pos)
            except json.JSONDecodeError as exc:
                errors.append(_json_error(exc))
                return rows
            except _DuplicateKey as exc:
                errors.append(RowError(line + text.count("\n", counted_to, pos), None, str(exc)))
                line += text.count("\n", counted_to, pos)
                counted_to = pos
                end = _skip_value(text, pos)
                pos = _skip_ws(text, end)
                if pos < len(text) and text[pos] == ",":
                    pos = _skip_ws(text, pos + 1)
                    continue
                if pos < len(text) and text[pos] == "]":
                    pos += 1
                    break
                return rows
            line += text.count("\n", counted_to, pos)
            counted_to = pos
            rows.append((line, value))
            pos = _skip_ws(text, end)
            if pos < len(text) and text[pos] == ",":
                after = _skip_ws(text, pos + 1)
                if after < len(text) and text[after] == "]":
                    message = "Illegal trailing comma before end of array"
                    errors.append(_json_error(json.JSONDecodeError(message, text, pos)))
                    return rows
                pos = after
            elif pos < len(text) and text[pos] == "]":
                pos += 1
                break
            else:
                message = "Expecting ',' delimiter"
                errors.append(_json_error(json.JSONDecodeError(message, text, pos)))
                return rows
    # Only the top-level array is followed by end-of-file; a "cases" array is not.
    if start == _skip_ws(text, 0):
        pos = _skip_ws(text, pos)
        if pos != len(text):
            errors.append(_json_error(json.JSONDecodeError("Extra data", text, pos)))
    return rows


def _skip_value(text: str, pos: int) -> int:
    """The end of the JSON value at ``pos``, read without the duplicate-key check."""
    _, end = json.JSONDecoder().raw_decode(text, pos)
    return end


def _find_cases_array(text: str, start: int, decoder: json.JSONDecoder) -> int:
    """Offset of the ``"cases"`` array in an object already known to be valid JSON."""
    found = -1
    pos = _skip_ws(text, start + 1)
    while text[pos] != "}":
        key, pos = decoder.raw_decode(text, pos)
        pos = _skip_ws(text, _skip_ws(text, pos) + 1)  # past the ':'
        if key == "cases":
            found = pos  # the last duplicate key wins, as in json.loads
        _, pos = decoder.raw_decode(text, pos)
        pos = _skip_ws(text, pos)
        if text[pos] == ",":
            pos = _skip_ws(text, pos + 1)
    return found


def _skip_ws(text: str, pos: int) -> int:
    match = _JSON_WS.match(text, pos)
    return match.end() if match else pos


def _json_error(exc: json.JSONDecodeError) -> RowError:
    return RowError(exc.lineno, None, f"invalid JSON: {exc.msg} (column {exc.colno})")


def _parse_yaml(text: str, errors: list[RowError]) -> _Rows:
    import yaml  # PyYAML costs ~12 ms to import: only for YAML datasets

    loader_class = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when built with it
    loader = loader_class(text)
    try:
        try:
            root = loader.get_single_node()
        except yaml.YAMLError as exc:
            errors.append(_yaml_error(exc, 0))
            return []
        if root is None:
            return []
        items = root
        if isinstance(root, yaml.MappingNode):
            found = [value for key, value in root.value if _is_scalar(key, "cases")]
            if not found:
                keys = [
                    repr(key.value) for key, _ in root.value if isinstance(key, yaml.ScalarNode)
                ]
                raise _FileProblem(
                    "expected a list of cases, or a mapping with a 'cases:' list; "
                    f"got a mapping with keys: {', '.join(keys[:10]) or 'none'}"
                )
            items = found[-1]
            if _is_scalar(items, None):
                return []
        if not isinstance(items, yaml.SequenceNode):
            kind = "a mapping" if isinstance(items, yaml.MappingNode) else "a single value"
            what = "expected a list of cases (mappings), or a mapping with a 'cases:' list"
            if items is not root:
                what = "'cases' must be a list of mappings"
            raise _FileProblem(f"{what}; got {kind}")
        rows: _Rows = []
        for node in items.value:
            line = node.start_mark.line + 1
            duplicate = _yaml_duplicate_key(node)
            if duplicate is not None:
                errors.append(duplicate)
                continue
            try:
                rows.append((line, loader.construct_document(node)))
            except Exception as exc:  # SafeConstructor raises bare ValueError for `!!int x` etc.
                if isinstance(exc, yaml.YAMLError):
                    errors.append(_yaml_error(exc, line))
                else:
                    errors.append(RowError(line, None, f"invalid YAML value: {exc}"))
                # construct_document does not clean up after a failure
                loader.constructed_objects = {}
                loader.recursive_objects = {}
                loader.state_generators = []
        return rows
    finally:
        loader.dispose()


def _yaml_duplicate_key(root: yaml.Node) -> RowError | None:
    """A mapping with the same key twice (PyYAML keeps the last silently: a value lost)."""
    import yaml  # PyYAML: only for YAML datasets

    seen_nodes: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen_nodes:  # an alias of a node already checked
            continue
        seen_nodes.add(id(node))
        if isinstance(node, yaml.MappingNode):
            keys: set[str] = set()
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.tag != "tag:yaml.org,2002:merge":
                    if key.value in keys:
                        message = (
                            f"the key {key.value!r} appears twice in one mapping: a value "
                            "would be lost"
                        )
                        return RowError(key.start_mark.line + 1, None, message)
                    keys.add(key.value)
                stack.append(value)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
    return None


def _is_scalar(node: yaml.Node, value: str | None) -> bool:
    import yaml  # PyYAML: only for YAML datasets

    if not isinstance(node, yaml.ScalarNode):
        return False
    if value is None:
        return node.tag == "tag:yaml.org,2002:null"
    return node.tag == "tag:yaml.org,2002:str" and node.value == value


def _yaml_error(exc: yaml.YAMLError, default_line: int) -> RowError:
    import yaml  # PyYAML: only for YAML datasets

    if not isinstance(exc, yaml.MarkedYAMLError):
        return RowError(default_line, None, f"invalid YAML: {exc}")
    problem = exc.problem or exc.context or "syntax error"
    if problem == "but found another document":
        mark = exc.problem_mark
        line = mark.line + 1 if mark is not None else default_line
        message = "a second YAML document ('---') starts here; put all cases in one list"
        return RowError(line, None, message)
    mark = exc.problem_mark or exc.context_mark
    if mark is None:
        return RowError(default_line, None, f"invalid YAML: {problem}")
    details = [f"column {mark.column + 1}"]
    if exc.context and exc.problem:
        context = exc.context
        if exc.context_mark is not None and exc.context_mark.line != mark.line:
            context += f" at line {exc.context_mark.line + 1}"
        details.append(context)
    return RowError(mark.line + 1, None, f"invalid YAML: {problem} ({'; '.join(details)})")


def _parse_csv(text: str, errors: list[RowError]) -> _Rows:
    # csv.reader rather than DictReader: DictReader skips blank lines inside next(), which
    # hides where a row starts. strict=True turns a stray or unclosed quote into an error
    # instead of silently swallowing the following lines into one field.
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    rows: _Rows = []
    header: list[str] | None = None
    end = 0  # line the previous record ended on
    while True:
        start = end + 1
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            message = f"invalid CSV: {exc}"
            if str(exc) == "unexpected end of data":
                message += " (a quoted field starting on this line is never closed)"
            errors.append(RowError(start, None, message))
            if reader.line_num <= end:
                break
            end = reader.line_num
            continue
        end = reader.line_num
        if not record or (len(record) == 1 and not record[0].strip()):
            continue
        if header is None:
            header = [name.strip() for name in record]
            problems = _header_problems(start, header)
            if problems:
                errors.extend(problems)
                return []
            continue
        if len(record) > len(header):
            message = f"row has {len(record)} values but the header has {len(header)} columns"
            errors.append(RowError(start, None, message))
            continue
        row: dict[str, str | None] = dict(zip(header, record, strict=False))
        for name in header[len(record) :]:
            row[name] = None  # like csv.DictReader's restval
        rows.append((start, row))
    return rows


def _header_problems(line: int, header: list[str]) -> list[RowError]:
    problems = []
    first_column: dict[str, int] = {}
    for column, name in enumerate(header, 1):
        if not name:
            problems.append(RowError(line, None, f"header column {column} has no name"))
        elif name in first_column:
            columns = f"columns {first_column[name]} and {column}"
            message = f"duplicate column {name!r} in the header ({columns})"
            problems.append(RowError(line, None, message))
        else:
            first_column[name] = column
    return problems


PARSERS: dict[str, Callable[[str, list[RowError]], _Rows]] = {
    ".jsonl": _parse_jsonl,
    ".json": _parse_json,
    ".yaml": _parse_yaml,
    ".yml": _parse_yaml,
    ".csv": _parse_csv,
}
