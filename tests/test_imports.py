"""The package's shape: the stages import only downwards, nothing has an import cycle
(deferred imports inside functions count too), and only the CLI prints to the terminal.

The graph is read from the source (every `import` and `from ... import`, at any depth),
with the folders mapped to the modules they ship as (dsl/ -> twisterl.dsl)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"twisterl": ROOT / "twisterl", "twisterl.dsl": ROOT / "dsl", "twisterl.codegen": ROOT / "codegen"}


def _modules() -> dict[str, Path]:
    """Every Python module of the package, by its dotted name."""
    found: dict[str, Path] = {}
    for prefix, folder in PACKAGES.items():
        for path in folder.rglob("*.py"):
            rel = path.relative_to(folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            name = ".".join([prefix, *parts])
            if prefix == "twisterl" and parts and parts[0] in ("dsl", "codegen"):
                continue  # not folders of twisterl/ (they ship from the root)
            found[name] = path
    return found


MODULES = _modules()
EXTENSION = "twisterl._core"  # the compiled runtime: a leaf
MODULES[EXTENSION] = ROOT / "runtime" / "python"


def _is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def _resolve(module: str, node: ast.ImportFrom) -> str:
    """The absolute module a `from` import names."""
    if not node.level:
        return node.module or ""
    base = module.split(".") if _is_package(module) else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(name: str) -> set[str]:
    """The package's modules that module `name` imports, anywhere in it."""
    tree = ast.parse(MODULES[name].read_text())
    targets: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(name, node)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                targets.add(sub if sub in MODULES else base)
    return {t for t in targets if t in MODULES and t != name}


GRAPH = {name: _imports(name) for name in MODULES if name != EXTENSION}


def _stage(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "twisterl"


def test_the_graph_is_read():
    assert "twisterl.train.driver" in GRAPH and "twisterl.dsl.check" in GRAPH
    assert "twisterl.train.checkpoints" in GRAPH["twisterl.train.driver"]
    assert "twisterl.dsl.ir" in GRAPH["twisterl.codegen.lower"]
    assert "twisterl.train.checkpoints" in GRAPH["twisterl.search"]  # imported inside a function


def test_no_import_cycles():
    """A depth-first search over every edge, deferred imports included. The top-level
    `twisterl` package is the public face (its lazy attributes import the stages), so no
    module of the package may import it."""
    importers = sorted(m for m, targets in GRAPH.items() if "twisterl" in targets and m != "twisterl.__main__")
    assert importers == [], f"import the module itself, not the `twisterl` package: {importers}"
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for t in sorted(GRAPH[m]):
            if t in ("twisterl", EXTENSION):
                continue
            if state.get(t) == 1:
                cycle = stack[stack.index(t):] + [t]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if t not in state:
                visit(t)
        stack.pop()
        state[m] = 2

    for m in sorted(GRAPH):
        if m not in state:
            visit(m)


# What each stage may import, besides itself: the pipeline's order.
ALLOWED = {
    "dsl": set(),
    "codegen": {"dsl"},
    "build": {"dsl", "codegen", "_core"},
    "envs": {"dsl", "build", "_core"},
    "gym": {"envs"},
    "pettingzoo": {"envs"},
    "search": {"envs", "_core", "train"},
    "train": {"dsl", "build", "envs", "search", "_core"},
    "agents": {"search", "train"},
    "wasm": {"dsl", "codegen", "build", "envs", "train"},
    "hub": {"dsl", "build", "envs", "search", "train", "wasm", "agents"},
    "cli": {"dsl", "build", "envs", "search", "train", "wasm", "agents", "codegen", "hub"},
}


@pytest.mark.parametrize("stage", sorted(ALLOWED))
def test_stages_import_downwards(stage):
    wrong = sorted(f"{m} -> {t}" for m, targets in GRAPH.items() if _stage(m) == stage
                   for t in targets if _stage(t) not in ALLOWED[stage] | {stage})
    assert wrong == []


def test_search_reads_only_checkpoints_from_training():
    """Search takes a run dir's policy; it never reaches into the learners or the driver."""
    used = {t for m, targets in GRAPH.items() if _stage(m) == "search" for t in targets if _stage(t) == "train"}
    assert used <= {"twisterl.train.checkpoints", "twisterl.train.rundir", "twisterl.train.nets",
                    "twisterl.train.networks", "twisterl.train.twists"}


def test_nothing_imports_the_cli():
    assert sorted(m for m, targets in GRAPH.items() if _stage(m) != "cli" and m != "twisterl.__main__"
                  and any(_stage(t) == "cli" for t in targets)) == []


def _prints(path: Path) -> list[tuple[int, bool]]:
    """(line, has file=) of every print() call in a file."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print":
            out.append((node.lineno, any(k.arg == "file" for k in node.keywords)))
    return out


def test_only_the_cli_prints():
    """Library code writes only to a stream its caller gave (`print(..., file=stream)`);
    bare prints to the terminal are the CLI's."""
    bare = sorted(f"{MODULES[m].relative_to(ROOT)}:{line}" for m in GRAPH if _stage(m) != "cli"
                  for line, has_file in _prints(MODULES[m]) if not has_file)
    assert bare == []
    to_std = []
    for m in GRAPH:
        if _stage(m) == "cli":
            continue
        text = MODULES[m].read_text()
        for n, line in enumerate(text.splitlines(), 1):
            if "print(" in line and ("sys.stdout" in line or "sys.stderr" in line):
                to_std.append(f"{MODULES[m].relative_to(ROOT)}:{n}")
    assert to_std == []


def test_the_checker_keeps_no_undeclared_state():
    """Every attribute any part of the checker sets on `self` is declared (and typed) in
    `CheckerState.__init__`, so the concerns share only state declared in one place."""
    declared = set()
    init = next(n for n in ast.walk(ast.parse((ROOT / "dsl" / "checker_state.py").read_text()))
                if isinstance(n, ast.FunctionDef) and n.name == "__init__")
    for node in ast.walk(init):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(
            node, ast.AnnAssign) else []
        for t in targets:
            for leaf in (t.elts if isinstance(t, ast.Tuple) else [t]):
                if isinstance(leaf, ast.Attribute) and isinstance(leaf.value, ast.Name) and leaf.value.id == "self":
                    declared.add(leaf.attr)
    assert {"report", "globals", "evaluator", "observation_parts"} <= declared
    undeclared = []
    for name in ("check", "exprs", "calls", "stmts", "levels", "observe", "symmetry", "effects", "render"):
        for node in ast.walk(ast.parse((ROOT / "dsl" / f"{name}.py").read_text())):
            if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for t in targets:
                    for leaf in (t.elts if isinstance(t, ast.Tuple) else [t]):
                        if (isinstance(leaf, ast.Attribute) and isinstance(leaf.value, ast.Name)
                                and leaf.value.id == "self" and leaf.attr not in declared):
                            undeclared.append(f"dsl/{name}.py:{node.lineno} self.{leaf.attr}")
    assert undeclared == []
