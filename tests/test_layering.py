"""The import layers (STYLE.md): scripts > engine > models > utils, no cycle, no script importing a script.

The walker reads every module with `ast`, so imports inside functions (the usual way a cycle is hidden) count as
much as those at the top of a file.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SKIP_DIRS = {"tests", "runs", "datasets", "docs", "__pycache__"}  # not part of the importable project
ENGINE = "engine"  # the engine package (issue 22): sits above models/ and utils/


def module_files(root: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every .py under root outside SKIP_DIRS and hidden folders."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if any(p in SKIP_DIRS or p.startswith(".") for p in rel.parts[:-1]):
            continue
        parts = list(rel.with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        if parts:
            out[".".join(parts)] = path
    return out


def from_module(node: ast.ImportFrom, path: Path, module: str) -> str:
    """The absolute module a `from ... import` statement in `module` (at path) reads from."""
    if not node.level:
        return node.module or ""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    parts = package.split(".")[: len(package.split(".")) - node.level + 1]  # relative: drop level - 1 parts
    return ".".join([*parts, node.module] if node.module else parts)


def imported_names(path: Path, module: str) -> set[str]:
    """Every dotted name an import statement anywhere in the file may load (`from a import b` gives a and a.b)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = from_module(node, path, module)
            names |= {base} | {f"{base}.{a.name}" for a in node.names}
    return names


def private_imports(root: Path) -> list[str]:
    """`from <project module> import _name` statements: a private name shared across modules."""
    modules, bad = module_files(root), []
    for m, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.ImportFrom) and resolve(from_module(node, path, m), modules):
                bad += [f"{m}: {a.name}" for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
    return bad


def resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The project module a dotted name loads (its longest known prefix), or None for a third-party name."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module -> the project modules it imports, plus `engine` for any import of that package (even if absent)."""
    modules = module_files(root)
    graph = {}
    for m, path in modules.items():
        names = imported_names(path, m)
        edges = {resolve(n, modules) for n in names} - {None, m}
        # the engine may not exist in a tree under test; an import of it still breaks the layering
        edges |= {ENGINE for n in names if n.split(".")[0] == ENGINE and ENGINE not in modules}
        graph[m] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    index, low, on_stack, stack, found = {}, {}, set(), [], []
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            v, children = work[-1]
            w = next((c for c in children if c in graph), None)
            if w is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:  # v roots a component: pop it
                    comp = []
                    while not comp or comp[-1] != v:
                        comp.append(stack.pop())
                        on_stack.discard(comp[-1])
                    if len(comp) > 1:
                        found.append(sorted(comp))
            elif w not in index:
                index[w] = low[w] = len(index)
                stack.append(w)
                on_stack.add(w)
                work.append((w, iter(sorted(graph[w]))))
            elif w in on_stack:
                low[v] = min(low[v], index[w])
    return found


def scripts(root: Path) -> set[str]:
    """The script modules: top-level *.py except hubconf.py, and segment/*.py, classify/*.py."""
    out = {p.stem for p in root.glob("*.py") if p.name != "hubconf.py"}
    for task in ("segment", "classify"):
        out |= {f"{task}.{p.stem}" for p in (root / task).glob("*.py") if p.name != "__init__.py"}
    return out


def layer_violations(graph: dict[str, set[str]], layer: str, forbidden: set[str], scripts_: set[str]) -> list[str]:
    """Imports from modules of `layer` (a top package) into a forbidden top package or a script."""
    bad = []
    for m in sorted(graph):
        if m.split(".")[0] != layer:
            continue
        bad += [f"{m} -> {t}" for t in sorted(graph[m]) if t.split(".")[0] in forbidden or t in scripts_]
    return bad


# the project -----------------------------------------------------------------------------------------------------


def test_no_import_cycle():
    """No import cycle in the project, counting imports inside functions."""
    assert cycles(import_graph(ROOT)) == []


def test_utils_imports_neither_models_engine_nor_scripts():
    """utils/ is the bottom layer: it must stay importable without models/, the engine or a script."""
    assert layer_violations(import_graph(ROOT), "utils", {"models", ENGINE}, scripts(ROOT)) == []


def test_models_imports_neither_engine_nor_scripts():
    """models/ sits below the engine and the scripts."""
    assert layer_violations(import_graph(ROOT), "models", {ENGINE}, scripts(ROOT)) == []


def test_no_script_imports_a_script():
    """Scripts share code through the engine, models and utils, never through each other."""
    graph, names = import_graph(ROOT), scripts(ROOT)
    assert sorted(f"{s} -> {t}" for s in names for t in graph.get(s, ()) if t in names) == []


def test_no_private_name_is_imported_across_modules():
    """A name starting with `_` belongs to its module; one that others need gets a public name."""
    assert private_imports(ROOT) == []


# the walker itself, on a small tree ------------------------------------------------------------------------------


def _write(root: Path, files: dict[str, str]) -> Path:
    """Write {relative path: source} under root."""
    for rel, src in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(src)
    return root


def test_walker_finds_a_cycle_closed_inside_a_function(tmp_path):
    """A cycle whose closing import sits in a function body is still a cycle; a third-party import is no edge."""
    root = _write(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/a.py": "import numpy\nfrom pkg.b import f\n",
        "pkg/b.py": "def f():\n    from . import a  # lazy\n    return a\n",
        "pkg/c.py": "from pkg import a\nfrom .b import _helper, __version__\n",
    })
    graph = import_graph(root)
    assert graph["pkg.b"] == {"pkg", "pkg.a"}  # the relative, function-level import (it runs pkg/__init__ too)
    assert graph["pkg.a"] == {"pkg.b"}
    assert cycles(graph) == [["pkg.a", "pkg.b"]]
    assert private_imports(root) == ["pkg.c: _helper"]


def test_walker_sees_layer_and_script_imports(tmp_path):
    """utils importing models or an absent engine, and a script importing a script, are reported."""
    root = _write(tmp_path, {
        "train.py": "import val\n",
        "val.py": "from utils.general import x\n",
        "hubconf.py": "import train\n",
        "segment/train.py": "def run():\n    from segment.val import run\n",
        "segment/val.py": "",
        "utils/__init__.py": "",
        "utils/general.py": "def g():\n    import engine.trainer\n    from models.common import Conv\n",
        "models/__init__.py": "",
        "models/common.py": "import utils.general\n",
    })
    graph, names = import_graph(root), scripts(root)
    assert names == {"train", "val", "segment.train", "segment.val"}
    assert layer_violations(graph, "utils", {"models", ENGINE}, names) == ["utils.general -> engine",
                                                                            "utils.general -> models.common"]
    assert layer_violations(graph, "models", {ENGINE}, names) == []
    assert cycles(graph) == [["models.common", "utils.general"]]
    assert sorted(f"{s} -> {t}" for s in names for t in graph[s] if t in names) == ["segment.train -> segment.val",
                                                                                   "train -> val"]


# the utils leaf ----------------------------------------------------------------------------------------------------

# ROOT is left out: scripts compute their own to put the repository on sys.path before they can import utils
SHARED = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "NUM_THREADS", "LOGGER", "TQDM_BAR_FORMAT", "IMG_FORMATS",
          "VID_FORMATS")


def test_utils_init_is_a_leaf():
    """utils/__init__.py (logging set-up and shared constants) imports no project module, so anything may import it."""
    assert import_graph(ROOT)["utils"] == set()


def test_shared_constants_have_one_definition():
    """Each shared constant is assigned at module level in utils/__init__.py only; the rest import it."""
    owners = {name: [] for name in SHARED}
    for m, path in module_files(ROOT).items():
        for node in ast.parse(path.read_text()).body:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(
                node, ast.AnnAssign) else []
            for t in targets:
                for name in [e.id for e in ast.walk(t) if isinstance(e, ast.Name) and e.id in owners]:
                    owners[name].append(m)
    assert owners == {name: ["utils"] for name in SHARED}
