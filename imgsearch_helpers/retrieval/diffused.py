"""Diffusion (`retrieval.diffusion`) as a step of the read path: each query ranked by the walk from its
top hits over the gallery's mutual-neighbour graph. It lifted class-level mHR@10 from 0.745 to 0.822
with Lite2 on the tutorial's test queries (`benchmarks/results/instance.json`); for copies of one
picture it can hurt, so it is a switch (`imgsearch search/evaluate --diffuse`, the API's `diffuse`
field, a recipe's `diffuse`).

The graph needs every vector in memory (1,000 Lite vectors: 5 MB). It is built from the gallery as a
recipe indexes it, or, over a collection already in an engine, from the engine's rows
(`DiffusedEngine`, built when first searched and again after the collection changes through the service).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import UsageError
from ..index.base import SearchEngine
from ..vectors import l2_normalize
from .diffusion import DEFAULTS, Diffusion, DiffusionSettings
from .search import Found, Query, ReadPath, Step


@dataclass
class Diffused(Step):
    """Step: ranks the whole gallery by diffusion instead of asking the steps below; the distances are
    the cosines to the query (how alike each hit looks; the order says how well its neighbours back it)."""

    settings: DiffusionSettings = DEFAULTS
    diffusion: Diffusion | None = None
    ids: np.ndarray | None = None  # the engine's id of each gallery row
    normalize: bool = False  # queries scaled to unit length first (an engine's rows may not be)

    @classmethod
    def over(cls, engine: SearchEngine, settings: DiffusionSettings = DEFAULTS) -> Diffused:
        """Over the rows `engine` holds now, each scaled to unit length."""
        ids = np.sort(engine.metadata()["id"].to_numpy(np.int64))
        if not len(ids):
            raise UsageError("the collection is empty: there is nothing to diffuse over")
        return cls(settings, Diffusion.fit(l2_normalize(engine.fetch(ids)), settings), ids, normalize=True)

    def index(self, gallery: np.ndarray) -> np.ndarray:
        """Over the gallery as indexed, row i stored as id i (unit vectors already)."""
        self.diffusion, self.ids = Diffusion.fit(gallery, self.settings), np.arange(len(gallery))
        return gallery

    def find(self, query: Query, k: int, below: ReadPath) -> Found:
        if query.where:
            raise UsageError("diffusion ranks the whole collection: search without a filter (where), or without "
                             "diffusion")
        if self.diffusion is None:
            raise UsageError("diffusion needs the gallery's graph: index the gallery through the read path first")
        queries = np.asarray(query.vectors, np.float32)
        queries = l2_normalize(queries) if self.normalize else queries
        positions = self.diffusion.rank(queries, k)
        cosines = np.einsum("qd,qkd->qk", queries, self.diffusion.gallery[positions])  # only the hits'
        return Found(self.ids[positions], cosines)


class DiffusedEngine(ReadPath):
    """Any engine's collection searched by diffusion, over its rows as they are now."""

    def __init__(self, engine: SearchEngine, settings: DiffusionSettings = DEFAULTS):
        self.diffused = Diffused.over(engine, settings)
        super().__init__(engine, [self.diffused])
        self.name = f"{engine.name} + diffusion"

    @property
    def ids(self) -> np.ndarray:
        return self.diffused.ids
