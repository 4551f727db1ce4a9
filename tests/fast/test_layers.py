"""The package's layers (docs/architecture.md), read from its imports: no module imports a higher
layer, nothing imports the apps or devtools, and no modules import each other in a loop.

Every import counts, also one inside a function: a deferred import is still a dependency."""
import ast
import shutil
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "imgsearch_helpers"
# bottom to top; a module belongs to the first prefix that matches its dotted name
LAYERS = [
    ("base", ["_io", "config", "errors", "vectors", "parallel", "local_server", "browser"]),
    ("data", ["data"]),
    ("embed", ["embed"]),
    ("runtime", ["runtime"]),
    ("models", ["models"]),
    ("index", ["index"]),
    ("feder", ["feder"]),
    ("retrieval", ["retrieval"]),
    ("evaluation", ["evaluation"]),
    ("gallery", ["gallery"]),
    ("apps", ["serve", "scaleout"]),
    ("devtools", ["devtools"]),
]
TOP = {"apps", "devtools"}  # nothing in the package imports these from another layer


def layer_of(module: str) -> str:
    for layer, prefixes in LAYERS:
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return layer
    raise AssertionError(f"{module} is in no layer: add it to docs/architecture.md and LAYERS here")


RANK = {layer: n for n, (layer, _) in enumerate(LAYERS)}


def module_name(path: Path, package: Path = PACKAGE) -> tuple[str, bool]:
    parts = list(path.relative_to(package).with_suffix("").parts)
    is_package = parts[-1] == "__init__"
    return ".".join(parts[:-1] if is_package else parts), is_package


def imports(path: Path, package: Path = PACKAGE) -> list[tuple[int, str]]:
    """(line, imported module, dotted without the package prefix) of every package import in `path`."""
    module, is_package = module_name(path, package)
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, *([node.module] if node.module else [])])
                candidates = [f"{target}.{alias.name}" if target else alias.name for alias in node.names]
            elif node.module and node.module.startswith("imgsearch_helpers"):
                target = node.module.removeprefix("imgsearch_helpers").lstrip(".")
                candidates = [f"{target}.{alias.name}".lstrip(".") for alias in node.names]
            else:
                continue
            # `from pkg import submodule` imports the submodule; `from pkg import name` the package
            found += [(node.lineno, c) if (package / Path(*c.split("."))).with_suffix(".py").exists()
                      or (package / Path(*c.split("."))).is_dir() else (node.lineno, target) for c in candidates]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name.removeprefix("imgsearch_helpers.")) for a in node.names
                      if a.name.startswith("imgsearch_helpers.")]
    return [(line, target) for line, target in found if target]


def graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    edges = defaultdict(set)
    for path in package.rglob("*.py"):
        module, _ = module_name(path, package)
        for _, target in imports(path, package):
            if target != module:
                edges[module].add(target)
    return edges


def upward_imports(package: Path = PACKAGE) -> list[str]:
    """Each import that runs up a layer, or into the apps or devtools from another layer."""
    wrong = []
    for path in sorted(package.rglob("*.py")):
        module, _ = module_name(path, package)
        if not module:
            continue
        for line, target in imports(path, package):
            here, there = layer_of(module), layer_of(target)
            if RANK[there] > RANK[here] or (there in TOP and there != here):
                wrong.append(f"{path.relative_to(package.parent)}:{line}: {module} ({here}) imports {target} ({there})")
    return wrong


def loops(package: Path = PACKAGE) -> list[str]:
    """Each loop of modules that import each other (found by a depth-first walk)."""
    edges, state, found = graph(package), {}, []

    def visit(node, trail):
        state[node] = "open"
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "open":
                found.append(" -> ".join(trail[trail.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, trail + [nxt])
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    return found


def test_every_module_has_a_layer():
    for path in PACKAGE.rglob("*.py"):
        module, _ = module_name(path)
        if module:
            layer_of(module)


def test_no_import_runs_up_a_layer_or_into_the_apps():
    wrong = upward_imports()
    assert not wrong, "imports that run up the layers:\n" + "\n".join(wrong)


def test_no_modules_import_each_other_in_a_loop():
    found = loops()
    assert not found, "modules that import each other:\n" + "\n".join(found)


def test_the_checks_catch_a_planted_upward_import_and_a_loop(tmp_path):
    """The rules themselves are tested, on a copy of the package with two bad imports planted."""
    copy = tmp_path / "imgsearch_helpers"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__", "js"))
    (copy / "models" / "planted.py").write_text("from ..serve.cli import main\n")
    (copy / "data" / "planted.py").write_text("from ..config import get_settings\n")
    (copy / "config.py").write_text((copy / "config.py").read_text() + "\nfrom .data import planted\n")
    assert any("models.planted (models) imports serve.cli (apps)" in line for line in upward_imports(copy))
    assert any("config (base) imports data.planted (data)" in line for line in upward_imports(copy))
    assert any("config -> data.planted -> config" in loop for loop in loops(copy))
