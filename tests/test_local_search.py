"""Finding the original from a real photo (`<model>+local`), as a user does it: `imgsearch ingest`,
`search` (with a region) and `serve`, on studio images of grocery packages and phone photos of
them taken in shops (grocery_packages), with tutorial photos as unrelated gallery images."""
import json
import shutil
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest
from commands import imgsearch
from PIL import Image
from realdata import ROOT

from imgsearch_helpers.config import get_settings
from imgsearch_helpers.index.descriptors import DescriptorIndex
from imgsearch_helpers.local_server import free_port, serving

GROCERY = get_settings().data_dir / "grocery_packages"
PRODUCTS = ("Arla-Sour-Milk", "Arla-Standard-Milk", "Oatly-Oat-Milk", "Tropicana-Apple-Juice", "Yoggi-Vanilla-Yoghurt")
PHOTO = GROCERY / "queries" / "Arla-Sour-Milk" / "test_Arla-Sour-Milk_002.jpg"  # a carton in a hand, in a shop
MODEL = "efficientnet_lite0+local"
TOKEN = "local-test-token"


@pytest.fixture(scope="module")
def gallery(tmp_path_factory):
    folder = tmp_path_factory.mktemp("grocery") / "shop"
    for product in PRODUCTS:
        shutil.copytree(GROCERY / "gallery" / product, folder / product)
    (folder / "other").mkdir()
    for image in sorted((ROOT / "train").glob("*/*.JPEG"))[::100]:  # ten unrelated photos
        shutil.copy(image, folder / "other" / image.name)
    return folder


@pytest.fixture(scope="module")
def env(command_env, gallery):
    done = imgsearch(command_env, "ingest", str(gallery), "--model", MODEL, "--quiet")
    assert done.returncode == 0, done.stderr
    return command_env


def search(env, gallery, *args):
    done = imgsearch(env, "search", *args, "--model", MODEL, "--gallery", str(gallery), "--json", "-k", "3")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)["results"]


def store_of(env) -> DescriptorIndex:
    stores = list(Path(env["IMGSEARCH_CACHE_DIR"], "local").glob("*.npz"))
    assert len(stores) == 1
    return DescriptorIndex.open(stores[0])


def test_a_phone_photo_finds_its_package_first_with_the_evidence(env, gallery):
    hits = search(env, gallery, str(PHOTO))[0]["hits"]
    assert hits[0]["label"] == "Arla-Sour-Milk" and hits[0]["verified"] is True
    assert hits[0]["inliers"] >= 40 and all(h["inliers"] < hits[0]["inliers"] for h in hits[1:])
    assert len(store_of(env).images) == len(list(gallery.glob("*/*")))  # every gallery image has its rows


def test_a_filter_is_refused_rather_than_ignored(env, gallery):
    done = imgsearch(env, "search", str(PHOTO), "--model", MODEL, "--gallery", str(gallery), "--where", 'label == "x"')
    assert done.returncode == 2 and "does not take a filter" in done.stderr


def test_an_unrelated_photo_is_no_match(env, gallery):
    unrelated = sorted((ROOT / "test").glob("*/*.JPEG"))[5]
    assert search(env, gallery, str(unrelated))[0]["hits"] == []
    done = imgsearch(env, "search", str(unrelated), "--model", MODEL, "--gallery", str(gallery))
    assert "no match" in done.stdout


def test_a_region_finds_what_is_inside_the_box_and_only_that(env, gallery, tmp_path):
    scene = Image.open(sorted((ROOT / "test").glob("*/*.JPEG"))[7]).convert("RGB").resize((1000, 700))
    scene.paste(Image.open(PHOTO).convert("RGB"), (600, 300))  # the carton's photo in a corner of a bigger one
    scene.save(tmp_path / "scene.jpg", quality=92)
    inside = search(env, gallery, str(tmp_path / "scene.jpg"), "--region", "600,300,348,348")[0]["hits"]
    outside = search(env, gallery, str(tmp_path / "scene.jpg"), "--region", "0,0,500,280")[0]["hits"]
    assert inside[0]["label"] == "Arla-Sour-Milk" and outside == []
    done = imgsearch(env, "search", str(tmp_path / "scene.jpg"), "--model", MODEL, "--gallery", str(gallery),
                     "--region", "900,600,348,348")
    assert done.returncode == 2 and "leaves the image scene.jpg (1000 x 700)" in done.stderr


def test_a_deleted_image_loses_its_rows_in_the_local_index(env, gallery):
    before = store_of(env)
    hit = search(env, gallery, str(PHOTO))[0]["hits"][0]
    assert int(hit["id"]) in before.images
    moved = Path(hit["path"])
    shutil.move(moved, gallery.parent / moved.name)
    try:
        done = imgsearch(env, "ingest", str(gallery), "--model", MODEL, "--quiet", "--json")
        assert json.loads(done.stdout)["removed"] == 1
        after = store_of(env)
        assert int(hit["id"]) not in after.images
        assert len(after) == len(before) - len(before.rows_of(int(hit["id"]))[0])
        assert all(h["label"] != "Arla-Sour-Milk" for h in search(env, gallery, str(PHOTO))[0]["hits"])
    finally:
        shutil.move(gallery.parent / moved.name, moved)
        imgsearch(env, "ingest", str(gallery), "--model", MODEL, "--quiet")


def test_the_app_matches_a_region_and_draws_the_matching_features(env, gallery, tmp_path, monkeypatch):
    """The app's "find the original" box, over a copy of the collection the commands built."""
    from imgsearch_helpers.gallery.service import SearchService
    from imgsearch_helpers.serve.app import APP_MODELS, Showcase

    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    (tmp_path / "gradio").mkdir()
    upload = shutil.copy(PHOTO, tmp_path / "gradio")
    database = Path(env["MILVUS_URI"])  # a copy: the process that opens Milvus Lite keeps it till it exits
    copy = tmp_path / "milvus" / database.name
    copy.parent.mkdir()
    (shutil.copytree if database.is_dir() else shutil.copy)(database, copy)
    settings = get_settings(cache_dir=env["IMGSEARCH_CACHE_DIR"], milvus_uri=str(copy), slice="tiny")
    service = SearchService(MODEL, "milvus", gallery, settings)
    try:
        assert MODEL in APP_MODELS
        showcase = Showcase.around(service)
        items, status, drawn = showcase.match_region(str(upload), MODEL, "milvus", 3, "0,0,348,348", True)
        assert items[0][1].endswith(" features") and "Arla-Sour-Milk" in items[0][1] and "match(es)" in status
        assert drawn.shape[0] == 512 and drawn.shape[1] > 512  # query and match side by side
        _, refused, _ = showcase.match_region(str(upload), MODEL, "milvus", 3, "0,0,9", True)
        assert "x,y,w,h" in refused
        _, status, drawn = showcase.match_region(str(upload), MODEL, "milvus", 3, "0,0,60,60", True)
        assert status.startswith("No match") and drawn is None
        items, status, _ = showcase.search_upload(str(upload), MODEL, "milvus", 3)
        assert "Arla-Sour-Milk" in items[0][1] and "by local features" in status
    finally:
        service.close()


@pytest.fixture(scope="module")
def client(env, gallery, tmp_path_factory):
    """`imgsearch serve` over the same collection (Milvus Lite admits one process: the commands above are done)."""
    port = free_port()
    command = [str(Path(sys.executable).parent / "imgsearch"), "serve", str(gallery), "--model", MODEL, "--port",
               str(port), "--token", TOKEN, "--no-text", "--quiet"]
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    with serving(command, f"http://127.0.0.1:{port}/api/health", log, env, timeout_s=300):
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {TOKEN}"},
                          timeout=120) as client:
            yield client


def post(client, path, **form):
    with open(path, "rb") as handle:
        return client.post("/api/search", files={"file": (Path(path).name, handle, "image/jpeg")}, data=form)


def test_the_api_finds_the_package_with_its_inliers_and_says_when_nothing_matches(client):
    found = post(client, PHOTO, k="3").json()
    assert found["match"] is True and found["hits"][0]["label"] == "Arla-Sour-Milk"
    assert found["hits"][0]["inliers"] >= 40
    nothing = post(client, sorted((ROOT / "test").glob("*/*.JPEG"))[5]).json()
    assert nothing["match"] is False and nothing["hits"] == []


def test_the_api_takes_a_region_and_refuses_a_bad_one(client):
    boxed = post(client, PHOTO, region="0,0,348,348").json()
    assert boxed["region"] == "0,0,348,348" and boxed["hits"][0]["label"] == "Arla-Sour-Milk"
    bad = post(client, PHOTO, region="0,0,10")
    assert bad.status_code == 400 and "x,y,w,h" in bad.json()["error"]
    outside = post(client, PHOTO, region="300,300,200,200")
    assert outside.status_code == 400 and "leaves the image" in outside.json()["error"]
    assert np.isfinite(boxed["ms"])
