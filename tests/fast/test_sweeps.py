"""Notebook 5's sweeps: recall against exact search and the work FAISS counts, on real FAISS."""
import numpy as np

from imgsearch_helpers.evaluation.sweeps import exact_top_k, hnsw_sweep, ivf_sweep, list_sizes, recall
from imgsearch_helpers.index import IndexSpec, open_engine

RNG = np.random.default_rng(5)
CENTRES = RNG.normal(size=(10, 16)) * 4
VECTORS = (CENTRES[RNG.integers(0, 10, 800)] + RNG.normal(size=(800, 16))).astype(np.float32)
IDS = np.arange(800, dtype=np.int64) + 5000
QUERIES = (CENTRES[RNG.integers(0, 10, 30)] + RNG.normal(size=(30, 16))).astype(np.float32)


def test_recall_counts_the_share_of_the_true_top_k_found():
    truth = np.array([[1, 2, 3, 4], [5, 6, 7, 8]])
    assert recall(truth, truth) == 1.0
    assert recall(np.array([[1, 2, 9, 9], [5, 9, 9, 9]]), truth) == (0.5 + 0.25) / 2
    assert exact_top_k(VECTORS, IDS, VECTORS[:3], 1)[:, 0].tolist() == IDS[:3].tolist()


def test_the_true_top_k_is_the_exact_engines_ranking_ties_and_all():
    matrix = np.repeat(VECTORS[:4], 3, axis=0)  # each vector three times: equal distances across every cut
    ids = np.arange(len(matrix), dtype=np.int64) + 100
    engine = open_engine("exact", metric="L2")
    engine.add(ids, matrix)
    truth = exact_top_k(matrix, ids, QUERIES[:5], 5)
    assert (truth == engine.search(QUERIES[:5], 5)[0]).all()
    # the cut falls inside the second vector's three copies: the two with the lower ids are kept
    assert all(row[4] == row[3] + 1 and (row[3] - 100) % 3 == 0 for row in truth)


def test_probing_every_list_is_exact_and_fewer_lists_compare_fewer_vectors():
    rows = {row["nprobe"]: row for row in ivf_sweep(VECTORS, IDS, QUERIES, 8, [1, 2, 8])}
    assert rows[8]["recall@10"] == 1.0 and rows[8]["vectors compared"] == len(VECTORS)
    assert rows[1]["vectors compared"] < rows[2]["vectors compared"] < rows[8]["vectors compared"]
    assert rows[1]["recall@10"] <= rows[2]["recall@10"] <= 1.0


def test_a_larger_ef_does_more_work_and_finds_at_least_as_much():
    rows = hnsw_sweep(VECTORS, IDS, QUERIES, 4, 20, [10, 200])
    assert rows[0]["vectors compared"] < rows[1]["vectors compared"]
    assert rows[0]["recall@10"] <= rows[1]["recall@10"] and rows[1]["recall@10"] >= 0.95


def test_list_sizes_describe_how_the_vectors_fall_into_lists(tmp_path):
    engine = open_engine("faiss", index=IndexSpec("IVF_FLAT", {"nlist": 8}))
    engine.add(IDS, VECTORS)
    sizes = list_sizes(engine.save(tmp_path / "ivf.index"))
    assert sizes["nlist"] == 8 and sizes["vectors"] == len(VECTORS)
    assert sizes["smallest"] <= sizes["median"] <= sizes["largest"]
