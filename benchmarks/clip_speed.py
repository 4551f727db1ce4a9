"""CLIP's towers on PyTorch and exported (OpenVINO f32), side by side in one run: speed only.

    python benchmarks/clip_speed.py [--model ViT-B-32] [--out benchmarks/results/clip_speed.json]

CLIP's weights do not download here, so the architecture is built with seeded random weights:
the work per image and per sentence is the real model's, the vectors mean nothing (retrieval
figures for CLIP come from `benchmarks/text.py` where its weights load). Image tower: a batch of
16 and a single image (preprocessed already); text tower: the 100 tutorial class names as
phrases, one batch. Medians of repeated runs, each runtime warmed up first. The export and its
checks live in a temporary cache.
"""
from __future__ import annotations

import numpy as np
import torch
from _harness import Bench, run_benchmark

from imgsearch_helpers.data.images import load_image
from imgsearch_helpers.data.tutorial import load_catalog
from imgsearch_helpers.evaluation.timing import time_runs
from imgsearch_helpers.models.clip import DEFAULT_MODEL, load_clip
from imgsearch_helpers.retrieval.text import class_queries

REPEATS = 7


def median_seconds(work) -> float:
    """The median of `REPEATS` timed runs after one untimed (a first compile or allocation is not the steady cost)."""
    return time_runs(work, runs=REPEATS, warmup=1).median


def smallest_cosine(vectors: np.ndarray, reference: np.ndarray) -> float:
    """Both are unit vectors (CLIP's outputs are normalized)."""
    return float((vectors * reference).sum(1).min())


def runtime_row(clip, images: np.ndarray, sentences: list[str]) -> dict:
    batch, single = images[:16], images[:1]
    per_batch = median_seconds(lambda: clip.images.embed_batch(batch))
    return {"image_batch16_images_per_s": round(len(batch) / per_batch, 1),
            "image_batch1_ms": round(1000 * median_seconds(lambda: clip.images.embed_batch(single)), 2),
            "text_100_sentences_ms": round(1000 * median_seconds(lambda: clip.texts(sentences)), 1)}


def measure(bench: Bench) -> dict:
    torch.set_num_threads(2)
    model = bench.args.model
    catalog = load_catalog(bench.settings())
    sentences = list(class_queries(catalog, "names").text)
    exported = load_clip(model, pretrained=None, settings=bench.settings(cold=True))
    on_torch = load_clip(model, pretrained=None, settings=bench.settings(cold=True, backend="torch"))
    images = np.stack([exported.images.preprocess(load_image(p)) for p in catalog.path[:16]])
    rows = {"torch": runtime_row(on_torch, images, sentences), "exported": runtime_row(exported, images, sentences)}
    agree = {"image": smallest_cosine(exported.images.embed_batch(images), on_torch.images.embed_batch(images)),
             "text": smallest_cosine(exported.texts(sentences), on_torch.texts(sentences))}
    torch_row, exported_row = rows["torch"], rows["exported"]
    return {"model": model, "weights": "random (seed 0): speed only", "image_runtime": exported.images.runtime.name,
            "text_runtime": exported.text_runtime.name, **rows,
            "image_speedup": round(exported_row["image_batch16_images_per_s"]
                                   / torch_row["image_batch16_images_per_s"], 2),
            "text_speedup": round(torch_row["text_100_sentences_ms"] / exported_row["text_100_sentences_ms"], 2),
            "min_cosine_vs_torch": {name: round(value, 5) for name, value in agree.items()}}


if __name__ == "__main__":
    run_benchmark(measure, __doc__, "clip_speed.json", model=DEFAULT_MODEL)
