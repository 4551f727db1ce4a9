"""Failures at the engines' edges, met as a user meets them: filters Milvus cannot take, a Milvus
Lite database another process holds, an embedding cache on a read-only or full disk. Each is one
clear line with its documented exit code (or error class), never a library's traceback."""
import subprocess
import sys

import pytest
from commands import IMGSEARCH, imgsearch, in_mount_namespace


@pytest.fixture(scope="module")
def ingested(command_env):
    done = imgsearch(command_env, "ingest", "--quiet")
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
def test_a_filter_milvus_cannot_take_is_a_usage_error(command_env, ingested, query, where, message):
    done = imgsearch(command_env, "search", query, "--where", where)
    assert done.returncode == 2, done.stderr[-2000:]
    assert message in done.stderr and "Traceback" not in done.stderr


# --- a Milvus Lite database another process holds ------------------------------------------------
HOLD = "import sys, time; from imgsearch_helpers.index.milvus import connect; connect(sys.argv[1]); " \
       "print('ready', flush=True); time.sleep(120)"


def test_a_database_in_use_is_one_clear_line_without_milvus_lites_traceback(command_env, query, tmp_path):
    uri = str(tmp_path / "milvus" / "held.db")
    holder = subprocess.Popen([sys.executable, "-c", HOLD, uri], stdout=subprocess.PIPE, text=True, env=command_env)
    try:
        assert holder.stdout.readline().strip() == "ready"
        done = imgsearch({**command_env, "MILVUS_URI": uri}, "search", query)
    finally:
        holder.kill()
        holder.wait()
    assert done.returncode == 1, done.stderr[-2000:]
    assert f"imgsearch search: Milvus Lite database {uri} is in use by another process (PID {holder.pid}" \
           in done.stderr
    assert "Traceback" not in done.stderr and "Failed to start" not in done.stderr


# --- the embedding cache on a read-only or full disk -----------------------------------------------
def test_a_read_only_cache_folder_is_named_with_the_fix(command_env, ingested, query):
    cache = command_env["IMGSEARCH_CACHE_DIR"]
    done = in_mount_namespace('mount --bind "$1" "$1"; mount -o remount,bind,ro "$1"; shift; exec "$@"',
                              command_env, cache, str(IMGSEARCH), "search", query)
    assert done.returncode == 1, done.stderr[-2000:]
    assert f"embedding cache {cache}/embeddings.sqlite cannot be used" in done.stderr
    assert "its folder is read-only. Make it writable, or set IMGSEARCH_CACHE_DIR" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_full_cache_disk_is_named_with_the_fix(command_env, query, tmp_path):
    cache = tmp_path / "full-cache"
    cache.mkdir()
    done = in_mount_namespace('mount -t tmpfs -o size=1m tmpfs "$1"; dd if=/dev/zero of="$1/filler" bs=4k '
                              '2>/dev/null || true; shift; exec "$@"',
                              {**command_env, "IMGSEARCH_CACHE_DIR": str(cache)}, str(cache), str(IMGSEARCH),
                              "search", query)
    assert done.returncode == 1, done.stderr[-2000:]
    assert f"embedding cache {cache}/embeddings.sqlite cannot be used" in done.stderr
    assert "its disk is full" in done.stderr and "Free some space there, or set IMGSEARCH_CACHE_DIR" in done.stderr
    assert "Traceback" not in done.stderr
