"""The layout says what each part is: checks that keep it so.

- the project's import graph (module-level imports among cc_tasks, synth, cc_train) has no cycle;
- dependencies point one way: the core and the C²-EVAL plugin never import C²-SYN or training
  code, C²-SYN never imports training code;
- no script edits ``sys.path`` to find a sibling;
- code cites the method by sections of docs/method.md that exist, never an outside document or
  the project's issue tracker;
- each judge and synthesis backend in a registry resolves to a class.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {
    "cc_tasks": ROOT / "cc_tasks",
    "synth": ROOT / "synth",
    "cc_train": ROOT / "recipes" / "cc_train",
}
CODE_DIRS = ["cc_tasks", "synth", "recipes", "demo", "experiments", "benchmarks", "tests"]
# who may import whom (the part on the left never imports a part on the right)
FORBIDDEN = {"cc_tasks": ("synth", "cc_train"), "synth": ("cc_train",)}


def _modules() -> dict[str, Path]:
    found = {}
    for name, folder in PACKAGES.items():
        for path in folder.rglob("*.py"):
            rel = path.relative_to(folder).with_suffix("")
            parts = [name, *rel.parts]
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def _top_level_deps(module: str, path: Path, known: set[str]) -> set[str]:
    """Project modules imported at module level (imports inside functions are lazy by design)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    deps: set[str] = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names = [base] + [f"{base}.{a.name}" for a in node.names]
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name and name != module:
                deps.add(name)
    return deps


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {m: _top_level_deps(m, p, set(modules)) for m, p in modules.items()}


def test_project_import_graph_has_no_cycle() -> None:
    graph = _graph()
    # a package's __init__ importing its own submodules is not a cycle of jobs
    edges = {m: {d for d in deps if not d.startswith(m + ".")} for m, deps in graph.items()}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for dep in edges.get(node, ()):
            if state.get(dep) == 1:
                cycle = [*stack[stack.index(dep) :], dep]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if dep not in state:
                visit(dep)
        stack.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node)


def test_dependencies_point_one_way() -> None:
    wrong = []
    for module, deps in _graph().items():
        part = module.split(".")[0]
        for dep in deps:
            if dep.split(".")[0] in FORBIDDEN.get(part, ()):
                wrong.append(f"{module} imports {dep}")
    assert not wrong, wrong


def _code_files() -> list[Path]:
    files = []
    for folder in CODE_DIRS:
        if (ROOT / folder).is_dir():
            files += [p for p in (ROOT / folder).rglob("*.py") if ".venv" not in p.parts]
    return files


def test_no_script_edits_sys_path() -> None:
    offenders = [
        str(p.relative_to(ROOT))
        for p in _code_files()
        if "sys.path.insert" in p.read_text(encoding="utf-8") and p.name != "test_layout.py"
    ]
    assert not offenders, offenders


METHOD_REF = re.compile(r"method section (\d+(?:\.\d+)*)")


def test_method_references_resolve_and_nothing_cites_the_outside_spec() -> None:
    method = (ROOT / "docs" / "method.md").read_text(encoding="utf-8")
    sections = set(re.findall(r"^#+\s+(\d+(?:\.\d+)*)[.\s]", method, flags=re.M))
    missing, spec = [], []
    for path in _code_files():
        if path.name == "test_layout.py":
            continue
        text = path.read_text(encoding="utf-8")
        for ref in METHOD_REF.findall(text):
            if ref not in sections:
                missing.append(f"{path.relative_to(ROOT)}: method section {ref}")
        if re.search(r"\bSPEC\b", text):
            spec.append(str(path.relative_to(ROOT)))
    assert not missing, f"sections not in docs/method.md ({sorted(sections)}): {missing}"
    assert not spec, f"cite docs/method.md, not SPEC: {spec}"


ISSUE_REF = re.compile(r"\bissues? #?\d+\b|\(#\d+\)", re.I)


def test_code_cites_no_issue_numbers() -> None:
    offenders = []
    for path in _code_files():
        if path.name == "test_layout.py":
            continue
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if ISSUE_REF.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{i}: {line.strip()[:80]}")
    assert not offenders, offenders
