"""What runs on Ray's workers: read tasks (file -> network input) and embedding actors (input ->
unit vector -> upsert into Milvus). Batches are dicts of numpy arrays, one entry per column.

A row that cannot be read keeps its place with an `error` (its pixels are zeros and it is never
embedded), so the driver reports every bad file without failing the run.
"""
from __future__ import annotations

import io

import numpy as np

from ..data.folders import FIELDS, upright_size
from ..data.images import load_image
from ..embed.stream import read_file
from ..errors import ImageError


def read_images(batch: dict, preprocess, min_side: int) -> dict:
    """A Ray task: read, hash and decode each row's file into the network's input.

    Adds `digest` (sha256 of the bytes, the embedding cache's key), `width`/`height` (upright, from
    the header, as the single-process ingest stores them), `pixels` (uint8: the actor normalizes
    them, so a quarter of the bytes cross between processes) and `error` ('' when read).
    """
    from ..embed.cache import content_digest

    pixels = np.zeros((len(batch["path"]), preprocess.crop, preprocess.crop, 3), np.uint8)
    digests, sizes, errors = [], [], []
    for row, path in enumerate(batch["path"]):
        _, data = read_file(str(path))
        try:
            if isinstance(data, ImageError):
                raise data
            pixels[row] = preprocess.pixels(load_image(path, data=data, min_side=min_side))
            digests.append(content_digest(data)), sizes.append(upright_size(io.BytesIO(data))), errors.append("")
        except ImageError as exc:
            digests.append(""), sizes.append((0, 0)), errors.append(exc.reason)
    widths, heights = (np.array([size[side] for size in sizes], np.int64) for side in (0, 1))
    return {**batch, "digest": np.array(digests, dtype=object), "width": widths, "height": heights, "pixels": pixels,
            "error": np.array(errors, dtype=object)}


class EmbedWriter:
    """A Ray actor: loads the model once, embeds the readable rows of each batch (through the
    embedding cache when `use_cache`), and upserts them into the collection by id.

    Upserts make a retried batch (an actor that died mid-batch, a rerun) replace its rows rather
    than add them twice. Returns the rows' `id`, `path`, `error` and `cached` for the driver's progress.
    """

    def __init__(self, model: str, settings, collection: str, use_cache: bool = True):
        from ..embed.cache import open_cache
        from ..index import open_engine
        from ..models import build_embedder

        self.embedder = build_embedder(model, settings=settings)
        self.engine = open_engine("milvus", metric="IP", collection=collection, settings=settings, fields=FIELDS)
        self.cache = open_cache(settings) if use_cache else None

    def __call__(self, batch: dict) -> dict:
        from ..vectors import l2_normalize

        readable = np.flatnonzero(batch["error"] == "")
        cached = np.zeros(len(batch["error"]), bool)
        if len(readable):
            vectors, cached[readable] = self.embed(batch["pixels"][readable], list(batch["digest"][readable]))
            metadata = {name: np.asarray(batch[name])[readable] for name in FIELDS}
            self.engine.add(np.asarray(batch["id"], np.int64)[readable], l2_normalize(vectors), metadata)
        return {"id": batch["id"], "path": batch["path"], "error": batch["error"], "cached": cached}

    def embed(self, pixels: np.ndarray, digests: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """The vectors (from the cache where it has them) and which rows the cache gave."""
        key = self.embedder.key
        found = self.cache.get_many(key, digests) if self.cache else {}
        hit = np.array([d in found for d in digests])
        vectors = np.empty((len(digests), self.embedder.dim), np.float32)
        if hit.any():
            vectors[hit] = np.stack([found[d] for d, h in zip(digests, hit) if h])
        if (~hit).any():
            normalize = self.embedder.preprocess.normalize
            vectors[~hit] = self.embedder.embed_batch(np.stack([normalize(image) for image in pixels[~hit]]))
            if self.cache:
                self.cache.put_many(key, [d for d, h in zip(digests, hit) if not h], vectors[~hit])
        return vectors, hit

