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
        """The form results files record."""
        return {"index_type": self.index_type, "build_params": dict(self.build), "search_params": dict(self.search)}

    def __str__(self) -> str:
        params = " ".join(f"{name}={value}" for name, value in {**self.build, **self.search}.items())
        return f"{self.index_type} {params}".strip()


# The tutorial's index, sized for its 1,000 images: 16 k-means clusters, 8 of them probed per search.
TUTORIAL_IVF = IndexSpec("IVF_FLAT", {"nlist": 16}, {"nprobe": 8})
