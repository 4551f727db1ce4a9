"""A folder like a person's Pictures (issue 31, items 1 and 2), through the real `imgsearch`: HEIC and
AVIF photos are indexed upright, hidden folders, caches, the set-aside folder and the patterns of
`.imgsearchignore` stay out, every file left out is counted by kind, `--include-hidden` takes the
hidden ones in (and an ingest without it takes them out again), a link to a photo outside the folder
is a row and never an abort, ingest keeps an upright thumbnail of each photo, and `duplicates`
pairs a HEIC original with its JPEG copy."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from imgsearch_helpers.data.thumbnails import THUMB, Thumbnails

IMGSEARCH = Path(sys.executable).parent / "imgsearch"
ROWS = {"2024/phone.jpg", "2024/iphone.heic", "2024/iphone copy.jpg", "2024/web.avif", "Écran/keep.png",
        "outlink.jpg"}
HIDDEN_ROWS = {".thumbnails/thumb.jpg", ".hidden.jpg"}
IGNORED = {  # kind -> count, by the default rules and the gallery's .imgsearchignore
    "hidden folder": 1, "hidden file": 2,  # .thumbnails/, and .hidden.jpg plus the ignore file itself
    "cache folder": 1, "set aside": 1, "in .imgsearchignore": 2,  # @eaDir/; .imgsearch-trash/; Écran/*.png, raw/
    ".mov": 1, ".txt": 1, ".dng (RAW, not indexed)": 1,  # the RAW file of 2024/phone.jpg: one photo, one row
}


def run(*args, env) -> subprocess.CompletedProcess:
    return subprocess.run([str(IMGSEARCH), *map(str, args)], env=env, capture_output=True, text=True, timeout=300)


def save_phone_photo(source: Path, target: Path, orientation: int = 1, **options) -> None:
    """`source` enlarged to phone size, stored sideways with an EXIF orientation that turns it upright."""
    image = Image.open(source).convert("RGB").resize((1600, 1200))
    exif = Image.Exif()
    exif[0x0112] = orientation
    stored = image.transpose(Image.Transpose.ROTATE_90) if orientation == 6 else image
    stored.save(target, exif=exif.tobytes(), **options)


@pytest.fixture(scope="module")
def pictures(tmp_path_factory, real_dataset, seeded_cache):
    top = tmp_path_factory.mktemp("pictures")
    gallery, outside = top / "Pictures", top / "outside"
    photos = sorted((real_dataset / "train" / "Afghan_hound").glob("*.JPEG"))
    for folder in ("2024", "Écran", "raw", ".thumbnails", "@eaDir", ".imgsearch-trash"):
        (gallery / folder).mkdir(parents=True)
    outside.mkdir()
    save_phone_photo(photos[0], gallery / "2024" / "phone.jpg", orientation=6, quality=90)
    save_phone_photo(photos[1], gallery / "2024" / "iphone.heic", orientation=6, quality=80)
    save_phone_photo(photos[1], gallery / "2024" / "iphone copy.jpg", quality=60)
    save_phone_photo(photos[2], gallery / "2024" / "web.avif", quality=70)
    for name, photo in [("Écran/shot.png", 3), ("Écran/keep.png", 4), (".thumbnails/thumb.jpg", 5),
                        ("@eaDir/cache.jpg", 6), (".imgsearch-trash/old.jpg", 7), (".hidden.jpg", 8)]:
        Image.open(photos[photo]).convert("RGB").save(gallery / name)
    (gallery / "raw" / "shot.dng").write_bytes(b"II*\0" + bytes(100))
    (gallery / "2024" / "phone.dng").write_bytes(b"II*\0" + bytes(100))
    (gallery / "clip.mov").write_bytes(bytes(1000))
    (gallery / "notes.txt").write_text("not a photo")
    (gallery / ".imgsearchignore").write_text("# screenshots and RAW files stay out\nÉcran/*.png\n!Écran/keep.png\n"
                                              "raw/\n")
    Image.open(photos[9]).convert("RGB").save(outside / "out.jpg")
    (gallery / "outlink.jpg").symlink_to(outside / "out.jpg")
    env = {**os.environ, "IMGSEARCH_CACHE_DIR": str(seeded_cache(top / "cache")),
           "MILVUS_URI": str(top / "milvus" / "pictures.db")}
    return gallery, env


@pytest.fixture(scope="module")
def ingested(pictures):
    gallery, env = pictures
    done = run("ingest", gallery, "--json", "--quiet", env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def stored(gallery, env, *where) -> dict:
    """relpath -> hit, for every row of the gallery's collection (a search with k past the rows)."""
    done = run("search", gallery / "2024" / "phone.jpg", "-k", "50", "--json", "--gallery", gallery, *where, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    return {hit["relpath"]: hit for hit in json.loads(done.stdout)["results"][0]["hits"]}


def test_every_readable_photo_is_a_row_and_nothing_hidden_or_ignored_is(pictures, ingested):
    gallery, env = pictures
    assert ingested["added"] == ingested["rows"] == len(ROWS)
    assert ingested["skipped"] == []
    assert set(stored(gallery, env)) == ROWS


def test_ingest_keeps_an_upright_thumbnail_of_each_photo_for_pages_of_results(pictures, ingested):
    gallery, env = pictures
    folder = Path(env["IMGSEARCH_CACHE_DIR"]) / "thumbnails"
    assert len(list(folder.rglob("*.jpg"))) == ingested["rows"]  # made from the images ingest decoded
    thumbs = Thumbnails(folder)
    for name in ("2024/phone.jpg", "2024/iphone.heic"):  # stored sideways, shown upright
        assert thumbs.get(gallery / name).size == (THUMB, THUMB * 1200 // 1600)
    assert len(list(folder.rglob("*.jpg"))) == ingested["rows"]  # read, not made again


def test_every_file_left_out_is_counted_by_kind(ingested):
    counts = {kind: entry["count"] for kind, entry in ingested["ignored"].items()}
    assert counts == IGNORED
    assert ingested["ignored"]["hidden folder"]["examples"] == [".thumbnails"]
    assert set(ingested["ignored"]["in .imgsearchignore"]["examples"]) == {"raw", "Écran/shot.png"}


def test_heic_and_avif_photos_are_stored_upright_and_find_their_jpeg_copy(pictures, ingested):
    gallery, env = pictures
    upright = stored(gallery, env, "--where", "width == 1600 and height == 1200")  # stored sideways, turned by EXIF
    assert set(upright) == {"2024/phone.jpg", "2024/iphone.heic", "2024/iphone copy.jpg", "2024/web.avif"}
    done = run("search", gallery / "2024" / "iphone.heic", "-k", "2", "--json", env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    hits = [hit["relpath"] for hit in json.loads(done.stdout)["results"][0]["hits"]]
    assert hits == ["2024/iphone.heic", "2024/iphone copy.jpg"]


def test_the_text_report_names_what_it_ignored(pictures, ingested):
    gallery, env = pictures
    done = run("ingest", gallery, "--quiet", env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"0 added, 0 changed, 0 removed, {len(ROWS)} unchanged" in done.stdout
    assert "ignored: " in done.stdout and "1 hidden folder (.thumbnails)" in done.stdout
    assert "1 set aside (.imgsearch-trash)" in done.stdout and "1 .mov" in done.stdout


def test_include_hidden_takes_hidden_photos_in_and_a_plain_ingest_takes_them_out(pictures, ingested):
    gallery, env = pictures
    taken_in = run("ingest", gallery, "--include-hidden", "--json", "--quiet", env=env)
    assert taken_in.returncode == 0, taken_in.stderr[-3000:]
    assert json.loads(taken_in.stdout)["added"] == len(HIDDEN_ROWS)
    assert set(stored(gallery, env)) == ROWS | HIDDEN_ROWS  # caches and the set-aside folder stay out
    left_out = run("ingest", gallery, "--json", "--quiet", env=env)
    assert left_out.returncode == 0, left_out.stderr[-3000:]
    assert json.loads(left_out.stdout)["removed"] == len(HIDDEN_ROWS)
    assert set(stored(gallery, env)) == ROWS


def test_duplicates_pair_a_heic_original_with_its_jpeg_copy_and_leave_hidden_files_out(pictures, ingested):
    gallery, env = pictures
    done = run("duplicates", gallery, "--json", "--quiet", env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout)
    groups = [{str(Path(p).relative_to(gallery)) for p in group} for group in found["groups"]]
    assert {"2024/iphone.heic", "2024/iphone copy.jpg"} in groups
    assert not any(path.startswith((".", "@")) for group in groups for path in group)
    assert found["ignored"]["hidden folder"]["count"] == 1


def test_a_broken_ignore_file_is_a_clear_error_and_nothing_is_removed(pictures, ingested, tmp_path):
    gallery, env = pictures
    ignore = gallery / ".imgsearchignore"
    kept = ignore.read_bytes()
    ignore.write_bytes(b"\xff\xfe not text")
    try:
        done = run("ingest", gallery, "--quiet", env=env)
    finally:
        ignore.write_bytes(kept)
    assert done.returncode == 3 and ".imgsearchignore" in done.stderr
    assert set(stored(gallery, env)) == ROWS


def test_set_aside_moves_the_copy_out_of_the_collection_and_undo_brings_both_back(pictures, ingested):
    gallery, env = pictures
    pair = {"2024/iphone.heic", "2024/iphone copy.jpg"}
    done = run("duplicates", gallery, "--set-aside", "--json", "--quiet", env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    moved = json.loads(done.stdout)
    assert len(moved["set_aside"]) == 1 and moved["set_aside"][0]["source"] in pair
    source, target = moved["set_aside"][0]["source"], moved["set_aside"][0]["target"]
    assert not (gallery / source).exists() and (gallery / target).is_file()
    assert target.startswith(".imgsearch-trash/")
    assert moved["synced"][0]["removed"] == 1
    assert set(stored(gallery, env)) == ROWS - {source}  # the index followed the move
    back = run("duplicates", gallery, "--undo", "--json", "--quiet", env=env)
    assert back.returncode == 0, back.stderr[-3000:]
    assert json.loads(back.stdout)["synced"][0]["added"] == 1
    assert (gallery / source).is_file() and not (gallery / target).exists()
    assert set(stored(gallery, env)) == ROWS
    again = run("duplicates", gallery, "--undo", env=env)
    assert again.returncode == 3 and "nothing to undo" in again.stderr


def test_a_protected_folder_keeps_its_files_and_not_duplicates_is_remembered(pictures, ingested):
    gallery, env = pictures
    done = run("duplicates", gallery, "--set-aside", "--protect", "2024", "--json", "--quiet", env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout)["set_aside"] == []
    told = run("duplicates", gallery, "--not-duplicates", gallery / "2024" / "iphone.heic", "2024/iphone copy.jpg",
               env=env)
    assert told.returncode == 0, told.stderr[-3000:]
    found = run("duplicates", gallery, "--json", "--quiet", env=env)
    assert found.returncode == 0, found.stderr[-3000:]
    assert not any("iphone.heic" in " ".join(group) for group in json.loads(found.stdout)["groups"])


def test_the_first_command_on_a_new_machine_says_once_what_it_prepares_and_nothing_else(pictures, tmp_path):
    gallery, env = pictures
    fresh = {**env, "IMGSEARCH_CACHE_DIR": str(tmp_path / "cache"), "MILVUS_URI": str(tmp_path / "m.db")}
    done = run("search", gallery / "2024" / "phone.jpg", "--gallery", gallery / "2024", "-k", "1", "--quiet",
               env=fresh)
    assert done.returncode == 4, done.stderr[-3000:]  # nothing ingested in this new place: the model is not needed
    done = run("ingest", gallery / "2024", "--quiet", env=fresh)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("preparing efficientnet_lite0@"), lines  # no gRPC, no warnings
