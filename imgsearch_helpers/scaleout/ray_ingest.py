"""A build's embedding on Ray: Ray Data reads and embeds the rows a `SearchService.build` hands
over, and the workers upsert them into Milvus while the driver shows progress.

    imgsearch ingest ~/photos --ray              a local Ray on this machine's cores
    imgsearch ingest ~/photos --ray auto         the Ray cluster this machine belongs to
    imgsearch ingest ~/photos --ray ray://head:10001 --manifest files.txt

    service.build(runner=RayRunner(service.model_name, service.settings, actors=2))

The build is the service's own (listing, plan, deletions, the registry), so the collection, ids
and metadata are those of the single-process ingest, and either one can continue what the other
began. Only the plan differs: the driver compares listings and reads no file, the workers hash
and measure each file as they read it. The workers write to Milvus themselves, so the collection
must live on a Milvus server (MILVUS_URI=http://...): Milvus Lite is a file that one process at
a time may open.

Restart-safe by construction: rows are upserted by their stable id (a batch done twice replaces
itself), a rerun plans only the files the collection does not hold yet, Ray retries a batch whose
actor died (and restarts the actor), and finished vectors go to the embedding cache as well.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from typing import ClassVar

import pandas as pd
from tqdm import tqdm

from ..config import Settings, is_milvus_lite
from ..data.folders import COLUMNS
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
NEEDS_SERVER = ("--ray has its workers write to Milvus, so it needs a Milvus server: set MILVUS_URI (e.g. "
                "http://127.0.0.1:19530; `python -m imgsearch_helpers.index.milvus_server` starts one here) and "
                "use the milvus engine. Milvus Lite is a file only one process may open.")


@dataclass
class RayRunner:
    """The runner of a `SearchService.build` that embeds on Ray (`retrieval.search.ingest` is the
    one in this process): called like it, it embeds the rows on Ray's workers, which upsert them
    into the engine's Milvus collection, then commits on the driver.

    `model` and `settings` are the service's (each actor builds the model from them). `address`:
    None starts a local Ray (or uses the one this process already started), else any address
    `ray.init` takes ("auto", "ray://head:10001"). `on_progress(done)` is called on the driver after
    each finished batch. `actor_cpus` and `read_cpus`: the CPUs Ray reserves per actor and per read
    task (equal figures run the reads inside the actors). `use_cache`: False embeds every image.
    """

    model: str
    settings: Settings
    address: str | None = None
    actors: int = ACTORS
    batch_size: int = BATCH_SIZE
    actor_cpus: float = ACTOR_CPUS
    read_cpus: float = READ_CPUS
    use_cache: bool = True
    on_progress: Callable[[int], None] | None = None
    describes_files: ClassVar[bool] = True  # the workers hash and measure the files: the plan reads none

    def __post_init__(self):  # before the build changes anything
        check_milvus_server(self.settings.milvus_uri)
        if self.actors < 1 or self.batch_size < 1 or min(self.actor_cpus, self.read_cpus) <= 0:
            raise UsageError(f"actors and batch size must be at least 1 and CPUs per worker above 0, not "
                             f"{self.actors}, {self.batch_size} and {min(self.actor_cpus, self.read_cpus)}")

    def __call__(self, rows: pd.DataFrame, encoder, engine, cache=None, transform=None,
                 progress: bool = True) -> IngestReport:
        check_milvus_server(getattr(engine, "uri", None))  # only a Milvus engine has one
        engine.ensure_collection(encoder.dim)  # before any worker writes
        job = {"model": self.model, "settings": self.settings, "collection": engine.collection,
               "cache_path": cache.path if cache is not None and self.use_cache else None, "transform": transform}
        with ray_session(self.address):
            report = self.embed_on_ray(rows, encoder, job, progress)
        engine.commit()  # flush, index, load: once, on the driver
        return report

    def embed_on_ray(self, rows: pd.DataFrame, encoder, job: dict, progress: bool) -> IngestReport:
        """Read tasks -> an actor pool that embeds and upserts; the driver counts what comes back."""
        import ray

        start = time.perf_counter()
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False  # the driver's own bar below says images, images/s, failures
        context.print_on_execution_start = False
        logging.getLogger("ray.data").setLevel(logging.ERROR)  # its notices about bars and plans it runs
        # One block per batch, so reads spread over every worker from the start (Ray's own split of
        # a frame, `override_num_blocks`, fails on pandas 3).
        rows, size = rows[["id", *COLUMNS]], self.batch_size  # what a listing knows: the workers add the rest
        listing = ray.data.from_pandas([rows.iloc[first:first + size] for first in range(0, len(rows), size)])
        # Ray Data restarts a dead actor and retries its batch (max_restarts and max_task_retries
        # default to -1 for actor pools) and retries failed read tasks.
        pixels = listing.map_batches(read_images, fn_kwargs={"preprocess": encoder.preprocess,
                                                             "min_side": encoder.min_side},
                                     batch_size=size, batch_format="numpy", num_cpus=self.read_cpus)
        pool = ray.data.ActorPoolStrategy(size=self.actors)
        written = pixels.map_batches(EmbedWriter, fn_constructor_kwargs=job, compute=pool, batch_size=size,
                                     batch_format="numpy", num_cpus=self.actor_cpus)
        report = count_results(written, len(rows), f"embed {encoder.name} on Ray", progress, self.on_progress)
        return IngestReport(report.embedded + report.from_cache, time.perf_counter() - start, report)


def ingest_with_ray(service, *, manifest=None, fresh: bool = False, progress: bool = True, **options):
    """`service.build(..., runner=RayRunner(...))` in one call, `options` being the runner's; a `SyncReport`."""
    runner = RayRunner(service.model_name, service.settings, **options)
    return service.build(fresh=fresh, progress=progress, runner=runner, manifest=manifest)


def check_milvus_server(uri: str | None) -> None:
    if uri is None or is_milvus_lite(uri):
        raise UsageError(NEEDS_SERVER)


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
