"""Instance search: edits, descriptors, post-processing, verification, scoring and the duplicate finder,
on real photos (the tutorial's gallery and ukbench_mini)."""
import shutil

import numpy as np
import pytest
from PIL import Image

from imgsearch_helpers.config import get_settings
from imgsearch_helpers.data.edits import EDITS, apply_edit, crop_area
from imgsearch_helpers.data.images import load_image
from imgsearch_helpers.data.tutorial import load_queries
from imgsearch_helpers.embed.stream import embed_paths
from imgsearch_helpers.errors import ImageError
from imgsearch_helpers.evaluation.instance import Prepared, score
from imgsearch_helpers.models.descriptors import Pooling, build_instance_embedder
from imgsearch_helpers.retrieval.duplicates import find_duplicates
from imgsearch_helpers.retrieval.postprocess import Whitening, expand, neighbours
from imgsearch_helpers.retrieval.recipes import Recipe
from imgsearch_helpers.retrieval.verify import Verifier, inliers, local_features
from tests.realdata import TRAIN

PHOTOS = sorted(TRAIN.glob("*/*.JPEG"))[:40:10]  # four photos of four classes
UKBENCH = get_settings().data_dir / "ukbench_mini"
SMALL = Pooling(size=192, scales=(1.0, 0.75), grids=(1, 3))  # 6 x 6 maps: the same code, quicker


@pytest.fixture(scope="module")
def photo():
    return load_image(PHOTOS[0])


@pytest.mark.parametrize("edit", list(EDITS))
def test_every_edit_is_deterministic_and_changes_the_picture(photo, edit):
    first, again = apply_edit(edit, photo, "a"), apply_edit(edit, photo, "a")
    assert first.mode == "RGB" and np.array_equal(np.asarray(first), np.asarray(again))
    assert first.size != photo.size or not np.array_equal(np.asarray(first), np.asarray(photo))


def test_a_crop_keeps_the_share_of_the_area_asked_for(photo):
    cropped = crop_area(photo, 0.25, seed=3)
    assert abs(cropped.width * cropped.height / (photo.width * photo.height) - 0.25) < 0.01


def test_an_unknown_edit_names_the_choices(photo):
    with pytest.raises(ValueError, match="unknown edit 'blur'.*crop 50%"):
        apply_edit("blur", photo, "a")


@pytest.fixture(scope="module")
def small_gem(tmp_path_factory):
    settings = get_settings(cache_dir=tmp_path_factory.mktemp("cache"))
    return build_instance_embedder(pooling=SMALL, settings=settings)


def test_regional_gem_vectors_are_unit_length_and_checked_against_pytorch(small_gem, tmp_path):
    vectors = embed_paths(PHOTOS, small_gem, progress=False).vectors
    assert vectors.shape == (len(PHOTOS), 1280)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-4)
    torch_vectors = embed_paths(PHOTOS, build_instance_embedder(pooling=SMALL, backend="torch"), progress=False).vectors
    assert (vectors * torch_vectors).sum(1).min() >= 0.999
    assert small_gem.key != build_instance_embedder(pooling=Pooling(size=224), settings=get_settings(
        cache_dir=tmp_path)).key  # another pooling is another cache key


def test_regional_gem_finds_a_quarter_crop_better_than_the_class_embedding(small_gem, lite0, tmp_path):
    """The crop of each photo is nearer its own original with regional pooling than with the
    center-crop average the class-level embedding uses, on these four photos and their crops."""
    crops = []
    for i, path in enumerate(PHOTOS):
        crops.append(tmp_path / f"crop{i}.jpg")
        apply_edit("crop 25%", load_image(path), f"{i}").save(crops[-1])

    def own_cosine(embedder):
        gallery = embed_paths(PHOTOS, embedder, progress=False).vectors
        queries = embed_paths(crops, embedder, progress=False).vectors
        gallery /= np.linalg.norm(gallery, axis=1, keepdims=True)
        queries /= np.linalg.norm(queries, axis=1, keepdims=True)
        return float(np.mean((gallery * queries).sum(1)))

    assert own_cosine(small_gem) > own_cosine(lite0)


def test_full_whitening_decorrelates_the_gallery():
    rng = np.random.default_rng(0)
    gallery = rng.normal(size=(300, 8)) @ rng.normal(size=(8, 8))  # correlated directions
    whitening = Whitening.fit(gallery, power=1.0)
    centered = (gallery - whitening.mean) @ whitening.projection
    covariance = np.cov(centered, rowvar=False)
    assert np.allclose(covariance, np.eye(8), atol=1e-3)
    assert np.allclose(np.linalg.norm(whitening(gallery), axis=1), 1, atol=1e-5)


def test_neighbours_are_sorted_and_expansion_pulls_a_query_to_its_neighbours():
    rng = np.random.default_rng(1)
    gallery = rng.normal(size=(50, 16)).astype(np.float32)
    gallery /= np.linalg.norm(gallery, axis=1, keepdims=True)
    ids, cosines = neighbours(gallery[:5], gallery, 4)
    assert (ids[:, 0] == np.arange(5)).all() and (np.diff(cosines, axis=1) <= 1e-6).all()
    expanded = expand(gallery[:5], gallery, 3)
    before, after = (np.take_along_axis(v @ gallery.T, ids[:, 1:3], 1).mean() for v in (gallery[:5], expanded))
    assert after > before


def test_verification_counts_many_inliers_for_a_copy_and_few_for_another_photo(photo, tmp_path):
    rotated = tmp_path / "rotated.jpg"
    apply_edit("rotate 10", photo, "a").save(rotated)
    original, other = local_features(PHOTOS[0]), local_features(PHOTOS[1])
    assert inliers(local_features(rotated), original) >= 50
    assert inliers(local_features(rotated), other) < 15


def test_reranking_moves_the_verified_hit_to_the_top(photo, tmp_path):
    query = tmp_path / "q.jpg"
    apply_edit("perspective", photo, "a").save(query)
    verifier = Verifier([str(p) for p in PHOTOS])
    assert verifier.rerank(query, np.array([3, 2, 0, 1])).tolist() == [0, 3, 2, 1]
    assert verifier.rerank(PHOTOS[1], np.array([3, 2])).tolist() == [3, 2]  # nothing verified: order kept


def test_score_counts_top1_hits_ap_and_the_ns_score():
    gallery_groups = ["a", "a", "b", "b"]
    ranked = np.array([[0, 2, 1, 3], [2, 3, 0, 1]])  # query of group a: hit at 1 and 3; of b: at 1 and 2
    row = score(ranked, gallery_groups, ["a", "b"], k=4)
    assert row["top1"] == 1.0 and row["hit@4"] == 1.0
    assert row["ns@4"] == 2.0  # both group members are in each top 4
    assert row["ap@4"] == pytest.approx(((1 + 2 / 3) / 2 + 1.0) / 2)


def test_a_prepared_recipe_ranks_each_ukbench_photo_first_among_its_own():
    """Each of the 56 photos is in the gallery: the exact descriptor search finds itself first."""
    frame = load_queries(UKBENCH)
    vectors = np.random.default_rng(2).normal(size=(len(frame), 32)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ranked = Prepared.fit(Recipe(whiten=0.5), vectors).rank(vectors, frame["path"])
    assert (ranked[:, 0] == np.arange(len(frame))).all()


def test_duplicates_groups_exact_and_near_copies_and_nothing_else(tmp_path):
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    for i, path in enumerate(PHOTOS):
        shutil.copy(path, folder / f"p{i}.jpg")
    shutil.copy(PHOTOS[0], folder / "sub" / "same-bytes.jpg")
    apply_edit("crop 50%", load_image(PHOTOS[1]), "x").save(folder / "sub" / "smaller.jpg")
    apply_edit("jpeg 10", load_image(PHOTOS[2]), "x").save(folder / "sub" / "recompressed.jpg")
    Image.new("RGB", (10, 10)).save(folder / "sub" / "tiny.png")
    (folder / "broken.jpg").write_bytes(b"not a jpeg")
    (folder / "gone.jpg").symlink_to(folder / "deleted.jpg")  # the walk leaves it out; the report names it
    found = find_duplicates(folder, progress=False)  # the default descriptor and thresholds
    names = [sorted(p.split("/")[-1] for p in group) for group in found.groups]
    assert sorted(names) == [["p0.jpg", "same-bytes.jpg"], ["p1.jpg", "smaller.jpg"], ["p2.jpg", "recompressed.jpg"]]
    assert found.exact_pairs == 1 and found.near_pairs == 2
    assert sorted(str(e.path).split("/")[-1] for e in found.skipped) == ["broken.jpg", "gone.jpg"]
    work = found.as_dict()["work"]  # what each step did: 9 files; all but the exact copy and broken.jpg embedded
    assert work["images"] == 9 and work["embedded"] + work["from_cache"] == 7
    assert work["pairs_matched"] <= work["to_verify"] <= work["candidate_pairs"]
    assert work["images_matched"] <= 2 * work["pairs_matched"]
    assert list(work["seconds"]) == ["exact copies", "descriptors", "candidate pairs", "verification"]
    assert list(work["cpu_seconds"]) == list(work["seconds"]) and all(s >= 0 for s in work["cpu_seconds"].values())


def test_duplicates_pair_a_100_pixel_image_with_its_50_pixel_copy(tmp_path):
    """Too small for local features (9 to 16 inliers, the bar is 30), and below the cosine accepted
    without a check: such a pair is found at a glance (shape and 32 x 32 pixels)."""
    sources = sorted(TRAIN.glob("*/*.JPEG"))[100:351:50]
    for i, source in enumerate(sources):
        image = load_image(source)
        image.thumbnail((100, 100))
        image.save(tmp_path / f"a{i}.jpg", quality=90)
        if i in (0, 3, 5):
            image.thumbnail((50, 50))
            image.save(tmp_path / f"a{i}_small.jpg", quality=75)
    found = find_duplicates(tmp_path, progress=False)
    assert [[p.split("/")[-1] for p in group] for group in found.groups] == [
        ["a0.jpg", "a0_small.jpg"], ["a3.jpg", "a3_small.jpg"], ["a5.jpg", "a5_small.jpg"]]


def test_duplicates_of_a_missing_folder_name_it(tmp_path):
    with pytest.raises(ImageError, match="nowhere"):
        find_duplicates(tmp_path / "nowhere")


def test_the_benchmark_scores_any_group_folders(tmp_path):
    """benchmarks/instance.py --gallery/--queries on a small <group>/<image> tree: one row per recipe."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    from imgsearch_helpers.evaluation.instance import INSTANCE_RECIPES

    gallery, queries = tmp_path / "gallery", tmp_path / "queries"
    for group in ("g0000", "g0001", "g0002"):
        photos = sorted((UKBENCH / group).glob("*.jpg"))
        (gallery / group).mkdir(parents=True)
        (queries / group).mkdir(parents=True)
        for photo in photos[:3]:
            shutil.copy(photo, gallery / group / photo.name)
        shutil.copy(photos[3], queries / group / photos[3].name)
    out = tmp_path / "rows.json"
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "instance.py"
    done = subprocess.run([sys.executable, str(script), "--gallery", str(gallery), "--queries", str(queries),
                           "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = json.loads(out.read_text())["rows"]
    assert [r["recipe"] for r in rows] == [r.name for r in INSTANCE_RECIPES]
    assert all(r["queries"] == 3 and 0 <= r["top1"] <= r["hit@10"] <= 1 for r in rows)
