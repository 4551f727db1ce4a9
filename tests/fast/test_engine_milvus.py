"""The Milvus engine against real Milvus Lite and a real Milvus server: parameters reach the index,
ingest is idempotent, bad input fails clearly and keeps what is stored."""
import logging
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from imgsearch_helpers.config import get_settings
from imgsearch_helpers.errors import DatabaseLockedError, DimensionMismatchError, EngineError, EngineUnavailableError
from imgsearch_helpers.index import ExactEngine, IndexSpec, MilvusEngine, open_engine
from imgsearch_helpers.index.milvus import wait_for_index


def clustered(n=2000, dim=32, seed=0):
    """Vectors in 20 tight clusters, so IVF probing matters and exact neighbours are unambiguous."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(20, dim)) * 5
    return (centres[rng.integers(0, 20, n)] + rng.normal(size=(n, dim))).astype(np.float32)


@pytest.fixture(params=["lite", pytest.param("server", marks=pytest.mark.server)])
def uri(request, tmp_path):
    """Each test runs on embedded Milvus Lite and on the session's Milvus server."""
    if request.param == "server":
        return request.getfixturevalue("milvus_server").uri
    return str(tmp_path / "milvus" / "test.db")


@pytest.fixture
def lite_uri(tmp_path):
    return str(tmp_path / "milvus" / "test.db")


def recall(found, expected):
    return np.mean([len(set(f) & set(e)) / len(e) for f, e in zip(found, expected)])


def test_ivf_params_reach_the_index_and_nprobe_changes_results(uri):
    vectors, ids = clustered(), np.arange(2000)
    exact = ExactEngine()
    exact.add(ids, vectors)
    expected, _ = exact.search(vectors[:100], 10)
    recalls = {}
    for nprobe in (1, 32):
        engine = MilvusEngine(uri, collection="ivf", build_params={"nlist": 32}, search_params={"nprobe": nprobe})
        if nprobe == 1:
            engine.add(ids, vectors)
            engine.commit()
        assert engine.describe_index() == {"index_type": "IVF_FLAT", "metric_type": "L2", "params": {"nlist": 32}}
        found, _ = engine.search(vectors[:100], 10)
        recalls[nprobe] = recall(found, expected)
        engine.close()
    assert recalls[32] == 1.0  # probing every list is exact
    assert recalls[1] < 0.95  # one list of 32 misses neighbours: nprobe really reached the search


def test_hnsw_params_reach_the_index(uri):
    engine = MilvusEngine(uri, collection="hnsw", index_type="HNSW", build_params={"M": 8, "efConstruction": 40},
                          search_params={"ef": 64})
    engine.add(np.arange(500), clustered(500))
    engine.commit()
    assert engine.describe_index()["params"] == {"M": 8, "efConstruction": 40}


def test_changed_build_params_rebuild_the_index(uri):
    first = MilvusEngine(uri, collection="c", build_params={"nlist": 8})
    first.add(np.arange(500), clustered(500))
    first.commit()
    first.close()
    second = MilvusEngine(uri, collection="c", build_params={"nlist": 4})
    second.commit()
    assert second.describe_index()["params"] == {"nlist": 4}
    assert second.count() == 500


def test_milvus_matches_exact_search(uri):
    vectors, ids = clustered(800), np.arange(100, 900)
    engine = MilvusEngine(uri, collection="flat", index_type="FLAT")
    exact = ExactEngine()
    for each in (engine, exact):
        each.add(ids, vectors)
    found, dist = engine.search(vectors[:20], 5)
    want, want_dist = exact.search(vectors[:20], 5)
    np.testing.assert_array_equal(found, want)
    np.testing.assert_allclose(dist, want_dist, rtol=1e-4, atol=1e-3)


def test_reingesting_the_same_ids_is_idempotent(uri):
    vectors, ids = clustered(300), np.arange(300)
    engine = MilvusEngine(uri, collection="idem", build_params={"nlist": 4}, search_params={"nprobe": 4})
    engine.add(ids, vectors)
    engine.commit()
    before, _ = engine.search(vectors[:5], 3)
    engine.add(ids, vectors)
    engine.commit()
    after, _ = engine.search(vectors[:5], 3)
    assert engine.count() == 300
    np.testing.assert_array_equal(before, after)
    engine.add(ids[:10], vectors[:10] + 100)  # same ids, new vectors: replaced, not duplicated
    assert engine.count() == 300


def test_the_hits_fields_come_with_the_search_and_follow_changes(uri):
    """`metadata` of the ids a search just returned answers from the search's own output (one call
    a query, not two) with the same rows a query gives; after an upsert it asks the database again."""
    vectors, ids = clustered(300), np.arange(300)
    fields = {"label": "str", "size": "int"}
    engine = MilvusEngine(uri, collection="hitrows", index_type="FLAT", fields=fields)
    engine.add(ids, vectors, {"label": [f"l{i % 7}" for i in ids], "size": ids * 10})
    engine.commit()
    found, _ = engine.search(vectors[:3], 5)
    from_search = engine.metadata(found)
    engine._hit_rows = {}  # the same ids asked of the database
    asked = engine.metadata(found)
    in_order = [frame.sort_values("id").reset_index(drop=True) for frame in (from_search, asked)]
    assert in_order[0].equals(in_order[1]) and set(from_search["id"]) == set(found.ravel().tolist())
    assert from_search.set_index("id").loc[int(found[0, 0]), "size"] == int(found[0, 0]) * 10
    hit = int(engine.search(vectors[:1], 3)[0][0, 0])
    engine.add([hit], vectors[hit:hit + 1], {"label": ["renamed"], "size": [1]})
    engine.commit()
    assert engine.metadata([hit]).set_index("id").loc[hit, "label"] == "renamed"


def test_every_row_read_page_by_page_prints_nothing(lite_uri, monkeypatch, caplog):
    """Past Milvus's query limit every row is read through an iterator, and Milvus Lite keeps no
    session timestamp for it: pymilvus's warning about that stays out of the terminal."""
    import imgsearch_helpers.index.milvus as milvus

    monkeypatch.setattr(milvus, "QUERY_LIMIT", 10)
    monkeypatch.setattr(milvus, "QUERY_ROWS", 16)
    engine = MilvusEngine(lite_uri, collection="pages", index_type="FLAT", fields={"label": "str"})
    engine.add(np.arange(50), clustered(50, dim=8), {"label": [f"l{i}" for i in range(50)]})
    engine.commit()
    with caplog.at_level(logging.DEBUG):
        rows = engine.metadata()
    assert sorted(rows["id"]) == list(range(50)) and rows.set_index("id").loc[7, "label"] == "l7"
    assert not [r for r in caplog.records if r.name.startswith("pymilvus")], caplog.text


def test_dimension_mismatch_is_clear_and_keeps_rows(uri):
    engine = MilvusEngine(uri, collection="dims", build_params={"nlist": 4})
    engine.add(np.arange(50), clustered(50, dim=16))
    engine.commit()
    engine.close()
    reopened = open_engine("milvus", collection="dims", index=IndexSpec("IVF_FLAT", {"nlist": 4}),
                           settings=get_settings(milvus_uri=uri))
    with pytest.raises(DimensionMismatchError, match="16-d.*32-d.*fresh collection name"):
        reopened.add(np.arange(5), clustered(5, dim=32))
    assert reopened.count() == 50


def test_unknown_index_parameters_are_refused(uri):
    with pytest.raises(ValueError, match="nlist"):
        MilvusEngine(uri, index_type="HNSW", build_params={"nlist": 8})
    with pytest.raises(ValueError, match="unsupported index type"):
        MilvusEngine(uri, index_type="DISKANN")


def test_database_held_by_another_process(lite_uri):
    uri = lite_uri
    Path(uri).parent.mkdir(parents=True)
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, time
            from pymilvus import MilvusClient
            MilvusClient({uri!r})
            print("ready", flush=True)
            time.sleep(60)
        """)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ready"
        start = time.monotonic()
        with pytest.raises(DatabaseLockedError, match="in use by another process") as err:
            MilvusEngine(uri)
        assert uri in str(err.value) and f"PID {holder.pid}" in str(err.value)
        assert time.monotonic() - start < 15
    finally:
        holder.kill()
        holder.wait()


def test_server_that_is_down_fails_fast():
    start = time.monotonic()
    with pytest.raises(EngineUnavailableError, match="127.0.0.1:9"):
        MilvusEngine("http://127.0.0.1:9", timeout=3)
    assert time.monotonic() - start < 15


def test_milvus_uri_set_to_a_local_path_works(tmp_path):
    """pymilvus reads MILVUS_URI on import and rejects local paths; a Lite path must still work."""
    uri = str(tmp_path / "lite" / "env.db")
    script = ("from imgsearch_helpers.config import get_settings; from imgsearch_helpers.index import open_engine; "
              "from imgsearch_helpers.index import IndexSpec; import numpy as np; "
              "e = open_engine('milvus', index=IndexSpec('FLAT'), settings=get_settings()); "
              "e.add([1, 2], np.eye(2, 4)); e.commit(); print(e.count(), get_settings().milvus_uri)")
    done = subprocess.run([sys.executable, "-c", script], env={**os.environ, "MILVUS_URI": uri},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-1500:]
    assert done.stdout.split() == ["2", uri]


class BuildingServer:
    """Stands in for a client at `describe_index`: a server's slow or failed index build cannot be
    caused on demand in Milvus Lite, whose builds finish before the first look."""

    def __init__(self, states: list[str]):
        self.states, self.looks = states, 0

    def describe_index(self, collection, field):
        self.looks += 1
        state = self.states[min(self.looks, len(self.states)) - 1]
        return {"state": state, "index_state_fail_reason": "out of memory" if state == "Failed" else ""}


def test_a_commit_waits_for_the_index_build_and_names_a_failed_one():
    building = BuildingServer(["InProgress", "InProgress", "Finished"])
    wait_for_index(building, "photos")
    assert building.looks == 3
    with pytest.raises(EngineError, match="'photos'.*out of memory"):
        wait_for_index(BuildingServer(["InProgress", "Failed"]), "photos")
    with pytest.raises(EngineError, match="did not build the index of 'photos' in 0.05 s"):
        wait_for_index(BuildingServer(["InProgress"]), "photos", timeout_s=0.05)
