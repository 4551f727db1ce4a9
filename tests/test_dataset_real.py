"""The tutorial dataset as the package finds it (IMGSEARCH_DATA_DIR or data/): it verifies, and its
full and tiny slices, queries and ground truth have the documented shape."""
from pathlib import Path

import pandas as pd
import pytest

from imgsearch_helpers.config import get_settings
from imgsearch_helpers.data import tutorial as data
from imgsearch_helpers.data.tutorial import ground_truth, load_catalog, load_queries, verify_dataset


@pytest.fixture(scope="module")
def real_settings(real_dataset):
    return {name: get_settings(data_dir=real_dataset.parent, slice=name) for name in ("full", "tiny")}


def test_real_dataset_verifies(real_settings):
    verify_dataset(real_settings["full"].data_dir / data.DATASET_DIR)


def test_full_slice(real_settings):
    catalog = load_catalog(real_settings["full"])
    queries = load_queries(settings=real_settings["full"])
    assert list(catalog.columns) == ["id", "path", "label"]
    assert len(catalog) == 1000 and catalog["id"].is_unique
    assert catalog["label"].nunique() == 100
    assert (catalog.groupby("label").size() == 10).all()
    assert all(Path(p).is_absolute() and Path(p).is_file() for p in catalog["path"])
    assert all(Path(p).parent.name == label for p, label in zip(catalog["path"], catalog["label"]))
    assert list(queries.columns) == ["path", "label"]
    assert len(queries) == 100 and queries["label"].nunique() == 100
    assert all(Path(p).parent.name == label for p, label in zip(queries["path"], queries["label"]))


def test_ground_truth_of_the_full_slice(real_settings):
    catalog = load_catalog(real_settings["full"])
    queries = load_queries(settings=real_settings["full"])
    truth = ground_truth(catalog, queries)
    label_of = dict(zip(catalog["id"], catalog["label"]))
    assert len(truth) == len(queries) == 100
    for ids, label in zip(truth, queries["label"]):
        assert len(ids) == 10
        assert {label_of[i] for i in ids} == {label}


def test_tiny_slice(real_settings):
    full = load_catalog(real_settings["full"])
    catalog = load_catalog(real_settings["tiny"])
    queries = load_queries(settings=real_settings["tiny"])
    expected_labels = sorted(set(full["label"]))[::10]
    assert sorted(set(catalog["label"])) == expected_labels
    assert len(catalog) == 100
    assert sorted(queries["label"]) == expected_labels
    assert len(ground_truth(catalog, queries)) == 10
    pd.testing.assert_frame_equal(load_catalog(real_settings["tiny"]), catalog)
    pd.testing.assert_frame_equal(load_queries(settings=real_settings["tiny"]), queries)
