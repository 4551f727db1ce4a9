"""The engine behind the app, the HTTP API and the command line: one model, one collection per
gallery, kept in step with the gallery's folder.

`build` compares the folder with the collection and changes only what differs (`data.folders.plan_sync`):
new files are embedded (through the cache), changed ones re-embedded, deleted ones removed.
Every row carries the gallery metadata (`data.folders.FIELDS`), which searches can filter on with
Milvus boolean expressions. Vectors are unit length and searched by inner product (cosine:
notebook 2); the index is sized from the row count (`index.index_for_rows`).
"""
from __future__ import annotations

import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from functools import cached_property, partial
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd

from ..config import Settings, get_settings
from ..data.folders import (
    FIELDS,
    SyncPlan,
    Walk,
    dataset_rows,
    file_rows,
    manifest_rows,
    plan_sync,
    scan_folder,
    stable_id,
)
from ..data.regions import Region
from ..data.thumbnails import Thumbnails
from ..data.tutorial import dataset_root, ground_truth, load_catalog, load_queries
from ..embed.cache import open_cache
from ..embed.stream import StreamsImages
from ..errors import NotBuiltError, UsageError
from ..evaluation.runs import evaluate_engine
from ..index import IndexSpec, index_for_rows, open_engine
from ..models import DEFAULT_MODEL, build_embedder
from ..retrieval.search import Found, IngestReport, LiveFiles, Query, ReadPath, embed_queries, ingest
from ..vectors import l2_normalize
from .collections import DATASET, Entry, GalleryRef, Registry, collection_name


@dataclass
class Hit:
    id: int
    label: str
    path: str  # the file, absolute
    relpath: str  # relative to the gallery folder
    similarity: float
    verified: bool | None = None  # local features agree with the query's (None: not checked)
    inliers: int | None = None  # how many do, in a local-feature search (`+local` models)


@dataclass
class Results:
    """Hits per query; `gone` counts hits left out because their file was deleted since the ingest."""

    hits: list[list[Hit]]
    gone: int = 0


@dataclass
class SyncReport:
    plan: SyncPlan
    ingest: IngestReport | None  # None when nothing had to be embedded
    rows: int
    seconds: float

    @property
    def skipped(self) -> list[str]:
        """Files left out of the collection, each as `path: reason`: those the folder's scan skipped
        (links, FIFOs, names...: `data.folders.scan_folder`), then those that could not be read as images."""
        failures = [str(failure) for failure in self.ingest.embed.failures] if self.ingest else []
        return [f"{path}: {reason}" for path, reason in self.plan.skipped] + failures

    def counts(self) -> dict:
        """Files added, changed, removed and unchanged; an unreadable new file is not counted as added."""
        plan, bad = self.plan, {f.path for f in self.ingest.embed.failures} if self.ingest else set()
        return {"added": int((~plan.added["path"].isin(bad)).sum()), "changed": len(plan.changed) - len(plan.touched),
                "removed": len(plan.removed), "unchanged": plan.unchanged + len(plan.touched),
                "renamed": plan.renamed, "skipped": self.skipped, "ignored": plan.ignored}

    def __str__(self) -> str:
        embedded = f"; {self.ingest.embed.summary()}" if self.ingest else ""
        return f"{self.plan.summary()}{embedded}; {self.rows} rows, {self.seconds:.1f} s"


class IngestRunner(Protocol):
    """What embeds and writes a build's rows, then commits the engine, called like
    `retrieval.search.ingest` (the one in this process). A runner that reads the files itself says
    so with `describes_files = True`: the build's plan then reads none (`data.folders.plan_sync`)."""

    def __call__(self, rows: pd.DataFrame, encoder, engine, cache=None, transform=None,
                 progress: bool = True) -> IngestReport: ...


LOCAL_SUFFIX = "+local"  # "<model>+local": matches by local features, the model's vectors beside them
MAX_K = 1000  # hits per query: past it a request would cost memory in proportion, not results
VERIFY_TOP = 10  # hits a verified search checks per query
KEEP_FEATURES = 2000  # gallery images whose local features a service keeps between verified searches


class SearchService:
    """`gallery` is "dataset" (the tutorial data, in the configured slice) or a folder of images."""

    def __init__(self, model: str = DEFAULT_MODEL, engine: str = "milvus", gallery: str | Path = DATASET,
                 settings: Settings | None = None):
        self.settings = settings or get_settings()
        self.model_name, self.engine_kind = model, engine
        self.local = model.endswith(LOCAL_SUFFIX)  # find the original by local features (`retrieval.local`)
        self.gallery = GalleryRef.of(gallery, self.settings)
        self.collection = collection_name(self.gallery, model)
        self.registry = Registry(self.settings)
        self.cache = open_cache(self.settings)
        self.thumbnails = Thumbnails(self.settings.cache_dir / "thumbnails")  # for pages of results
        entry = self.registry.get(self.collection) if engine == "milvus" else None
        self.index = IndexSpec.from_dict(entry.index) if entry and entry.index else None  # as built
        self.engine = self._open(self.index)
        self._built = False  # known to hold rows: searches skip the engine's row count
        # The API serves threads: one forward pass at a time (a runtime's infer request is not
        # reentrant), and the index is changed by one writer while no search reads it. Taken in
        # this order when both are needed.
        self._model_lock = threading.Lock()
        self._index_lock = threading.RLock()
        self._local_features = {}  # gallery path -> local features, for verified searches
        self._diffused = None  # the collection's diffusion graph as last read (`retrieval.diffused`)

    def _open(self, index: IndexSpec | None):
        self._diffused = None
        return open_engine(self.engine_kind, metric="IP", collection=self.collection, index=index,
                           settings=self.settings, fields=FIELDS)

    @cached_property
    def embedder(self):
        """The model, built on first use: a command that fails early (nothing ingested) never loads it."""
        return build_embedder(self.model_name.removesuffix(LOCAL_SUFFIX), settings=self.settings)

    @cached_property
    def local_store(self):
        """The gallery's local features (`+local` models), beside the collection, read on first use."""
        try:
            from ..index.descriptors import DescriptorIndex
        except ImportError as error:
            raise UsageError(f"a {LOCAL_SUFFIX} model needs hnswlib ({error}): install the engines extra") from error
        return DescriptorIndex.open(self.settings.cache_dir / "local" / f"{self.collection}.npz")

    @cached_property
    def root(self) -> Path:
        """The gallery's folder (for the tutorial data, the dataset's root)."""
        return self.gallery.folder or dataset_root(self.settings)

    def scan(self, manifest=None, include_hidden: bool = False) -> pd.DataFrame:
        """The gallery's files as rows: id, path, relpath, label, folder, size, mtime; `manifest`: a
        text file listing them, one per line, instead of the folder's walk (`data.folders.manifest_rows`);
        hidden files and folders are left out unless `include_hidden` (`data.rules`)."""
        if manifest:
            return manifest_rows(self.root, manifest)
        if self.gallery.is_dataset:
            return dataset_rows(load_catalog(self.settings), self.root)
        return scan_folder(self.root, include_hidden)

    def indexed(self) -> pd.DataFrame:
        """The collection's rows (id and metadata), with `path`: each file, absolute."""
        rows = self.engine.metadata()
        return rows.assign(path=[str(self.root / relpath) for relpath in rows["relpath"]])

    # --- building ------------------------------------------------------------------------------
    def build(self, fresh: bool = False, progress: bool = True, runner: IngestRunner = ingest,
              manifest=None, include_hidden: bool = False) -> SyncReport:
        """Make the collection hold exactly the gallery's files (or those a `manifest` lists); `fresh`
        drops it first.

        The build is planned here: list, compare, delete, update the metadata of touched files.
        `runner` embeds and writes the rows left to add, then commits: `retrieval.search.ingest` in
        this process, or `scaleout.RayRunner` on Ray's workers, which read each file where they
        embed it (`describes_files`), so the plan then reads none.
        """
        start = time.perf_counter()
        gallery = self.scan(manifest, include_hidden)
        if fresh:
            self.engine.drop()
        self._use_index(index_for_rows(len(gallery), self.engine_kind))
        plan = plan_sync(gallery, self.engine.metadata(), describe=not getattr(runner, "describes_files", False))
        self.engine.delete(plan.removed)
        self._update_metadata(plan.changed[plan.changed["id"].isin(plan.touched)])
        todo, report = plan.to_embed(), None
        if runner is ingest and isinstance(self.embedder, StreamsImages):  # thumbnails from the decoded images
            runner = partial(ingest, on_image=self.thumbnails.keep)
        if len(todo):
            report = runner(todo, self.embedder, self.engine, self.cache, transform=l2_normalize, progress=progress)
        else:
            self.engine.commit()  # deletes and metadata updates become visible
        if self.local:
            self._sync_local(plan, todo, fresh, progress)
        return self._record_build(plan, report, start)

    def _sync_local(self, plan: SyncPlan, todo: pd.DataFrame, fresh: bool, progress: bool) -> None:
        """Keep the local features in step with the collection: removed images' rows gone, new and
        changed images' found, and any row the store lacks (an in-process engine rebuilt, a store lost) found."""
        from ..retrieval.local import index_images

        store = self.local_store
        if fresh or self.engine_kind != "milvus":  # an in-process engine was rebuilt: so is the store
            store.remove(store.images)
        store.remove(plan.removed)
        rows = self.indexed()
        stale = set(todo["id"].tolist()) | (set(rows["id"].tolist()) - set(store.images.tolist()))
        chosen = rows[rows["id"].isin(stale)]
        index_images(store, chosen["id"].tolist(), chosen["path"].tolist(), progress)
        store.remove(np.setdiff1d(store.images, rows["id"].to_numpy()))  # rows of images the collection left out
        store.save()

    def _record_build(self, plan: SyncPlan, report: IngestReport | None, start: float) -> SyncReport:
        """Record the built collection in the registry (for Milvus) and report what changed."""
        rows = self.engine.count()
        if self.engine_kind == "milvus":  # the only engine that keeps the collection
            self.registry.record(Entry(self.collection, self.gallery.key, self.gallery.label, self.model_name,
                                       self.engine_kind, self.index.as_dict() if self.index else None, rows, 0.0))
        self._built, self._diffused = rows > 0, None
        return SyncReport(plan, report, rows, time.perf_counter() - start)

    def _use_index(self, index: IndexSpec | None) -> None:
        """Reopen the engine with `index` when the collection's size calls for another one."""
        if index != self.index:
            self.engine.close()
            self.engine, self.index = self._open(index), index

    def _update_metadata(self, rows: pd.DataFrame) -> None:
        """Files touched on disk but with the same bytes: same vectors, new metadata."""
        if len(rows):
            self.engine.add(rows["id"].to_numpy(), self.engine.fetch(rows["id"].to_numpy()),
                            {name: rows[name].to_numpy() for name in FIELDS})

    def ensure_built(self, progress: bool = True) -> SyncReport | None:
        """Build the collection when it holds nothing; None when it was reused.

        The in-process engines (faiss, hnswlib, exact) keep nothing between runs, so for them
        this rebuilds from the embedding cache, which takes a second or two.
        """
        if self.engine_kind == "milvus" and self.ready():
            return None
        return self.build(progress=progress)

    def ready(self) -> bool:
        """The collection holds rows (for Milvus: rows this registry knows how they were indexed)."""
        known = self.engine_kind != "milvus" or self.registry.get(self.collection) is not None
        return known and self.engine.count() > 0

    def require_built(self) -> None:
        """Raise NotBuiltError unless the collection holds rows (asked of the engine once, then remembered)."""
        if not self._built:
            if not self.ready():
                raise NotBuiltError(f"no collection for {self.gallery.label} with {self.model_name} yet: "
                                    "run `imgsearch ingest` first")
            self._built = True

    # --- changing single files (the HTTP API) ----------------------------------------------------
    def add_files(self, files, progress: bool = False) -> IngestReport:
        """Index these files (inside the gallery folder) now, without scanning the rest."""
        if self.gallery.is_dataset:
            raise UsageError("the tutorial dataset cannot take new images: serve a folder of your own")
        self.require_built()
        with self._model_lock, self._index_lock:
            plan = plan_sync(file_rows(self.root, files), self.engine.metadata(_ids_of(self.root, files)))
            todo = pd.concat([plan.added, plan.changed], ignore_index=True)
            self._diffused = None
            report = ingest(todo, self.embedder, self.engine, self.cache, transform=l2_normalize, progress=progress)
            if self.local:
                self._add_local(todo)
            return report

    def _add_local(self, rows: pd.DataFrame) -> None:
        from ..retrieval.local import index_images

        # a file that cannot be read keeps no rows
        index_images(self.local_store, rows["id"].tolist(), rows["path"].tolist(), progress=False)
        self.local_store.save()

    def delete(self, ids=(), relpaths=()) -> int:
        """Remove rows by id or by path relative to the gallery folder (files stay where they are)."""
        self.require_built()
        wanted = [int(i) for i in ids] + [int(i) for i in _ids_of(self.root, [self.root / p for p in relpaths])]
        with self._index_lock:
            found = self.engine.metadata(wanted)["id"].tolist() if wanted else []
            self.engine.delete(found)
            self.engine.commit()
            self._diffused = None
            if self.local:
                self.local_store.remove(found)
                self.local_store.save()
        return len(found)

    # --- searching -----------------------------------------------------------------------------
    def search_images(self, paths, k: int = 10, where: str | None = None, verify: bool = False,
                      diffuse: bool = False, region: Region | None = None) -> Results:
        """Top-k hits per query image; an unreadable image raises `ImageError` naming it.

        `diffuse` ranks by diffusion over the collection's neighbour graph (`retrieval.diffused`):
        better for classes, no filter. `verify` re-ranks each query's top max(k, VERIFY_TOP) hits by
        geometric verification (`retrieval.verify`): hits showing the query's picture or object
        move up, marked `verified`. A `+local` model returns only the gallery images whose local
        features match the query's (`retrieval.local`), with their inliers: none is "no match".
        `region` searches with that box of each query image.
        """
        self.require_built()
        if region is not None:
            with tempfile.TemporaryDirectory(prefix="imgsearch-region-") as folder:
                crops = [region.crop_to(path, Path(folder)) for path in paths]
                return self.search_images(crops, k, where, verify, diffuse)
        paths = [str(p) for p in paths]
        with self._model_lock:
            vectors = embed_queries(paths, self.embedder, transform=l2_normalize)
        if self.local and diffuse:
            raise UsageError("a local-feature search (+local) ranks by evidence: it does not diffuse")
        if self.local and where:  # the votes range over every image: a filter would be ignored
            raise UsageError("a local-feature search (+local) does not take a filter yet")
        return self.search_vectors(vectors, k, where, self.diffused() if diffuse else None,
                                   paths if verify or self.local else None)

    def search_vectors(self, vectors: np.ndarray, k: int, where: str | None = None, engine=None,
                       verify_paths: list | None = None) -> Results:
        """Top-k hits per vector through the read path (`retrieval.search`): files deleted since the
        ingest left out (searching deeper to fill k) and, given the query images (`verify_paths`),
        the top max(k, VERIFY_TOP) re-ranked by geometric verification, or for a `+local` model,
        the local features' matches."""
        check_k(k)
        rows = HitRows(self.engine, self.root)
        steps = [LiveFiles(rows.paths, self._index_lock)]
        if verify_paths is not None and self.local:
            from ..retrieval.local import LocalMatching  # loads OpenCV: only for these searches

            steps.append(LocalMatching(self.local_store, VERIFY_TOP))
        elif verify_paths is not None:
            while len(self._local_features) > KEEP_FEATURES:  # oldest first: about 0.13 MB each
                self._local_features.pop(next(iter(self._local_features)))
            from ..retrieval.verify import Verification  # loads OpenCV: only for verified searches

            steps.insert(0, Verification(rows.paths, self._local_features, VERIFY_TOP))
        found = ReadPath(engine or self.engine, steps).find(Query(vectors, verify_paths, where), k)
        hits = self.hits(found, rows)
        if self.local and verify_paths is not None:  # matches only: none is "no match"
            hits = [[hit for hit in row if hit.verified] for row in hits]
        return Results(hits, found.gone)

    def draw_match(self, query_path, hit: Hit) -> np.ndarray:
        """The query and a hit side by side (RGB), a line for each matching local feature (`+local` models)."""
        from ..retrieval.local import draw_match

        return draw_match(query_path, hit.path, self.local_store, hit.id).image

    def hits(self, found: Found, rows: HitRows) -> list[list[Hit]]:
        flags = found.verified if found.verified is not None else np.full(found.ids.shape, None, object)
        inliers = found.inliers if found.inliers is not None else np.full(found.ids.shape, None, object)
        return [[self._hit(int(i), rows.known[int(i)], float(s), verified, count)
                 for i, s, verified, count in zip(*columns) if int(i) in rows.known]
                for columns in zip(found.ids, found.distances, flags, inliers)]

    def _hit(self, hit_id: int, row: tuple[str, str], similarity: float, verified: bool | None,
             inliers: int | None) -> Hit:
        label, relpath = row
        count = None if inliers is None else int(inliers)
        return Hit(hit_id, label, str(self.root / relpath), relpath, similarity, verified, count)

    def count(self, where: str | None = None) -> int:
        self.require_built()
        return self.engine.count(where)

    def diffused(self):
        """The collection searched by diffusion, its graph built on first use and after changes."""
        if self._diffused is None:
            from ..retrieval.diffused import DiffusedEngine

            self.require_built()
            self._diffused = DiffusedEngine(self.engine)
        return self._diffused

    def evaluate(self, queries_folder=None, k: int = 10, diffuse: bool = False) -> dict:
        """mHR@k, Towhee mAP@k and AP@k over labelled queries (`<label>/<image>`; for the tutorial
        gallery the test set by default). A query's relevant images are those with its label;
        `diffuse` scores the diffusion ranking instead of the index's."""
        self.require_built()
        if queries_folder is None and not self.gallery.is_dataset:
            raise UsageError(f"evaluate needs labelled queries for {self.gallery.label}: pass --queries DIR with "
                             "<label>/<image> files whose labels are folder names of the gallery")
        queries = load_queries(queries_folder, self.settings)
        truth = ground_truth(self.engine.metadata()[["id", "label"]], queries)
        return evaluate_engine(queries, truth, self.embedder, self.diffused() if diffuse else self.engine, k,
                               transform=l2_normalize, collection=self.collection)

    def describe(self) -> dict:
        return {"collection": self.collection, "gallery": self.gallery.label, "model": self.model_name,
                "engine": self.engine_kind, "rows": self.engine.count(), "index": self.engine.describe_index()}

    def close(self) -> None:
        self.engine.close()
        self.cache.close()


def check_k(k: int) -> None:
    if not 1 <= k <= MAX_K:
        raise UsageError(f"k must be from 1 to {MAX_K}, not {k}")


class HitRows:
    """The collection's rows a search's hits point to, each looked up once: id -> (label, relpath)."""

    def __init__(self, engine, root: Path):
        self.engine, self.root, self.known = engine, root, {}

    def paths(self, ids: np.ndarray) -> list[list[str | None]]:
        """Rows of ids -> rows of their files (None: -1, or not in the collection)."""
        wanted = sorted({int(i) for i in np.ravel(ids) if i >= 0} - set(self.known))
        if wanted:
            meta = self.engine.metadata(wanted)
            self.known.update({int(i): (str(label), str(relpath))
                               for i, label, relpath in zip(meta["id"], meta["label"], meta["relpath"])})
        return [[str(self.root / self.known[int(i)][1]) if int(i) in self.known else None for i in row] for row in ids]


def _ids_of(root: Path, files) -> list[int]:
    """The stable ids of files inside `root`, by their paths as the user sees them (a link's own
    path, as a scan stores it); files outside it have none."""
    walk = Walk(Path(root).resolve())
    return [stable_id(relpath) for relpath in map(walk.relpath_of, files) if relpath is not None]


def hits_as_dicts(hits: list[list[Hit]]) -> list[list[dict]]:
    return [[asdict(hit) for hit in row] for row in hits]
