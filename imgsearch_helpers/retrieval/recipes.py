"""Search recipes: how images become vectors and how a query is searched, one switch per technique.

On top of one or more models, a recipe chooses:
- `head`: "features" (pre-logit features, helps any image collection) or "probabilities" (the
  ImageNet classifier's class distribution: strong when the collection's classes are ImageNet
  classes, as in the tutorial data, and no help for pictures outside them);
- `flip`: average each image's embedding with its mirror image's (test-time augmentation);
- several models: an ensemble, each model's unit vectors concatenated;
- `expand`: average query expansion: search, average the query with its top `expand` hits,
  search again;
- `normalize`: unit vectors searched by inner product (cosine); False keeps the tutorial's raw
  vectors and L2.
Flip, ensembles and query expansion use no class information, so they apply to any image
collection; whether they help is measured (notebook 3, `benchmarks/quality.py`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..config import Settings
from ..embed.cache import EmbeddingCache
from ..embed.stream import BATCH_SIZE, Batch, EmbedReport, Progress, embed_paths
from ..errors import UsageError
from ..index import SearchEngine
from ..models import build_embedder
from ..models.embedder import Embedder
from ..vectors import l2_normalize

HEADS = ("features", "probabilities")


@dataclass(frozen=True)
class Recipe:
    models: tuple[str, ...] = ("efficientnet_lite0",)
    head: str = "features"
    flip: bool = False
    expand: int = 0
    normalize: bool = True

    def __post_init__(self):
        if isinstance(self.models, str):
            object.__setattr__(self, "models", (self.models,))
        if not self.models:
            raise UsageError("a recipe needs at least one model")
        if self.head not in HEADS:
            raise UsageError(f"unknown head {self.head!r}: choose one of {', '.join(HEADS)}")
        if self.expand < 0:
            raise UsageError(f"expand must be 0 (off) or a number of hits, not {self.expand}")

    @property
    def model(self) -> str:
        return " + ".join(self.models)

    @property
    def technique(self) -> str:
        base = {"probabilities": "class probabilities", "features": "cosine" if self.normalize else "raw L2"}
        parts = [base[self.head]]
        parts += ["flip"] if self.flip else []
        parts += ["ensemble"] if len(self.models) > 1 else []
        parts += [f"query expansion {self.expand}"] if self.expand else []
        return " + ".join(parts)

    @property
    def metric(self) -> str:
        return "IP" if self.normalize or self.head == "probabilities" else "L2"

    @property
    def imagenet_only(self) -> bool:
        """True when the technique relies on the collection's classes being ImageNet classes."""
        return self.head == "probabilities"


CHUNK = 256  # images per step through all of a recipe's passes: bounded memory, one progress bar


class RecipeEmbedder:
    """A recipe as an `ImageEncoder`; every model pass goes through the embedding cache."""

    def __init__(self, recipe: Recipe, settings: Settings | None = None, embedders: dict | None = None):
        self.recipe = recipe
        loaded = embedders if embedders is not None else {}
        for name in recipe.models:  # reuse already-loaded models (and their traces) when given
            if name not in loaded:
                loaded[name] = build_embedder(name, settings=settings)
        self.embedders: list[Embedder] = [loaded[name] for name in recipe.models]

    @property
    def name(self) -> str:
        return f"{self.recipe.model} ({self.recipe.technique})"

    @property
    def passes(self) -> list[Embedder]:
        """One network pass per model, two with `flip` (the mirrored pass has its own cache key)."""
        return [p for e in self.embedders for p in ([e, e.mirrored()] if self.recipe.flip else [e])]

    @property
    def dim(self) -> int:
        return sum(e.classes if self.recipe.head == "probabilities" else e.dim for e in self.embedders)

    @property
    def parameters(self) -> int:
        return sum(e.parameters for e in self.embedders)

    def iter_batches(self, paths, cache: EmbeddingCache | None = None, report: EmbedReport | None = None,
                     progress: bool = True, batch_size: int = BATCH_SIZE):
        """The recipe's vectors, `CHUNK` images at a time through every pass; failures go into `report`."""
        report = report if report is not None else EmbedReport()
        paths = [str(p) for p in paths]
        bar = Progress(len(paths), f"embed {self.recipe.model}", progress)
        for start in range(0, len(paths), CHUNK):
            chunk = paths[start:start + CHUNK]
            outputs = [embed_paths(chunk, p, cache, batch_size, progress=False) for p in self.passes]
            report.add(outputs[0].report)  # every pass reads the same files
            (bar.embedded if any(o.report.embedded for o in outputs) else bar.cached)(len(chunk))
            yield Batch([start + p for p in outputs[0].positions], self._combine([o.vectors for o in outputs]))
        bar.close()

    def _combine(self, per_pass: list[np.ndarray]) -> np.ndarray:
        step = 2 if self.recipe.flip else 1
        parts = [self._model_vectors(e, per_pass[i * step:(i + 1) * step]) for i, e in enumerate(self.embedders)]
        if len(parts) == 1:
            return parts[0]
        return np.hstack(parts) / np.sqrt(len(parts))  # each part is unit length

    def _model_vectors(self, embedder: Embedder, features: list[np.ndarray]) -> np.ndarray:
        if self.recipe.head == "probabilities":
            # square roots of probabilities have unit length; their dot product is the
            # Bhattacharyya coefficient of the two class distributions
            return np.sqrt(np.mean([embedder.class_probabilities(f) for f in features], axis=0))
        mean = np.mean(features, axis=0)
        return l2_normalize(mean) if self.recipe.normalize or len(self.embedders) > 1 else mean


def search_vectors(engine: SearchEngine, vectors: np.ndarray, k: int, recipe: Recipe):
    """Top-k (ids, distances), with the recipe's query expansion when it has one."""
    if recipe.expand:
        hits, _ = engine.search(vectors, recipe.expand)
        expanded = (vectors + engine.fetch(hits).sum(axis=1)) / (1 + recipe.expand)
        vectors = l2_normalize(expanded) if recipe.metric == "IP" else expanded
    return engine.search(vectors, k)
