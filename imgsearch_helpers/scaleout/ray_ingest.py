"""The driver of a distributed ingest: list the gallery once, plan against the collection, and let
Ray Data read, embed and upsert on its workers while the driver shows progress.

    imgsearch ingest ~/photos --ray              a local Ray on this machine's cores
    imgsearch ingest ~/photos --ray auto         the Ray cluster this machine belongs to
    imgsearch ingest ~/photos --ray ray://head:10001 --manifest files.txt

The collection, ids and metadata are those of the single-process ingest (`SearchService.build`),
so either one can continue what the other began. The workers write to Milvus themselves, so the
collection must live on a Milvus server (MILVUS_URI=http://...): Milvus Lite is a file that one
process at a time may open.

Restart-safe by construction: rows are upserted by their stable id (a batch done twice replaces
itself), a rerun plans only the files the collection does not hold yet, Ray retries a batch whose
actor died (and restarts the actor), and finished vectors go to the embedding cache as well.
"""
from __future__ import annotations

import logging
import time
from contextlib import contextmanager

import pandas as pd
from tqdm import tqdm

from ..config import is_milvus_lite
from ..data.folders import SyncPlan, compare_listing, manifest_rows
from ..embed.stream import EmbedReport
from ..errors import ImageError, UsageError
from ..retrieval.search import IngestReport
from .workers import EmbedWriter, read_images

ACTORS = 2  # embedding actors (one model each)
BATCH_SIZE = 32  # images per read task and per forward pass
# Ray's default of one CPU per actor leaves no CPU for the read tasks on a 2-core machine and the
# run never starts; fractions let both run (each network still uses every core it is given).
# Ray Data runs the reads inside the actors when both ask for the same CPUs ("fusion"); different
# figures keep them in tasks of their own, which spread over every node of a cluster.
ACTOR_CPUS = 0.5
READ_CPUS = 0.25
COLUMNS = ["id", "path", "relpath", "label", "folder", "size", "mtime"]


def ingest_with_ray(service, address: str | None = None, actors: int = ACTORS, batch_size: int = BATCH_SIZE,
                    actor_cpus: float = ACTOR_CPUS, read_cpus: float = READ_CPUS, manifest=None, fresh: bool = False,
                    use_cache: bool = True, progress: bool = True, on_progress=None):
    """Bring `service`'s collection in step with its gallery, embedding on Ray; a `SyncReport`.

    `address`: None starts a local Ray (or uses the one this process already started), else
    any address `ray.init` takes ("auto", "ray://head:10001"). `manifest`: a text file listing the
    gallery's images (one path per line), instead of walking the folder. `on_progress(done)` is
    called on the driver after each finished batch. `actor_cpus` and `read_cpus`: the CPUs Ray
    reserves per actor and per read task (equal figures run the reads inside the actors).
    """
    check_can_distribute(service, actors, batch_size, min(actor_cpus, read_cpus))
    start = time.perf_counter()
    gallery = manifest_rows(service.root, manifest) if manifest else service.scan()
    if fresh:
        service.engine.drop()
    service.use_index_for(len(gallery))
    listing = compare_listing(gallery, service.engine.metadata())
    service.engine.delete(listing.removed)
    todo = pd.concat([listing.added, listing.modified], ignore_index=True)
    report = None
    if len(todo):
        service.engine.ensure_collection(service.embedder.dim)  # before any worker writes
        with ray_session(address):
            report = embed_on_ray(todo, service, actors, batch_size, (actor_cpus, read_cpus), use_cache, progress,
                                  on_progress)
    service.engine.commit()  # flush, index, load: once, on the driver
    skipped = list(gallery.attrs.get("skipped", []))  # what the walk left out, reported as a local ingest does
    plan = SyncPlan(listing.added, listing.modified, listing.removed, listing.unchanged, skipped=skipped)
    return service.finish_build(plan, report, start)


def check_can_distribute(service, actors: int, batch_size: int, cpus: float) -> None:
    if service.engine_kind != "milvus" or is_milvus_lite(service.settings.milvus_uri):
        raise UsageError("--ray has its workers write to Milvus, so it needs a Milvus server: set MILVUS_URI "
                         "(e.g. http://127.0.0.1:19530; `python -m imgsearch_helpers.index.milvus_server` starts "
                         "one here). Milvus Lite is a file only one process may open.")
    if actors < 1 or batch_size < 1 or cpus <= 0:
        raise UsageError(f"actors and batch size must be at least 1 and CPUs per worker above 0, not {actors}, "
                         f"{batch_size} and {cpus}")


@contextmanager
def ray_session(address: str | None = None):
    """Connect to Ray (a local one when `address` is None), unless this process already is; the
    connection made here is closed on the way out."""
    import ray

    if ray.is_initialized():
        yield
        return
    start_ray(ray, address)
    try:
        yield
    finally:
        ray.shutdown()


STARTUP_TRIES = 2


def start_ray(ray, address: str | None) -> None:
    """`ray.init`, tried again once when a local node misses its start-up wait: Ray gives the new
    raylet a fixed 30 s to register, which a busy 2-core machine can miss (seen right after another
    local Ray session shut down)."""
    for attempt in range(1, STARTUP_TRIES + 1):
        try:
            ray.init(address=address, include_dashboard=False, logging_level="WARNING", configure_logging=True)
            return
        except Exception as exc:  # Ray raises a bare Exception for this
            if "timed out during startup" not in str(exc) or attempt == STARTUP_TRIES:
                raise
            ray.shutdown()  # the half-started node's processes


def embed_on_ray(todo: pd.DataFrame, service, actors: int, batch_size: int, cpus: tuple[float, float],
                 use_cache: bool, progress: bool, on_progress) -> IngestReport:
    """Read tasks -> an actor pool that embeds and upserts; the driver counts what comes back."""
    import ray

    start = time.perf_counter()
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # the driver's own bar below says images, images/s, failures
    context.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.ERROR)  # its notices about bars and plans it runs
    embedder = service.embedder
    # One block per batch, so reads spread over every worker from the start (Ray's own split of
    # a frame, `override_num_blocks`, fails on pandas 3).
    rows = todo[COLUMNS]
    listing = ray.data.from_pandas([rows.iloc[first:first + batch_size] for first in range(0, len(rows), batch_size)])
    # Ray Data restarts a dead actor and retries its batch (max_restarts and max_task_retries
    # default to -1 for actor pools) and retries failed read tasks.
    pixels = listing.map_batches(read_images, fn_kwargs={"preprocess": embedder.preprocess,
                                                         "min_side": embedder.min_side},
                                 batch_size=batch_size, batch_format="numpy", num_cpus=cpus[1])
    job = {"model": service.model_name, "settings": service.settings, "collection": service.collection,
           "use_cache": use_cache}
    pool = ray.data.ActorPoolStrategy(size=actors)
    written = pixels.map_batches(EmbedWriter, fn_constructor_kwargs=job, compute=pool, batch_size=batch_size,
                                 batch_format="numpy", num_cpus=cpus[0])
    report = count_results(written, len(todo), f"embed {embedder.name} on Ray", progress, on_progress)
    return IngestReport(report.embedded + report.from_cache, time.perf_counter() - start, report)


def count_results(written, total: int, desc: str, progress: bool, on_progress) -> EmbedReport:
    report, done = EmbedReport(), 0
    with tqdm(total=total, desc=desc, unit="img", disable=not progress) as bar:
        for batch in written.iter_batches(batch_size=None, batch_format="numpy"):
            failed = batch["error"] != ""
            report.failures += [ImageError(path, reason) for path, reason in
                                zip(batch["path"][failed], batch["error"][failed])]
            report.from_cache += int(batch["cached"].sum())
            report.embedded += int((~failed & ~batch["cached"]).sum())
            done += len(failed)
            bar.update(len(failed))
            bar.set_postfix(failed=len(report.failures), refresh=False)
            if on_progress:
                on_progress(done)
    return report
