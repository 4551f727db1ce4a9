"""A gallery of your own stays true to its folder: stable ids, incremental ingest (added / changed /
removed / renamed), one collection per folder, labels that stay text, filters, k hits. Real
Lite0, real Milvus Lite and the Milvus server fixture."""
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from realdata import ROOT

from imgsearch_helpers.config import get_settings
from imgsearch_helpers.data.folders import describe_files, scan_folder, stable_id
from imgsearch_helpers.errors import DatasetError, FilterError, NotBuiltError, UsageError
from imgsearch_helpers.gallery.collections import Registry
from imgsearch_helpers.gallery.service import SearchService
from imgsearch_helpers.retrieval.search import ingest

CLASSES = {"001": "goldfish", "002": "warplane", "003": "Afghan_hound"}  # folder name: ImageNet class


def make_gallery(folder: Path, per_class: int = 3) -> Path:
    for name, label in CLASSES.items():
        (folder / name).mkdir(parents=True)
        for image in sorted((ROOT / "train" / label).glob("*.JPEG"))[:per_class]:
            shutil.copy(image, folder / name / image.name)
    return folder


def query(label: str) -> Path:
    return sorted((ROOT / "test" / label).glob("*.JPEG"))[0]


@pytest.fixture(params=["lite", pytest.param("server", marks=pytest.mark.server)])
def settings(request, tmp_path):
    uri = request.getfixturevalue("milvus_server").uri if request.param == "server" else str(tmp_path / "m" / "s.db")
    return get_settings(cache_dir=tmp_path / "cache", milvus_uri=uri)


def service_for(folder, settings, lite0, engine="milvus") -> SearchService:
    service = SearchService(gallery=folder, settings=settings, engine=engine)
    service.__dict__["embedder"] = lite0  # the session's model (cached_property slot)
    return service


def rows_match_files(service) -> bool:
    stored = service.engine.metadata().set_index("id")
    files = scan_folder(service.root).set_index("id")
    same_ids = sorted(stored.index) == sorted(files.index)
    return same_ids and (stored.loc[files.index, "relpath"] == files["relpath"]).all()


def test_ids_come_from_the_relative_path_alone(tmp_path):
    gallery = scan_folder(make_gallery(tmp_path / "a"))
    (tmp_path / "a" / "001" / "extra.png").write_bytes((ROOT / "test" / "goldfish").iterdir().__next__().read_bytes())
    again = scan_folder(tmp_path / "a")
    assert set(gallery.id) <= set(again.id)  # another file came: nobody else's id moved
    assert gallery.set_index("relpath").loc["001/" + gallery.relpath[0].split("/")[1], "id"] == stable_id(
        gallery.relpath[0])
    assert (gallery.id >= 0).all() and gallery.id.dtype == np.int64


def test_delete_add_change_and_rename_keep_rows_equal_to_files(tmp_path, settings, lite0):
    folder = make_gallery(tmp_path / "photos")
    service = service_for(folder, settings, lite0)
    first = service.build(progress=False)
    assert (len(first.plan.added), first.rows) == (9, 9)

    doomed = sorted((folder / "001").iterdir())[0]
    doomed.unlink()  # a photo deleted
    shutil.copy(query("goldfish"), folder / "001" / "new goldfish.jpg")  # one added
    changed = sorted((folder / "002").iterdir())[0]
    Image.open(query("warplane")).save(changed, format="JPEG")  # same name, other content
    moved, touched = sorted((folder / "003").iterdir())[:2]
    moved.rename(folder / "003" / "renamed.JPEG")  # renamed: new id, content known
    time.sleep(0.01)
    touched.touch()  # same bytes, newer time

    second = service.build(progress=False)
    plan = second.plan
    assert (len(plan.added), len(plan.changed) - len(plan.touched), len(plan.removed)) == (2, 1, 2)
    assert plan.renamed == 1 and len(plan.touched) == 1 and plan.unchanged == 5
    assert second.ingest.embed.embedded == 2 and second.ingest.embed.from_cache == 1  # the rename came from the cache
    assert second.rows == service.engine.count() == 9 and rows_match_files(service)

    hits = service.search_images([query("warplane")], k=3).hits[0]
    # the changed file, re-embedded (its new content is the query re-encoded as JPEG)
    assert hits[0].relpath == f"002/{changed.name}" and hits[0].similarity > 0.95
    assert not any(h.relpath == f"001/{doomed.name}" for h in service.search_images([query("goldfish")], 9).hits[0])
    third = service.build(progress=False)  # nothing changed since: nothing read again
    assert third.ingest is None and third.plan.unchanged == 9
    service.close()


class ReadsItsOwnFiles:
    """The in-process ingest as a runner that reads the files itself (as Ray's workers do): the
    build's plan must then read none and hand it every changed file."""

    describes_files = True

    def __init__(self):
        self.handed = []

    def __call__(self, rows, encoder, engine, cache=None, transform=None, progress=True):
        self.handed.append(sorted(rows["relpath"]))
        assert "digest" not in rows  # nothing was read for the plan
        return ingest(describe_files(rows), encoder, engine, cache, transform, progress)


def test_a_build_hands_its_runner_only_the_rows_to_embed(tmp_path, lite0):
    settings = get_settings(cache_dir=tmp_path / "cache", milvus_uri=str(tmp_path / "m" / "r.db"))
    folder = make_gallery(tmp_path / "photos")
    service, runner = service_for(folder, settings, lite0), ReadsItsOwnFiles()
    assert len(service.build(progress=False, runner=runner).plan.added) == 9 and len(runner.handed[0]) == 9
    touched = sorted((folder / "003").iterdir())[0]
    time.sleep(0.01)
    touched.touch()  # same bytes: unread, the plan counts it changed and the runner embeds it again
    (folder / "001" / "copy.jpg").write_bytes(query("goldfish").read_bytes())
    second = service.build(progress=False, runner=runner)
    assert runner.handed[1] == ["001/copy.jpg", f"003/{touched.name}"] and second.plan.touched == []
    assert second.ingest.embed.from_cache == 1 and second.rows == 10 and rows_match_files(service)
    assert service.build(progress=False, runner=runner).ingest is None and len(runner.handed) == 2
    assert service.registry.get(service.collection).rows == 10
    service.close()


def test_two_folders_with_the_same_name_stay_apart(tmp_path, settings, lite0):
    a, b = make_gallery(tmp_path / "a" / "photos"), tmp_path / "b" / "photos"
    (b / "only").mkdir(parents=True)
    shutil.copy(query("goldfish"), b / "only" / "one.jpg")
    first, second = service_for(a, settings, lite0), service_for(b, settings, lite0)
    assert first.collection != second.collection and first.collection.startswith("gallery_photos_lite0_")
    first.build(progress=False), second.build(progress=False)
    assert first.engine.count() == 9 and second.engine.count() == 1
    labels = {e.label for e in Registry(settings).entries()}
    assert {str(a.resolve()), str(b.resolve())} <= labels
    first.close(), second.close()


def test_numeric_labels_stay_text_through_evaluate(tmp_path, settings, lite0):
    folder = make_gallery(tmp_path / "g")
    queries = tmp_path / "q"
    for name, label in CLASSES.items():
        (queries / name).mkdir(parents=True)
        shutil.copy(query(label), queries / name)
    service = service_for(folder, settings, lite0)
    service.build(progress=False)
    assert service.engine.metadata()["label"].map(type).eq(str).all()
    row = service.evaluate(queries)
    assert row["queries"] == 3 and row["mhr@10"] == 1.0  # 9 images: every relevant one in the top 10
    diffused = service.evaluate(queries, diffuse=True)
    assert diffused["engine"] == "milvus + diffusion" and diffused["mhr@10"] == 1.0
    assert service.search_images([query("goldfish")], 1).hits[0][0].label == "001"
    with pytest.raises(UsageError, match="evaluate needs labelled queries.*--queries"):
        service.evaluate()
    service.close()


def test_k_hits_whenever_the_collection_holds_k_rows(tmp_path, settings, lite0):
    folder = make_gallery(tmp_path / "twenty", per_class=7)  # 21 images
    service = service_for(folder, settings, lite0)
    service.build(progress=False)
    found = service.search_images([query("goldfish"), query("warplane")], k=21).hits
    assert [len(row) for row in found] == [21, 21]
    assert service.engine.describe_index()["index_type"] == "FLAT"  # exact below 10,000 rows
    service.close()


def test_a_diffused_search_ranks_every_row_once_and_follows_the_collections_changes(tmp_path, settings, lite0):
    folder = make_gallery(tmp_path / "g", per_class=5)  # 15 images
    service = service_for(folder, settings, lite0)
    service.build(progress=False)
    plain = {h.id: h.similarity for h in service.search_images([query("goldfish")], 15).hits[0]}
    diffused = service.search_images([query("goldfish")], 15, diffuse=True).hits[0]
    assert sorted(h.id for h in diffused) == sorted(plain)  # a permutation of the collection
    for hit in diffused:  # each hit's cosine is its own: positions map back to the right ids
        assert hit.similarity == pytest.approx(plain[hit.id], abs=1e-4)
    assert service.engine.name == "milvus" and service.diffused().name == "milvus + diffusion"
    gone = diffused[0]
    assert service.delete(ids=[gone.id]) == 1
    after = service.search_images([query("goldfish")], 15, diffuse=True).hits[0]
    assert len(after) == 14 and gone.id not in {h.id for h in after}
    assert sorted(service.diffused().ids) == sorted(service.indexed()["id"])  # the graph was rebuilt
    with pytest.raises(UsageError, match="diffusion ranks the whole collection"):
        service.search_images([query("goldfish")], 3, 'label == "001"', diffuse=True)
    service.close()


@pytest.mark.parametrize("engine", ["milvus", "faiss", "hnswlib", "exact"])
def test_filters_reach_every_engine(tmp_path, lite0, engine):
    settings = get_settings(cache_dir=tmp_path / "cache", milvus_uri=str(tmp_path / "m" / "f.db"))
    service = service_for(make_gallery(tmp_path / "g"), settings, lite0, engine)
    service.build(progress=False)
    for where, labels in (('label in ["001", "003"]', {"001", "003"}), ('folder == "002"', {"002"}),
                          ('width > 0 and not (label == "001")', {"002", "003"})):
        hits = service.search_images([query("goldfish")], 9, where).hits[0]
        assert {h.label for h in hits} == labels and len(hits) == 3 * len(labels)
        assert service.count(where) == 3 * len(labels)
    with pytest.raises(FilterError, match="unknown field"):
        service.search_images([query("goldfish")], 3, 'colour == "red"')
    service.close()


def test_before_an_ingest_search_says_what_to_do(tmp_path, lite0):
    service = service_for(tmp_path, get_settings(cache_dir=tmp_path / "c", milvus_uri=str(tmp_path / "x.db")), lite0)
    with pytest.raises(NotBuiltError, match="run `imgsearch ingest` first"):
        service.search_images([query("goldfish")])
    service.close()


def test_an_empty_or_missing_folder_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no images under"):
        scan_folder(tmp_path / "empty")
    with pytest.raises(DatasetError, match="image folder not found"):
        scan_folder(tmp_path / "nowhere")
