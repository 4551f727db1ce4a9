"""Cropping to the largest detected object: test-set quality with and without it, detector speed
(50 query images, one at a time, decoded beforehand), and the three COCO photos' matches; the
speed and the cropped quality again with the network on PyTorch (`torch_*`), same run.

    python benchmarks/detect.py [--detector yolov5n] [--model efficientnet_lite0] [--out FILE]

Cosine search (unit vectors, IP) in Milvus Lite IVF_FLAT (nlist 16, nprobe 8) in a temporary
folder; embeddings and crops go through the configured cache folder.
"""
from __future__ import annotations

from _harness import Bench, run_benchmark

from imgsearch_helpers.data.tutorial import ground_truth, load_catalog, load_queries, object_photos
from imgsearch_helpers.embed.cache import open_cache
from imgsearch_helpers.evaluation.cropping import compare_cropping, detection_speed, detection_speeds, photo_matches
from imgsearch_helpers.evaluation.results import metric_fields
from imgsearch_helpers.index import GALLERY_IVF, open_engine
from imgsearch_helpers.models import DEFAULT_MODEL, build_embedder
from imgsearch_helpers.models.detect import load_detector
from imgsearch_helpers.retrieval.search import ingest
from imgsearch_helpers.vectors import l2_normalize


def add_options(parser) -> None:
    parser.add_argument("--detector", default="yolov5n")


def measure(bench: Bench) -> dict:
    args, settings = bench.args, bench.settings()
    catalog, queries = load_catalog(settings), load_queries(settings=settings)
    truth = ground_truth(catalog, queries)
    cache = open_cache(settings)
    embedder = build_embedder(args.model, settings=settings)
    detector = load_detector(args.detector, settings)  # the configured backend (default: the fastest that agrees)
    torch_detector = load_detector(args.detector, settings, backend="torch")
    # before Milvus Lite runs in this process; interleaved (exported, torch, exported, torch), the best of each
    speeds = detection_speeds(queries["path"][:50], [detector, torch_detector], runs=2)

    def engine_factory(metric, collection):
        return open_engine("milvus", metric=metric, collection=collection, index=GALLERY_IVF, settings=settings)

    rows, hits = compare_cropping(catalog, queries, truth, embedder, detector, engine_factory, settings, cache)
    torch_rows, _ = compare_cropping(catalog, queries, truth, embedder, torch_detector, engine_factory, settings,
                                     cache)
    gallery = engine_factory("IP", "photos")
    ingest(catalog, embedder, gallery, cache, transform=l2_normalize, progress=False)
    photos, _, _ = photo_matches(object_photos(settings), catalog, embedder, detector, gallery, settings)
    gallery.close()
    by_setup = {row["setup"]: row for row in rows}
    short = {"whole": "whole photos", "crop": "cropped queries", "crop_both": "cropped queries and gallery"}
    change = hits["cropped queries"] - hits["whole photos"]
    return {
        "detector": args.detector,
        "detector_sha256": detector.sha256,
        "model": args.model,
        "slice": settings.slice,
        "queries": len(queries),
        **metric_fields({name: by_setup[setup] for name, setup in short.items()}, key="test_{metric}_{row}"),
        "queries_gained": int((change > 0).sum()),
        "queries_lost": int((change < 0).sum()),
        "detector_backend": detector.backend,
        "detection_images_per_s": round(speeds[detector.backend], 1),
        "torch_detection_images_per_s": round(speeds[torch_detector.backend], 1),
        # The same 50 images again after Milvus Lite built indexes in this process: its faiss
        # threads share torch's OpenMP runtime, and small torch ops then run slower.
        "detection_images_per_s_after_milvus": round(detection_speed(queries["path"][:50], detector), 1),
        "torch_detection_images_per_s_after_milvus": round(detection_speed(queries["path"][:50], torch_detector), 1),
        **metric_fields({name: {r["setup"]: r for r in torch_rows}[setup] for name, setup in short.items()},
                        key="torch_test_{metric}_{row}"),
        "object_photos": photos,
    }


if __name__ == "__main__":
    run_benchmark(measure, __doc__, "detect.json", add_options, model=DEFAULT_MODEL)
