"""Every setting in one place: explicit argument > environment variable > default."""
from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path

from .errors import UsageError

# Environment variables, one per setting.
ENV = {
    "data_dir": "IMGSEARCH_DATA_DIR",
    "cache_dir": "IMGSEARCH_CACHE_DIR",
    "weights_dir": "IMGSEARCH_WEIGHTS_DIR",
    "results_dir": "IMGSEARCH_RESULTS_DIR",
    "slice": "IMGSEARCH_SLICE",
    "milvus_uri": "MILVUS_URI",
    "milvus_token": "MILVUS_TOKEN",
    "feder_js": "IMGSEARCH_FEDER_JS",
    "assets_dir": "IMGSEARCH_ASSETS_DIR",
    "chromium": "IMGSEARCH_CHROMIUM",
    "detector_sha256": "IMGSEARCH_DETECTOR_SHA256",
    "backend": "IMGSEARCH_BACKEND",
}
PATHS = ("data_dir", "cache_dir", "weights_dir", "results_dir", "feder_js", "assets_dir", "chromium")
SLICES = ("tiny", "full")


def repo_dir() -> Path | None:
    """The checkout holding this package when it is installed editable, else None."""
    repo = Path(__file__).resolve().parents[1]
    return repo if (repo / "pyproject.toml").is_file() else None


def project_dir() -> Path:
    """The repo's `data/` for an editable install, else a per-user cache folder."""
    repo = repo_dir()
    return repo / "data" if repo else Path.home() / ".cache" / "imgsearch"


def resolve_path(value) -> Path:
    """Relative paths are taken from the repo root (else the working directory), so a notebook
    kernel, which runs in notebooks/, sees the same folder as the shell that set the variable."""
    path = Path(value).expanduser()
    if not path.is_absolute():
        path = (repo_dir() or Path.cwd()) / path
    return path.resolve()


def display_path(path) -> str:
    """A path as shown to readers, true where they stand: inside a folder an environment variable
    set, as that variable (`$IMGSEARCH_DATA_DIR/object/dog.jpg`: one machine's folder says nothing
    to another reader); else relative to the working folder when it is at most two levels up
    (`data/cache` from the repo, `../data/cache` from notebooks/), else absolute (`~` for home)."""
    path = Path(path).resolve()
    variable = _under_variable(path)
    if variable:
        return variable
    relative = Path(os.path.relpath(path, Path.cwd()))
    if relative.parts.count("..") <= 2:
        return str(relative)
    home = Path.home()
    return "~/" + str(path.relative_to(home)) if path.is_relative_to(home) else str(path)


FOLDERS = tuple(name for name in PATHS if name.endswith("_dir"))  # the settings that name a folder


def _under_variable(path: Path) -> str | None:
    """`$VARIABLE/rest` for the deepest folder an environment variable of FOLDERS names that holds `path`."""
    found = None
    for var in (ENV[name] for name in FOLDERS):
        if os.environ.get(var):
            folder = resolve_path(os.environ[var])
            if path.is_relative_to(folder) and (found is None or len(folder.parts) > len(found[1].parts)):
                found = (var, folder)
    if found is None:
        return None
    rest = path.relative_to(found[1]).as_posix()
    return f"${found[0]}" if rest == "." else f"${found[0]}/{rest}"


def is_milvus_lite(uri: str) -> bool:
    """A local path means embedded Milvus Lite; a URI with a scheme means a server."""
    return not str(uri).startswith(("http://", "https://", "tcp://", "unix:"))


@dataclass(frozen=True)
class Settings:
    data_dir: Path  # holds reverse_image_search/ and object/
    cache_dir: Path  # embedding cache and the embedded Milvus Lite database
    weights_dir: Path  # local model checkpoints that replace hub downloads
    results_dir: Path  # metric rows recorded by notebooks and benchmarks
    slice: str  # "tiny" or "full"
    milvus_uri: str  # a local path runs Milvus Lite; http(s)://... targets a server
    milvus_token: str
    feder_js: Path | None  # a local copy of Feder's script; None: assets_dir if fetched there, else the CDN
    assets_dir: Path  # browser assets fetched for offline use (`make feder-js` puts Feder's script here)
    chromium: Path | None  # the Chromium executable for headless pages; None: `chromium` on the PATH
    detector_sha256: str  # the sha256 a detector checkpoint without a pinned one must have ("" if none)
    backend: str  # where networks run: "auto" (the fastest verified), "openvino", "onnxruntime", "torch"

    @property
    def uses_milvus_lite(self) -> bool:
        return is_milvus_lite(self.milvus_uri)

    def describe(self) -> str:
        """The settings as a reader should see them: a folder that an environment variable set is
        shown as the variable (with the folder it stands for when unset), not as one machine's path."""
        token = "(set)" if self.milvus_token else "(none)"
        rows = [(f.name, self._shown(f.name) if isinstance(getattr(self, f.name), Path)
                 else getattr(self, f.name)) for f in fields(self)
                if f.name not in ("milvus_token", "milvus_uri", "feder_js", "chromium", "detector_sha256")]
        rows.append(("milvus_uri", display_path(self.milvus_uri) if self.uses_milvus_lite else self.milvus_uri))
        rows.append(("milvus_token", token))
        rows.append(("feder_js", display_path(self.feder_js) if self.feder_js else "(default: assets_dir or the CDN)"))
        rows.append(("chromium", display_path(self.chromium) if self.chromium else "(default: chromium on the PATH)"))
        return "\n".join(f"{name:>12}: {value}" for name, value in rows)

    def _shown(self, name: str) -> str:
        var, value = ENV[name], getattr(self, name)
        if os.environ.get(var) and resolve_path(os.environ[var]) == value:
            return f"${var} (unset: {display_path(_defaults()[name])})"
        return display_path(value)


def _defaults() -> dict:
    base = project_dir()
    return {
        "data_dir": base,
        "cache_dir": base / "cache",
        "weights_dir": base / "weights",
        "results_dir": base / "runs",
        "slice": "full",
        "milvus_uri": None,  # derived from cache_dir below
        "milvus_token": "",
        "feder_js": None,
        "assets_dir": base / "feder",
        "chromium": None,
        "detector_sha256": "",
        "backend": "auto",
    }


def get_settings(**overrides) -> Settings:
    """Resolve settings; keyword arguments win over environment variables."""
    unknown = set(overrides) - set(ENV)
    if unknown:
        raise TypeError(f"unknown setting(s): {', '.join(sorted(unknown))}; known: {', '.join(ENV)}")
    values = _defaults()
    for name, var in ENV.items():
        if overrides.get(name) is not None:
            values[name] = overrides[name]
        elif os.environ.get(var):
            values[name] = os.environ[var]
    for name in PATHS:
        if values[name] is not None:
            values[name] = resolve_path(values[name])
    if not values["milvus_uri"]:
        values["milvus_uri"] = str(values["cache_dir"] / "milvus" / "imgsearch.db")
    if values["slice"] not in SLICES:
        raise UsageError(f"unknown slice {values['slice']!r}: choose one of {', '.join(SLICES)}")
    return Settings(**values)

