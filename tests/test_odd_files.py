"""Odd files in a gallery or as a query (issue 28, items 4, 5 and 12), through the real `imgsearch`:
a FIFO, links of every kind, a name that is not UTF-8 and a 3 GB junk file are each skipped and
named, never hang or abort the ingest, and are never read whole."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from imgsearch_helpers.data.folders import file_rows
from imgsearch_helpers.data.images import describe_image_file, read_image_bytes
from imgsearch_helpers.embed.cache import content_digest
from imgsearch_helpers.errors import ImageError

IMGSEARCH = Path(sys.executable).parent / "imgsearch"
JUNK_BYTES = 3 * 2**30
EXPECTED_ROWS = {"dogs/a.JPEG", "dogs/b.JPEG", "corals/c.JPEG", "corals/d.JPEG", "e.JPEG", "outlink.jpg",
                 "linked/f.JPEG"}
EXPECTED_SKIPS = {  # relpath -> the start of its reason
    "x.jpg": "not a regular file (a FIFO)",
    "dangling.jpg": "dangling link (nothing at ",
    "self.jpg": "cannot follow link (Too many levels of symbolic links)",
    "inlink.jpg": "same file as dogs/a.JPEG",
    "dogs/loop": "same folder as the gallery folder (a loop)",
    "caf\\xe9.jpg": "name is not UTF-8",
    "junk.jpg": "file of 3 GB is over the 256 MB limit for an image",
}


# The command runs under a small Python parent that reports its child's peak memory: a child forked
# straight from pytest would inherit pytest's own peak (Linux keeps the larger of the two in maxrss).
MEASURED = ("import resource, subprocess, sys; code = subprocess.call(sys.argv[1:]); "
            "print('PEAK_KB', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); "
            "sys.exit(code)")


class Run:
    """A finished command: exit code, output, wall seconds and its own peak resident memory."""

    def __init__(self, args, env, timeout):
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            start = time.monotonic()
            process = subprocess.Popen([sys.executable, "-c", MEASURED, *map(str, args)], env=env, stdout=out,
                                       stderr=err, start_new_session=True)
            killer = threading.Timer(timeout, os.killpg, (process.pid, 9))  # a hang fails the test, not stalls it
            killer.start()
            self.returncode = process.wait()
            killer.cancel()
            self.seconds = time.monotonic() - start
            out.seek(0), err.seek(0)
            self.stdout, stderr = out.read().decode(), err.read().decode()
            peak = [line for line in stderr.splitlines() if line.startswith("PEAK_KB ")]
            self.peak_mb = int(peak[-1].split()[1]) / 1024 if peak else float("inf")
            self.stderr = "\n".join(line for line in stderr.splitlines() if not line.startswith("PEAK_KB "))


def photos(real_dataset, label, count):
    return sorted((real_dataset / "train" / label).glob("*.JPEG"))[:count]


@pytest.fixture(scope="module")
def place(tmp_path_factory, real_dataset, seeded_cache):
    """A gallery of five photos and every odd path a Pictures folder may hold; photos outside it."""
    top = tmp_path_factory.mktemp("odd")
    gallery, outside, elsewhere = top / "gallery", top / "outside", top / "elsewhere"
    for folder in (gallery / "dogs", gallery / "corals", outside, elsewhere):
        folder.mkdir(parents=True)
    dogs, corals = photos(real_dataset, "Afghan_hound", 3), photos(real_dataset, "brain_coral", 4)
    for source, target in [(dogs[0], "dogs/a.JPEG"), (dogs[1], "dogs/b.JPEG"), (corals[0], "corals/c.JPEG"),
                           (corals[1], "corals/d.JPEG"), (dogs[2], "e.JPEG")]:
        shutil.copy(source, gallery / target)
    shutil.copy(corals[2], outside / "out.JPEG")
    shutil.copy(corals[3], elsewhere / "f.JPEG")
    os.mkfifo(gallery / "x.jpg")
    (gallery / "dangling.jpg").symlink_to(top / "nowhere.jpg")
    (gallery / "self.jpg").symlink_to("self.jpg")
    (gallery / "outlink.jpg").symlink_to(outside / "out.JPEG")
    (gallery / "inlink.jpg").symlink_to("dogs/a.JPEG")
    (gallery / "linked").symlink_to(elsewhere)
    (gallery / "dogs" / "loop").symlink_to("..")
    shutil.copy(dogs[0], os.fsencode(gallery) + b"/caf\xe9.jpg")  # Latin-1 bytes: no UTF-8 name
    with open(gallery / "junk.jpg", "wb") as junk:
        junk.truncate(JUNK_BYTES)  # sparse: 3 GB to read, no disk used
    env = {**os.environ, "IMGSEARCH_CACHE_DIR": str(seeded_cache(top / "cache")),
           "MILVUS_URI": str(top / "milvus" / "odd.db")}
    return gallery, env


@pytest.fixture(scope="module")
def ingested(place):
    gallery, env = place
    run = Run([IMGSEARCH, "ingest", gallery, "--json", "--quiet"], env, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    return run, json.loads(run.stdout)


def relative_skips(gallery, skipped) -> dict:
    pairs = [entry.split(": ", 1) for entry in skipped]
    return {str(Path(path).relative_to(gallery)): reason for path, reason in pairs}


def test_ingest_indexes_every_photo_and_skips_each_odd_path_with_its_reason(place, ingested):
    gallery, _ = place
    result = ingested[1]
    assert result["added"] == result["rows"] == len(EXPECTED_ROWS)
    skips = relative_skips(gallery, result["skipped"])
    assert set(skips) == set(EXPECTED_SKIPS)
    for relpath, reason in EXPECTED_SKIPS.items():
        assert skips[relpath].startswith(reason), (relpath, skips[relpath])


def test_links_are_indexed_under_their_own_path(place, ingested):
    gallery, env = place
    run = Run([IMGSEARCH, "search", gallery / "dogs" / "a.JPEG", "-k", "20", "--json"], env, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    hits = {hit["relpath"]: hit for hit in json.loads(run.stdout)["results"][0]["hits"]}
    assert set(hits) == EXPECTED_ROWS
    assert hits["outlink.jpg"]["path"] == str(gallery / "outlink.jpg")  # the link's path, not its target's
    assert hits["linked/f.JPEG"]["label"] == "linked"
    assert hits["dogs/a.JPEG"]["similarity"] == pytest.approx(1, abs=1e-3)


def test_a_3_gb_junk_file_is_never_read(ingested):
    run = ingested[0]
    # Read whole (as before), the junk alone took 3 GB on top of the ~1.2 GB the model and Milvus need.
    assert run.peak_mb < 2500, f"peak resident memory {run.peak_mb:.0f} MB"
    assert run.seconds < 240


def test_a_rerun_prints_every_skipped_path_with_its_reason(place, ingested):
    gallery, env = place
    run = Run([IMGSEARCH, "ingest", gallery, "--quiet"], env, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert f"0 added, 0 changed, 0 removed, {len(EXPECTED_ROWS)} unchanged, {len(EXPECTED_SKIPS)} skipped" in run.stdout
    lines = [line.strip() for line in run.stdout.splitlines() if line.strip().startswith("skipped ")]
    assert len(lines) == len(EXPECTED_SKIPS)
    for relpath, reason in EXPECTED_SKIPS.items():
        assert f"skipped {gallery / relpath}: {reason}" in run.stdout


@pytest.mark.parametrize("query, reason", [
    ("x.jpg", "not a regular file (a FIFO)"),
    ("/dev/zero", "not a regular file (a character device)"),
])
def test_a_query_that_is_no_regular_file_exits_3_at_once(place, ingested, query, reason):
    gallery, env = place
    path = gallery / query
    run = Run([IMGSEARCH, "search", path], env, timeout=120)
    assert run.returncode == 3, run.stderr[-3000:]
    assert f"{path}: {reason}" in run.stderr and "Traceback" not in run.stderr
    assert run.peak_mb < 2500


def test_a_file_removed_between_the_walk_and_its_stat_is_skipped(tmp_path, real_dataset):
    kept, gone = tmp_path / "kept.JPEG", tmp_path / "gone.JPEG"
    for photo, target in zip(photos(real_dataset, "Afghan_hound", 2), (kept, gone)):
        shutil.copy(photo, target)
    listed = [kept, gone]
    gone.unlink()
    rows = file_rows(tmp_path, listed)
    assert rows["relpath"].tolist() == ["kept.JPEG"]
    assert rows.attrs["skipped"] == [(str(gone), "removed while the folder was read")]


def bytes_read() -> int:
    return int(Path("/proc/self/io").read_text().split("rchar:")[1].split()[0])


def test_a_junk_file_under_the_size_limit_is_read_no_further_than_its_header(tmp_path):
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(os.urandom(2**20) * 64)  # 64 MB that no image format starts with
    for read in (read_image_bytes, describe_image_file):
        before = bytes_read()
        with pytest.raises(ImageError, match="not an image file"):
            read(junk)
        assert bytes_read() - before < 2**20, read.__name__


def test_a_photo_is_read_once_and_hashed_in_pieces_to_the_cache_key(real_dataset):
    photo = photos(real_dataset, "Afghan_hound", 1)[0]
    width, height, digest = describe_image_file(photo)
    assert digest == content_digest(read_image_bytes(photo)) == content_digest(photo.read_bytes())
    assert width > 0 and height > 0
