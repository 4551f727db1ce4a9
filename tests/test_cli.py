"""The `imgsearch` console script, run as a user runs it: a subprocess, real data, real Milvus Lite."""
import json
import shutil
import time
from pathlib import Path

import pytest
from commands import imgsearch


@pytest.fixture(scope="module")
def ingested(command_env):
    done = imgsearch(command_env, "ingest", "--json", "--quiet")
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


def test_help_is_quick_and_explains_the_commands_and_exit_codes(command_env):
    start = time.monotonic()
    done = imgsearch(command_env, "--help")
    assert done.returncode == 0 and time.monotonic() - start < 10
    for text in ("ingest", "search", "evaluate", "list", "drop", "serve", "exit codes", "run `imgsearch ingest` first"):
        assert text in done.stdout
    assert "query image files" in imgsearch(command_env, "search", "--help").stdout


def test_search_before_ingest_says_what_to_do(command_env, real_dataset, tmp_path):
    fresh = {**command_env, "IMGSEARCH_CACHE_DIR": str(tmp_path / "cache"), "MILVUS_URI": str(tmp_path / "m" / "x.db")}
    query = next(real_dataset.glob("test/*/*.JPEG"))
    done = imgsearch(fresh, "search", str(query))
    assert done.returncode == 4
    assert "run `imgsearch ingest` first" in done.stderr


def test_ingest_indexes_the_tiny_slice(ingested):
    assert ingested["added"] == ingested["rows"] == 100 and ingested["skipped"] == []
    assert ingested["collection"].startswith("gallery_dataset_tiny_lite0_")
    assert ingested["index"]["index_type"] == "FLAT" and ingested["index"]["metric_type"] == "IP"  # 100 rows: exact


def test_search_finds_the_querys_class(command_env, ingested, real_dataset):
    queries = sorted((real_dataset / "test" / "Afghan_hound").glob("*.JPEG"))
    done = imgsearch(command_env, "search", *map(str, queries), "-k", "5", "--json")
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    hits = result["results"][0]["hits"]
    assert len(hits) == 5 and hits[0]["label"] == "Afghan_hound"
    assert hits[0]["similarity"] >= hits[-1]["similarity"] and Path(hits[0]["path"]).is_file()
    text = imgsearch(command_env, "search", str(queries[0]), "-k", "3")
    assert text.returncode == 0 and text.stdout.count("Afghan_hound") >= 1 and " 1. " in text.stdout


def test_evaluate_scores_the_test_queries(command_env, ingested):
    done = imgsearch(command_env, "evaluate", "--json")
    assert done.returncode == 0, done.stderr[-2000:]
    row = json.loads(done.stdout)
    assert row["queries"] == 10 and row["k"] == 10
    assert 0 < row["ap@10"] <= row["towhee_map@10"] <= 1 and 0 < row["mhr@10"] <= 1
    diffused = imgsearch(command_env, "evaluate", "--diffuse", "--json")
    assert diffused.returncode == 0, diffused.stderr[-2000:]
    row = json.loads(diffused.stdout)
    assert row["engine"] == "milvus + diffusion" and row["queries"] == 10 and 0 < row["mhr@10"] <= 1


@pytest.mark.parametrize("make, reason", [
    (lambda d: d / "missing.jpg", "missing.jpg: cannot read file"),
    (lambda d: (d / "notes.jpg").write_text("not a picture") and d / "notes.jpg", "notes.jpg: not an image file"),
])
def test_a_bad_query_exits_3_with_a_message_naming_it(command_env, ingested, tmp_path, make, reason):
    done = imgsearch(command_env, "search", str(make(tmp_path)))
    assert done.returncode == 3
    assert reason in done.stderr and "Traceback" not in done.stderr


def test_wrong_usage_exits_2(command_env):
    assert imgsearch(command_env, "search").returncode == 2
    assert imgsearch(command_env, "frobnicate").returncode == 2


def test_a_folder_of_your_own_becomes_the_default_gallery(command_env, ingested, real_dataset, tmp_path):
    folder = tmp_path / "my photos"
    for label in ("Afghan_hound", "brain_coral"):
        (folder / label).mkdir(parents=True)
        for image in sorted((real_dataset / "train" / label).glob("*.JPEG"))[:3]:
            shutil.copy(image, folder / label / image.name)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 truncated")
    done = imgsearch(command_env, "ingest", str(folder), "--json", "--quiet")
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert result["added"] == result["rows"] == 6  # the broken file is skipped, and listed
    assert len(result["skipped"]) == 1 and "broken.jpg" in result["skipped"][0]
    query = sorted((real_dataset / "test" / "brain_coral").glob("*.JPEG"))[0]
    found = json.loads(imgsearch(command_env, "search", str(query), "-k", "3", "--where", 'label != "Afghan_hound"',
                                 "--json").stdout)
    assert found["collection"].startswith("gallery_my_photos_lite0_")  # the last ingest's gallery
    assert [hit["label"] for hit in found["results"][0]["hits"]] == ["brain_coral"] * 3
    listed = imgsearch(command_env, "list")
    assert listed.returncode == 0 and found["collection"] in listed.stdout and str(folder.resolve()) in listed.stdout
    assert "6 rows" in listed.stdout


def test_a_malformed_filter_exits_2_naming_it(command_env, ingested, real_dataset):
    query = sorted((real_dataset / "test" / "Afghan_hound").glob("*.JPEG"))[0]
    done = imgsearch(command_env, "search", str(query), "--gallery", "dataset", "--where", "label = 'x'")
    assert done.returncode == 2 and "compare with ==" in done.stderr and "Traceback" not in done.stderr


def test_duplicates_prints_the_groups_of_a_folder(command_env, real_dataset, tmp_path):
    from PIL import Image

    photos = sorted((real_dataset / "train").glob("*/*.JPEG"))[:6]
    for photo in photos:
        shutil.copy(photo, tmp_path / photo.name)
    shutil.copy(photos[0], tmp_path / "again.JPEG")
    with Image.open(photos[1]) as image:
        image.convert("L").save(tmp_path / "gray.jpg", quality=90)
    done = imgsearch(command_env, "duplicates", str(tmp_path), "--json", "--quiet")
    assert done.returncode == 0, done.stderr[-2000:]
    groups = [sorted(Path(p).name for p in group) for group in json.loads(done.stdout)["groups"]]
    assert sorted(groups) == sorted([sorted([photos[0].name, "again.JPEG"]), sorted([photos[1].name, "gray.jpg"])])
    text = imgsearch(command_env, "duplicates", str(tmp_path), "--quiet").stdout
    assert "2 groups, 4 images (1 exact, 1 near copies joined)" in text


def test_duplicates_of_a_missing_folder_exits_3_naming_it(command_env, tmp_path):
    done = imgsearch(command_env, "duplicates", str(tmp_path / "nowhere"))
    assert done.returncode == 3 and "nowhere" in done.stderr and "Traceback" not in done.stderr
    assert imgsearch(command_env, "duplicates", str(tmp_path), "--threshold", "2").returncode == 2


def test_a_verified_search_marks_the_gallery_image_itself(command_env, ingested, real_dataset):
    query = sorted((real_dataset / "test" / "Afghan_hound").glob("*.JPEG"))[0]
    found = imgsearch(command_env, "search", str(query), "-k", "1", "--json")
    first = json.loads(found.stdout)["results"][0]["hits"][0]
    done = imgsearch(command_env, "search", first["path"], "-k", "3", "--verify")
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert first["path"] in lines[1] and lines[1].endswith("(verified)")
