"""What runs on Ray's workers: read tasks (file -> network input) and embedding actors (input ->
unit vector -> upsert into Milvus). Batches are dicts of numpy arrays, one entry per column.

A row that cannot be read keeps its place with an `error` (its pixels are zeros and it is never
embedded), so the driver reports every bad file without failing the run.
"""
from __future__ import annotations

import io

import numpy as np

from ..data.folders import FIELDS
from ..data.images import load_image, upright_size
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
    embedding cache at `cache_path`, if one is given), and upserts them into the collection by id.

    Upserts make a retried batch (an actor that died mid-batch, a rerun) replace its rows rather
    than add them twice. `transform` (e.g. `l2_normalize`) is applied to the vectors before they
    are stored. Returns the rows' `id`, `path`, `error` and `cached` for the driver's progress.
    """

    def __init__(self, model: str, settings, collection: str, cache_path=None, transform=None):
        from ..embed.cache import EmbeddingCache
        from ..index import open_engine
        from ..models import build_embedder

        self.embedder = build_embedder(model, settings=settings)
        self.engine = open_engine("milvus", metric="IP", collection=collection, settings=settings, fields=FIELDS)
        self.cache = EmbeddingCache(cache_path) if cache_path else None
        self.transform = transform

    def __call__(self, batch: dict) -> dict:
        readable = np.flatnonzero(batch["error"] == "")
        cached = np.zeros(len(batch["error"]), bool)
        if len(readable):
            vectors, cached[readable] = self.embed(batch["pixels"][readable], list(batch["digest"][readable]))
            metadata = {name: np.asarray(batch[name])[readable] for name in FIELDS}
            stored = self.transform(vectors) if self.transform is not None else vectors
            self.engine.add(np.asarray(batch["id"], np.int64)[readable], stored, metadata)
        return {"id": batch["id"], "path": batch["path"], "error": batch["error"], "cached": cached}

    def embed(self, pixels: np.ndarray, digests: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """The vectors (from the cache where it has them) and which rows the cache gave."""

        def run_model(positions) -> np.ndarray:
            normalize = self.embedder.preprocess.normalize
            return self.embedder.embed_batch(np.stack([normalize(image) for image in pixels[positions]]))

        if self.cache is None:
            return run_model(np.arange(len(digests))), np.zeros(len(digests), bool)
        return self.cache.get_or_compute(self.embedder.key, digests, run_model)
