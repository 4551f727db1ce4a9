"""Any engine's collection searched by diffusion (`retrieval.diffusion`): the gallery's vectors are
read back once, their mutual-neighbour graph built in this process, and each query ranked by the
walk from its top hits. It lifted class-level mHR@10 from 0.745 to 0.822 with Lite2 on the
tutorial's test queries (`benchmarks/results/instance.json`); for copies of one picture it can
hurt, so it is a switch (`imgsearch search/evaluate --diffuse`, the API's `diffuse` field).

The graph needs every vector in memory (1,000 Lite vectors: 5 MB);
it is built when first searched and again after the collection changes through the service.
"""
from __future__ import annotations

import numpy as np

from ..errors import UsageError
from ..index.base import SearchEngine
from ..vectors import l2_normalize
from .diffusion import DEFAULTS, Diffusion, DiffusionSettings


class DiffusedEngine:
    """The read side of `SearchEngine` (search, metadata, count) over `engine`'s rows as they are now."""

    def __init__(self, engine: SearchEngine, settings: DiffusionSettings = DEFAULTS):
        self.engine, self.name, self.metric = engine, f"{engine.name} + diffusion", engine.metric
        self.fields = engine.fields
        self.ids = np.sort(engine.metadata()["id"].to_numpy(np.int64))
        if not len(self.ids):
            raise UsageError("the collection is empty: there is nothing to diffuse over")
        self.diffusion = Diffusion.fit(l2_normalize(engine.fetch(self.ids)), settings)

    def search(self, vectors: np.ndarray, k: int, where: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (ids, cosines to the query), ranked by diffusion; the cosines say how alike each hit
        looks, the order says how well the gallery's neighbours back it up."""
        if where:
            raise UsageError("diffusion ranks the whole collection: search without a filter (where), or without "
                             "diffusion")
        queries = l2_normalize(np.asarray(vectors, np.float32))
        positions = self.diffusion.rank(queries, k)
        cosines = np.einsum("qd,qkd->qk", queries, self.diffusion.gallery[positions])  # only the hits'
        return self.ids[positions], cosines

    def metadata(self, ids=None):
        return self.engine.metadata(ids)

    def count(self, where: str | None = None) -> int:
        return self.engine.count(where)
