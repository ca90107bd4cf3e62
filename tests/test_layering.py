"""The package's layering: the library never imports the CLI or the harness, module-level imports
have no cycles, and nothing but the registry imports a tool module by name."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: the folders that install as vlagent's packages
PACKAGES = {"src/vlagent": "vlagent", "tools": "vlagent.tools", "evals": "vlagent.evals", "prompts": "vlagent.prompts"}
TOOL_MODULES = {"vlagent.tools.ocr", "vlagent.tools.colors", "vlagent.tools.caption", "vlagent.tools.vqa", "vlagent.tools.retrieval", "vlagent.tools.recommend"}


def modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for folder, package in PACKAGES.items():
        base = ROOT / folder
        for path in base.rglob("*.py"):
            if "suites" in path.parts:
                continue
            rel = path.relative_to(base).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            found[".".join([package, *parts])] = path
    return found


def imports(path: Path, module: str, top_level_only: bool) -> set[str]:
    """Absolute names of the vlagent modules ``path`` imports (module level only, if asked)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    if top_level_only:  # module level includes `if TYPE_CHECKING:`-free ifs and try blocks
        nodes = [n for stmt in tree.body for n in ast.walk(stmt) if not isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.If))]
    out: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("vlagent")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.rsplit(".", node.level)[0]
                name = f"{base}.{node.module}" if node.module else base
            else:
                name = node.module or ""
            if name.startswith("vlagent"):
                out.add(name)
                out |= {f"{name}.{a.name}" for a in node.names}
    return out


def test_the_library_never_imports_the_cli_or_the_harness() -> None:
    offenders = []
    for module, path in modules().items():
        if module.startswith(("vlagent.cli", "vlagent.evals")):
            continue
        for name in imports(path, module, top_level_only=False):
            if name.startswith(("vlagent.cli", "vlagent.evals")):
                offenders.append(f"{module} imports {name}")
    assert offenders == []


def test_module_level_imports_have_no_cycles() -> None:
    mods = modules()
    graph = {m: {i for i in imports(p, m, top_level_only=True) if i in mods and i != m} for m, p in mods.items()}
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert cycles == []


def test_the_agent_reads_its_tools_from_the_registry_only() -> None:
    """The agent (graph, plan, answers, build) and its test fakes never name a tool module:
    adding a tool is one module plus its registration."""
    targets = {m: p for m, p in modules().items() if m.startswith("vlagent.agent")}
    targets["tests.test_agent_graph"] = ROOT / "tests" / "test_agent_graph.py"
    offenders = []
    for module, path in targets.items():
        for name in imports(path, module, top_level_only=False):
            if any(name == t or name.startswith(t + ".") for t in TOOL_MODULES):
                offenders.append(f"{module} imports {name}")
    assert offenders == []
