"""Index types, their build and search parameters, the defaults every engine shares, and presets."""
from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import UsageError

# Build parameters each index type accepts, and the search parameter that tunes it.
BUILD_PARAMS = {"FLAT": (), "IVF_FLAT": ("nlist",), "IVF_SQ8": ("nlist",), "HNSW": ("M", "efConstruction"),
                "HNSW_SQ": ("M", "efConstruction"), "AUTOINDEX": ()}
SEARCH_PARAMS = {"IVF_FLAT": ("nprobe",), "IVF_SQ8": ("nprobe",), "HNSW": ("ef",), "HNSW_SQ": ("ef",)}
# Defaults for the in-process engines (Milvus applies its own server-side defaults).
DEFAULTS = {"nlist": 128, "nprobe": 8, "M": 16, "efConstruction": 200, "ef": 64}


def checked_params(params: dict | None, allowed: dict, index_type: str, kind: str,
                   supported=tuple(BUILD_PARAMS)) -> dict:
    """`params` as ints, after checking that `index_type` takes each of them."""
    if index_type not in supported:
        raise UsageError(f"unsupported index type {index_type!r}: choose one of {', '.join(supported)}")
    params = params or {}
    unknown = set(params) - set(allowed.get(index_type, ()))
    if unknown:
        hint = " (the HNSW search parameter is 'ef')" if "ef_search" in unknown or "efSearch" in unknown else ""
        raise UsageError(f"{index_type} takes {kind} params {allowed.get(index_type, ())}, not {sorted(unknown)}{hint}")
    return {k: int(v) for k, v in params.items()}


def with_defaults(params: dict, names) -> dict:
    return {name: params.get(name, DEFAULTS[name]) for name in names}


@dataclass(frozen=True)
class IndexSpec:
    """An index type with its build and search parameters: what `open_engine(index=...)` takes."""

    index_type: str = "IVF_FLAT"
    build: dict = field(default_factory=dict)
    search: dict = field(default_factory=dict)

    def with_search(self, **params) -> IndexSpec:
        """The same index searched with other parameters (e.g. `nprobe=4`)."""
        return IndexSpec(self.index_type, dict(self.build), {**self.search, **params})

    def as_dict(self) -> dict:
        """The form results files and the collections registry record."""
        return {"index_type": self.index_type, "build_params": dict(self.build), "search_params": dict(self.search)}

    @classmethod
    def from_dict(cls, recorded: dict) -> IndexSpec:
        return cls(recorded["index_type"], dict(recorded["build_params"]), dict(recorded["search_params"]))

    def __str__(self) -> str:
        params = " ".join(f"{name}={value}" for name, value in {**self.build, **self.search}.items())
        return f"{self.index_type} {params}".strip()


# The notebooks' index for the tutorial's 1,000 gallery images: 16 k-means clusters, 8 of them probed
# per search (the tutorial's nlist=2048 is more lists than the gallery has vectors; notebook 1 shows it).
GALLERY_IVF = IndexSpec("IVF_FLAT", {"nlist": 16}, {"nprobe": 8})

# Collections of people's own photos get an index sized from their row count (serve/, imgsearch):
# exact search below FLAT_BELOW rows (a scan of 10,000 x 1,280 floats takes milliseconds), else
# IVF_FLAT with nlist = 4 * sqrt(rows), Milvus's rule of thumb, but at least KMEANS_POINTS vectors
# per cluster (faiss trains k-means on fewer with a warning, and poorly), probing PROBED clusters:
# on this project's scale benchmark that reached recall@10 >= 0.95 from 10k to 1M vectors.
FLAT_BELOW = 10_000
KMEANS_POINTS = 39
PROBED = 16


def index_for_rows(rows: int, kind: str = "milvus") -> IndexSpec | None:
    """The index for a collection of `rows` vectors on engine `kind` (None: exact search needs none)."""
    if kind == "exact":
        return None
    if kind == "hnswlib":
        return IndexSpec("HNSW", {"M": 16, "efConstruction": 200}, {"ef": 64})
    if rows < FLAT_BELOW:
        return IndexSpec("FLAT")
    nlist = max(1, min(int(4 * rows ** 0.5), rows // KMEANS_POINTS))
    return IndexSpec("IVF_FLAT", {"nlist": nlist}, {"nprobe": min(nlist, PROBED)})
