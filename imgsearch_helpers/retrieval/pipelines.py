"""The engine as Towhee pipelines, as in the Towhee tutorial, with operators from this package.

No hub operators: decode, embed, insert and search are registered locally, so the pipelines
run offline. They process one image at a time; `search.ingest` is the batched path.
"""
from __future__ import annotations

import warnings

import numpy as np

from ..data.images import load_image

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # towhee 1.1.3 imports the deprecated pkg_resources
    from towhee import ops, pipe, register


@register(name="imgsearch/decode")
class Decode:
    def __init__(self, min_side: int | None = None):
        self.min_side = min_side  # the same reduced-scale decoding as the batched path

    def __call__(self, path):
        return load_image(path, min_side=self.min_side)


@register(name="imgsearch/embed")
class Embed:
    def __init__(self, embedder):
        self.embedder = embedder

    def __call__(self, image):
        return self.embedder.embed_batch(np.stack([self.embedder.preprocess(image)]))[0]


@register(name="imgsearch/insert")
class Insert:
    def __init__(self, engine):
        self.engine = engine

    def __call__(self, row_id, vector):
        self.engine.add(np.array([row_id]), vector[None, :])


@register(name="imgsearch/search")
class Search:
    def __init__(self, engine, k: int):
        self.engine, self.k = engine, k

    def __call__(self, vector):
        ids, distances = self.engine.search(vector[None, :], self.k)
        return [(int(i), float(d)) for i, d in zip(ids[0], distances[0]) if i >= 0]


def insert_pipeline(embedder, engine):
    """(id, path) -> decoded, embedded and inserted; call `engine.commit()` after the last one."""
    return (pipe.input("id", "path")
            .map("path", "img", ops.imgsearch.decode(min_side=embedder.min_side))
            .map("img", "vec", ops.imgsearch.embed(embedder=embedder))
            .map(("id", "vec"), (), ops.imgsearch.insert(engine=engine))
            .output())


def search_pipeline(embedder, engine, k: int = 10):
    """path -> [(id, distance), ...] best first."""
    return (pipe.input("path")
            .map("path", "img", ops.imgsearch.decode(min_side=embedder.min_side))
            .map("img", "vec", ops.imgsearch.embed(embedder=embedder))
            .map("vec", "result", ops.imgsearch.search(engine=engine, k=k))
            .output("path", "result"))
