"""Every setting in one place: explicit argument > environment variable > default."""
from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path

# Environment variables, one per setting.
ENV = {
    "data_dir": "IMGSEARCH_DATA_DIR",
    "cache_dir": "IMGSEARCH_CACHE_DIR",
    "weights_dir": "IMGSEARCH_WEIGHTS_DIR",
    "results_dir": "IMGSEARCH_RESULTS_DIR",
    "slice": "IMGSEARCH_SLICE",
    "milvus_uri": "MILVUS_URI",
    "milvus_token": "MILVUS_TOKEN",
}
SLICES = ("tiny", "full")


def project_dir() -> Path:
    """The repo's `data/` for an editable install, else a per-user cache folder."""
    repo = Path(__file__).resolve().parents[1]
    if (repo / "pyproject.toml").is_file():
        return repo / "data"
    return Path.home() / ".cache" / "imgsearch"


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

    @property
    def uses_milvus_lite(self) -> bool:
        return is_milvus_lite(self.milvus_uri)

    def describe(self) -> str:
        token = "(set)" if self.milvus_token else "(none)"
        rows = [(f.name, getattr(self, f.name)) for f in fields(self) if f.name != "milvus_token"]
        rows.append(("milvus_token", token))
        return "\n".join(f"{name:>12}: {value}" for name, value in rows)


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
    for name in ("data_dir", "cache_dir", "weights_dir", "results_dir"):
        values[name] = Path(values[name]).expanduser().resolve()
    if not values["milvus_uri"]:
        values["milvus_uri"] = str(values["cache_dir"] / "milvus" / "imgsearch.db")
    if values["slice"] not in SLICES:
        raise ValueError(f"unknown slice {values['slice']!r}: choose one of {', '.join(SLICES)}")
    return Settings(**values)

