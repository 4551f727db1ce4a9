"""Failures at the engines' edges, met as a user meets them: filters Milvus cannot take, a Milvus
Lite database another process holds, an embedding cache on a read-only or full disk. Each is one
clear line with its documented exit code (or error class), never a library's traceback."""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from imgsearch_helpers.config import get_settings
from imgsearch_helpers.embed.cache import EmbeddingCache
from imgsearch_helpers.errors import CacheError, EngineUnavailableError, FilterError
from imgsearch_helpers.index import IndexSpec, open_engine

IMGSEARCH = Path(sys.executable).parent / "imgsearch"


@pytest.fixture(scope="module")
def env(tmp_path_factory, real_dataset):
    folder = tmp_path_factory.mktemp("engine-errors")
    return {**os.environ, "IMGSEARCH_CACHE_DIR": str(folder / "cache"), "IMGSEARCH_SLICE": "tiny",
            "MILVUS_URI": str(folder / "milvus" / "errors.db")}


def imgsearch(env, *args, timeout=300):
    return subprocess.run([str(IMGSEARCH), *args], env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def ingested(env):
    done = imgsearch(env, "ingest", "--quiet")
    assert done.returncode == 0, done.stderr[-2000:]


@pytest.fixture(scope="module")
def query(real_dataset):
    return str(next((real_dataset / "test" / "Afghan_hound").glob("*.JPEG")))


# --- filters: the CLI --------------------------------------------------------------------------
@pytest.mark.parametrize("where, message", [
    ("(" * 5000 + 'label == "a"' + ")" * 5000, "is 10,012 characters long; a filter holds at most 10,000"),
    ("(" * 1000 + 'label == "a"' + ")" * 1000, "more than 40 levels of parentheses and 'not'"),
    ("not " * 1000 + 'label == "a"', "more than 40 levels of parentheses and 'not'"),
    ("size > 99999999999999999999999", "integer 99999999999999999999999 at 7 is outside Milvus's 64-bit range"),
    (r'label == "\u00e9"', r"unknown escape \u at 10; Milvus reads only"),
], ids=["5000 parentheses", "1000 parentheses", "1000 nots", "beyond int64", "unicode escape"])
def test_a_filter_milvus_cannot_take_is_a_usage_error(env, ingested, query, where, message):
    done = imgsearch(env, "search", query, "--where", where)
    assert done.returncode == 2, done.stderr[-2000:]
    assert message in done.stderr and "Traceback" not in done.stderr


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


# --- a Milvus Lite database another process holds ------------------------------------------------
HOLD = "import sys, time; from imgsearch_helpers.index.milvus import connect; connect(sys.argv[1]); " \
       "print('ready', flush=True); time.sleep(120)"


def test_a_database_in_use_is_one_clear_line_without_milvus_lites_traceback(env, query, tmp_path):
    uri = str(tmp_path / "milvus" / "held.db")
    holder = subprocess.Popen([sys.executable, "-c", HOLD, uri], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert holder.stdout.readline().strip() == "ready"
        done = imgsearch({**env, "MILVUS_URI": uri}, "search", query)
    finally:
        holder.kill()
        holder.wait()
    assert done.returncode == 1, done.stderr[-2000:]
    assert f"imgsearch search: Milvus Lite database {uri} is in use by another process (PID {holder.pid}" \
           in done.stderr
    assert "Traceback" not in done.stderr and "Failed to start" not in done.stderr


# --- the embedding cache on a read-only or full disk -----------------------------------------------
def in_mount_namespace(script: str, env: dict, *args: str) -> subprocess.CompletedProcess:
    """`sh -c script` in a mount namespace of its own: its mounts are real (a read-only bind, a
    small tmpfs) and vanish with it, whatever happens to the test."""
    return subprocess.run(["unshare", "--mount", "--map-root-user", "sh", "-ec", script, "sh", *args],
                          env=env, capture_output=True, text=True, timeout=300)


def test_a_read_only_cache_folder_is_named_with_the_fix(env, ingested, query):
    cache = env["IMGSEARCH_CACHE_DIR"]
    done = in_mount_namespace('mount --bind "$1" "$1"; mount -o remount,bind,ro "$1"; shift; exec "$@"',
                              env, cache, str(IMGSEARCH), "search", query)
    assert done.returncode == 1, done.stderr[-2000:]
    assert f"embedding cache {cache}/embeddings.sqlite cannot be used" in done.stderr
    assert "its folder is read-only. Make it writable, or set IMGSEARCH_CACHE_DIR" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_full_cache_disk_is_named_with_the_fix(env, query, tmp_path):
    cache = tmp_path / "full-cache"
    cache.mkdir()
    done = in_mount_namespace('mount -t tmpfs -o size=1m tmpfs "$1"; dd if=/dev/zero of="$1/filler" bs=4k '
                              '2>/dev/null || true; shift; exec "$@"',
                              {**env, "IMGSEARCH_CACHE_DIR": str(cache)}, str(cache), str(IMGSEARCH), "search", query)
    assert done.returncode == 1, done.stderr[-2000:]
    assert f"embedding cache {cache}/embeddings.sqlite cannot be used" in done.stderr
    assert "its disk is full" in done.stderr and "Free some space there, or set IMGSEARCH_CACHE_DIR" in done.stderr
    assert "Traceback" not in done.stderr


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


def test_a_cache_that_fills_its_disk_while_writing_is_named_with_the_fix(env, tmp_path):
    cache = tmp_path / "filling-cache"
    cache.mkdir()
    done = in_mount_namespace('mount -t tmpfs -o size=1m tmpfs "$1"; exec "$2" -c "$3" "$1"', env,
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
