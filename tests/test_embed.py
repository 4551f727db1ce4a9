"""imgsearch_helpers.embed.stream and .search with the real efficientnet_lite0 model on real images."""
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from realdata import ROOT

from imgsearch_helpers.data.images import ImageError, load_image
from imgsearch_helpers.data.tutorial import ground_truth
from imgsearch_helpers.embed.cache import EmbeddingCache
from imgsearch_helpers.embed.stream import embed_paths, iter_embeddings
from imgsearch_helpers.evaluation.metrics import evaluate
from imgsearch_helpers.evaluation.runs import evaluate_engine
from imgsearch_helpers.index import ExactEngine
from imgsearch_helpers.parallel import bounded_map
from imgsearch_helpers.retrieval.search import ingest, search_paths

CLASSES = ("Afghan_hound", "ambulance", "brain_coral")  # gallery: the first two images of each
EXTRA_CLASS = "apiary"  # a later, second ingest
DIM = 1280


def first_images(split: str, label: str, n: int) -> list[str]:
    return [str(p) for p in sorted((ROOT / split / label).glob("*.JPEG"))[:n]]


@pytest.fixture(scope="module")
def good():
    return [p for label in CLASSES for p in first_images("train", label, 2)]


@pytest.fixture(scope="module")
def reference(lite0, good):
    """Each good image embedded on its own, straight through the model: path -> vector."""
    vectors = [lite0.embed_batch(lite0.preprocess(load_image(p, min_side=lite0.min_side))[None])[0] for p in good]
    return dict(zip(good, vectors))


@pytest.fixture(scope="module")
def bad(tmp_path_factory, good):
    """Four files that are not usable images, by kind."""
    folder = tmp_path_factory.mktemp("bad")
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "x.jpg").write_text("this is text, not a JPEG\n")
    jpeg = Path(good[0]).read_bytes()
    (folder / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    return {kind: str(folder / name) for kind, name in
            [("empty", "empty.jpg"), ("text", "x.jpg"), ("truncated", "truncated.jpg"), ("missing", "missing.jpg")]}


@pytest.fixture(scope="module")
def mixed(good, bad):
    """Good and bad files interleaved; returns (paths, positions of the good ones)."""
    g = iter(good)
    paths = [next(g), bad["empty"], next(g), bad["text"], next(g), next(g), bad["truncated"], next(g),
             bad["missing"], next(g)]
    return paths, [i for i, p in enumerate(paths) if p in good]


@pytest.fixture(scope="module")
def cold(lite0, mixed):
    return embed_paths(mixed[0], lite0, batch_size=4, progress=False)


@pytest.fixture(scope="module")
def warm_cache(tmp_path_factory, lite0, mixed):
    """A cache filled by one run over the mixed list; returns (cache, that run's result)."""
    cache = EmbeddingCache(tmp_path_factory.mktemp("cache") / "embeddings.sqlite")
    first = embed_paths(mixed[0], lite0, cache, batch_size=4, progress=False)
    yield cache, first
    cache.close()


def assert_rows_match(vectors, paths, reference):
    assert vectors.shape == (len(paths), DIM)
    for vector, path in zip(vectors, paths):
        np.testing.assert_allclose(vector, reference[path], atol=1e-4, rtol=0, err_msg=path)


# ---------------------------------------------------------------- embed_paths


def test_embed_paths_returns_good_images_in_input_order(cold, mixed, reference):
    vectors, positions, report = cold
    paths, good_positions = mixed
    assert positions == good_positions
    assert_rows_match(vectors, [paths[i] for i in positions], reference)
    assert report.embedded == len(good_positions)
    assert report.from_cache == 0


def test_embed_paths_reports_every_bad_file(cold, bad):
    report = cold[2]
    by_path = {f.path: f.reason for f in report.failures}
    assert set(by_path) == set(bad.values())
    assert len(report.failures) == len(bad)  # each once
    assert "empty" in by_path[bad["empty"]]
    assert "not an image" in by_path[bad["text"]]
    assert "truncated" in by_path[bad["truncated"]]
    assert "cannot read" in by_path[bad["missing"]]
    assert all(path in report.summary() for path in bad.values())


def test_embed_paths_with_only_bad_files(lite0, bad):
    vectors, positions, report = embed_paths([bad["empty"], bad["missing"]], lite0, progress=False)
    assert vectors.shape == (0, DIM) and positions == []
    assert len(report.failures) == 2


# ---------------------------------------------------------------- the embedding cache


def test_first_run_fills_cache(warm_cache, lite0, good, cold):
    cache, (vectors, positions, report) = warm_cache
    assert report.embedded == len(good) and report.from_cache == 0
    assert cache.count(lite0.key) == len(good)
    np.testing.assert_allclose(vectors, cold[0], atol=1e-4, rtol=0)


def test_second_run_is_all_from_cache(warm_cache, lite0, mixed, good):
    cache, (first_vectors, first_positions, _) = warm_cache
    vectors, positions, report = embed_paths(mixed[0], lite0, cache, batch_size=4, progress=False)
    assert report.embedded == 0
    assert report.from_cache == len(good)
    assert len(report.failures) == 4  # bad files are still reported
    assert positions == first_positions
    assert np.array_equal(vectors, first_vectors)
    assert cache.count(lite0.key) == len(good)


def test_renamed_copy_is_a_cache_hit(warm_cache, lite0, good, tmp_path):
    cache, (first_vectors, _, _) = warm_cache
    copy = tmp_path / "renamed.jpeg"
    shutil.copyfile(good[2], copy)
    vectors, _, report = embed_paths([copy], lite0, cache, progress=False)
    assert (report.embedded, report.from_cache) == (0, 1)
    assert np.array_equal(vectors[0], first_vectors[2])


def test_partly_cached_run_keeps_input_order(lite0, good, reference, tmp_path):
    """Cache hits come back before the misses of their chunk: the result must still be in input order."""
    with EmbeddingCache(tmp_path / "embeddings.sqlite") as cache:
        embed_paths([good[4], good[1]], lite0, cache, progress=False)
        vectors, positions, report = embed_paths(good, lite0, cache, batch_size=2, progress=False)
    assert (report.embedded, report.from_cache) == (len(good) - 2, 2)
    assert positions == list(range(len(good)))
    assert_rows_match(vectors, good, reference)


def test_edited_image_is_recomputed(warm_cache, lite0, good, tmp_path):
    cache, _ = warm_cache
    edited = tmp_path / "edited.jpg"
    Image.open(good[0]).rotate(90, expand=True).save(edited, quality=90)
    _, _, report = embed_paths([edited], lite0, cache, progress=False)
    assert (report.embedded, report.from_cache) == (1, 0)
    assert cache.count(lite0.key) == len(good) + 1


# ---------------------------------------------------------------- streaming


def test_iter_embeddings_batches_are_bounded(lite0, mixed, reference):
    paths, good_positions = mixed
    batches = list(iter_embeddings(paths, lite0, batch_size=2, progress=False))
    assert all(len(b.positions) <= 2 for b in batches)
    assert max(len(b.positions) for b in batches) == 2
    assert all(b.vectors.shape == (len(b.positions), DIM) for b in batches)
    seen = [p for b in batches for p in b.positions]
    assert sorted(seen) == good_positions  # every good image exactly once
    for b in batches:
        assert_rows_match(b.vectors, [paths[p] for p in b.positions], reference)


def test_bounded_map_preserves_order():
    def slow_square(x):
        time.sleep(0.002 * (10 - x))  # later items finish first
        return x * x

    assert list(bounded_map(slow_square, range(10), workers=4, ahead=5)) == [x * x for x in range(10)]


def test_bounded_map_keeps_at_most_ahead_results_in_flight():
    lock = threading.Lock()
    in_flight, peak = 0, 0

    def work(x):
        nonlocal in_flight, peak
        with lock:
            in_flight += 1
            peak = max(peak, in_flight)
        time.sleep(0.005)
        return x

    out = []
    for result in bounded_map(work, range(30), workers=8, ahead=3):
        time.sleep(0.005)  # a slow consumer: an unbounded map would run far ahead
        out.append(result)
        with lock:
            in_flight -= 1  # started by a worker and not yet consumed
    assert out == list(range(30))
    assert 2 <= peak <= 3


# ---------------------------------------------------------------- ingest, search, evaluate


def catalog_of(paths, first_id):
    labels = [Path(p).parent.name for p in paths]
    return pd.DataFrame({"id": range(first_id, first_id + len(paths)), "path": paths, "label": labels})


@pytest.fixture(scope="module")
def ingest_cache(tmp_path_factory):
    with EmbeddingCache(tmp_path_factory.mktemp("ingest") / "embeddings.sqlite") as cache:
        yield cache


def all_ids(engine):
    ids, _ = engine.search(np.zeros((1, DIM), np.float32), k=engine.count() + 5)
    return set(ids[0][ids[0] >= 0].tolist())


def test_ingest_skips_bad_files_and_keeps_rows(lite0, good, bad, ingest_cache):
    engine = ExactEngine()
    first = catalog_of([*good[:3], bad["truncated"]], first_id=100)
    report = ingest(first, lite0, engine, ingest_cache, batch_size=2, progress=False)
    assert report.added == 3 and engine.count() == 3
    assert [f.path for f in report.embed.failures] == [bad["truncated"]]
    assert all_ids(engine) == {100, 101, 102}

    more = catalog_of(first_images("train", EXTRA_CLASS, 2), first_id=200)
    ingest(more, lite0, engine, ingest_cache, batch_size=2, progress=False)
    assert engine.count() == 5
    assert all_ids(engine) == {100, 101, 102, 200, 201}
    ids, distances = search_paths([good[1]], lite0, engine, k=1)
    assert ids[0, 0] == 101 and distances[0, 0] < 1e-3  # the first rows are intact

    again = ingest(first, lite0, engine, ingest_cache, batch_size=2, progress=False)
    assert again.added == 3 and again.embed.from_cache == 3
    assert engine.count() == 5


@pytest.fixture(scope="module")
def gallery(lite0, good, ingest_cache):
    catalog = catalog_of(good, first_id=10)
    engine = ExactEngine()
    ingest(catalog, lite0, engine, ingest_cache, progress=False)
    return catalog, engine


def test_search_paths_finds_gallery_image_itself(lite0, gallery):
    catalog, engine = gallery
    for row in catalog.iloc[[0, 3]].itertuples():
        ids, distances = search_paths([row.path], lite0, engine, k=3)
        assert ids.shape == distances.shape == (1, 3)
        assert ids[0, 0] == row.id
        assert distances[0, 0] == pytest.approx(0, abs=1e-3)
        assert distances[0, 1] > 1.0  # another image is clearly further away
        assert np.all(np.diff(distances[0]) >= 0)


def test_search_paths_raises_on_bad_query(lite0, gallery, bad):
    with pytest.raises(ImageError, match="x.jpg"):
        search_paths([bad["text"]], lite0, gallery[1], k=3)


def test_evaluate_engine_scores_real_queries(lite0, gallery):
    catalog, engine = gallery
    queries = pd.DataFrame([(path, label) for label in CLASSES for path in first_images("test", label, 1)],
                           columns=["path", "label"])
    truth = ground_truth(catalog, queries)
    row = evaluate_engine(queries, truth, lite0, engine, k=2, slice="test")
    assert row["model"] == "efficientnet_lite0" and row["engine"] == "exact" and row["slice"] == "test"
    assert row["queries"] == 3 and row["k"] == 2
    for key in ("mhr@2", "towhee_map@2", "ap@2"):
        assert 0.0 <= row[key] <= 1.0
    assert row["query_ms"] >= row["search_ms"] > 0
    ids, _ = search_paths(queries["path"], lite0, engine, k=2)
    expected = evaluate(truth, ids.tolist(), 2)
    assert row["mhr@2"] == pytest.approx(expected["mhr@2"])
    assert row["ap@2"] == pytest.approx(expected["ap@2"])
    assert row["mhr@2"] >= 0.5  # three unrelated classes: a pretrained model finds most neighbours


def test_embedder_batches_are_float32(lite0):
    out = lite0.embed_batch(torch.zeros(1, 3, 224, 224))
    assert out.dtype == np.float32 and out.shape == (1, DIM)


def test_ingest_transform_applies_to_stored_vectors(lite0, good):
    from imgsearch_helpers.vectors import l2_normalize

    catalog = pd.DataFrame({"id": range(len(good)), "path": good, "label": ["x"] * len(good)})
    raw, normalized = ExactEngine(), ExactEngine(metric="IP")
    ingest(catalog, lite0, raw, progress=False)
    ingest(catalog, lite0, normalized, transform=l2_normalize, progress=False)
    query = embed_paths(good[:1], lite0, progress=False)[0]
    _, similarity = normalized.search(l2_normalize(query), 1)
    assert similarity[0, 0] == pytest.approx(1.0, abs=1e-4)  # unit vectors: an image's IP with itself is 1
    _, distance = raw.search(query, 1)
    assert distance[0, 0] == pytest.approx(0.0, abs=1e-2)


def test_no_progress_bar_for_work_served_from_the_cache(good, lite0, tmp_path, capsys):
    good = good[:3]
    with EmbeddingCache(tmp_path / "bars.sqlite") as cache:
        embed_paths(good, lite0, cache, progress=True)
        first = capsys.readouterr().err
        embed_paths(good, lite0, cache, progress=True)
        second = capsys.readouterr().err
    assert "embed efficientnet_lite0" in first and "3/3" in first
    assert second == ""  # everything came from the cache: no bar at all
