"""Search with the largest detected object instead of the whole photo, compared side by side."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..config import Settings
from ..data.images import load_image
from ..embed.cache import EmbeddingCache
from ..models.detect import Detector, chosen_box, crop_paths
from ..retrieval.search import embed_queries, ingest
from ..vectors import l2_normalize
from .metrics import relevant_found
from .runs import run_queries, score
from .timing import time_interleaved

# (name, crop the queries, crop the gallery)
SETUPS = [("whole photos", False, False), ("cropped queries", True, False), ("cropped queries and gallery", True, True)]


def cropped(frame: pd.DataFrame, detector: Detector, settings: Settings, progress: bool = True) -> pd.DataFrame:
    """A copy of `frame` whose `path` points at each image's largest-object crop (`source` keeps the photo)."""
    crops = crop_paths(frame["path"].tolist(), detector, settings, progress=progress)
    return frame.assign(source=frame["path"], path=[str(p) for p in crops])


def detection_speed(paths, detector: Detector) -> float:
    """Images per second through the detector alone (images decoded beforehand, not timed)."""
    return detection_speeds(paths, [detector])[detector.backend]


def detection_speeds(paths, detectors: list[Detector], runs: int = 1) -> dict[str, float]:
    """Images per second through each detector (by backend), the best of `runs` taken in turns so
    that each meets the machine alike; images decoded beforehand, each detector warmed up."""
    images = [load_image(p) for p in paths]
    for detector in detectors:
        detector.detect(images[:1])  # warm-up: a first trace or compile
    timings = time_interleaved({d.backend: lambda d=d: d.detect(images) for d in detectors}, runs)
    return {backend: len(images) / timing.best for backend, timing in timings.items()}


def compare_cropping(catalog, queries, truth, embedder, detector: Detector, engine_factory, settings: Settings,
                     cache: EmbeddingCache | None = None, k: int = 10, progress: bool = True):
    """Score whole photos, cropped queries, and cropped queries + gallery (cosine on unit vectors).

    Returns (rows, hits): one metric row per setup, and per setup the relevant images each query
    found in its top k (to list the queries that gained and lost most).
    """
    galleries = {False: catalog, True: cropped(catalog, detector, settings, progress)}
    query_sets = {False: queries, True: cropped(queries, detector, settings, progress)}
    engines, rows, hits = {}, [], {}
    for name, crop_queries, crop_gallery in SETUPS:
        if crop_gallery not in engines:
            engine = engine_factory("IP", "detect_" + ("cropped" if crop_gallery else "whole"))
            engine.drop()
            ingest(galleries[crop_gallery], embedder, engine, cache, transform=l2_normalize, progress=progress)
            engines[crop_gallery] = engine
        engine = engines[crop_gallery]
        run = run_queries(query_sets[crop_queries], embedder, engine, k, transform=l2_normalize)
        rows.append(score(run, truth, k, model=embedder.name, engine=engine.name, setup=name))
        hits[name] = relevant_found(truth, run.ids)
    for engine in engines.values():
        engine.close()
    return rows, hits


def photo_matches(paths, catalog, embedder, detector: Detector, engine, settings: Settings, k: int = 5):
    """Top-k for photos searched whole and as their largest-object crop, against a whole-photo gallery.

    Returns (rows, whole, crop): per photo its detected class and the labels of both top-k lists,
    and the (ids, distances) of each search, for pictures.
    """
    paths = [str(p) for p in paths]
    crops = crop_paths(paths, detector, settings, progress=False)
    whole = engine.search(embed_queries(paths, embedder, transform=l2_normalize), k)
    crop = engine.search(embed_queries(crops, embedder, transform=l2_normalize), k)
    labels = catalog.set_index("id")["label"]
    rows = []
    for i, (path, crop_file) in enumerate(zip(paths, crops)):
        box = chosen_box(crop_file)
        rows.append({"photo": Path(path).name, "detected": box.label if box else None,
                     "score": round(box.score, 3) if box else None,
                     "top5_whole": labels[whole[0][i]].tolist(), "top5_crop": labels[crop[0][i]].tolist()})
    return rows, whole, crop
