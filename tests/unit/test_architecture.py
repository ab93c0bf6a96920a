"""The package tree is the pipeline: its import graph has no cycle, its layers hold, and
docs/architecture.md names every package in it.

The graph is read from the source (ast), not from what Python happened to import: every
``import`` and ``from ... import`` inside the package counts, at module level or inside a
function, except those under ``if TYPE_CHECKING:`` (they never run). So a lazy import
cannot hide a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "pytest_modelopt"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(module: str) -> list[tuple[str, int, bool]]:
    """(imported module, line, at module level) for every runtime import in ``module``."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[tuple[str, int, bool]] = []

    def visit(node: ast.AST, top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for other in child.orelse:
                    visit(other, top)
                continue
            if isinstance(child, ast.Import):
                found.extend((alias.name, child.lineno, top) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.split(".")
                    base = base[: len(base) - (child.level - 1)]
                    target = ".".join(base + ([child.module] if child.module else []))
                else:
                    target = child.module or ""
                for alias in child.names:
                    sub = f"{target}.{alias.name}"
                    found.append((sub if sub in MODULES else target, child.lineno, top))
            inner = isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            visit(child, top and not inner)

    visit(tree, True)
    return found


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for module in MODULES:
        targets = set()
        for target, _, _ in _imports(module):
            # importing a.b.c runs a/__init__ and a/b/__init__ first
            parts = target.split(".")
            for i in range(1, len(parts) + 1):
                prefix = ".".join(parts[:i])
                if prefix in MODULES and prefix != module:
                    targets.add(prefix)
        graph[module] = targets
    return graph


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    colour: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        colour[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if colour.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if colour.get(nxt) is None:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        colour[node] = 2
        return None

    for node in sorted(graph):
        if colour.get(node) is None:
            found = visit(node)
            if found:
                return found
    return None


def test_the_package_has_no_import_cycle() -> None:
    graph = _graph()
    # a package's __init__ importing its own submodules is not a cycle of the pipeline:
    # drop the edges from a submodule up to the package that contains it
    for module, targets in graph.items():
        graph[module] = {t for t in targets if not module.startswith(t + ".")}
    cycle = _find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def _unit(module: str) -> str:
    """The layer a module belongs to: its top-level package, with the two leaves that
    others may import alone named apart."""
    parts = module.split(".")[1:]
    if not parts:
        return "pytest_modelopt"
    if parts[:2] in (["model", "types"], ["verdict", "gates"]):
        return ".".join(parts[:2])
    return parts[0]


DRIVERS = {"run", "cli", "plugin"}
# What each layer may import at run time (docs/architecture.md explains each line).
ALLOWED: dict[str, set[str]] = {
    "pytest_modelopt": set(),  # lazy public names only
    "config": set(),
    "secrets": set(),
    "untrusted": set(),
    "templating": set(),
    "costs": set(),
    "images": set(),
    "hookspecs": set(),
    "model.types": set(),
    "model": {"model.types", "secrets"},
    "graders": {"model", "model.types"},
    "collect": {"graders", "verdict.gates"},  # the marker's fail_on uses the gate grammar
    "verdict.gates": {"verdict"},
    "generate": {"model", "model.types", "secrets"},
    "records": {"collect", "graders", "model.types"},
    "verdict": {"records", "verdict.gates"},
    "reports": {"records", "verdict", "verdict.gates"},
    "optimize": {"config", "graders", "hookspecs", "model", "model.types", "records", "secrets"},
    "github": {"config", "records", "reports", "secrets", "verdict"},
    "run": {
        "collect",
        "config",
        "generate",
        "graders",
        "model",
        "model.types",
        "optimize",
        "records",
        "reports",
        "secrets",
        "verdict",
        "verdict.gates",
    },
}
# leaves every layer may import: redaction, the marks and escapes of untrusted text, the
# bounded sandbox that renders templates written in code or config, how a cost is shown,
# and images named by cases (read into a request as it is sent)
LEAVES = {"secrets", "untrusted", "templating", "costs", "images"}
for _unit_name in ALLOWED:
    ALLOWED[_unit_name] |= LEAVES - {_unit_name}
ALLOWED["cli"] = set(ALLOWED) - {"cli", "plugin"} | {"run"}
ALLOWED["plugin"] = set(ALLOWED) - {"cli", "plugin"} | {"run"}
SDK = ("openai", "agents", "httpx", "httpx2", "aiohttp")  # agents: the Agents SDK


def test_every_layer_imports_only_what_it_may() -> None:
    wrong = []
    for module in MODULES:
        unit = _unit(module)
        allowed = ALLOWED[unit] | {unit}
        for target, line, _ in _imports(module):
            if not target.startswith("pytest_modelopt"):
                continue
            if target == "pytest_modelopt":  # __version__
                continue
            if _unit(target) not in allowed:
                wrong.append(f"{module}:{line} imports {target}")
    assert wrong == []


def test_only_the_plugin_imports_pytest() -> None:
    wrong = [
        f"{module}:{line} imports {target}"
        for module in MODULES
        if not module.startswith("pytest_modelopt.plugin")
        for target, line, _ in _imports(module)
        if target.split(".")[0] in ("pytest", "_pytest")
    ]
    assert wrong == []


def test_only_the_model_layer_talks_to_a_model() -> None:
    """The SDK and HTTP clients: only model/ (and the fine-tuning backend, which talks to
    OpenAI's fine-tuning API, not to a model) imports them, and never at module level
    outside model/ (``openai`` costs ~0.9 s to import)."""
    wrong = []
    for module in MODULES:
        for target, line, top in _imports(module):
            if target.split(".")[0] not in SDK:
                continue
            if module.startswith("pytest_modelopt.model."):
                continue
            if module == "pytest_modelopt.optimize.backends.openai_api" and not top:
                continue
            wrong.append(f"{module}:{line} imports {target}")
    assert wrong == []


def test_the_pure_stages_import_no_sdk_and_no_pytest_at_module_level() -> None:
    wrong = [
        f"{module}:{line} imports {target}"
        for module in MODULES
        if _unit(module) in ("verdict", "verdict.gates", "records", "collect", "graders")
        for target, line, top in _imports(module)
        if top and target.split(".")[0] in (*SDK, "pytest", "_pytest")
    ]
    assert wrong == []


def test_the_architecture_doc_names_every_package() -> None:
    doc = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    packages = sorted(
        _module_name(p.parent) for p in PACKAGE.rglob("__init__.py") if p.parent != PACKAGE
    )
    top_modules = sorted(
        _module_name(p) for p in PACKAGE.glob("*.py") if p.name not in ("__init__.py",)
    )
    missing = [
        name
        for name in [*packages, *top_modules]
        if f"`{name.removeprefix('pytest_modelopt.').replace('.', '/')}" not in doc
    ]
    assert missing == []


def test_every_lazy_import_of_the_package_says_why() -> None:
    """An import of the package's own code inside a function must say why it is lazy (the
    cost of importing it up front): with no cycle left, nothing else justifies one."""
    silent = []
    for module, path in MODULES.items():
        lines = path.read_text(encoding="utf-8").splitlines()
        for target, line, top in _imports(module):
            if top or not target.startswith("pytest_modelopt"):
                continue
            here, above = lines[line - 1], lines[line - 2].strip() if line > 1 else ""
            if "#" not in here and not above.startswith("#"):
                silent.append(f"{module}:{line}: {here.strip()}")
    assert silent == []
