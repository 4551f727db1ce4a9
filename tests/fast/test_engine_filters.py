"""Failures at the engines' edges that need no data: every engine accepts and refuses the same
filters, a Milvus Lite server that is down, and an embedding cache whose path or file is damaged or
whose disk fills while it writes. Each is one error class with a message that names the fix."""
import os
import sys
import textwrap

import numpy as np
import pytest
from commands import in_mount_namespace

from imgsearch_helpers.config import get_settings
from imgsearch_helpers.embed.cache import EmbeddingCache
from imgsearch_helpers.errors import CacheError, EngineUnavailableError, FilterError
from imgsearch_helpers.index import IndexSpec, open_engine

# --- filters: every engine accepts and refuses the same ones ---------------------------------------
FIELDS = {"label": "str", "size": "int", "mtime": "float"}
LABELS = ["a", "b", "é", "x\ny", "it's", 'q"', "ab", "a\\b"]
META = {"label": LABELS, "size": [1, 2, 3, 10, 2**62, 0, -5, 7], "mtime": [0.5, 1.5, 2.5, -1.5, 1e300, 0.0, 3.0, 4.0]}
VECTORS = np.random.default_rng(3).normal(size=(len(LABELS), 8)).astype(np.float32)
ACCEPTED = [
    'label == "a"', r'label == "x\ny"', r"label == 'it\'s'", r'label == "q\""', r'label == "a\\b"', 'label == "é"',
    'label in ["a", "b"]', "label in []", 'label like "a%"', 'label < "b"', 'label not in ["a"]',
    "size > -9223372036854775807", "size <= 9223372036854775807", "size == 4611686018427387904", "size in [0, 7]",
    "mtime > 1e299", "mtime > 1", "mtime >= -1.5", "id in [0, 1]", 'not not (label == "a")',
    '!(label == "a") && size > 0', "(" * 40 + 'label == "a"' + ")" * 40, "not " * 39 + '(label == "a")',
    " or ".join(["size == 1"] * 41),  # 40 levels, as a Milvus server nests a chain
]
REFUSED = [
    "size > 99999999999999999999999", r'label == "\u00e9"', "size > 1.5", 'size in [1, "a"]', "size == true",
    "mtime > 1e400", 'label == "a" AND size > 0', 'not label == "a"', "size == 010", "(" * 41 + "size > 0" + ")" * 41,
    " or ".join(["size == 1"] * 42),
]


@pytest.fixture(scope="module", params=["lite", pytest.param("server", marks=pytest.mark.server)])
def engines(request, tmp_path_factory):
    """The same rows in every engine: exact, FAISS, hnswlib and Milvus (Lite, or the session's server)."""
    uri = (request.getfixturevalue("milvus_server").uri if request.param == "server"
           else str(tmp_path_factory.mktemp("filters") / "m.db"))
    kinds = {"exact": None, "faiss": IndexSpec("FLAT"), "hnswlib": IndexSpec("HNSW"), "milvus": IndexSpec("FLAT")}
    opened = {}
    for kind, index in kinds.items():
        engine = open_engine(kind, collection="filters", index=index, fields=FIELDS,
                             settings=get_settings(milvus_uri=uri))
        engine.drop()
        engine.add(np.arange(len(LABELS)), VECTORS, META)
        engine.commit()
        opened[kind] = engine
    yield opened
    for engine in opened.values():
        engine.drop()
        engine.close()


@pytest.mark.parametrize("where", ACCEPTED)
def test_a_filter_accepted_keeps_the_same_rows_on_every_engine(engines, where):
    counts = {kind: engine.count(where=where) for kind, engine in engines.items()}
    assert len(set(counts.values())) == 1, counts
    found = {kind: set(engine.search(VECTORS[:1], 8, where=where)[0][0].tolist()) - {-1}
             for kind, engine in engines.items()}
    assert all(ids == found["exact"] for ids in found.values()), found


@pytest.mark.parametrize("where", REFUSED)
def test_a_filter_refused_is_refused_by_every_engine(engines, where):
    for engine in engines.values():
        with pytest.raises(FilterError, match="filter '"):
            engine.search(VECTORS[:1], 3, where=where)
        with pytest.raises(FilterError, match="filter '"):
            engine.count(where=where)


def test_a_filter_milvus_itself_refuses_is_a_usage_error_naming_it(engines):
    """Past our parser (a raw call), Milvus's own refusal is still a FilterError, not "engine down"."""
    milvus = engines["milvus"]
    with pytest.raises(FilterError, match=r"""filter 'label == "\\q"': Milvus at .* cannot parse it"""):
        milvus.client.query("filters", filter=r'label == "\q"', output_fields=["id"])


def test_a_lite_server_that_is_down_is_unavailable_even_for_a_bad_filter(tmp_path):
    from milvus_lite.server_manager import server_manager_instance

    uri = str(tmp_path / "down.db")
    engine = open_engine("milvus", collection="down", index=IndexSpec("FLAT"), fields=FIELDS,
                         settings=get_settings(milvus_uri=uri))
    engine.add(np.arange(len(LABELS)), VECTORS, META)
    engine.commit()
    server_manager_instance.release_server(uri)  # this database's server only: others in the process keep serving
    with pytest.raises(EngineUnavailableError, match="is not answering"):
        engine.client.query("down", filter=r'label == "\q"', output_fields=["id"])


WRITE_UNTIL_FULL = textwrap.dedent("""
    import sys, numpy as np
    from imgsearch_helpers.embed.cache import EmbeddingCache
    from imgsearch_helpers.errors import CacheError
    cache = EmbeddingCache(sys.argv[1] + "/embeddings.sqlite")
    try:
        cache.put_many("lite0", [str(i) for i in range(400)], np.ones((400, 1280), np.float32))  # 2 MB
    except CacheError as exc:
        print(exc)
""")


def test_a_cache_that_fills_its_disk_while_writing_is_named_with_the_fix(tmp_path):
    cache = tmp_path / "filling-cache"
    cache.mkdir()
    done = in_mount_namespace('mount -t tmpfs -o size=1m tmpfs "$1"; exec "$2" -c "$3" "$1"', os.environ,
                              str(cache), sys.executable, WRITE_UNTIL_FULL)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith(f"embedding cache {cache}/embeddings.sqlite cannot be used (database or disk is "
                                  "full): its disk is full")
    assert "set IMGSEARCH_CACHE_DIR to a folder on another disk" in done.stdout


def test_a_cache_path_through_a_file_or_a_damaged_cache_file_is_named_with_the_fix(tmp_path):
    (tmp_path / "cache").write_text("a file where the folder should be")
    with pytest.raises(CacheError, match="part of its path is a file, not a folder") as refused:
        EmbeddingCache(tmp_path / "cache" / "embeddings.sqlite")
    assert f"embedding cache {tmp_path}/cache/embeddings.sqlite" in str(refused.value) and refused.value.exit_code == 1
    (tmp_path / "damaged.sqlite").write_bytes(b"not a database" * 100)
    with pytest.raises(CacheError, match=r"\(file is not a database\): .*or delete the file if it is damaged"):
        EmbeddingCache(tmp_path / "damaged.sqlite")
