"""Batched, streaming embedding: decode on worker threads while the model runs, cache by content.

Two shapes, declared as protocols like `index.SearchEngine`:
- a `Network` (a model with its preprocessing, e.g. `models.Embedder`) embeds a batch of tensors;
- an `ImageEncoder` turns image files into vectors, batch by batch: a network (through
  `iter_embeddings`), a search recipe, the image side of a text path. `embed_paths` and
  `retrieval.search.ingest` take any `ImageEncoder`.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple, Protocol

import numpy as np
from PIL import Image
from tqdm import tqdm  # text bars: no widget state in saved notebooks

from ..data.images import load_image, read_image_bytes
from ..errors import ImageError
from ..parallel import bounded_map
from .cache import EmbeddingCache, content_digest

BATCH_SIZE = 16  # images per forward pass
OnImage = Callable[[str, Image.Image], None]


@dataclass
class Batch:
    """Vectors for `positions` (indexes into the input list); rows in the same order."""

    positions: list[int]
    vectors: np.ndarray


@dataclass
class EmbedReport:
    embedded: int = 0
    from_cache: int = 0
    failures: list[ImageError] = field(default_factory=list)

    def add(self, other: EmbedReport) -> None:
        """Count `other`'s images into this report."""
        self.embedded += other.embedded
        self.from_cache += other.from_cache
        self.failures.extend(other.failures)

    def summary(self) -> str:
        text = f"{self.embedded} embedded, {self.from_cache} from cache, {len(self.failures)} skipped"
        if self.failures:
            text += ":\n" + "\n".join(f"  {f.path}: {f.reason}" for f in self.failures)
        return text


class Embedded(NamedTuple):
    """What `embed_paths` returns: vectors of the readable images, in input order."""

    vectors: np.ndarray
    positions: list[int]  # the input positions the rows belong to
    report: EmbedReport


class Network(Protocol):
    """A model with its preprocessing, run on batches of decoded images."""

    name: str
    key: str  # identifies model + weights in the embedding cache
    dim: int
    min_side: int  # short side the preprocessing resizes to (lets JPEGs decode smaller)

    def preprocess(self, image) -> np.ndarray: ...  # PIL image -> (3, H, W) float32

    def embed_batch(self, batch: np.ndarray) -> np.ndarray: ...


class ImageEncoder(Protocol):
    """Anything that turns image files into vectors, batch by batch."""

    name: str
    dim: int

    def iter_batches(self, paths: Sequence[str | Path], cache: EmbeddingCache | None = None,
                     report: EmbedReport | None = None, progress: bool = True,
                     batch_size: int = BATCH_SIZE) -> Iterator[Batch]: ...


class StreamsImages:
    """Makes a `Network` an `ImageEncoder`: files decoded on worker threads, batches cached by content."""

    def iter_batches(self, paths, cache=None, report=None, progress=True, batch_size=BATCH_SIZE, on_image=None):
        return iter_embeddings(paths, self, cache, batch_size, report=report, progress=progress, on_image=on_image)


def read_file(path: str) -> tuple[str, bytes | ImageError]:
    """The bytes of an image file, or the error saying why it cannot be used (`images.read_image_bytes`)."""
    try:
        return path, read_image_bytes(path)
    except ImageError as exc:
        return path, exc


def iter_embeddings(
    paths: Sequence[str | Path],
    embedder: Network,
    cache: EmbeddingCache | None = None,
    batch_size: int = BATCH_SIZE,
    workers: int = 2,
    report: EmbedReport | None = None,
    progress: bool = True,
    on_image: OnImage | None = None,
) -> Iterator[Batch]:
    """Yield a network's embeddings for `paths` batch by batch; unreadable images are skipped into `report`.

    Only one batch of decoded images (plus a short read-ahead) is held in memory at a time.
    `on_image(path, image)` sees each decoded image (on a worker thread), for work that needs the
    pixels too: a cached image is not decoded, so it does not see those.
    """
    report = report if report is not None else EmbedReport()
    paths = [str(p) for p in paths]
    bar = Progress(len(paths), f"embed {embedder.name}", progress)
    pending: list[tuple[int, str, bytes, str]] = []

    def flush_pending() -> Iterator[Batch]:
        yield from _embed_misses(pending, embedder, cache, batch_size, workers, report, bar, on_image)
        pending.clear()

    for start in range(0, len(paths), 4 * batch_size):
        chunk = list(enumerate(paths[start : start + 4 * batch_size], start=start))
        hits, misses = _look_up(chunk, embedder, cache, report)
        if hits.positions:
            bar.cached(len(hits.positions))
            yield hits
        pending.extend(misses)
        if len(pending) >= batch_size:
            yield from flush_pending()
    yield from flush_pending()
    bar.close()


class Progress:
    """A progress bar that appears once an image has to be embedded: work served from the cache
    shows none (a rerun's outputs stay quiet), and a bar that appears counts the cached ones too."""

    def __init__(self, total: int, desc: str, enabled: bool = True):
        self.total, self.desc, self.enabled, self.done, self.bar = total, desc, enabled, 0, None

    def cached(self, count: int) -> None:
        self.done += count
        if self.bar is not None:
            self.bar.update(count)

    def embedded(self, count: int = 1) -> None:
        if self.bar is None and self.enabled:
            self.bar = tqdm(total=self.total, initial=self.done, desc=self.desc, unit="img")
        self.cached(count)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _look_up(chunk, embedder, cache, report) -> tuple[Batch, list]:
    """Read a chunk of files; return the cached vectors and the (position, path, bytes, digest) misses."""
    read = [(pos, *read_file(path)) for pos, path in chunk]
    for _, _, data in read:
        if isinstance(data, ImageError):
            report.failures.append(data)
    readable = [(pos, path, data) for pos, path, data in read if not isinstance(data, ImageError)]
    digests = [content_digest(data) for _, _, data in readable]
    found = cache.get_many(embedder.key, digests) if cache else {}
    hit_rows = [(pos, found[d]) for (pos, _, _), d in zip(readable, digests) if d in found]
    misses = [(*item, d) for item, d in zip(readable, digests) if d not in found]
    report.from_cache += len(hit_rows)
    vectors = np.stack([v for _, v in hit_rows]) if hit_rows else np.empty((0, embedder.dim), np.float32)
    return Batch([p for p, _ in hit_rows], vectors), misses


def _embed_misses(items, embedder, cache, batch_size, workers, report, bar, on_image) -> Iterator[Batch]:
    def prepare(item):
        pos, path, data, digest = item
        try:
            image = load_image(path, data=data, min_side=embedder.min_side)
            if on_image:
                on_image(path, image)
            return pos, digest, embedder.preprocess(image)
        except ImageError as exc:
            return pos, digest, exc

    positions, digests, tensors = [], [], []
    workers = workers if len(items) > 1 else 0  # one query image: no thread hand-off
    for pos, digest, tensor in bounded_map(prepare, items, workers, ahead=2 * batch_size):
        bar.embedded(1)
        if isinstance(tensor, ImageError):
            report.failures.append(tensor)
            continue
        positions.append(pos), digests.append(digest), tensors.append(tensor)
        if len(tensors) == batch_size:
            yield _run_model(positions, digests, tensors, embedder, cache, report)
            positions, digests, tensors = [], [], []
    if tensors:
        yield _run_model(positions, digests, tensors, embedder, cache, report)


def _run_model(positions, digests, tensors, embedder, cache, report) -> Batch:
    vectors = embedder.embed_batch(np.stack(tensors))
    if cache:
        cache.put_many(embedder.key, digests, vectors)
    report.embedded += len(positions)
    return Batch(list(positions), vectors)


def embed_paths(paths, encoder: ImageEncoder, cache: EmbeddingCache | None = None, batch_size: int = BATCH_SIZE,
                progress: bool = True, on_image: OnImage | None = None) -> Embedded:
    """Embed all `paths` with any image encoder: the readable images' vectors, in input order.
    `on_image` (`iter_embeddings`) needs an encoder that decodes images itself (a `StreamsImages`)."""
    report = EmbedReport()
    hook = {"on_image": on_image} if on_image else {}
    batches = list(encoder.iter_batches([str(p) for p in paths], cache, report, progress, batch_size, **hook))
    positions = [p for b in batches for p in b.positions]
    if not positions:
        return Embedded(np.empty((0, encoder.dim), np.float32), [], report)
    vectors = np.concatenate([b.vectors for b in batches if b.positions])
    order = np.argsort(positions, kind="stable")
    return Embedded(vectors[order], sorted(positions), report)
