"""Can Milvus Lite hold a local-feature index? Each gallery image stores its ~500 RootSIFT
descriptors (128-d) as one row each with its `image_id`; each query image searches all of its
descriptors at once (nq ~500, k=6). Milvus Lite (IVF_FLAT, HNSW, FLAT) against hnswlib and FAISS
(HNSW, exact IndexFlatL2) on the same descriptors, in one run.

    python benchmarks/local_store.py [--sizes 100 300 1000] [--queries 20] [--flat-up-to 100] [--flat-queries 3]

Descriptors: `retrieval.verify.local_features` (RootSIFT, up to 500 keypoints, 512-pixel side) of
the tutorial gallery (a seeded shuffle, the first 100, 300 and 1,000 images) and of `--queries` test
images spread over the test set. Each store is built and searched in a fresh process, one at a
time, so that memory an earlier store left behind does not count. Per store and gallery size:
build seconds (insert + flush + index + load), the median ms of one query image (one search call
with all its descriptors, image ids included) and of one single-descriptor call, resident memory
added (the process and any children, after the build and a warm-up search), the size on disk
(Milvus Lite's database folder; FAISS and hnswlib: the index written to a file), and recall@1
against IndexFlatL2's exact nearest neighbour (a tie counts). Milvus Lite's FLAT is searched a few
descriptors per call (see `flat_nq`), so it is measured on `--flat-queries` queries and only up to
`--flat-up-to` images.
"""
from __future__ import annotations

import ctypes
import gc
import importlib.metadata
import multiprocessing
import os
import shutil
import sys
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import faiss
import hnswlib
import numpy as np
import psutil
from _harness import Bench, run_benchmark

from imgsearch_helpers.data.tutorial import load_catalog, load_queries
from imgsearch_helpers.evaluation.timing import time_each, time_runs
from imgsearch_helpers.index.milvus import DataType, connect, stop_lite_servers
from imgsearch_helpers.retrieval.verify import local_features

DIM, K, SEED = 128, 6, 0
WORKERS = 2  # feature threads: OpenCV releases the GIL, one per core
INSERT_ROWS = 10_000
HNSW_M, EF_CONSTRUCTION, EF = 16, 100, 64
FAISS_HNSW_M = 32
NPROBE = 16
# Milvus Lite's brute force (FLAT, and unflushed rows) builds a (nq, rows, 128) float32 array per
# call: 500 descriptors against 50k rows would be 12.8 GB. Keep each call's array under this.
FLAT_CALL_BYTES = 256e6
LIMIT_PROBE = 16_385  # one past Milvus server's cap on nq and on k (16,384)
STORES = [("faiss", "FLAT"), ("faiss", "HNSW"), ("hnswlib", "HNSW"),
          ("milvus-lite", "IVF_FLAT"), ("milvus-lite", "HNSW"), ("milvus-lite", "FLAT")]  # exact search first


@dataclass
class Gallery:
    vectors: np.ndarray  # (rows, 128) float32 descriptors
    image_ids: np.ndarray  # (rows,) int64: the gallery image each row came from

    @property
    def images(self) -> int:
        return int(self.image_ids.max()) + 1


def extract(paths: list[str]) -> list[np.ndarray]:
    """RootSIFT descriptors of each image, on two threads."""
    with ThreadPoolExecutor(WORKERS) as pool:
        return list(pool.map(lambda path: local_features(path).descriptors, paths))


def gallery_of(descriptors: list[np.ndarray]) -> Gallery:
    ids = np.concatenate([np.full(len(d), i, np.int64) for i, d in enumerate(descriptors)])
    return Gallery(np.ascontiguousarray(np.vstack(descriptors), np.float32), ids)


def trim() -> None:
    """Give freed memory back to the system (glibc's heap, and pyarrow's pool, which Milvus Lite
    fills), so RSS before and after a build compare."""
    gc.collect()
    if "pyarrow" in sys.modules:
        sys.modules["pyarrow"].default_memory_pool().release_unused()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass


def rss_mb() -> float:
    """Resident memory of this process and its children (an embedded server may run as one)."""
    me = psutil.Process()
    return sum(p.memory_info().rss for p in [me, *me.children(recursive=True)]) / 1e6


def folder_mb(folder: Path) -> float:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 1e6


class FaissStore:
    def __init__(self, kind: str):
        self.index_type = kind
        self.params = {"M": FAISS_HNSW_M, "efConstruction": EF_CONSTRUCTION, "ef": EF} if kind == "HNSW" else {}

    def build(self, gallery: Gallery) -> None:
        if self.index_type == "HNSW":
            self.index = faiss.IndexHNSWFlat(DIM, FAISS_HNSW_M)
            self.index.hnsw.efConstruction = EF_CONSTRUCTION
            self.index.hnsw.efSearch = EF
        else:
            self.index = faiss.IndexFlatL2(DIM)
        self.index.add(gallery.vectors)
        self.image_ids = gallery.image_ids

    def search(self, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rows = self.index.search(queries, K)[1]
        return rows, self.image_ids[rows]

    def disk_mb(self, scratch: Path) -> float:
        return saved_mb(scratch / "faiss.index", lambda path: faiss.write_index(self.index, path))

    def close(self) -> None:
        del self.index


def saved_mb(path: Path, save) -> float:
    """Megabytes an index takes once `save(path)` writes it (the file is removed after)."""
    save(str(path))
    size = path.stat().st_size / 1e6
    path.unlink()
    return size


class HnswlibStore:
    index_type = "HNSW"
    params = {"M": HNSW_M, "efConstruction": EF_CONSTRUCTION, "ef": EF}

    def build(self, gallery: Gallery) -> None:
        self.index = hnswlib.Index(space="l2", dim=DIM)
        self.index.init_index(len(gallery.vectors), M=HNSW_M, ef_construction=EF_CONSTRUCTION, random_seed=SEED)
        self.index.add_items(gallery.vectors, np.arange(len(gallery.vectors)))
        self.index.set_ef(EF)
        self.image_ids = gallery.image_ids

    def search(self, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rows = self.index.knn_query(queries, K)[0].astype(np.int64)
        return rows, self.image_ids[rows]

    def disk_mb(self, scratch: Path) -> float:
        return saved_mb(scratch / "hnswlib.bin", self.index.save_index)

    def close(self) -> None:
        del self.index


class LiteStore:
    """One collection: auto-id INT64 primary key, `image_id` INT64, `vector` FLOAT_VECTOR(128)."""

    def __init__(self, client, folder: Path, kind: str, rows: int):
        self.client, self.folder, self.index_type = client, folder, kind
        self.collection = f"local_{kind.lower()}"
        self.params, self.search_params = lite_params(kind, rows)
        self.nq_per_call = flat_nq(rows) if kind == "FLAT" else None

    def build(self, gallery: Gallery) -> None:
        schema = self.client.create_schema(auto_id=True, enable_dynamic_field=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("image_id", DataType.INT64)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=DIM)
        self.client.create_collection(self.collection, schema=schema)
        keys = []
        for start in range(0, len(gallery.vectors), INSERT_ROWS):
            stop = min(start + INSERT_ROWS, len(gallery.vectors))
            rows = [{"image_id": int(gallery.image_ids[i]), "vector": gallery.vectors[i]} for i in range(start, stop)]
            keys.append(np.asarray(self.client.insert(self.collection, rows)["ids"], np.int64))
        self.keys = np.concatenate(keys)  # auto ids, in insertion order: the row of each key
        if np.any(np.diff(self.keys) <= 0):
            raise RuntimeError("Milvus Lite's auto ids are not increasing: rows cannot be found by searchsorted")
        self.client.flush(self.collection)  # an index covers flushed rows only; unflushed ones are brute-forced
        index = self.client.prepare_index_params()
        # nested under "params": the form Milvus Lite reads (see index.milvus)
        index.add_index(field_name="vector", index_type=self.index_type, metric_type="L2", index_name="vector",
                        params={"params": self.params})
        self.client.create_index(self.collection, index)
        self.client.load_collection(self.collection)

    def search(self, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        step = self.nq_per_call or len(queries)
        hits = [hit for start in range(0, len(queries), step) for hit in self.client.search(
            self.collection, data=queries[start:start + step], limit=K, anns_field="vector",
            output_fields=["image_id"], search_params={"metric_type": "L2", "params": self.search_params})]
        keys, image_ids = np.full((len(queries), K), -1, np.int64), np.full((len(queries), K), -1, np.int64)
        for row, found in enumerate(hits):  # an IVF search can return fewer than k
            keys[row, :len(found)] = [h["id"] for h in found]
            image_ids[row, :len(found)] = [h["entity"]["image_id"] for h in found]
        rows = np.where(keys >= 0, np.searchsorted(self.keys, keys), -1)
        return rows, image_ids

    def segments(self) -> int:
        return sum(1 for _ in self.folder.rglob("data_*.parquet"))

    def disk_mb(self, scratch: Path) -> float:
        return folder_mb(self.folder)

    def drop(self) -> None:
        self.client.drop_collection(self.collection)

    def close(self) -> None:
        self.drop()
        self.client.close()
        stop_lite_servers()  # before the folder it writes to goes
        shutil.rmtree(self.folder)


def lite_params(kind: str, rows: int) -> tuple[dict, dict]:
    """(build, search) parameters: IVF with about 4 sqrt(rows) lists, HNSW as hnswlib's."""
    if kind == "IVF_FLAT":
        return {"nlist": int(4 * np.sqrt(rows))}, {"nprobe": NPROBE}
    if kind == "HNSW":
        return {"M": HNSW_M, "efConstruction": EF_CONSTRUCTION}, {"ef": EF}
    return {}, {}


def flat_nq(rows: int) -> int:
    """Descriptors per FLAT search call that keep Milvus Lite's (nq, rows, 128) array in budget."""
    return max(1, int(FLAT_CALL_BYTES // (rows * DIM * 4)))


def open_lite(folder: Path, kind: str, rows: int) -> LiteStore:
    """A Milvus Lite database with one small collection built, searched and dropped first: the
    store measured should not pay for imports and threads a running service has ready."""
    client = connect(str(folder), timeout=3600)  # a 500k-row index build takes minutes
    warm = LiteStore(client, folder, "IVF_FLAT", 2_000)
    rng = np.random.default_rng(SEED)
    warm.build(Gallery(rng.random((2_000, DIM), np.float32), np.arange(2_000, dtype=np.int64) // 500))
    warm.search(rng.random((10, DIM), np.float32))
    warm.drop()
    return LiteStore(client, folder, kind, rows)


def open_store(name: str, kind: str, rows: int, scratch: Path):
    if name == "faiss":
        return FaissStore(kind)
    if name == "hnswlib":
        return HnswlibStore()
    return open_lite(scratch / "lite" / f"{kind.lower()}.db", kind, rows)


def recall_at_1(queries: np.ndarray, found: np.ndarray, exact: np.ndarray, vectors: np.ndarray) -> float:
    """Share of descriptors whose first hit is the exact nearest row, or as near (a tie)."""
    nearest = ((queries - vectors[exact]) ** 2).sum(1)
    reached = ((queries - vectors[np.maximum(found, 0)]) ** 2).sum(1)
    return float(np.mean((found >= 0) & ((found == exact) | (reached <= nearest + 1e-6))))


def measure_store(name: str, kind: str, gallery: Gallery, queries: list[np.ndarray], scratch: Path,
                  probe: bool) -> tuple[dict, list, dict | None]:
    """One store built and searched: its row, its first hits per query, and (`probe`, Milvus Lite)
    the limits it showed. Runs in a process of its own."""
    store = open_store(name, kind, len(gallery.vectors), scratch)
    trim()
    before = rss_mb()
    build = time_runs(lambda: store.build(gallery))
    store.search(queries[0][:10])  # warm-up: a first search loads and allocates
    trim()
    added = rss_mb() - before
    timing = time_each(store.search, queries)
    single = time_each(store.search, [query[:1] for query in queries])  # a call's fixed cost
    row = {"store": name, "index": kind, "images": gallery.images, "rows": len(gallery.vectors),
           "build_s": round(build.total, 2), "ms_per_query_p50": round(timing.percentile_ms(50), 1),
           "ms_one_descriptor_p50": round(single.percentile_ms(50), 2), "recall_at_1": None,
           "rss_mb": round(added, 1), "disk_mb": round(store.disk_mb(scratch), 1),
           "params": {**store.params, **getattr(store, "search_params", {})}, "queries": len(queries),
           "nq_per_call": getattr(store, "nq_per_call", None) or "all"}
    limits = None
    if name == "milvus-lite":
        row |= {"segments": store.segments(), "child_processes": len(psutil.Process().children(recursive=True))}
        limits = probe_limits(store, np.vstack(queries)) if probe else None
    store.close()
    return row, [rows[:, 0] for rows, _ in timing.result], limits


def in_own_process(work, *args):
    """`work(*args)` in a fresh process (spawned: no threads or heap inherited), waited for."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(work, *args).result()


def probe_limits(store: LiteStore, queries: np.ndarray) -> dict:
    """Whether Milvus Lite takes one past Milvus server's caps on nq and on k in one search."""
    def tried(data: np.ndarray, k: int) -> str:
        try:
            found = store.client.search(store.collection, data=data, limit=k, anns_field="vector",
                                        search_params={"metric_type": "L2", "params": store.search_params})
            return f"accepted: {len(found)} result lists, the first with {len(found[0])} hits"
        except Exception as error:  # what Lite refuses with is the finding
            return f"refused: {type(error).__name__}: {str(error)[:200]}"
    many = queries[np.arange(LIMIT_PROBE) % len(queries)]
    return {"index": store.index_type, "rows": len(store.keys), f"nq_{LIMIT_PROBE}_k_1": tried(many, 1),
            f"nq_1_k_{LIMIT_PROBE}": tried(queries[:1], LIMIT_PROBE)}


def skipped_flat(gallery: Gallery, up_to: int) -> dict:
    nq = flat_nq(len(gallery.vectors))
    return {"store": "milvus-lite", "index": "FLAT", "images": gallery.images, "rows": len(gallery.vectors),
            "build_s": None, "ms_per_query_p50": None, "ms_one_descriptor_p50": None, "recall_at_1": None,
            "rss_mb": None, "disk_mb": None, "nq_per_call": nq,
            "note": f"not measured (--flat-up-to {up_to}): {nq} descriptor(s) per call"}


def measure_size(gallery: Gallery, queries: list[np.ndarray], bench: Bench, probe: bool) -> tuple[list[dict], dict]:
    """Every store on one gallery, one process each (rows, and the Milvus Lite limits if `probe`);
    FAISS's exact search first: its first hits are the others' truth."""
    args, rows, limits, exact = bench.args, [], {}, None
    for name, kind in STORES:
        flat = (name, kind) == ("milvus-lite", "FLAT")
        if flat and gallery.images > args.flat_up_to:
            rows.append(skipped_flat(gallery, args.flat_up_to))
            continue
        print(f"  {name} {kind}", flush=True)
        timed = queries[:args.flat_queries] if flat else queries
        row, found, seen = in_own_process(measure_store, name, kind, gallery, timed, bench.scratch,
                                          probe and kind == "IVF_FLAT")
        if exact is None:  # FAISS FLAT, first
            exact = found
        row["recall_at_1"] = round(recall_at_1(np.vstack(timed), np.concatenate(found),
                                               np.concatenate(exact[:len(found)]), gallery.vectors), 4)
        limits |= seen or {}
        print(f"    {row}", flush=True)
        rows.append(row)
    return rows, limits


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def versions() -> dict:
    return {name: importlib.metadata.version(name) for name in ("milvus-lite", "pymilvus", "faiss-cpu", "hnswlib")}


def add_options(parser) -> None:
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 300, 1000], help="gallery images")
    parser.add_argument("--queries", type=int, default=20, help="test images, each one query")
    parser.add_argument("--flat-up-to", type=int, default=100, help="largest gallery Milvus Lite FLAT is run on")
    parser.add_argument("--flat-queries", type=int, default=3, help="queries Milvus Lite FLAT is timed on")


def measure(bench: Bench) -> dict:
    args, settings = bench.args, bench.settings()
    catalog, tests = load_catalog(settings), load_queries(settings=settings)
    order = np.random.default_rng(SEED).permutation(len(catalog))[:max(args.sizes)]  # classes mixed at any size
    picked = np.linspace(0, len(tests) - 1, args.queries).round().astype(int)
    features = time_runs(lambda: extract([catalog.path.iloc[i] for i in order]))
    queries = extract([tests.path.iloc[i] for i in picked])
    print(f"features of {len(order)} images in {features.total:.1f} s", flush=True)
    result = {"k": K, "query_images": len(queries), "descriptors_per_query_mean": round(
                  float(np.mean([len(q) for q in queries])), 1), "feature_s": round(features.total, 1),
              "cpu_model": cpu_model(), "cores": psutil.cpu_count(), "versions": versions(),
              "flat_call_bytes": int(FLAT_CALL_BYTES), "load_average_1min": {"start": round(os.getloadavg()[0], 2)},
              "lite_limits": {}, "rows": []}
    for size in sorted(args.sizes):
        gallery = gallery_of(features.result[:size])
        print(f"{size} images, {len(gallery.vectors):,} rows", flush=True)
        rows, limits = measure_size(gallery, queries, bench, probe=size == min(args.sizes))
        result["rows"] += rows
        result["lite_limits"] |= limits
        result["load_average_1min"][f"after_{size}"] = round(os.getloadavg()[0], 2)  # a shared machine
        bench.write(result)  # keep what is measured so far
    return result


if __name__ == "__main__":
    run_benchmark(measure, __doc__, "local_store.json", add_options)
