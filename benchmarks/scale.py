"""How search cost and quality change as the collection grows: Milvus Lite, a Milvus server, FAISS
and hnswlib on galleries of 10k to 1M vectors grown from the tutorial's real embeddings.

    python benchmarks/scale.py [--sizes 10000 100000] [--engines faiss hnswlib milvus-lite milvus-server]

How the gallery grows: the 1,000 real EfficientNet-Lite0 gallery embeddings (unit length) are
kept, and each further vector is a random point between a real embedding and one of its 10
nearest real neighbours, plus Gaussian noise a quarter of the median nearest-neighbour distance
long, renormalized: the gallery fills the regions between real neighbours, as a bigger collection
of the same kinds of pictures would. (Noisy copies piled around each real image were tried first:
their true top 10 is a near tie, a 10th/11th-neighbour distance ratio of 0.9992 at 100k, which
no index can rank and which real collections do not have.) Queries: the 100 real test-query
embeddings plus 900 points between a test embedding and one of its 10 nearest gallery
embeddings, made the same way. The truth is exact search (FAISS IndexFlatL2) over the same
vectors; recall@10 is the share of the exact top 10 found.

Per engine, index and search parameter: build time (add + flush/train + index), index size,
recall@10, single-query latency p50/p99 (one query per call, 1,000 calls) and QPS (all 1,000
queries in one call). Results go to benchmarks/results/scale.json, one row each; the plot of
recall against latency to docs/scale_recall_latency.png.
"""
from __future__ import annotations

import gc
import json
from pathlib import Path

import faiss
import numpy as np
from _harness import Bench, run_benchmark

from imgsearch_helpers.data.tutorial import load_catalog, load_queries
from imgsearch_helpers.embed.cache import open_cache
from imgsearch_helpers.embed.stream import embed_paths
from imgsearch_helpers.evaluation.metrics import RECALL, evaluate
from imgsearch_helpers.evaluation.timing import time_each, time_runs
from imgsearch_helpers.index import IndexSpec, open_engine
from imgsearch_helpers.index.milvus_server import MilvusServer
from imgsearch_helpers.models import DEFAULT_MODEL, build_embedder
from imgsearch_helpers.vectors import l2_normalize

PLOT = Path(__file__).parent.parent / "docs" / "scale_recall_latency.png"
QUERIES, K, SEED = 1000, 10, 0
NPROBES, EFS = (1, 4, 16, 64), (16, 32, 64, 128, 256)
HNSW_BUILD = {"M": 16, "efConstruction": 128}
ADD_ROWS = 10_000


def real_vectors(settings) -> tuple[np.ndarray, np.ndarray]:
    """Unit-length Lite0 embeddings of the gallery and the test queries (from the embedding cache)."""
    cache = open_cache(settings)
    embedder = build_embedder(DEFAULT_MODEL, settings=settings)
    gallery, _, _ = embed_paths(load_catalog(settings)["path"], embedder, cache, progress=False)
    queries, _, _ = embed_paths(load_queries(settings=settings)["path"], embedder, cache, progress=False)
    cache.close()
    return l2_normalize(gallery), l2_normalize(queries)


def nearest(points: np.ndarray, among: np.ndarray, k: int, skip_self: bool = False) -> np.ndarray:
    index = faiss.IndexFlatL2(among.shape[1])
    index.add(among)
    return index.search(points, k + skip_self)[1][:, int(skip_self):]


def noise_scale(real: np.ndarray) -> float:
    """Per-dimension noise: a quarter of the median nearest-real-neighbour distance, in length."""
    squared = faiss.IndexFlatL2(real.shape[1])
    squared.add(real)
    distances, _ = squared.search(real, 2)
    return 0.25 * float(np.median(np.sqrt(distances[:, 1]))) / np.sqrt(real.shape[1])


def between(starts: np.ndarray, ends: np.ndarray, t_max: float, scale: float, rng) -> np.ndarray:
    """Random points on the segments starts -> ends (up to t_max of the way), with noise, unit length."""
    t = rng.uniform(0, t_max, (len(starts), 1)).astype(np.float32)
    noise = rng.normal(0, scale, starts.shape).astype(np.float32)
    return l2_normalize(starts + t * (ends - starts) + noise)


def grow(real: np.ndarray, n: int, scale: float, rng, path: Path) -> np.ndarray:
    """The real vectors first, then points between real neighbours, up to n rows.

    The rows live in a memory-mapped file: at 1M they are 5 GB the engines copy anyway, and the
    page cache can give them back when an engine's build needs the memory."""
    neighbours = nearest(real, real, 10, skip_self=True)
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, real.shape[1]))
    out[:len(real)] = real[:n]
    for start in range(len(real), n, 100_000):
        stop = min(n, start + 100_000)
        first = rng.integers(0, len(real), stop - start)
        second = neighbours[first, rng.integers(0, neighbours.shape[1], stop - start)]
        out[start:stop] = between(real[first], real[second], 1.0, scale, rng)
    out.flush()
    return out


def make_queries(test: np.ndarray, gallery_real: np.ndarray, scale: float, rng) -> np.ndarray:
    """The real test queries, then points from a test query half-way at most to a near gallery image."""
    neighbours = nearest(test, gallery_real, 10)
    first = rng.integers(0, len(test), QUERIES - len(test))
    second = neighbours[first, rng.integers(0, 10, len(first))]
    return np.vstack([test, between(test[first], gallery_real[second], 0.5, scale, rng)])


def exact_top(data: np.ndarray, queries: np.ndarray, k: int = K) -> np.ndarray:
    index = faiss.IndexFlatL2(data.shape[1])
    index.add(data)
    return index.search(queries, k)[1]


def configurations(sizes_n: int) -> list[tuple[str, str, dict, str, tuple]]:
    """(engine, index type, build params, search parameter, values swept)."""
    nlist = int(4 * np.sqrt(sizes_n) // 64 * 64) or 64  # about 4 sqrt(n), a common starting point
    ivf, hnsw = {"nlist": nlist}, HNSW_BUILD
    return [("faiss", "IVF_FLAT", ivf, "nprobe", NPROBES), ("faiss", "HNSW", hnsw, "ef", EFS),
            ("hnswlib", "HNSW", hnsw, "ef", EFS),
            ("milvus-lite", "IVF_FLAT", ivf, "nprobe", NPROBES), ("milvus-lite", "HNSW", hnsw, "ef", EFS),
            ("milvus-server", "IVF_FLAT", ivf, "nprobe", NPROBES), ("milvus-server", "HNSW", hnsw, "ef", EFS)]


def open_bench_engine(kind: str, index_type: str, build: dict, bench: Bench, server: MilvusServer | None):
    if kind == "hnswlib":
        from imgsearch_helpers.index import HnswlibEngine

        return HnswlibEngine(build_params=build, threads=-1)  # both cores: speed over a reproducible graph
    if kind == "faiss":
        return open_engine("faiss", index=IndexSpec(index_type, build))
    uri = server.uri if kind == "milvus-server" else str(bench.scratch / "lite" / "scale.db")
    engine = open_engine("milvus", collection=f"scale_{index_type.lower()}", index=IndexSpec(index_type, build),
                         settings=bench.settings(milvus_uri=uri))
    engine.drop()
    return engine


def index_mb(engine, kind: str, scratch: Path, server: MilvusServer | None) -> float | None:
    """Size of what the engine keeps: serialized index, saved graph, or the database on disk."""
    if kind == "faiss":
        return engine.memory_bytes() / 1e6
    if kind == "hnswlib":
        return engine.save(scratch / "hnsw.bin").stat().st_size / 1e6
    folder = scratch / "lite" if kind == "milvus-lite" else server.base_dir / "data"
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 1e6


def sweep(engine, parameter: str, values, queries: np.ndarray, truth: np.ndarray) -> list[dict]:
    rows = []
    for value in values:
        engine.search_params[parameter] = value
        engine.search(queries[:10], K)  # warm-up (loads, caches)
        batch = time_runs(lambda: engine.search(queries, K))  # all queries in one call
        latency = time_each(lambda query: engine.search(query[None], K), queries)  # one query per call
        recall = evaluate(truth.tolist(), batch.result[0].tolist(), K, RECALL)["recall@10"]
        rows.append({parameter: value, "recall@10": round(recall, 4), "qps": round(len(queries) / batch.total, 1),
                     "p50_ms": round(latency.percentile_ms(50), 3), "p99_ms": round(latency.percentile_ms(99), 3)})
        print(f"    {parameter}={value}: recall@10 {recall:.3f}, p50 {rows[-1]['p50_ms']} ms", flush=True)
    return rows


def measure_size(n: int, real, test, scale, engines, bench: Bench, server):
    """Yields the rows of one engine/index at a time, so a long run keeps what it has measured."""
    rng = np.random.default_rng(SEED)
    data = grow(real, n, scale, rng, bench.scratch / f"gallery_{n}.npy")
    queries = make_queries(test, real, scale, rng)
    truth = exact_top(data, queries)
    ids = np.arange(n, dtype=np.int64)
    for kind, index_type, build, parameter, values in configurations(n):
        if kind not in engines:
            continue
        print(f"n={n:,} {kind} {index_type} {build}", flush=True)
        engine = open_bench_engine(kind, index_type, build, bench, server)
        build_s = time_runs(lambda engine=engine: add_all(engine, ids, data)).total
        size = index_mb(engine, kind, bench.scratch, server)
        print(f"  built in {build_s:.1f} s, {size:.0f} MB", flush=True)
        rows = [{"engine": kind, "index": index_type, "n": n, "build": build, **row,
                 "build_s": round(build_s, 1), "index_mb": round(size, 1)}
                for row in sweep(engine, parameter, values, queries, truth)]
        engine.drop()
        engine.close()
        del engine
        gc.collect()
        yield rows


def add_all(engine, ids: np.ndarray, data: np.ndarray) -> None:
    """Add + flush/train + index: what building the collection costs."""
    for first in range(0, len(ids), ADD_ROWS):
        engine.add(ids[first:first + ADD_ROWS], data[first:first + ADD_ROWS])
    engine.commit()


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = sorted({r["n"] for r in rows})
    colours = {pair: f"C{i}" for i, pair in enumerate(sorted({(r["engine"], r["index"]) for r in rows}))}
    fig, axes = plt.subplots(1, len(sizes), figsize=(5 * len(sizes), 4), squeeze=False, sharey=True)
    for ax, n in zip(axes[0], sizes):
        for (engine, index) in sorted({(r["engine"], r["index"]) for r in rows if r["n"] == n}):
            curve = [r for r in rows if (r["engine"], r["index"], r["n"]) == (engine, index, n)]
            ax.plot([r["p50_ms"] for r in curve], [r["recall@10"] for r in curve], marker="o",
                    color=colours[engine, index], label=f"{engine} {index}")
        ax.set(title=f"n = {n:,}", xscale="log", xlabel="p50 latency per query (ms, log)", ylabel="recall@10")
        ax.axhline(0.95, color="grey", lw=0.8, ls="--")
        ax.grid(alpha=0.3)
    handles = [plt.Line2D([], [], color=c, marker="o", label=f"{e} {i}") for (e, i), c in colours.items()]
    axes[0][0].legend(handles=handles, fontsize=7, loc="lower right")
    fig.suptitle("recall@10 against latency: sweeps of nprobe (IVF_FLAT) and ef (HNSW), 2 CPU cores")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def add_options(parser) -> None:
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--engines", nargs="+", default=["faiss", "hnswlib", "milvus-lite", "milvus-server"])
    parser.add_argument("--merge", action="store_true", help="keep the file's rows for other sizes/engines")
    parser.add_argument("--plot-only", action="store_true", help="redraw the plot from --out, measure nothing")


def measure(bench: Bench) -> dict | None:
    args = bench.args
    if args.plot_only:
        plot(json.loads(args.out.read_text())["rows"], PLOT)
        return None
    real, test = real_vectors(bench.settings())
    scale = noise_scale(real)
    kept, earlier = [], []
    if args.merge and args.out.is_file():
        previous = json.loads(args.out.read_text())
        earlier = previous.get("commands") or [previous["command"]]
        kept = [r for r in previous["rows"] if not (r["n"] in args.sizes and r["engine"] in args.engines)]
    rows = []
    server = MilvusServer(bench.scratch / "server").start() if "milvus-server" in args.engines else None
    try:
        for n in args.sizes:
            for measured in measure_size(n, real, test, scale, args.engines, bench, server):
                rows += measured
                print(f"wrote {bench.write(result(kept + rows, earlier + [bench.command], scale))}", flush=True)
    finally:
        if server:
            server.stop()
    plot(sorted(kept + rows, key=row_order), PLOT)
    return result(kept + rows, earlier + [bench.command], scale)


def row_order(row: dict) -> tuple:
    return row["n"], row["engine"], row["index"]


def result(rows: list[dict], commands: list[str], scale: float) -> dict:
    """The rows with the commands that made them (a --merge run adds its own to the earlier ones)."""
    return {"commands": commands,
            "gallery": "1,000 real EfficientNet-Lite0 embeddings + points between real neighbours "
                       "(see the docstring)",
            "noise_per_dimension": scale, "queries": QUERIES, "k": K, "rows": sorted(rows, key=row_order)}


if __name__ == "__main__":
    run_benchmark(measure, __doc__, "scale.json", add_options)
