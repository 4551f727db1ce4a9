"""The extras in pyproject.toml declare what the commands import.

What these tests prove:
- every third-party module the package imports (at the top of a module or inside a function; an
  import wrapped in `try: ... except ImportError` is optional and left out) is provided by a
  distribution that the package or one of its extras brings in;
- the code `imgsearch` and `imgsearch serve` can reach (every import, deferred ones too) needs only
  what `[app]` brings in, but for the few imports named in ASKED_FOR: features the app reaches only
  when asked for them (a faster runtime, Ray, CLIP, ...), each brought in by the extra named there;
- every range in pyproject.toml admits the version pinned in requirements.txt;
- the wheel built from this checkout, installed into a new venv that holds nothing but the
  distributions `[app]` brings in (found as pip finds them: the wheel's own metadata, then each
  distribution's requirements, extras and markers), runs `imgsearch --help` and `imgsearch serve
  --help`, passes `pip check`, and imports the app's modules and every third-party module the
  app's code imports.

What they do not prove: that pip, online, picks versions that work (the new venv links the
versions installed in .venv, the pins, instead of downloading); that the code works beyond its
imports (the other tests run it); anything about another Python or platform.
"""
import ast
import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import venv
import zipfile
from collections import defaultdict
from email.parser import Parser
from functools import cache
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version
from test_layers import PACKAGE, graph, module_name

ROOT = PACKAGE.parent
NAME = "imgsearch-helpers"
APP_ROOTS = ["serve.cli", "serve.api", "serve.app"]  # what `imgsearch` and `make app` run
# What the app's code may import without [app] bringing it in: features the app reaches only when
# asked for them, each with the extra that brings it in.
ASKED_FOR = {
    "openvino": "fast", "onnxruntime": "fast", "nncf": "fast",  # a faster runtime, used when installed
    "ray": "ray",  # imgsearch ingest --ray
    "open_clip": "clip",  # CLIP, by name, where its weights download
    "playwright": "notebooks",  # notebook 01's screenshot of the app
    "yolov5": "detect",  # the detector of notebook 04
    "milvus": "server",  # a Milvus server of its own
}


def pyproject_requirements() -> list[Requirement]:
    """The package's own requirements as the wheel states them: extras as `extra == "..."` markers."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    own = [Requirement(line) for line in project["dependencies"]]
    for extra, lines in project["optional-dependencies"].items():
        own += [Requirement(f'{line}; extra == "{extra}"') for line in lines]
    return own


def wheel_requirements(wheel: Path) -> list[Requirement]:
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        fields = Parser().parsestr(archive.read(name).decode())
    return [Requirement(line) for line in fields.get_all("Requires-Dist") or []]


def selected(requirements, extras) -> list[Requirement]:
    """The requirements a distribution asked for with `extras` brings in (markers evaluated here)."""
    return [r for r in requirements
            if r.marker is None or any(r.marker.evaluate({"extra": e}) for e in {"", *extras})]


@cache
def installed() -> dict[str, tuple[str, list[Requirement]]]:
    """(version, requirements) of the distributions installed beside this Python, by canonical name."""
    here = Path(sysconfig.get_paths()["purelib"])
    return {canonicalize_name(d.metadata["Name"]): (d.version, [Requirement(line) for line in d.requires or []])
            for d in metadata.distributions(path=[str(here)])}


def closure(extras, own: list[Requirement]) -> tuple[dict[str, str], list[str]]:
    """(canonical name -> installed version of every distribution that the package with `extras`
    brings in, the requirements among them that refuse the installed version)."""
    found, refused, done = {}, [], set()
    todo = [(r, r.extras, NAME) for r in selected(own, extras)]
    while todo:
        requirement, wanted, asker = todo.pop()
        name = canonicalize_name(requirement.name)
        if name == NAME:
            todo += [(r, r.extras, NAME) for r in selected(own, wanted) if (NAME, frozenset(wanted)) not in done]
            done.add((NAME, frozenset(wanted)))
            continue
        version, asked = installed()[name]  # a KeyError names a distribution that is not installed
        if not requirement.specifier.contains(Version(version), prereleases=True):
            refused.append(f"{asker} asks for {requirement}, installed {version}")
        found[name] = version
        if (name, frozenset(wanted)) not in done:
            done.add((name, frozenset(wanted)))
            todo += [(r, r.extras, name) for r in selected(asked, wanted)]
    return found, refused


@cache
def extras_closure(extras: tuple[str, ...]) -> set[str]:
    return set(closure(extras, pyproject_requirements())[0])


def optional_lines(tree: ast.AST) -> set[int]:
    """Lines inside a `try` whose handler catches ImportError: imports there are optional."""
    lines = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and any(
                "ImportError" in ast.unparse(h.type or ast.Name("BaseException")) for h in node.handlers):
            lines |= {n.lineno for part in node.body for n in ast.walk(part) if hasattr(n, "lineno")}
    return lines


def third_party_imports(path: Path) -> set[str]:
    """Top-level names of the non-standard, non-package modules `path` imports (not optional ones)."""
    tree = ast.parse(path.read_text())
    optional, names = optional_lines(tree), set()
    for node in ast.walk(tree):
        if getattr(node, "lineno", None) in optional:
            continue
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return {n for n in names if n not in sys.stdlib_module_names and n != PACKAGE.name}


@cache
def package_imports() -> dict[str, set[str]]:
    """Package module (dotted, without the package's name) -> the third-party modules it imports."""
    return {module_name(path)[0]: third_party_imports(path) for path in PACKAGE.rglob("*.py")}


@cache
def distributions_of_modules() -> dict[str, list[str]]:
    return metadata.packages_distributions()


def providers(module: str) -> set[str]:
    return {canonicalize_name(d) for d in distributions_of_modules().get(module, [])}


def undeclared(imports: dict[str, set[str]], declared: set[str]) -> dict[str, list[str]]:
    """Third-party module -> the package modules importing it, for those no `declared` distribution provides."""
    users = defaultdict(set)
    for module, names in imports.items():
        for name in names:
            if not providers(name) & declared:
                users[name].add(module or "__init__")
    return {name: sorted(modules) for name, modules in users.items()}


def reachable(roots) -> set[str]:
    """Package modules `roots` import, directly or not, deferred imports too."""
    edges, seen, todo = graph(), set(), list(roots)
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            parts = module.split(".")
            todo += [".".join(parts[:n]) for n in range(1, len(parts))] + sorted(edges.get(module, ()))
    return seen


def app_code() -> dict[str, set[str]]:
    imports = package_imports()
    return {module: imports[module] for module in reachable(APP_ROOTS)}


def test_every_third_party_import_is_declared_by_the_package_or_an_extra():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    missing = undeclared(package_imports(), extras_closure(tuple(extras)))
    assert not missing, f"imported but declared nowhere in pyproject.toml: {missing}"


def test_the_app_needs_only_app_or_a_feature_it_asks_for():
    missing = undeclared(app_code(), extras_closure(("app",)))
    assert set(missing) <= set(ASKED_FOR), f"the app's code imports these, which [app] does not bring in: {missing}"
    for name, extra in ASKED_FOR.items():
        assert providers(name) & extras_closure((extra,)), f"[{extra}] does not bring in {name}"
        assert not providers(name) & extras_closure(("app",)), f"[app] brings in {name}: drop it from ASKED_FOR"


def test_the_checks_see_an_undeclared_import_and_leave_out_an_optional_one(tmp_path):
    """The scan itself: a plain or deferred import counts, one under `except ImportError` does not;
    hnswlib is not in the package's own requirements and is in `engines`."""
    planted = tmp_path / "planted.py"
    planted.write_text("import yaml\ntry:\n    import IPython\nexcept ImportError:\n    pass\n\n\n"
                       "def later():\n    from hnswlib import Index\n")
    assert third_party_imports(planted) == {"yaml", "hnswlib"}
    assert undeclared({"planted": {"hnswlib"}}, extras_closure(())) == {"hnswlib": ["planted"]}
    assert undeclared({"planted": {"hnswlib"}}, extras_closure(("engines",))) == {}


def pins() -> dict[str, str]:
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    pairs = (Requirement(line.split("#")[0]) for line in lines if line.strip() and not line.startswith("#"))
    return {canonicalize_name(r.name): next(iter(r.specifier)).version for r in pairs}


def test_every_range_admits_the_pinned_version():
    pinned = pins()
    for requirement in pyproject_requirements():
        name = canonicalize_name(requirement.name)
        if name in pinned:
            assert requirement.specifier.contains(Version(pinned[name])), f"{requirement} refuses {pinned[name]}"


def test_every_extra_admits_the_installed_pins_but_detect_where_its_comment_says():
    """pyproject.toml: `detect` is not in `all` because yolov5 asks for huggingface-hub<0.25."""
    assert closure(["all"], pyproject_requirements())[1] == []
    _, refused = closure(["detect"], pyproject_requirements())
    assert refused and all(line.startswith("yolov5 asks for huggingface-hub<0.25") for line in refused), refused


def link_site_packages(wanted: set[str], site: Path) -> None:
    """Fill `site` with links to the installed files of the distributions in `wanted`, and nothing
    else: a folder is linked whole when every file in it belongs to them, else entered."""
    here = Path(sysconfig.get_paths()["purelib"])
    owners = defaultdict(set)  # path parts of each installed file -> the distributions that list it
    for dist in metadata.distributions(path=[str(here)]):
        name = canonicalize_name(dist.metadata["Name"])
        for file in dist.files or ():
            if file.parts[0] != "..":
                owners[file.parts].add(name)
    counts, children = defaultdict(lambda: [0, 0]), defaultdict(set)  # [files not wanted, wanted] below
    for parts, names in owners.items():
        keep = bool(names & wanted)
        for n in range(len(parts)):
            counts[parts[:n]][keep] += 1
            children[parts[:n]].add(parts[:n + 1])

    def place(parts: tuple[str, ...]) -> None:
        if parts in owners:
            if owners[parts] & wanted:
                (site / Path(*parts)).symlink_to(here / Path(*parts))
        elif counts[parts][False] == 0:
            (site / Path(*parts)).symlink_to(here / Path(*parts), target_is_directory=True)
        elif counts[parts][True]:
            (site / Path(*parts)).mkdir()
            for child in children[parts]:
                place(child)

    for child in children[()]:
        place(child)


def build_wheel(folder: Path) -> Path:
    """The wheel of a copy of the checkout (a build writes into its source folder)."""
    source = folder / "source"
    shutil.copytree(PACKAGE, source / PACKAGE.name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    run(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", source,
        "-w", folder / "wheels", cwd=folder)
    return next((folder / "wheels").glob("*.whl"))


def run(*command, cwd: Path) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"{' '.join(map(str, command))}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_the_wheel_with_app_alone_runs_the_commands_and_imports_what_the_app_uses(tmp_path):
    wheel = build_wheel(tmp_path)
    found, refused = closure(["app"], wheel_requirements(wheel))
    assert refused == []
    wanted = set(found)
    assert {"gradio", "fastapi", "uvicorn", "opencv-python-headless", "faiss-cpu", "hnswlib"} <= wanted
    assert not {"ray", "openvino", "yolov5", "playwright", "jupyterlab"} & wanted
    target = tmp_path / "venv"
    venv.create(target, with_pip=False)
    python = target / "bin" / "python"
    site = Path(run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=tmp_path).strip())
    link_site_packages(wanted, site)
    run(sys.executable, "-m", "pip", "--python", python, "install", "--quiet", "--no-deps", "--no-index",
        "--no-compile", wheel, cwd=tmp_path)
    run(sys.executable, "-m", "pip", "--python", python, "check", cwd=tmp_path)
    left_out = "import importlib.util as u; print([n for n in ('ray', 'openvino', 'playwright') if u.find_spec(n)])"
    assert run(python, "-c", left_out, cwd=tmp_path).strip() == "[]"  # the venv holds only what [app] brings in
    assert "usage: imgsearch" in run(target / "bin" / "imgsearch", "--help", cwd=tmp_path)
    assert "--token" in run(target / "bin" / "imgsearch", "serve", "--help", cwd=tmp_path)
    # every module of the app's code but those of features asked for, and every third-party module the
    # app's code imports, deferred imports too, but those features'
    code = app_code()
    modules = {f"{PACKAGE.name}.{module}".rstrip(".") for module, used in code.items() if not used & set(ASKED_FOR)}
    names = sorted(modules | set().union(*code.values()) - set(ASKED_FOR))
    assert {"imgsearch_helpers.serve.api", "imgsearch_helpers.serve.app", "gradio", "cv2"} <= set(names)
    script = "; ".join([f"import {name}" for name in names] + [f"print({PACKAGE.name}.__file__)"])
    assert run(python, "-c", script, cwd=tmp_path).startswith(str(site))
