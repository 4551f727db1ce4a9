"""Metadata beside the vectors and filtered search, the same on every engine (real Milvus Lite, a
real Milvus server, FAISS, hnswlib, exact): each filter keeps only matching rows, counts follow
deletes, labels made of digits stay text."""
import numpy as np
import pytest

from imgsearch_helpers.config import get_settings
from imgsearch_helpers.errors import FilterError
from imgsearch_helpers.index import IndexSpec, open_engine

FIELDS = {"label": "str", "path": "str", "size": "int", "mtime": "float"}
RNG = np.random.default_rng(11)
N = 60
VECTORS = RNG.normal(size=(N, 16)).astype(np.float32)
IDS = np.arange(N, dtype=np.int64) * 1_000_003 + 7  # not row numbers
LABELS = np.array(["001", "cat", "dog", "bird"] * (N // 4), dtype=object)
META = {"label": LABELS, "path": [f"{label}/img{i:02d}.jpg" for i, label in enumerate(LABELS)],
        "size": np.arange(N) * 1000, "mtime": np.arange(N) + 0.5}
FILTERS = {  # expression: which rows it keeps
    'label in ["cat", "dog"]': np.isin(LABELS, ["cat", "dog"]),
    'label == "001"': LABELS == "001",
    "size >= 30000 and size < 40000": (META["size"] >= 30000) & (META["size"] < 40000),
    'not (label == "bird") and mtime > 50': (LABELS != "bird") & (META["mtime"] > 50),
    'path like "dog/%"': LABELS == "dog",
}
KINDS = {"exact": ("exact", None), "faiss IVF": ("faiss", IndexSpec("IVF_FLAT", {"nlist": 4}, {"nprobe": 1})),
         "hnswlib": ("hnswlib", IndexSpec("HNSW", {"M": 8}, {"ef": 8})),
         "milvus lite": ("milvus", IndexSpec("IVF_FLAT", {"nlist": 4}, {"nprobe": 1})),
         "milvus server": ("milvus", IndexSpec("IVF_FLAT", {"nlist": 4}, {"nprobe": 1}))}


PARAMS = [pytest.param(name, marks=pytest.mark.server) if name == "milvus server" else name for name in KINDS]


def filled(request, folder, collection: str):
    """The engine of this test's kind, holding exactly the rows above in `collection`."""
    kind, index = KINDS[request.param]
    uri = request.getfixturevalue("milvus_server").uri if request.param == "milvus server" else str(folder / "m.db")
    engine = open_engine(kind, metric="L2", collection=collection, index=index, fields=FIELDS,
                         settings=get_settings(milvus_uri=uri))
    engine.drop()
    engine = open_engine(kind, metric="L2", collection=collection, index=index, fields=FIELDS,
                         settings=get_settings(milvus_uri=uri))
    engine.add(IDS, VECTORS, META)
    engine.commit()
    return engine


@pytest.fixture(scope="module", params=PARAMS)
def stored(request, tmp_path_factory):
    """One filled engine per kind, shared by the tests that only read it."""
    engine = filled(request, tmp_path_factory.mktemp("metadata"), "metadata_read")
    yield engine
    engine.drop()
    engine.close()


@pytest.fixture(params=PARAMS)
def engine(request, tmp_path):
    """A filled engine of its own, for a test that changes its rows."""
    engine = filled(request, tmp_path, "metadata_changed")
    yield engine
    engine.drop()
    engine.close()


@pytest.mark.parametrize("where", FILTERS)
def test_a_filtered_search_returns_only_matching_rows(stored, where):
    keep = FILTERS[where]
    ids, _ = stored.search(VECTORS[:3], 10, where=where)
    found = ids[ids >= 0]
    assert set(found.tolist()) <= set(IDS[keep].tolist())
    assert (ids >= 0).sum(axis=1).tolist() == [min(10, int(keep.sum()))] * 3  # never fewer than there are
    assert stored.count(where=where) == int(keep.sum())


def test_metadata_comes_back_as_stored_with_text_kept_as_text(stored):
    frame = stored.metadata(IDS[:4]).set_index("id").loc[IDS[:4]]
    assert frame["label"].tolist() == ["001", "cat", "dog", "bird"]
    assert frame["path"].tolist() == META["path"][:4] and frame["size"].tolist() == [0, 1000, 2000, 3000]
    assert len(stored.metadata()) == N


def test_delete_removes_rows_and_an_upsert_replaces_metadata(engine):
    engine.delete(IDS[:10])
    engine.add(IDS[10:11], VECTORS[10:11], {"label": ["fish"], "path": ["fish/a.jpg"], "size": [1], "mtime": [0.0]})
    engine.commit()
    assert engine.count() == N - 10
    assert engine.count(where='label == "fish"') == 1
    ids, _ = engine.search(VECTORS[:1], N)
    assert not set(ids[0].tolist()) & set(IDS[:10].tolist())
    assert engine.metadata(IDS[10:11])["label"].tolist() == ["fish"]


def test_a_malformed_filter_is_a_clear_error_on_every_engine(stored):
    with pytest.raises(FilterError, match="unknown field.*colour"):
        stored.search(VECTORS[:1], 5, where='colour == "red"')
    with pytest.raises(FilterError, match="expected"):
        stored.search(VECTORS[:1], 5, where="label in cat")
