"""Instance search through the engine the app, API and CLI share: `<model>+gem` descriptors and
re-ranking by geometric verification, on real photos of objects (ukbench_mini) and edited copies."""
import shutil

import numpy as np
import pytest
from PIL import Image

from imgsearch_helpers.config import get_settings
from imgsearch_helpers.data.edits import apply_edit
from imgsearch_helpers.errors import UsageError
from imgsearch_helpers.gallery.service import SearchService
from imgsearch_helpers.models import build_embedder

GROUPS = ("g0000", "g0003", "g0007", "g0011")


@pytest.fixture(scope="module")
def gallery(tmp_path_factory):
    """Four ukbench objects, four views each, as a folder of one's own."""
    source = get_settings().data_dir / "ukbench_mini"
    folder = tmp_path_factory.mktemp("objects") / "objects"
    for group in GROUPS:
        shutil.copytree(source / group, folder / group)
    return folder


@pytest.fixture(scope="module")
def service(gallery, tmp_path_factory):
    scratch = tmp_path_factory.mktemp("instance")
    settings = get_settings(cache_dir=scratch / "cache", milvus_uri=str(scratch / "milvus.db"))
    engine = SearchService("efficientnet_lite0+gem", "milvus", gallery, settings)
    engine.build(progress=False)
    yield engine
    engine.close()


def test_the_gem_suffix_builds_unit_regional_descriptors_under_their_own_key(service, gallery):
    plain = build_embedder("efficientnet_lite0", settings=service.settings)
    assert "rgem" in service.embedder.key and service.embedder.key != plain.key
    assert service.embedder.preprocess.whole  # the whole photo, not its center crop
    photo = Image.open(sorted((gallery / GROUPS[0]).glob("*.jpg"))[0]).convert("RGB")
    vector = service.embedder.embed_batch(service.embedder.preprocess(photo)[None])[0]
    assert vector.shape == (plain.dim,) and abs(float(np.linalg.norm(vector)) - 1) < 1e-4
    assert service.collection != SearchService("efficientnet_lite0", "milvus", gallery, service.settings).collection


def test_the_gem_suffix_refuses_random_weights():
    with pytest.raises(UsageError, match="pretrained"):
        build_embedder("efficientnet_lite0+gem", pretrained=False)


def test_each_photo_finds_its_own_object_first(service, gallery):
    photos = sorted(gallery.glob("*/*.jpg"))
    found = service.search_images(photos, k=4)
    for photo, hits in zip(photos, found.hits):
        assert hits[0].path == str(photo) and hits[0].verified is None
        assert hits[1].label == photo.parent.name  # another view of the same object


def test_a_verified_search_finds_the_original_of_an_edited_copy_and_marks_it(service, gallery, tmp_path):
    original = sorted((gallery / GROUPS[1]).glob("*.jpg"))[0]
    copy = tmp_path / "copy.jpg"
    apply_edit("crop 25%", Image.open(original).convert("RGB"), original.name).save(copy, quality=90)
    plain = service.search_images([copy], k=10).hits[0]
    verified = service.search_images([copy], k=10, verify=True).hits[0]
    assert verified[0].path == str(original) and verified[0].verified is True
    assert {h.path for h in verified} == {h.path for h in plain}  # re-ranked, nothing added or lost
    flags = [h.verified for h in verified]
    assert flags == sorted(flags, reverse=True) and not all(flags)  # verified first; other objects are not
    assert service.search_images([copy], k=3, verify=True).hits[0] == verified[:3]


def test_a_service_keeps_gallery_features_between_verified_searches_within_a_bound(service, gallery, monkeypatch):
    import imgsearch_helpers.gallery.service as module

    photos = sorted(gallery.glob("*/*.jpg"))
    hits = service.search_images(photos[:1], k=10, verify=True).hits[0]
    kept = dict(service._local_features)
    assert {h.path for h in hits} <= set(kept)
    service.search_images(photos[:1], k=10, verify=True)
    assert all(service._local_features[p] is kept[p] for p in kept)  # reused, not found again
    monkeypatch.setattr(module, "KEEP_FEATURES", 3)
    service.search_images(photos[5:6], k=10, verify=True)
    assert len(service._local_features) <= 3 + module.VERIFY_TOP


@pytest.fixture
def uploads(tmp_path, monkeypatch):
    """Gradio's upload folder for this test: the app reads query files only from there."""
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    (tmp_path / "gradio").mkdir()
    return tmp_path / "gradio"


def test_the_apps_verify_box_marks_and_counts_the_verified_hits(service, gallery, uploads):
    from imgsearch_helpers.serve.app import APP_MODELS, Showcase

    assert "efficientnet_lite0+gem" in APP_MODELS
    showcase = Showcase.around(service)
    original = sorted((gallery / GROUPS[2]).glob("*.jpg"))[1]
    copy = uploads / "copy.jpg"
    apply_edit("rotate 30", Image.open(original).convert("RGB"), original.name).save(copy, quality=90)
    items, status, _ = showcase.search_upload(str(copy), service.model_name, "milvus", 5, "", True)
    verified = sum(caption.endswith("✓") for _, caption in items)
    assert verified >= 1 and items[0][1].endswith("✓")
    assert f"{verified} verified by local features" in status
    plain, status, _ = showcase.search_upload(str(copy), service.model_name, "milvus", 5, "", False)
    assert "verified" not in status and not any(caption.endswith("✓") for _, caption in plain)


def test_the_apps_diffusion_box_ranks_by_diffusion_and_explains_a_refused_filter(service, gallery, uploads):
    from imgsearch_helpers.serve.app import Showcase

    showcase = Showcase.around(service)
    photo = str(shutil.copy(sorted((gallery / GROUPS[1]).glob("*.jpg"))[0], uploads))
    items, status, _ = showcase.search_upload(photo, service.model_name, "milvus", 5, "", False, True)
    assert len(items) == 5 and "Ranked by diffusion" in status
    diffused = [hit.relpath for hit in service.search_images([photo], k=5, diffuse=True).hits[0]]
    assert [caption.split(" · ")[1] for _, caption in items] == [path.split("/")[0] for path in diffused]
    refused, status, _ = showcase.search_upload(photo, service.model_name, "milvus", 5, 'label == "g0000"', False,
                                                True)
    assert refused == [] and "diffusion ranks the whole collection" in status


def test_a_verified_search_deeper_than_its_top_10_leaves_the_rest_unchecked(service, gallery):
    photo = sorted(gallery.glob("*/*.jpg"))[0]
    hits = service.search_images([photo], k=14, verify=True).hits[0]
    assert len(hits) == 14 and hits[0].path == str(photo) and hits[0].verified is True
    assert sum(h.verified is not None for h in hits) == 10 and all(h.verified is None for h in hits[10:])
