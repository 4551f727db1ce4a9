"""imgsearch_helpers.retrieval.pipelines: the Towhee insert/search pipelines with locally registered operators."""

import numpy as np
import pytest
from PIL import Image
from realdata import TRAIN

from imgsearch_helpers.index import ExactEngine
from imgsearch_helpers.retrieval.pipelines import insert_pipeline, search_pipeline
from imgsearch_helpers.retrieval.search import search_paths

LABELS = ("Afghan_hound", "African_crocodile", "ambulance", "apiary", "brain_coral")
LARGE_JPEG = "American_egret/n02009912_8563.JPEG"  # 1600 x 1200: the batched path decodes it at 1/4 scale


@pytest.fixture(scope="module")
def images(lite0):
    """One image per class whose short side is below 2 x min_side, so both decode paths read full size."""
    chosen = []
    for label in LABELS:
        for path in sorted((TRAIN / label).glob("*.JPEG")):
            with Image.open(path) as image:
                if min(image.size) < 2 * lite0.min_side:
                    chosen.append(str(path))
                    break
    assert len(chosen) == len(LABELS)
    return chosen


@pytest.fixture(scope="module")
def inserted(lite0, images):
    engine = ExactEngine()
    insert = insert_pipeline(lite0, engine)
    ids = list(range(500, 500 + len(images)))
    for row_id, path in zip(ids, images):
        insert(row_id, path)
    engine.commit()
    return engine, ids


def test_insert_pipeline_adds_every_image(inserted, images):
    engine, ids = inserted
    assert engine.count() == len(images) == 5
    found, _ = engine.search(np.zeros((1, 1280), np.float32), k=10)
    assert set(found[0][found[0] >= 0].tolist()) == set(ids)


def test_search_pipeline_finds_each_image_itself(lite0, inserted, images):
    engine, ids = inserted
    search = search_pipeline(lite0, engine, k=3)
    for row_id, path in zip(ids, images):
        out_path, result = search(path).get()
        assert out_path == path
        assert len(result) == 3
        assert result[0][0] == row_id
        assert result[0][1] == pytest.approx(0, abs=1e-3)
        assert result[1][1] > 1.0


def test_pipeline_results_equal_search_paths(lite0, inserted, images):
    engine, _ = inserted
    search = search_pipeline(lite0, engine, k=5)
    ids, distances = search_paths(images, lite0, engine, k=5)
    for row, path in enumerate(images):
        result = search(path).get()[1]
        assert [i for i, _ in result] == ids[row].tolist()
        np.testing.assert_allclose([d for _, d in result], distances[row], rtol=1e-4, atol=1e-3)


def test_large_jpeg_embeds_the_same_in_pipeline_and_batched_path(lite0):
    engine = ExactEngine()
    insert_pipeline(lite0, engine)(1, str(TRAIN / LARGE_JPEG))
    engine.commit()
    _, distances = search_paths([TRAIN / LARGE_JPEG], lite0, engine, k=1)
    assert distances[0, 0] < 1e-2
