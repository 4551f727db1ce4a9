"""Search recipes: how images become vectors (the encoder) and how a query is searched (the steps),
one switch per technique; notebook 3's quality runs and benchmarks/instance.py (notebooks 7 and 8) both use them.

The encoder, on top of one or more models:
- `head`: "features" (pre-logit features, helps any image collection) or "probabilities" (the
  ImageNet classifier's class distribution: strong when the collection's classes are ImageNet
  classes, as in the tutorial data, and no help for pictures outside them);
- `pooling`: regional GeM over the whole image (`models.descriptors`) instead of the center crop's
  average: for copies and photos of one object;
- `flip`: average each image's embedding with its mirror image's (test-time augmentation);
- several models: an ensemble, each model's unit vectors concatenated;
- `normalize`: unit vectors searched by inner product (cosine); False keeps the tutorial's raw
  vectors and L2.
The steps (`steps`, in this order, each a `search.Step`): whitening (`whiten`, its power), DBA (`dba`
gallery neighbours), query expansion (`expand` hits), all weighting neighbours by cosine^`alpha`
(0: the plain mean), and diffusion (`diffuse`). `verify` asks for geometric verification, which
needs the gallery's files: the caller adds it (`verify.Verification`); so does `local`, matching by local
features over the whole gallery (`local.LocalMatching`).
Only the class probabilities rely on the collection's classes; whether each switch helps is
measured (notebooks 3 and 7, `benchmarks/quality.py`, `benchmarks/instance.py`).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..config import Settings
from ..embed.cache import EmbeddingCache
from ..embed.stream import BATCH_SIZE, Batch, EmbedReport, Progress, embed_paths
from ..errors import UsageError
from ..models import build_embedder
from ..models.descriptors import Pooling, build_instance_embedder
from ..models.embedder import Embedder
from ..vectors import l2_normalize
from .diffused import Diffused
from .postprocess import DatabaseAugmentation, QueryExpansion, Whitening
from .search import Step

HEADS = ("features", "probabilities")


@dataclass(frozen=True)
class Recipe:
    models: tuple[str, ...] = ("efficientnet_lite0",)
    head: str = "features"
    flip: bool = False
    expand: int = 0  # query expansion with this many hits
    normalize: bool = True
    pooling: Pooling | None = None  # None: the class-level embedding (center crop, average pool)
    whiten: float | None = None  # whitening power, learned on the gallery
    dba: int = 0  # database-side augmentation with this many neighbours
    alpha: float = 0.0  # DBA's and query expansion's weights: cosine^alpha
    diffuse: bool = False  # rank by diffusion over the gallery's neighbour graph
    verify: bool = False  # geometric re-ranking of the top 10
    local: bool = False  # matches by local features over the whole gallery (`local`), verified

    def __post_init__(self):
        if isinstance(self.models, str):
            object.__setattr__(self, "models", (self.models,))
        if not self.models:
            raise UsageError("a recipe needs at least one model")
        if self.head not in HEADS:
            raise UsageError(f"unknown head {self.head!r}: choose one of {', '.join(HEADS)}")
        for switch in ("expand", "dba"):
            if getattr(self, switch) < 0:
                raise UsageError(f"{switch} must be 0 (off) or a number of hits, not {getattr(self, switch)}")
        if self.alpha and self.metric != "IP":
            raise UsageError("alpha weighs hits by their cosine: it needs unit vectors (normalize)")

    @property
    def model(self) -> str:
        return " + ".join(self.models)

    @property
    def parts(self) -> list[str]:
        """What the recipe does, in the words of the published tables: the one source of its labels."""
        base = {"probabilities": "class probabilities",
                "features": "regional GeM" if self.pooling else "cosine" if self.normalize else "raw L2"}
        parts = [base[self.head]]
        parts += ["flip"] if self.flip else []
        parts += ["ensemble"] if len(self.models) > 1 else []
        parts += [f"whiten {self.whiten:g}"] if self.whiten else []
        parts += [f"DBA {self.dba}"] if self.dba else []
        if self.expand:  # notebook 3 names the plain mean in words, notebook 7's table alpha-QE in short
            parts += [f"QE {self.expand}" if self.alpha else f"query expansion {self.expand}"]
        parts += ["diffusion"] if self.diffuse else []
        parts += ["verify"] if self.verify else []
        return parts + (["local features"] if self.local else [])

    @property
    def technique(self) -> str:
        return " + ".join(self.parts)

    @property
    def name(self) -> str:
        """Short models and technique: "lite0 + regional GeM + whiten 0.5"."""
        return " + ".join([*(name.replace("efficientnet_", "") for name in self.models), *self.parts])

    @property
    def metric(self) -> str:
        return "IP" if self.normalize or self.head == "probabilities" else "L2"

    @property
    def imagenet_only(self) -> bool:
        """True when the technique relies on the collection's classes being ImageNet classes."""
        return self.head == "probabilities"

    @property
    def encoder(self) -> Recipe:
        """The recipe without its steps: what decides the vectors (recipes sharing it share them)."""
        return replace(self, expand=0, whiten=None, dba=0, alpha=0.0, diffuse=False, verify=False, local=False)

    def steps(self) -> list[Step]:
        """Fresh re-ranking steps, the outermost first; fit them by indexing the gallery through a
        `search.ReadPath`. Verification is not among them: it needs the gallery's files."""
        steps: list[Step] = [Whitening(self.whiten)] if self.whiten else []
        steps += [DatabaseAugmentation(self.dba, self.alpha)] if self.dba else []
        steps += [QueryExpansion(self.expand, self.alpha, unit=self.metric == "IP")] if self.expand else []
        return steps + ([Diffused()] if self.diffuse else [])


CHUNK = 256  # images per step through all of a recipe's passes: bounded memory, one progress bar


class RecipeEmbedder:
    """A recipe as an `ImageEncoder`; every model pass goes through the embedding cache."""

    def __init__(self, recipe: Recipe, settings: Settings | None = None, embedders: dict | None = None):
        self.recipe = recipe
        loaded = embedders if embedders is not None else {}
        for key in self.keys:  # reuse already-loaded models (and their traces) when given
            if key not in loaded:
                loaded[key] = self._build(key, settings)
        self.embedders: list[Embedder] = [loaded[key] for key in self.keys]

    @property
    def keys(self) -> list:
        """Each model's name, with the pooling when there is one: how `embedders` shares them."""
        return [(name, self.recipe.pooling) if self.recipe.pooling else name for name in self.recipe.models]

    @staticmethod
    def _build(key, settings: Settings | None) -> Embedder:
        if isinstance(key, tuple):
            return build_instance_embedder(*key, settings)
        return build_embedder(key, settings=settings)

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

