"""FAISS, hnswlib and exact engines: same interface and distance conventions as Milvus, real libraries."""
import faiss
import hnswlib
import numpy as np
import pytest

from imgsearch_helpers.errors import DimensionMismatchError, EngineError, UsageError
from imgsearch_helpers.index import ExactEngine, IndexSpec, open_engine

RNG = np.random.default_rng(7)
VECTORS = RNG.normal(size=(600, 24)).astype(np.float32)
IDS = np.arange(600, dtype=np.int64) * 7 + 3  # ids are not row numbers
QUERIES = RNG.normal(size=(20, 24)).astype(np.float32)

ENGINES = {  # name: (kind, index_type, build params, search params wide enough to be exact here)
    "faiss FLAT": ("faiss", "FLAT", {}, {}),
    "faiss IVF_FLAT": ("faiss", "IVF_FLAT", {"nlist": 8}, {"nprobe": 8}),
    "faiss HNSW": ("faiss", "HNSW", {"M": 16, "efConstruction": 100}, {"ef": 600}),
    "hnswlib HNSW": ("hnswlib", "HNSW", {"M": 16, "efConstruction": 100}, {"ef": 600}),
}


def filled(name, metric="L2", **overrides):
    kind, index_type, build, search = ENGINES[name]
    engine = open_engine(kind, metric=metric, index=IndexSpec(index_type, build, overrides.get("search", search)))
    engine.add(IDS, VECTORS)
    engine.commit()
    return engine


def exact(metric):
    engine = ExactEngine(metric)
    engine.add(IDS, VECTORS)
    return engine


@pytest.mark.parametrize("name", ENGINES)
@pytest.mark.parametrize("metric", ["L2", "IP", "COSINE"])
def test_matches_exact_search_ids_and_distances(name, metric):
    ids, dists = filled(name, metric).search(QUERIES, 10)
    want_ids, want_dists = exact(metric).search(QUERIES, 10)
    assert (ids == want_ids).mean() >= 0.99
    same = ids == want_ids
    np.testing.assert_allclose(dists[same], want_dists[same], rtol=1e-4, atol=1e-4)


def test_nprobe_reaches_the_ivf_search():
    narrow = filled("faiss IVF_FLAT", search={"nprobe": 1}).search(QUERIES, 10)[0]
    wide = filled("faiss IVF_FLAT", search={"nprobe": 8}).search(QUERIES, 10)[0]
    truth = exact("L2").search(QUERIES, 10)[0]
    assert (narrow == truth).mean() < 0.9 <= (wide == truth).mean()


def test_ef_reaches_the_hnsw_search():
    engine = filled("hnswlib HNSW", search={"ef": 10})
    assert engine.index.ef == 10  # the engine sets it right before searching
    engine.search(QUERIES, 10)
    assert engine.index.ef == 10


@pytest.mark.parametrize("name", ENGINES)
def test_adding_an_id_again_replaces_its_row(name):
    engine = filled(name)
    moved = VECTORS[:5] + 100.0
    engine.add(IDS[:5], moved)
    engine.commit()
    assert engine.count() == len(IDS)
    np.testing.assert_array_equal(engine.fetch(IDS[:5]), moved)
    ids, _ = engine.search(moved, 1)
    assert ids[:, 0].tolist() == IDS[:5].tolist()


@pytest.mark.parametrize("name", ENGINES)
def test_k_larger_than_the_collection_pads_with_minus_one(name):
    kind, index_type, build, search = ENGINES[name]
    small = {**build, "nlist": 2} if "nlist" in build else build
    engine = open_engine(kind, index=IndexSpec(index_type, small, search))
    engine.add(IDS[:6], VECTORS[:6])
    ids, dists = engine.search(VECTORS[:1], 10)
    assert sorted(ids[0, :6].tolist()) == sorted(IDS[:6].tolist()) and (ids[0, 6:] == -1).all()
    assert np.isnan(dists[0, 6:]).all()


def test_dimension_mismatch_is_refused_and_keeps_rows():
    engine = filled("faiss IVF_FLAT")
    with pytest.raises(DimensionMismatchError, match="dimension 8, the index stores 24"):
        engine.add([1], np.ones((1, 8), np.float32))
    assert engine.count() == len(IDS)


def test_parameters_are_checked_by_name():
    with pytest.raises(UsageError, match=r"not \['ef_search'\] \(the HNSW search parameter is 'ef'\)"):
        open_engine("hnswlib", index=IndexSpec("HNSW", search={"ef_search": 10}))
    with pytest.raises(UsageError, match="IVF_FLAT takes search params"):
        open_engine("faiss", index=IndexSpec("IVF_FLAT", search={"ef": 10}))
    with pytest.raises(UsageError, match="hnswlib builds HNSW indexes only"):
        open_engine("hnswlib", index=IndexSpec("IVF_FLAT"))
    with pytest.raises(UsageError, match="unsupported index type 'IVF_PQ'"):
        open_engine("faiss", index=IndexSpec("IVF_PQ"))
    with pytest.raises(UsageError, match="unknown engine 'annoy'"):
        open_engine("annoy")


def test_too_few_vectors_for_nlist_is_a_clear_error():
    engine = open_engine("faiss", index=IndexSpec("IVF_FLAT", {"nlist": 64}))
    engine.add(IDS[:10], VECTORS[:10])
    with pytest.raises(EngineError, match="nlist=64 needs at least 64 vectors to train, got 10"):
        engine.commit()


def test_empty_engine_search_is_a_clear_error():
    with pytest.raises(EngineError, match="empty"):
        open_engine("faiss", index=IndexSpec("FLAT")).search(QUERIES, 3)


def test_saved_indexes_load_back_with_the_same_results(tmp_path):
    ivf = filled("faiss IVF_FLAT", search={"nprobe": 2})
    loaded = faiss.read_index(str(ivf.save(tmp_path / "ivf.index")))
    assert loaded.ntotal == len(IDS) and loaded.nlist == 8
    _, ids = loaded.search(QUERIES, 5, params=faiss.SearchParametersIVF(nprobe=2))
    assert (ids == ivf.search(QUERIES, 5)[0]).all()

    hnsw = filled("hnswlib HNSW")
    graph = hnswlib.Index(space="l2", dim=24)
    graph.load_index(str(hnsw.save(tmp_path / "hnsw.bin")))
    graph.set_ef(600)
    assert (graph.knn_query(QUERIES, k=5)[0] == hnsw.search(QUERIES, 5)[0]).all()


def test_same_rows_give_the_same_hnsw_graph(tmp_path):
    first, second = filled("hnswlib HNSW"), filled("hnswlib HNSW")
    assert first.save(tmp_path / "a.bin").read_bytes() == second.save(tmp_path / "b.bin").read_bytes()


def test_merging_many_batches_needs_about_one_extra_copy_of_the_rows():
    import tracemalloc

    from imgsearch_helpers.index.store import VectorStore

    store, batch = VectorStore(), np.ones((1000, 256), np.float32)  # 1 MB a batch, 16 MB in all
    for first in range(0, 16_000, 1000):
        store.add(np.arange(first, first + 1000), batch * first)
    tracemalloc.start()
    store.consolidate()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert store.matrix.shape == (16_000, 256) and store.matrix[15_999, 0] == 15_000
    assert peak < 1.25 * store.matrix.nbytes  # a concatenate-then-reorder merge peaks at 2-3x


def test_an_id_repeated_across_merges_keeps_its_last_row_at_its_last_place():
    from imgsearch_helpers.index.store import VectorStore

    store = VectorStore()
    store.add([5, 6, 7], VECTORS[:3])
    store.consolidate()
    store.add([8, 6], VECTORS[3:5])
    store.add([6], VECTORS[5:6])
    assert store.count() == 4 and store.ids.tolist() == [5, 7, 8, 6]
    np.testing.assert_array_equal(store.rows([6, 8, 5]), VECTORS[[5, 3, 0]])
