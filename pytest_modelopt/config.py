"""Settings from ``[tool.modelopt]`` or ``modelopt.yaml``, ``MODELOPT_*`` and ``--eval-*``.

One pydantic model is the single source of truth: the CLI options, the environment
variables and the config-file keys are all derived from its fields, so the three surfaces
cannot drift apart. Precedence: command line > environment > config file > defaults.

A leaf: grader definitions and gate expressions are kept here as data (dicts and
strings); :func:`pytest_modelopt.run.settings_for` builds and checks them, so that a bad one
is reported with the surface it came from, and this module imports nothing of the package.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator

if TYPE_CHECKING:
    from collections.abc import Mapping

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

ENV_PREFIX = "MODELOPT_"
# MODELOPT_* variables that are not settings: the scripts' and the WordNet location.
OTHER_VARIABLES = frozenset(
    {
        "MODELOPT_VENV",
        "MODELOPT_WHEEL_CACHE",
        "MODELOPT_SKIP_LOCAL",
        "MODELOPT_WORDNET_DIR",
        "MODELOPT_NPM_CACHE",
        "MODELOPT_REVIEWER",  # who `modelopt review` says gave the labels
        "MODELOPT_DIST",  # scripts/test: the sdist and wheel that tests/packaging checks
    }
)
CLI_PREFIX = "--eval-"
_ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
# a name that becomes one path component: no separator, no "..", not hidden
_NAME = re.compile(r"(?!\.)(?!.*\.\.)[A-Za-z0-9._-]{1,128}")


class ConfigError(Exception):
    """A configuration problem, phrased as one line that says where and what to do."""


class Price(BaseModel):
    """USD per million tokens; overrides the genai-prices table for one model."""

    model_config = ConfigDict(extra="forbid")

    input: float = Field(ge=0)
    output: float = Field(ge=0)
    cached_input: float | None = Field(default=None, ge=0)


def _cli(metavar: str) -> dict[str, Any]:
    return {"cli": True, "metavar": metavar}


class GateSettings(BaseModel):
    """``[tool.modelopt.gates]``: what fails a run; see gates.py for the expressions."""

    model_config = ConfigDict(extra="forbid")

    fail_on: list[str] = Field(default_factory=list)
    tolerance: float = Field(default=0.02, ge=0, le=1)
    alpha: float = Field(default=0.05, gt=0, lt=1)
    # errors are not passes: an eval whose cases error beyond this share fails (cases that
    # could not run for want of a key or a recording are reported apart, not counted)
    max_error_rate: float = Field(default=0.1, ge=0, le=1)


class FinetuneSettings(BaseModel):
    """``[tool.modelopt.finetune]``: how training sets are built and jobs launched."""

    model_config = ConfigDict(extra="forbid")

    backend: str = Field(default="openai", description="openai, local, export, or a plugin's.")
    method: Literal["sft", "dpo", "rft"] = "sft"
    holdout: float = Field(default=0.2, ge=0, lt=1, description="Share of cases never trained on.")
    validation: float = Field(
        default=0.0,
        ge=0,
        lt=1,
        description="Share of train cases kept for the job's validation file.",
    )
    salt: str = Field(default="modelopt", min_length=1, description="Seeds the holdout split.")
    min_score: float | None = Field(default=None, description="Only answers scoring this much.")
    answers_from: str | None = Field(
        default=None,
        min_length=1,
        description="sft: train on this dataset field as every case's answer (e.g. its label).",
    )
    evals: list[str] = Field(default_factory=list, description="Eval names or globs to learn from.")
    auto_launch: bool = Field(default=False, description="Launch paid jobs without --yes in CI.")
    hyperparameters: dict[str, Any] = Field(default_factory=dict)
    training_prices: dict[str, float] = Field(
        default_factory=dict, description="USD per million training tokens, by base model."
    )
    lora: bool = Field(default=False, description="local backend: train LoRA adapters (merged).")
    max_steps: int | None = Field(default=None, ge=1, description="local backend: stop early.")
    poll_interval: float = Field(default=10.0, ge=0, description="Seconds between job polls.")
    pin_labelled: bool = Field(
        default=False,
        description="Hold out every case a human label names: never trained on, always scored.",
    )


class Settings(BaseModel):
    """Every setting of the plugin. Fields marked ``cli`` also get an ``--eval-*`` option."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    models: list[str] = Field(
        default_factory=list,
        description="Models to run every eval against (comma-separated on the command line).",
        json_schema_extra=_cli("A,B"),
    )
    base_url: str | None = Field(
        default=None,
        description="OpenAI-compatible endpoint; defaults to $OPENAI_BASE_URL, then OpenAI.",
        json_schema_extra=_cli("URL"),
    )
    timeout: float = Field(
        default=60.0,
        gt=0,
        description="Seconds one model call may take before it is retried.",
        json_schema_extra=_cli("SECONDS"),
    )
    max_retries: int = Field(
        default=4,
        ge=0,
        le=20,
        description="Retries of a call that hit 429, 5xx, a timeout or a malformed body.",
        json_schema_extra=_cli("N"),
    )
    record: Literal["new", "none", "all", "off"] = Field(
        default="new",
        description=(
            "Response cache: new (replay hits, call and record misses), none (replay only:"
            " no network, no key), all (call everything and re-record), off."
        ),
        json_schema_extra=_cli("MODE"),
    )
    concurrency: int = Field(
        default=32,
        ge=1,
        le=1024,
        description="Most model calls in flight at once when generating declared completions.",
        json_schema_extra=_cli("N"),
    )
    sender: Literal["auto", "process", "thread"] = Field(
        default="auto",
        description=(
            "Where declared completions are sent from: a helper process (the SDK's CPU runs"
            " on another core), a thread of this one, or auto (process with 2+ cores and"
            " 16+ requests, in a run without xdist)."
        ),
        json_schema_extra=_cli("WHERE"),
    )
    transport: Literal["auto", "aiohttp", "httpx"] = Field(
        default="auto",
        description=(
            "The HTTP transport under the SDK's async client when it sends declared"
            " completions: aiohttp (openai[aiohttp]; about a third less CPU a request), the"
            " SDK's default httpx, or auto (aiohttp when it is installed)."
        ),
        json_schema_extra=_cli("NAME"),
    )
    batch: Literal["off", "run", "submit", "collect"] = Field(
        default="off",
        description=(
            "Generate through OpenAI's Batch API: run (submit, wait, replay), submit (and stop;"
            " a later job collects), collect. --eval-batch alone means run."
        ),
        json_schema_extra={"cli": True, "metavar": "MODE", "const": "run"},
    )
    batch_poll_interval: float = Field(
        default=30.0,
        ge=0,
        description="Seconds between polls of a pending batch.",
        json_schema_extra=_cli("SECONDS"),
    )
    baseline: str | None = Field(
        default=None,
        description="Compare this run with a saved one: a run directory, a saved name, or latest.",
        json_schema_extra=_cli("REF"),
    )
    baseline_model: str | None = Field(
        default=None,
        description="Compare every other selected model with this one, within the run.",
        json_schema_extra=_cli("MODEL"),
    )
    save: str | None = Field(
        default=None,
        description="Save this run under .modelopt/saved/NAME, to compare with later.",
        json_schema_extra=_cli("NAME"),
    )
    fail_on: list[str] = Field(
        default_factory=list,
        description="A gate that must hold (repeatable), e.g. pass_rate>=0.9, p95_latency<=2s.",
        json_schema_extra={"cli": True, "metavar": "EXPR", "append": True},
    )
    md: Path | None = Field(
        default=None,
        description="Write the comparison (or run) report as Markdown for a PR comment.",
        json_schema_extra=_cli("PATH"),
    )
    html: Path | None = Field(
        default=None,
        description=(
            "Write the run viewer (every case; the comparison with a baseline) as one HTML file."
        ),
        json_schema_extra=_cli("PATH"),
    )
    gates: GateSettings = Field(
        default_factory=GateSettings,
        description="[tool.modelopt.gates]: fail_on, tolerance, alpha (config file only).",
    )
    resume: str | None = Field(
        default=None,
        description=(
            "Re-run only the cases this run (a directory, run id or 'latest') did not finish;"
            " errored cases run again."
        ),
        json_schema_extra=_cli("RUN"),
    )
    dir: Path = Field(
        default=Path(".modelopt"),
        description=(
            "Where runs, saved runs, the response cache and fine-tuning launches live, "
            "relative to the rootdir."
        ),
        json_schema_extra=_cli("DIR"),
    )
    json_report: Path | None = Field(
        default=None,
        alias="json",
        description="Also write the run summary JSON to this path.",
        json_schema_extra=_cli("PATH"),
    )
    provider: str = Field(
        default="openai",
        description="Provider id used to look up prices in genai-prices.",
        json_schema_extra=_cli("NAME"),
    )
    prices: dict[str, Price] = Field(
        default_factory=dict,
        description="Per-model price overrides in USD per million tokens (config file only).",
    )
    headers: dict[str, str] = Field(
        default_factory=dict,
        description=(
            "Extra request headers (a gateway key, an organisation header), config file only;"
            " a value ${NAME} is read from the environment variable NAME. Header values are"
            " never cached, recorded or reported, and are redacted wherever text is written."
        ),
    )
    run: Literal["always", "on-request"] = Field(
        default="always",
        description=(
            "When eval tests run: always, or on-request (only with --eval-run or a -m"
            " expression that selects the eval marker; otherwise they are deselected)."
            " --eval-run alone means always."
        ),
        json_schema_extra={"cli": True, "metavar": "WHEN", "const": "always"},
    )
    judge_model: str | None = Field(
        default=None,
        description="Model for LLM judges (score_model, label_model) that name none.",
        json_schema_extra=_cli("MODEL"),
    )
    embedding_model: str = Field(
        default="text-embedding-3-large",
        description="Embeddings model for the cosine text_similarity metric.",
        json_schema_extra=_cli("MODEL"),
    )
    graders: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Named graders in OpenAI's grader JSON (config file only).",
    )
    labels: list[str] = Field(
        default_factory=list,
        description=(
            "Human labels files (globs, repeatable; comma-separated in the environment) that"
            " calibrate LLM judges, e.g. evals/labels/*.jsonl."
        ),
        json_schema_extra={"cli": True, "metavar": "GLOB", "append": True},
    )
    calibration: dict[str, Any] | None = Field(
        default=None,
        description=(
            "When an LLM judge may decide a verdict, e.g. {min_labels = 30, min_kappa = 0.6}"
            " (config file only; an eval marker's calibration= wins for its eval)."
        ),
    )
    fail_inconclusive: bool = Field(
        default=False,
        description="Fail the run when an eval is inconclusive: its judge is not calibrated.",
        json_schema_extra={"cli": True, "metavar": "BOOL", "const": "true"},
    )
    store: bool = Field(
        default=False,
        description=(
            "Send Chat Completions calls with store=true and metadata naming eval and case,"
            " and tag them with their verdicts, for `modelopt distill --source stored`."
        ),
        json_schema_extra={"cli": True, "metavar": "BOOL", "const": "true"},
    )
    distill_to: str | None = Field(
        default=None,
        description=(
            "After the run, if the gates passed, train this student model on the passing"
            " answers (see [tool.modelopt.finetune])."
        ),
        json_schema_extra=_cli("STUDENT"),
    )
    finetune_backend: str | None = Field(
        default=None,
        description="Backend for --eval-distill-to: openai, local, export (default: config).",
        json_schema_extra=_cli("NAME"),
    )
    finetune_method: Literal["sft", "dpo", "rft"] | None = Field(
        default=None,
        description="Training method for --eval-distill-to: sft, dpo or rft.",
        json_schema_extra=_cli("METHOD"),
    )
    yes: bool = Field(
        default=False,
        description="Launch a paid fine-tuning job without asking (CI needs this or auto_launch).",
        json_schema_extra={"cli": True, "metavar": "BOOL", "const": "true"},
    )
    finetune: FinetuneSettings = Field(
        default_factory=FinetuneSettings,
        description="[tool.modelopt.finetune]: backend, method, holdout, ... (config file only).",
    )

    _sources: dict[str, str] = PrivateAttr(default_factory=dict)
    _from_file: frozenset[str] = PrivateAttr(default_factory=frozenset)

    def request_headers(self, environ: Mapping[str, str] | None = None) -> dict[str, str]:
        """The configured headers with ``${NAME}`` values read from the environment."""
        env = os.environ if environ is None else environ
        out = {}
        for name, value in self.headers.items():
            match = _ENV_REFERENCE.fullmatch(value)
            if match is None:
                out[name] = value
                continue
            variable = match.group(1)
            if not env.get(variable):
                raise ConfigError(
                    f"{self.source_of('headers')}: headers.{name} names the environment "
                    f"variable {variable}, which is not set: export it"
                )
            out[name] = env[variable]
        return out

    def source_of(self, key: str) -> str:
        """Where a setting's value came from, for messages: a file, a variable or an option."""
        return self._sources.get(key, "default")

    def from_file(self, key: str) -> bool:
        """Whether a setting was read from the config file (its paths are then relative to
        the project's root, where the file is; from the command line or the environment,
        to the current directory)."""
        return key in self._from_file

    def sources(self) -> list[str]:
        """The surfaces the settings came from, each once, in precedence order (lowest
        first): the config file, each variable, each option."""
        seen: list[str] = []
        for source in self._sources.values():
            if source not in seen:
                seen.append(source)
        return seen

    @field_validator("fail_on", mode="before")
    @classmethod
    def _split_gates(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(";") if part.strip()]
        return value

    @field_validator("save")
    @classmethod
    def _save_is_a_name(cls, value: str | None) -> str | None:
        """It becomes ``.modelopt/saved/NAME``, which a later save replaces: a path there could
        reach (and delete) anything."""
        if value is not None and not _NAME.fullmatch(value):
            raise ValueError(
                "must be a plain name (letters, digits, '.', '_', '-'; no '/', no '..'), "
                "e.g. main or nightly-2026-12-07"
            )
        return value

    @field_validator("models", "labels", mode="before")
    @classmethod
    def _split_lists(cls, value: Any) -> Any:
        """A comma-separated list (the command line, the environment) as a list."""
        if isinstance(value, str):
            return [m.strip() for m in value.split(",") if m.strip()]
        return value

    @field_validator("models")
    @classmethod
    def _unique_models(cls, value: list[str]) -> list[str]:
        seen: list[str] = []
        for model in value:
            if model in seen:
                raise ValueError(f"model {model!r} is listed twice")
            seen.append(model)
        return seen


def cli_fields() -> list[tuple[str, str, str, str]]:
    """(key, option, metavar, help) for every setting that has a command-line option."""
    out = []
    for name, field in Settings.model_fields.items():
        extra = field.json_schema_extra
        if isinstance(extra, dict) and extra.get("cli"):
            key = field.alias or name
            option = CLI_PREFIX + key.replace("_", "-")
            out.append((key, option, str(extra["metavar"]), field.description or ""))
    return out


def cli_appends(key: str) -> bool:
    field = Settings.model_fields.get(key)
    extra = field.json_schema_extra if field is not None else None
    return isinstance(extra, dict) and bool(extra.get("append"))


def cli_const(key: str) -> str | None:
    """The value an option takes when given without one (``--eval-batch`` means run)."""
    field = Settings.model_fields.get(key)
    extra = field.json_schema_extra if field is not None else None
    const = extra.get("const") if isinstance(extra, dict) else None
    return str(const) if const is not None else None


def config_keys() -> list[str]:
    return [field.alias or name for name, field in Settings.model_fields.items()]


def _format_error(err: ValidationError, where: Mapping[str, str]) -> str:
    first = err.errors()[0]
    loc = [str(part) for part in first["loc"]]
    key = loc[0] if loc else ""
    origin = where.get(key, "config")
    field = ".".join(loc)
    if first["type"] == "extra_forbidden":
        known = ", ".join(config_keys())
        return f"{origin}: unknown key {field!r} (known keys: {known})"
    got = first.get("input")
    shown = f" (got {got!r})" if isinstance(got, (str, int, float)) else ""
    message = str(first["msg"]).removeprefix("Value error, ")
    return f"{origin}: {field}: {message}{shown}"


def read_config_file(rootdir: Path) -> tuple[dict[str, Any], str | None]:
    """The raw ``[tool.modelopt]`` table or ``modelopt.yaml`` mapping, and its display name."""
    pyproject = rootdir / "pyproject.toml"
    yaml_file = rootdir / "modelopt.yaml"
    table: dict[str, Any] | None = None
    source: str | None = None
    if pyproject.is_file():
        try:
            data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"{pyproject}: cannot read: {exc}") from exc
        tool = data.get("tool", {})
        if isinstance(tool, dict) and "modelopt" in tool:
            table, source = tool["modelopt"], "pyproject.toml [tool.modelopt]"
    if yaml_file.is_file():
        if table is not None:
            raise ConfigError(
                f"settings found in both {pyproject.name} [tool.modelopt] and {yaml_file.name}:"
                " keep one of them"
            )
        import yaml  # only with a modelopt.yaml: PyYAML costs ~12 ms to import

        try:
            loaded = yaml.safe_load(yaml_file.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = f":{mark.line + 1}" if mark is not None else ""
            problem = getattr(exc, "problem", None) or "cannot parse"
            raise ConfigError(f"{yaml_file.name}{line}: invalid YAML: {problem}") from None
        except OSError as exc:
            raise ConfigError(f"{yaml_file.name}: cannot read: {exc.strerror}") from None
        table, source = ({} if loaded is None else loaded), yaml_file.name
    if table is None:
        return {}, None
    if not isinstance(table, dict):
        raise ConfigError(f"{source}: expected a table of settings, got {type(table).__name__}")
    return table, source


def read_env(environ: Mapping[str, str]) -> dict[str, str]:
    """``MODELOPT_*`` variables as setting keys; an unknown one is an error, not a silent no-op."""
    tables = ("prices", "graders", "gates", "headers", "calibration")
    known = {key.upper(): key for key in config_keys() if key not in tables}
    out: dict[str, str] = {}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or name in OTHER_VARIABLES:
            continue
        key = name[len(ENV_PREFIX) :]
        if key not in known:
            names = ", ".join(ENV_PREFIX + k for k in sorted(known))
            raise ConfigError(f"environment: unknown variable {name} (known: {names})")
        out[known[key]] = value
    return out


def load_settings(
    rootdir: Path,
    cli: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Merge the three surfaces and validate once, naming the surface a bad value came from."""
    environ = os.environ if environ is None else environ
    file_values, source = read_config_file(rootdir)
    env_values = read_env(environ)
    cli_values = {k: v for k, v in (cli or {}).items() if v is not None}
    where: dict[str, str] = {}
    merged: dict[str, Any] = {}
    layers: list[tuple[Mapping[str, Any], Any]] = [
        (file_values, lambda key: source or "config"),
        (env_values, lambda key: f"environment {ENV_PREFIX}{key.upper()}"),
        (cli_values, lambda key: CLI_PREFIX + key.replace("_", "-")),
    ]
    for values, describe in layers:
        for key, value in values.items():
            merged[key] = value
            where[key] = describe(key)
    if "base_url" not in merged and environ.get("OPENAI_BASE_URL"):
        merged["base_url"] = environ["OPENAI_BASE_URL"]
        where["base_url"] = "environment OPENAI_BASE_URL"
    try:
        settings = Settings.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(_format_error(exc, where)) from None
    if not settings.dir.is_absolute():
        settings.dir = rootdir / settings.dir
    settings._sources = where
    settings._from_file = frozenset(file_values)
    return settings


# pytest's configuration files, in the order pytest looks for them in one directory, and
# what makes one count (a file that is always pytest's, or the table or section it needs)
_PYTEST_FILES: tuple[tuple[str, str | None], ...] = (
    ("pytest.toml", None),
    (".pytest.toml", None),
    ("pytest.ini", None),
    (".pytest.ini", None),
    ("pyproject.toml", "toml"),
    ("tox.ini", r"^\[pytest\]"),
    ("setup.cfg", r"^\[tool:pytest\]"),
)


def find_project(start: Path) -> Path:
    """The project's root as pytest finds its rootdir from ``start`` with no arguments, so
    that ``modelopt`` run from a subdirectory reads the same settings and runs as pytest.

    Walking up from ``start``: the first directory with a pytest configuration file
    (``pytest.toml``, ``pytest.ini``, a ``pyproject.toml`` with ``[tool.pytest]`` or
    ``[tool.pytest.ini_options]``, a ``tox.ini`` with ``[pytest]``, a ``setup.cfg`` with
    ``[tool:pytest]``); else the nearest ``pyproject.toml`` (with ``[tool.modelopt]`` or
    not); else the nearest ``setup.py``; else ``start`` itself.
    """
    start = start.resolve()
    nearest_pyproject: Path | None = None
    for base in (start, *start.parents):
        for name, needs in _PYTEST_FILES:
            path = base / name
            if not path.is_file():
                continue
            if needs is None:
                return base
            if name == "pyproject.toml":
                nearest_pyproject = nearest_pyproject or base
                if _has_pytest_table(path):
                    return base
            elif _has_section(path, needs):
                return base
    if nearest_pyproject is not None:
        return nearest_pyproject
    for base in (start, *start.parents):
        if (base / "setup.py").is_file():
            return base
    return start


def _has_pytest_table(path: Path) -> bool:
    try:
        tool = tomllib.loads(path.read_text(encoding="utf-8")).get("tool", {})
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return False  # pytest would stop on it; the settings loader says why
    return isinstance(tool, dict) and isinstance(tool.get("pytest"), dict)


def _has_section(path: Path, pattern: str) -> bool:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    return re.search(pattern, text, re.MULTILINE) is not None
