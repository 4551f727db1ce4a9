"""Index types, their build and search parameters, and the defaults every engine shares."""
from __future__ import annotations

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
        raise ValueError(f"unsupported index type {index_type!r}: choose one of {', '.join(supported)}")
    params = params or {}
    unknown = set(params) - set(allowed.get(index_type, ()))
    if unknown:
        hint = " (the HNSW search parameter is 'ef')" if "ef_search" in unknown or "efSearch" in unknown else ""
        raise ValueError(f"{index_type} takes {kind} params {allowed.get(index_type, ())}, not {sorted(unknown)}{hint}")
    return {k: int(v) for k, v in params.items()}


def with_defaults(params: dict, names) -> dict:
    return {name: params.get(name, DEFAULTS[name]) for name in names}
