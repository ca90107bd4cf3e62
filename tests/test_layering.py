"""The package's layering, counting every import: module level, inside functions, and under
``if TYPE_CHECKING:``.

Each folder of the package is one layer and every import points down the table ``LAYERS``:
the root infrastructure (settings, errors, cache, fileio) → data → models → index → products →
enrich → agent → tools → api/web/serving/cli/evals. No module imports itself back through a chain
of others (no cycles between modules, counting that importing ``vlagent.agent.x`` first runs
``vlagent/agent/__init__.py``), no layer imports itself back through other layers (no cycles
between folders), and an import of a vlagent module inside a function is an error (an import
inside a function is only for an optional heavy dependency, never to hide a circle). No module
keeps mutable state at module level that code changes (a registry), apart from the listed
caches (:data:`MODULE_CACHES`); the agent keeps none at all.

The graph code takes the repository root as an argument, so the same counting runs on any
checkout (``python tests/test_layering.py /path/to/checkout`` prints its figures).
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: the folders that install as vlagent's packages
PACKAGES = {"src/vlagent": "vlagent", "tools": "vlagent.tools", "evals": "vlagent.evals", "prompts": "vlagent.prompts"}

#: The layers, lowest first; a module may import only from its own layer or a lower rank.
#: Layers on one rank are siblings and may not import each other.
LAYERS: list[tuple[str, ...]] = [
    ("root",),  # vlagent.settings, errors, cache, fileio: infrastructure only
    ("data",),  # catalogue, images, resolver, queries
    ("models",),  # every engine, one module per capability (CLIP, LLM, OCR, caption, VQA, colours), roles, loader
    ("index",),  # store, search, text index, titles, fusion
    ("products",),  # matching an image to a description, recommendations: over the index, indexing nothing
    ("enrich", "finetune"),  # batch jobs over a catalogue (captions, categories); training the towers
    ("agent",),  # classify, plan, graph, facts, the tool specs and their registry
    ("analysis",),  # studies of a question set: reads the agent's rules and classifier
    ("tools",),  # thin LangChain adapters over the engines
    ("distributed",),  # Ray pipelines (index, eval) over the agent and the engines
    ("api", "serving"),
    ("web",),  # the Gradio UI drives the API's service
    ("evals",),  # the batch harness (its `vlagent eval` command is cli/eval_cmd.py)
    ("cli",),
    ("facade",),  # the package's __init__: ``vlagent.build_agent``
]
RANK = {layer: rank for rank, names in enumerate(LAYERS) for layer in names}
#: prompts are package data read by path; nothing imports them
RANK["prompts"] = 0

#: Function-level imports of vlagent modules that stay, each with its reason. Keep it tiny.
ALLOWED_FUNCTION_IMPORTS: dict[tuple[str, str], str] = {
    ("vlagent", "vlagent.agent.build"): "the public facade `vlagent.build_agent`: lazy so that importing any "
    "vlagent submodule (whose package __init__ runs first) does not load the agent and torch",
    ("vlagent.cli.ui_cmd", "vlagent.web.ui"): "gradio, the optional web extra: `vlagent ui` says how to install it",
    # the agent (langgraph) and the API (fastapi) load only in the commands that use them:
    # hoisted, `vlagent --help` took 2.06 s -> 2.45 s (best of 3, measured alternately against main)
    **{
        (cli, target): "start-up time of vlagent --help (measured 2.06 s -> 2.45 s)"
        for cli, target in [
            ("vlagent.cli.agent_cmds", "vlagent.agent.build"),
            ("vlagent.cli.eval_cmd", "vlagent.agent.build"),
            ("vlagent.cli.serve", "vlagent.api.server"),
            ("vlagent.cli.ui_cmd", "vlagent.api.server"),
            ("vlagent.cli.ui_cmd", "vlagent.api.service"),
        ]
    },
}

#: What this branch left (a ratchet: the checks fail on anything new, and on an entry fixed but
#: still listed).
KNOWN_CYCLES: list[list[str]] = []
KNOWN_UPWARD: set[tuple[str, str]] = set()
KNOWN_LAYER_CYCLES: list[list[str]] = []
#: function-level vlagent imports per module still to hoist; the count per module may only go down.
KNOWN_FUNCTION_IMPORTS: dict[str, int] = {}

#: Module-level state that code changes, each with its reason: caches of loaded things, never a
#: registry of what the program is made of (that is built once and passed down). agent/ has none.
MODULE_CACHES: dict[tuple[str, str], str] = {
    ("vlagent.distributed.ray_index", "_SOURCES"): "per Ray worker process: the opened image sources",
    ("vlagent.distributed.ray_text_index", "_CONTEXTS"): "per Ray worker process: the OCR context",
    ("vlagent.index.text_readers", "_CTX"): "the loky worker pool's context, made once per process",
    ("vlagent.index.text_readers", "_BACKGROUND"): "background index builds still running (joined at exit)",
    ("vlagent.models.hub", "_verdicts"): "the hub's reachability, asked once per process",
    ("vlagent.models.loading", "_slots"): "the loaded models, keyed by the settings they depend on",
}

#: methods that change a container in place
MUTATORS = {"append", "extend", "update", "setdefault", "pop", "clear", "add", "remove", "insert", "discard", "popitem"}

#: nothing below the agent imports these
UPPER = ("vlagent.tools", "vlagent.agent", "vlagent.cli", "vlagent.api", "vlagent.web", "vlagent.evals")

#: the agent's view of the tools is the registry: it never names a tool module
TOOL_PACKAGE = "vlagent.tools"


@dataclass(frozen=True)
class Import:
    source: str
    target: str
    kind: str  # "module", "function" or "typing"
    line: int


@dataclass
class Graph:
    modules: dict[str, Path]
    imports: list[Import] = field(default_factory=list)

    def edges(self) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {m: set() for m in self.modules}
        for imp in self.imports:
            if imp.target != imp.source:
                out[imp.source].add(imp.target)
        return out


def layer_of(module: str) -> str:
    """The folder (layer) a module belongs to: ``vlagent.models.clip`` → ``models``; the root
    modules (``vlagent.settings``) → ``root``; the package __init__ itself → ``facade``."""
    parts = module.split(".")
    if module == "vlagent":
        return "facade"
    if len(parts) == 2 and parts[1] not in RANK:
        return "root"
    return parts[1]


def find_modules(root: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for folder, package in PACKAGES.items():
        base = root / folder
        for path in sorted(base.rglob("*.py")):
            if "suites" in path.parts:
                continue
            rel = path.relative_to(base).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            found[".".join([package, *parts])] = path
    return found


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The module ``name`` lives in (``vlagent.models.clip.ClipModel`` → ``vlagent.models.clip``)."""
    while name:
        if name in modules:
            return name
        if "." not in name:
            return None
        name = name.rsplit(".", 1)[0]
    return None


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def module_imports(path: Path, module: str, modules: dict[str, Path]) -> list[Import]:
    """Every vlagent import in ``path``, with where it sits (module level, in a function, typing only)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    is_package = path.name == "__init__.py"
    out: list[Import] = []

    def names(node: ast.Import | ast.ImportFrom) -> list[str]:
        if isinstance(node, ast.Import):
            return [a.name for a in node.names]
        if node.level:
            package = module if is_package else module.rsplit(".", 1)[0]
            base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
            name = f"{base}.{node.module}" if node.module else base
        else:
            name = node.module or ""
        # `from vlagent.tools import ocr` imports the submodule; `from x import Name` the module x
        return [f"{name}.{a.name}" if f"{name}.{a.name}" in modules else name for a in node.names]

    def walk(node: ast.AST, kind: str) -> None:
        for child in ast.iter_child_nodes(node):
            child_kind = kind
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                child_kind = "function" if kind == "module" else kind
            if isinstance(child, ast.If) and _is_type_checking(child.test):
                for stmt in child.body:
                    walk_stmt(stmt, "typing" if kind == "module" else kind)
                for stmt in child.orelse:
                    walk_stmt(stmt, kind)
                continue
            walk_stmt(child, child_kind)

    def walk_stmt(node: ast.AST, kind: str) -> None:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for name in names(node):
                target = _resolve(name, modules) if name.startswith("vlagent") else None
                if target is not None:
                    out.append(Import(module, target, kind, node.lineno))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)) and kind == "module":
            kind = "function"
        walk(node, kind)

    walk(tree, "module")
    return out


def build_graph(root: Path) -> Graph:
    modules = find_modules(root)
    graph = Graph(modules)
    for module, path in modules.items():
        graph.imports.extend(module_imports(path, module, modules))
    return graph


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one node (Tarjan), each sorted: one
    entry per circle of modules, however many paths run round it."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    sys.setrecursionlimit(max(10000, sys.getrecursionlimit()))

    def strong(node: str) -> None:
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                strong(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            strong(node)
    return sorted(found)


def with_package_inits(graph: Graph) -> dict[str, set[str]]:
    """The imports that run when a module is imported (module level: a function's run later, a
    typing one never), plus the ones Python adds: importing ``vlagent.agent.plan`` first runs
    each package ``__init__`` above it (``vlagent``, ``vlagent.agent``)."""
    edges = Graph(graph.modules, [i for i in graph.imports if i.kind == "module"]).edges()
    for module in graph.modules:
        parts = module.split(".")
        for n in range(1, len(parts)):
            package = ".".join(parts[:n])
            if package in graph.modules and package != module:
                edges[module].add(package)
    return edges


def module_state(root: Path) -> list[tuple[str, str, str]]:
    """(module, name, how) for each module-level name that code changes: ``global name``, an
    item assigned (``NAME[k] = v``) or a mutating method called (``NAME.append(x)``)."""
    found: list[tuple[str, str, str]] = []
    for module, path in find_modules(root).items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = set()
        for node in tree.body:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
            names |= {t.id for t in targets if isinstance(t, ast.Name)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Global):
                found += [(module, n, f"global, line {node.lineno}") for n in node.names]
            elif isinstance(node, (ast.Assign, ast.AugAssign, ast.Delete)):
                targets = node.targets if isinstance(node, (ast.Assign, ast.Delete)) else [node.target]
                found += [
                    (module, t.value.id, f"item set, line {node.lineno}") for t in targets
                    if isinstance(t, ast.Subscript) and isinstance(t.value, ast.Name) and t.value.id in names
                ]  # fmt: skip
            elif (
                isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in MUTATORS
                and isinstance(node.func.value, ast.Name) and node.func.value.id in names
            ):  # fmt: skip
                found.append((module, node.func.value.id, f".{node.func.attr}(), line {node.lineno}"))
    return sorted(set(found))


def layer_edges(graph: Graph) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for imp in graph.imports:
        a, b = layer_of(imp.source), layer_of(imp.target)
        out.setdefault(a, set())
        out.setdefault(b, set())
        if a != b:
            out[a].add(b)
    return out


def upward_imports(graph: Graph) -> list[str]:
    """Imports from a layer into a higher one or a sibling on the same rank."""
    offenders = []
    for imp in graph.imports:
        a, b = layer_of(imp.source), layer_of(imp.target)
        if a == b:
            continue
        if RANK[b] >= RANK[a]:
            offenders.append(f"{imp.source} ({a}) imports {imp.target} ({b}), {imp.kind} level, line {imp.line}")
    return sorted(offenders)


def below_agent_importing_upper(graph: Graph) -> list[str]:
    offenders = []
    for imp in graph.imports:
        if RANK[layer_of(imp.source)] >= RANK["agent"]:
            continue
        if any(imp.target == u or imp.target.startswith(u + ".") for u in UPPER):
            offenders.append(f"{imp.source} imports {imp.target} ({imp.kind} level, line {imp.line})")
    return sorted(offenders)


def function_level_imports(graph: Graph) -> list[str]:
    return sorted(
        f"{imp.source} imports {imp.target} inside a function (line {imp.line})"
        for imp in graph.imports
        if imp.kind == "function" and (imp.source, imp.target) not in ALLOWED_FUNCTION_IMPORTS
    )


def _fmt(items: list) -> str:
    return "\n  " + "\n  ".join(" -> ".join(i) if isinstance(i, list) else str(i) for i in items)


# ---------------------------------------------------------------- the checks on this tree

GRAPH = build_graph(ROOT)


def test_every_module_is_in_a_known_layer() -> None:
    unknown = sorted({layer_of(m) for m in GRAPH.modules} - set(RANK))
    assert unknown == [], f"folders missing from LAYERS: {unknown}"


def test_no_import_cycles_between_modules() -> None:
    found = cycles(GRAPH.edges())
    new = [c for c in found if c not in KNOWN_CYCLES]
    fixed = [c for c in KNOWN_CYCLES if c not in found]
    assert new == [], "import circles (counting function-level and TYPE_CHECKING imports):" + _fmt(new)
    assert fixed == [], "circles gone: drop them from KNOWN_CYCLES:" + _fmt(fixed)


def test_no_import_circle_through_a_package_init() -> None:
    """A package ``__init__`` that imports its own modules (to register them) is a circle: each
    of those modules first runs the ``__init__``."""
    found = cycles(with_package_inits(GRAPH))
    assert found == [], "import circles through a package __init__:" + _fmt(found)


def test_no_module_level_registry() -> None:
    """Nothing the program is made of lives in a module-level container that code changes: the
    agent's cards and tools are built once and passed down. Only the listed caches remain."""
    found = module_state(ROOT)
    unlisted = [f"{m}.{n} ({how})" for m, n, how in found if (m, n) not in MODULE_CACHES]
    in_agent = [f"{m}.{n} ({how})" for m, n, how in found if m.startswith("vlagent.agent")]
    stale = sorted(f"{m}.{n}" for m, n in MODULE_CACHES if not any((m, n) == (fm, fn) for fm, fn, _ in found))
    assert unlisted == [] and in_agent == [], "module-level state that code changes:" + _fmt(unlisted + in_agent)
    assert stale == [], "no longer changed at module level: drop from MODULE_CACHES:" + _fmt(stale)


def test_no_cycles_between_layers() -> None:
    found = cycles(layer_edges(GRAPH))
    assert found == KNOWN_LAYER_CYCLES, "circles between folders:" + _fmt(found)


def test_nothing_below_the_agent_imports_the_agent_tools_or_front_ends() -> None:
    offenders = below_agent_importing_upper(GRAPH)
    assert offenders == [], "imports up from below agent/:" + _fmt(offenders)


def test_imports_point_down_the_layer_table() -> None:
    offenders = [o for o in upward_imports(GRAPH) if tuple(o.split(" ")[i] for i in (0, 3)) not in KNOWN_UPWARD]
    assert offenders == [], "imports against the layer order:" + _fmt(offenders)


def test_no_function_level_imports_of_vlagent_modules() -> None:
    counts: dict[str, int] = {}
    for line in function_level_imports(GRAPH):
        counts[line.split(" ")[0]] = counts.get(line.split(" ")[0], 0) + 1
    grew = [
        line for line in function_level_imports(GRAPH)
        if counts[line.split(" ")[0]] > KNOWN_FUNCTION_IMPORTS.get(line.split(" ")[0], 0)
    ]  # fmt: skip
    shrank = sorted(m for m, n in KNOWN_FUNCTION_IMPORTS.items() if counts.get(m, 0) < n)
    assert grew == [], "function-level vlagent imports (move the code, or list it with a reason):" + _fmt(grew)
    assert shrank == [], "fewer function-level imports than listed: lower KNOWN_FUNCTION_IMPORTS for" + _fmt(shrank)


def test_the_allow_list_is_still_needed() -> None:
    present = {(i.source, i.target) for i in GRAPH.imports if i.kind == "function"}
    stale = sorted(set(ALLOWED_FUNCTION_IMPORTS) - present)
    assert stale == [], f"allow-list entries no longer needed: {stale}"


def test_the_root_holds_infrastructure_only() -> None:
    root = sorted(m for m in GRAPH.modules if layer_of(m) == "root")
    assert root == ["vlagent.cache", "vlagent.errors", "vlagent.fileio", "vlagent.settings"]


def test_the_agent_reads_its_tools_from_the_registry_only() -> None:
    """The agent (graph, plan, answers, build) and its test fakes never name a tool module:
    adding a tool is one module plus its spec (the registry loads the built-in ones by name, as
    it loads plugins' entry points)."""
    mods = dict(GRAPH.modules)
    mods["tests.test_agent_graph"] = ROOT / "tests" / "test_agent_graph.py"
    offenders = []
    for module, path in mods.items():
        if not module.startswith(("vlagent.agent", "tests.")):
            continue
        for imp in module_imports(path, module, GRAPH.modules):
            if imp.target.startswith(TOOL_PACKAGE):
                offenders.append(f"{module} imports {imp.target}")
    assert offenders == [], _fmt(offenders)


# ---------------------------------------------------------------- the checks can fail


def _synthetic(tmp_path: Path, files: dict[str, str]) -> Graph:
    for rel, text in files.items():
        path = tmp_path / "src" / "vlagent" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    for folder in ("tools", "evals", "prompts"):
        (tmp_path / folder).mkdir(exist_ok=True)
    return build_graph(tmp_path)


def test_the_checks_catch_a_circle_an_upward_import_and_a_hidden_import(tmp_path: Path) -> None:
    graph = _synthetic(
        tmp_path,
        {
            "__init__.py": "",
            "settings.py": "",
            "data/__init__.py": "",
            "data/images.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from vlagent.models.clip import Clip\n",
            "models/__init__.py": "",
            "models/clip.py": "def load():\n    from vlagent.data import images\n    import torch  # heavy, optional\n",
            "index/__init__.py": "",
            "index/store.py": "from vlagent.agent.graph import G\n",
            "agent/__init__.py": "",
            "agent/graph.py": "from . import plan\n",
            "agent/plan.py": "from .graph import G\n",
        },
    )
    kinds = {(i.source, i.target): i.kind for i in graph.imports}
    assert kinds[("vlagent.data.images", "vlagent.models.clip")] == "typing"
    assert kinds[("vlagent.models.clip", "vlagent.data.images")] == "function"
    assert kinds[("vlagent.agent.graph", "vlagent.agent.plan")] == "module"
    assert cycles(graph.edges()) == [
        ["vlagent.agent.graph", "vlagent.agent.plan"],
        ["vlagent.data.images", "vlagent.models.clip"],
    ]
    assert cycles(layer_edges(graph)) == [["data", "models"]]
    assert below_agent_importing_upper(graph) == ["vlagent.index.store imports vlagent.agent.graph (module level, line 1)"]
    assert [o.split(",")[0] for o in upward_imports(graph)] == [
        "vlagent.data.images (data) imports vlagent.models.clip (models)",
        "vlagent.index.store (index) imports vlagent.agent.graph (agent)",
    ]
    assert function_level_imports(graph) == ["vlagent.models.clip imports vlagent.data.images inside a function (line 2)"]


def test_the_checks_catch_a_registering_init_and_a_registry(tmp_path: Path) -> None:
    _synthetic(
        tmp_path,
        {
            "__init__.py": "",
            "agent/__init__.py": "from vlagent.agent import cards as _cards\n",
            "agent/cards.py": "from vlagent.agent.questions import register\nregister('vqa')\n",
            "agent/questions.py": "_CARDS = {}\n_SEEN = []\ndef register(name):\n    _CARDS[name] = 1\n    _SEEN.append(name)\n",
        },
    )
    graph = build_graph(tmp_path)
    assert cycles(graph.edges()) == []  # no circle in the import statements themselves
    assert cycles(with_package_inits(graph)) == [["vlagent.agent", "vlagent.agent.cards", "vlagent.agent.questions"]]
    assert [(m, n) for m, n, _ in module_state(tmp_path)] == [
        ("vlagent.agent.questions", "_CARDS"), ("vlagent.agent.questions", "_SEEN"),
    ]  # fmt: skip


# ---------------------------------------------------------------- figures for any checkout


def report(root: Path) -> str:
    graph = build_graph(root)
    found = cycles(graph.edges())
    fn = [i for i in graph.imports if i.kind == "function"]
    lines = [
        f"modules: {len(graph.modules)}",
        "root modules: " + ", ".join(sorted(m for m in graph.modules if layer_of(m) == "root")),
        f"module circles (all imports): {len(found)}, modules in them: {sum(map(len, found))}",
        *("  " + " ".join(c) for c in found),
        f"module circles (module-level imports only): {len(cycles(Graph(graph.modules, [i for i in graph.imports if i.kind == 'module']).edges()))}",
        f"module circles through a package __init__: {len(cycles(with_package_inits(graph)))}",
        f"module-level names that code changes: {', '.join(sorted({m + '.' + n for m, n, _ in module_state(root)})) or 'none'}",
        f"folder circles: {cycles(layer_edges(graph))}",
        f"function-level vlagent imports: {len(fn)}",
        f"imports against the layer order: {len(upward_imports(graph))}",
        f"imports up from below agent/: {len(below_agent_importing_upper(graph))}",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    print(report(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT))
