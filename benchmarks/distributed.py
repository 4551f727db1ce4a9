"""Ingest on Ray against the single-process ingest, side by side in one run, into a real Milvus
server (standalone, started here), with what each costs per image and what that means at scale.

    python benchmarks/distributed.py [--gallery DIR] [--model efficientnet_lite0] [--out FILE]

Rows, each a fresh collection and a cold embedding cache, the default backend unless named:
the single-process ingest (`imgsearch ingest`) on the default backend and on PyTorch, then
`ingest_with_ray` on a local Ray with 1 and 2 embedding actors (reads in tasks of their own), and
2 actors with the reads run inside them (Ray's fusion). Each Ray row's vectors are compared with
the single-process row's (smallest cosine, same ids).

Per row: images/s, `core_s_per_image` = wall seconds x this machine's cores / images (what rented
cores cost: idle cores are paid for too) and `busy_cpu_s_per_image` (CPU time the whole machine
spent, the Milvus server's included, from /proc/stat). The extrapolation, linear in images and
workers: hours = images x core_s_per_image / (workers x cores per worker) / 3600, for 1M and 100M
images on workers of this machine's size. `--gallery` takes any folder of images (default: the
tutorial gallery, full slice).
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import ray
from _harness import Bench, run_benchmark

from imgsearch_helpers.config import display_path
from imgsearch_helpers.evaluation.timing import time_runs
from imgsearch_helpers.gallery.service import SearchService
from imgsearch_helpers.index.milvus_server import MilvusServer
from imgsearch_helpers.models import DEFAULT_MODEL
from imgsearch_helpers.scaleout.ray_ingest import ACTOR_CPUS, ingest_with_ray

CORES = os.cpu_count()
SCALES = (1_000_000, 100_000_000)
WORKERS = (1, 10, 100)
FORMULA = "hours = images * core_s_per_image / (workers * cores_per_worker) / 3600"


def busy_cpu_seconds() -> float:
    """CPU seconds the machine has spent busy since boot (all of /proc/stat's first line but idle, iowait)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:9]]
    return (sum(values) - values[3] - values[4]) / os.sysconf("SC_CLK_TCK")


def timed(name: str, run, marks: list | None = None) -> dict:
    """Run one ingest and measure it; `marks` collects (time, images done) from a Ray run's progress."""
    busy, start = busy_cpu_seconds(), time.perf_counter()  # the marks' clock: where the run began
    timing = time_runs(run)
    report, seconds, busy = timing.result, timing.total, busy_cpu_seconds() - busy
    images = report.counts()["added"]
    row = {"row": name, "images": images, "seconds": round(seconds, 2), "images_per_s": round(images / seconds, 1),
           "core_s_per_image": round(seconds * CORES / images, 4), "busy_cpu_s_per_image": round(busy / images, 4),
           "skipped": len(report.skipped)}
    if marks:  # from the first finished batch on: the actors' start (a model load each) left out
        first_time, first_done = marks[0]
        steady = (images - first_done) / (start + seconds - first_time)
        row |= {"startup_s": round(first_time - start, 2), "steady_images_per_s": round(steady, 1),
                "steady_core_s_per_image": round(CORES / steady, 4)}
    print(json.dumps(row), flush=True)
    return row


def ray_row(service, name: str, actors: int, read_cpus: float, reference) -> dict:
    marks = []
    row = timed(name, lambda: ingest_with_ray(service, actors=actors, read_cpus=read_cpus, fresh=True,
                                              use_cache=False, progress=False,
                                              on_progress=lambda done: marks.append((time.perf_counter(), done))),
                marks)
    return {**row, "actors": actors, "reads": "in the actors" if read_cpus == ACTOR_CPUS else "in tasks",
            "min_cosine_vs_single": agreement(service, reference)}


def stored_vectors(service: SearchService) -> tuple[list[int], np.ndarray]:
    ids = sorted(service.engine.metadata()["id"].tolist())
    return ids, service.engine.fetch(np.array(ids))


def agreement(service: SearchService, reference: tuple[list[int], np.ndarray]) -> float:
    """The smallest cosine between a row's stored vectors and the reference's (None if the ids differ)."""
    ids, vectors = stored_vectors(service)
    return round(float(np.sum(vectors * reference[1], axis=1).min()), 5) if ids == reference[0] else None


def extrapolate(row: dict) -> dict:
    """Hours for 1M and 100M images on 1, 10 and 100 workers of this machine's size (FORMULA), from
    the steady rate where there is one (a start-up of seconds is nothing at a million images)."""
    per_image = row.get("steady_core_s_per_image", row["core_s_per_image"])
    return {f"hours_{images // 1_000_000}M_on_{workers}": round(images * per_image / (workers * CORES) / 3600, 2)
            for images in SCALES for workers in WORKERS}


def ingest_rows(bench: Bench, uri: str) -> tuple[list[dict], float]:
    gallery, model = bench.args.gallery, bench.args.model

    def service_for(backend=None) -> SearchService:
        settings = bench.settings(cold=True, milvus_uri=uri, backend=backend)
        service = SearchService(model, gallery=gallery, settings=settings)
        service.embedder.embed_batch(np.zeros((1, 3, 224, 224), np.float32))  # export and check: not timed
        return service

    service = service_for()
    single = timed("single process", lambda: service.build(fresh=True, progress=False))
    reference = stored_vectors(service)
    torch_row = timed("single process, PyTorch", lambda: service_for("torch").build(fresh=True, progress=False))
    ray_init_s = time_runs(lambda: ray.init(num_cpus=CORES, include_dashboard=False, logging_level="WARNING")).total
    rows = [single, torch_row, ray_row(service, "Ray, 1 actor", 1, 0.25, reference),
            ray_row(service, "Ray, 2 actors", 2, 0.25, reference),
            ray_row(service, "Ray, 2 actors, reads inside them", 2, ACTOR_CPUS, reference)]
    ray.shutdown()
    return [{**row, **extrapolate(row)} for row in rows], ray_init_s


def add_options(parser) -> None:
    parser.add_argument("--gallery", default="dataset", help="a folder of images (default: the tutorial gallery)")


def measure(bench: Bench) -> dict:
    with MilvusServer(bench.scratch / "milvus-server") as server:
        rows, ray_init_s = ingest_rows(bench, server.uri)
    gallery = bench.args.gallery
    return {"model": bench.args.model, "gallery": gallery if gallery == "dataset" else display_path(gallery),
            "cores": CORES, "ray_init_s": round(ray_init_s, 1), "formula": FORMULA, "rows": rows}


if __name__ == "__main__":
    run_benchmark(measure, __doc__, "distributed.json", add_options, model=DEFAULT_MODEL)
