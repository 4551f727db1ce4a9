"""The local-feature index: rows stored per image (put, replace, remove, saved and read back),
votes and RANSAC on generated pictures: a warped copy is matched with its evidence, an unrelated
picture is no match; a region of a query is cut from the image as shown."""
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from imgsearch_helpers.data.regions import Region
from imgsearch_helpers.errors import EngineError, UsageError
from imgsearch_helpers.index.descriptors import DescriptorIndex, from_codes, to_codes
from imgsearch_helpers.retrieval.local import (
    MIN_INLIERS,
    QUERY_SIDE,
    SIDE,
    draw_match,
    image_features,
    index_images,
    match_query,
    query_features,
)
from imgsearch_helpers.retrieval.verify import Glance, gray_at_side


def picture(seed: int, size: int = 480) -> np.ndarray:
    """Random rectangles, circles and lines: corners and blobs for SIFT, different for every seed."""
    rng = np.random.default_rng(seed)
    image = np.full((size, size, 3), 255, np.uint8)
    for _ in range(60):
        colour = tuple(int(c) for c in rng.integers(0, 255, 3))
        x, y = (int(v) for v in rng.integers(0, size, 2))
        shape = rng.integers(3)
        if shape == 0:
            cv2.rectangle(image, (x, y), (x + int(rng.integers(10, 80)), y + int(rng.integers(10, 80))), colour, -1)
        elif shape == 1:
            cv2.circle(image, (x, y), int(rng.integers(5, 40)), colour, -1)
        else:
            cv2.line(image, (x, y), tuple(int(v) for v in rng.integers(0, size, 2)), colour, 3)
    return image


def save(array: np.ndarray, path) -> str:
    Image.fromarray(array).save(path)
    return str(path)


def warped(array: np.ndarray) -> np.ndarray:
    """The picture seen at an angle, smaller, in a grey frame: a photo of a print."""
    size = array.shape[0]
    corners = np.float32([[0, 0], [size, 0], [size, size], [0, size]])
    seen = np.float32([[60, 40], [size - 30, 70], [size - 50, size - 20], [40, size - 60]])
    matrix = cv2.getPerspectiveTransform(corners, seen)
    return cv2.warpPerspective(array, matrix, (size + 80, size + 40), borderValue=(128, 128, 128))


@pytest.fixture(scope="module")
def gallery(tmp_path_factory):
    folder = tmp_path_factory.mktemp("local")
    paths = [save(picture(seed), folder / f"ref{seed}.png") for seed in range(5)]
    store = DescriptorIndex(folder / "store.npz")
    assert index_images(store, [10, 11, 12, 13, 14], paths, progress=False) == []
    return folder, paths, store


def test_codes_keep_rootsift_values_to_a_fraction_of_their_spread():
    values = np.random.default_rng(0).uniform(0, 0.36, (50, 128)).astype(np.float32)
    assert np.abs(from_codes(to_codes(values)) - values).max() <= 0.5 / 700 + 1e-6


def test_each_image_keeps_its_own_rows_with_their_positions(gallery):
    _, paths, store = gallery
    assert sorted(store.images.tolist()) == [10, 11, 12, 13, 14]
    points, descriptors = store.rows_of(12)
    expected = image_features(paths[2])
    assert len(points) == len(expected.points) > 100
    assert np.allclose(points, expected.points, atol=0.5)  # float16 positions: within half a pixel
    assert np.abs(descriptors - expected.descriptors).max() < 0.01


def test_a_warped_photo_of_a_picture_finds_it_with_its_inliers_and_others_are_not_matches(gallery):
    folder, paths, store = gallery
    query = query_features(save(warped(picture(3)), folder / "photo.png"))
    matches = match_query(store, query)
    assert matches[0].image_id == 13 and matches[0].matched and matches[0].inliers >= 3 * MIN_INLIERS
    assert not any(m.matched for m in matches[1:])
    assert len(matches[0].query_points) == len(matches[0].gallery_points)


def test_an_unrelated_picture_matches_nothing(gallery):
    folder, _, store = gallery
    query = query_features(save(picture(99), folder / "other.png"))
    assert not any(m.matched for m in match_query(store, query))


def test_putting_an_image_again_replaces_its_rows_and_removing_it_leaves_the_others(gallery, tmp_path):
    _, paths, store = gallery
    copy = DescriptorIndex(tmp_path / "copy.npz")
    index_images(copy, [1, 2], paths[:2], progress=False)
    before = len(copy)
    index_images(copy, [1], [paths[3]], progress=False)  # image 1 now shows another picture
    assert len(copy) == before - len(image_features(paths[0]).points) + len(image_features(paths[3]).points)
    assert copy.remove([1]) == len(image_features(paths[3]).points)
    assert copy.images.tolist() == [2]


def test_the_store_is_saved_whole_and_read_back(gallery, tmp_path):
    _, paths, store = gallery
    copy = DescriptorIndex(tmp_path / "saved.npz")
    index_images(copy, [7, 8], paths[:2], progress=False)
    copy.save()
    again = DescriptorIndex.open(tmp_path / "saved.npz")
    assert np.array_equal(again.codes, copy.codes) and np.array_equal(again.image_ids, copy.image_ids)
    assert again._graph is not None  # the saved graph, not one built anew
    probe = copy.rows_of(8)[1][:20]
    assert np.array_equal(again.search(probe, 3)[1], copy.search(probe, 3)[1])
    again.remove([8])
    assert set(again.image_ids[again.search(probe, 3)[1]].ravel()) == {7}  # the removed rows are never found
    again.save()
    assert len(list(tmp_path.glob("saved.*.hnsw"))) == 1  # the older graph is gone
    assert DescriptorIndex.open(tmp_path / "none.npz").images.tolist() == []


def test_a_damaged_store_is_named_in_the_error(tmp_path):
    (tmp_path / "bad.npz").write_bytes(b"not a numpy archive")
    with pytest.raises(EngineError, match="bad.npz"):
        DescriptorIndex.open(tmp_path / "bad.npz")


def test_an_unreadable_image_keeps_no_rows_and_is_reported(gallery, tmp_path):
    _, paths, _ = gallery
    (tmp_path / "junk.jpg").write_bytes(b"junk")
    store = DescriptorIndex()
    failures = index_images(store, [1, 2], [paths[0], tmp_path / "junk.jpg"], progress=False)
    assert [Path(f.path).name for f in failures] == ["junk.jpg"] and store.images.tolist() == [1]


def test_a_region_is_cut_from_the_image_as_shown(tmp_path):
    array = picture(1, 200)
    path = save(array, tmp_path / "query.png")
    crop = Region.parse("20, 30, 100, 50").crop_to(path, tmp_path)
    assert np.array_equal(np.asarray(Image.open(crop)), array[30:80, 20:120])


@pytest.mark.parametrize("text, problem", [("1,2,3", "x,y,w,h"), ("a,b,c,d", "x,y,w,h"), ("-1,0,50,50", "x,y,w,h"),
                                           ("0,0,8,50", "under 16 pixels")])
def test_a_bad_region_is_refused_naming_it(text, problem):
    with pytest.raises(UsageError, match=problem):
        Region.parse(text)


def test_a_region_outside_the_image_names_the_image(tmp_path):
    path = save(picture(1, 100), tmp_path / "small.png")
    with pytest.raises(UsageError, match=r"small.png \(100 x 100\)"):
        Region.parse("50,50,80,80").crop_to(path, tmp_path)


def test_the_matches_are_drawn_between_the_query_and_the_gallery_image(gallery):
    folder, paths, store = gallery
    photo = save(warped(picture(2)), folder / "photo2.png")
    drawn = draw_match(photo, paths[2], store, 12)
    assert drawn.inliers >= 3 * MIN_INLIERS
    assert drawn.image.shape[1] == QUERY_SIDE + SIDE  # side by side, each at the size its features were found at
    assert drawn.image.shape[2] == 3
    assert draw_match(photo, paths[0], store, 10).inliers < MIN_INLIERS


def scene(seed: int, size=(400, 300)) -> Image.Image:
    """Smooth shapes on a gradient: a picture with structure at every size."""
    rng = np.random.default_rng(seed)
    pixels = np.zeros((size[1], size[0], 3), np.uint8)
    pixels[:] = np.linspace(0, 255, size[0], dtype=np.uint8)[None, :, None]
    for _ in range(6):
        x, y, r = rng.integers(0, size[0]), rng.integers(0, size[1]), int(rng.integers(10, 60))
        cv2.circle(pixels, (int(x), int(y)), r, [int(c) for c in rng.integers(0, 256, 3)], -1)
    return Image.fromarray(pixels)


def glance(image: Image.Image) -> Glance:
    return Glance.of(gray_at_side(image, 320), image.size)


def test_a_resized_copy_agrees_at_a_glance_and_another_picture_or_shape_does_not():
    picture = scene(0)
    assert glance(picture).agrees(glance(picture.resize((50, 38), Image.Resampling.LANCZOS)))
    assert not glance(picture).agrees(glance(scene(1)))
    assert not glance(picture).agrees(glance(picture.crop((0, 0, 300, 300))))  # another shape


def test_candidate_pairs_are_bounded_per_image_in_a_burst_and_found_once():
    from imgsearch_helpers.retrieval.duplicates import candidate_pairs
    from imgsearch_helpers.vectors import l2_normalize

    rng = np.random.default_rng(0)
    scene, other = rng.normal(size=64), rng.normal(size=64)
    burst = [scene + 0.05 * rng.normal(size=64) for _ in range(40)]  # 40 shots of one scene
    vectors = l2_normalize(np.float32(burst + [other, other + 0.01 * rng.normal(size=64), rng.normal(size=64)]))
    pairs = list(candidate_pairs(vectors, 0.6, neighbours=5))
    keys = [(a, b) for a, b, _ in pairs]
    assert len(keys) == len(set(keys)) and all(a < b for a, b in keys)
    assert len([p for p in keys if p[1] < 40]) <= 40 * 5  # not the burst's 780 pairs
    assert {i for p in keys for i in p if i < 40} == set(range(40))  # yet every shot is in one
    assert (40, 41) in keys and all(42 not in p for p in keys)  # the pair of `other`; the lone vector in none
    assert all(cosine >= 0.6 for *_, cosine in pairs)
    assert list(candidate_pairs(vectors[:1], 0.6)) == []


def most_held(order):
    """The most images whose features are held at once when pairs come in this order (each from its
    first pair to its last)."""
    first, last = {}, {}
    for n, pair in enumerate(order):
        for i in pair:
            first.setdefault(i, n)
            last[i] = n
    return max(sum(first[i] <= n <= last[i] for i in first) for n in range(len(order)))


def test_pairs_to_verify_come_scene_by_scene_and_each_image_is_held_briefly():
    """Views of three scenes interleaved as a phone folder's burst would be (i, i + 3, i + 6 ...):
    in the order of their first image, every scene's features are held from the first pair to the
    last; taken cluster by cluster, at most one scene's images are held at a time."""
    from imgsearch_helpers.retrieval.duplicates import order_pairs

    scenes, views = 3, 5
    pairs = sorted((a, b) for scene in range(scenes) for v in range(views) for w in range(v + 1, views)
                   for a, b in [(scene + scenes * v, scene + scenes * w)])
    ordered = order_pairs(pairs, scenes * views)
    assert sorted(ordered) == pairs
    assert most_held(ordered) == views < most_held(pairs)
    clusters = [{i % scenes for pair in ordered[n:n + 10] for i in pair} for n in range(0, len(ordered), 10)]
    assert all(len(scene) == 1 for scene in clusters)


def test_pairs_chained_into_one_cluster_still_hold_few_images_at_once():
    """Candidate pairs chain a big folder into one cluster (scene s's views also match scene s + 1's):
    the order still holds about two scenes' images at a time, where the first image's order holds
    every scene from its first view to its last."""
    from imgsearch_helpers.retrieval.duplicates import order_pairs

    scenes, views = 40, 4
    pairs = {(min(a, b), max(a, b)) for s in range(scenes) for v in range(views) for w in range(v + 1, views)
             for a, b in [(s + scenes * v, s + scenes * w)]}
    pairs |= {(s, s + 1) for s in range(scenes - 1)}  # the chain
    pairs = sorted(pairs)
    ordered = order_pairs(pairs, scenes * views)
    assert sorted(ordered) == pairs
    assert most_held(ordered) <= 3 * views < most_held(pairs) / 4


def test_ratio_matches_are_those_of_opencvs_brute_force_matcher():
    """The matrix-product matcher keeps the same (query, candidate) matches as OpenCV's BFMatcher
    k=2 with Lowe's ratio, on the RootSIFT features of a picture and of its warped photo."""
    from imgsearch_helpers.retrieval.verify import features_of, ratio_matches

    gray = [cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) for image in (picture(7), warped(picture(7)), picture(8))]
    found = [features_of(image) for image in gray]
    kept = []
    for query, candidate in [(found[0], found[1]), (found[0], found[2]), (found[1], found[0])]:
        pairs = cv2.BFMatcher(cv2.NORM_L2).knnMatch(query.descriptors, candidate.descriptors, k=2)
        expected = {(m.queryIdx, m.trainIdx) for m, n in pairs if m.distance < 0.8 * n.distance}
        rows, cols = ratio_matches(query.descriptors.astype(np.float16), candidate.descriptors.astype(np.float16), 0.8)
        got = set(zip(rows.tolist(), cols.tolist()))
        assert len(got ^ expected) <= 0.02 * len(expected) + 1  # float16 storage may tip a borderline match
        kept.append(len(got))
    assert kept[1] < min(kept[0], kept[2]) / 2  # an unrelated picture (of the same kind of shapes): fewer


def test_a_pair_already_joined_is_not_checked_and_features_are_dropped_after_their_last_pair(tmp_path):
    """Four views of one picture and an unrelated one: once (0, 1) and (0, 2) are found, (1, 2) joins
    nothing and is not matched; every image's features are gone when the pairs are done."""
    from imgsearch_helpers.retrieval import duplicates
    from imgsearch_helpers.retrieval.verify import ORB, Verifier

    images = [picture(3), warped(picture(3)), picture(3)[20:, 10:], picture(3)[::2, ::2], picture(4)]
    verifier = Verifier([save(image, tmp_path / f"{n}.png") for n, image in enumerate(images)], side=320, kind=ORB)
    groups = duplicates.UnionFind(len(images))
    joined = lambda a, b: groups.find(a) == groups.find(b)  # noqa: E731
    pairs = [(0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3), (3, 4)]
    checked, found = [], []
    for a, b in duplicates.verified_pairs(pairs, verifier, joined, ahead=1, checked=checked):
        groups.union(a, b)
        found.append((a, b))
    assert found == [(0, 1), (0, 2), (0, 3)]
    assert checked == [(0, 1), (0, 2), (0, 3), (3, 4)]  # the three pairs inside the group are skipped
    assert verifier.known == {}


def test_a_large_image_read_for_its_glance_alone_is_not_taken_for_a_small_one(tmp_path):
    """With its descriptor cached, an image's glance comes from its file: decoded at a glance's size,
    a phone screenshot would look small enough to be confirmed at a glance."""
    from imgsearch_helpers.retrieval.duplicates import GLANCE_BELOW
    from imgsearch_helpers.retrieval.verify import Grays

    large, small = tmp_path / "screenshot.png", tmp_path / "icon.png"
    Image.new("RGB", (1170, 2532), (200, 200, 200)).save(large)
    Image.new("RGB", (120, 90), (200, 200, 200)).save(small)
    grays = Grays(320)
    assert grays.glance(large).side > GLANCE_BELOW
    assert grays.glance(small).side == 120


def test_orb_features_match_copies_of_a_picture_and_not_another_one(tmp_path):
    """The duplicates' features (`verify.ORB`): a photo of the picture at an angle, a crop and a
    half-size copy reach MIN_INLIERS with it; an unrelated picture does not."""
    from imgsearch_helpers.retrieval.duplicates import MIN_INLIERS, VERIFY_SIDE
    from imgsearch_helpers.retrieval.verify import ORB, Verifier

    images = [picture(3), warped(picture(3)), picture(3)[60:, 40:], picture(3)[::2, ::2], picture(4)]
    verifier = Verifier([save(image, tmp_path / f"{n}.png") for n, image in enumerate(images)],
                        side=VERIFY_SIDE, kind=ORB)
    counts = [verifier.pair_inliers(0, other) for other in range(1, 5)]
    assert min(counts[:3]) >= MIN_INLIERS > counts[3], counts
    assert verifier.features(0).descriptors.dtype == np.uint8  # 32 bytes a keypoint


def test_a_pair_with_fewer_matches_than_asked_is_not_fitted_and_one_with_more_keeps_its_count(tmp_path):
    from imgsearch_helpers.retrieval.verify import ORB, Verifier

    images = [picture(5), warped(picture(5)), picture(6)]
    verifier = Verifier([save(image, tmp_path / f"{n}.png") for n, image in enumerate(images)], side=320, kind=ORB)
    found = verifier.pair_inliers(0, 1)
    assert verifier.pair_inliers(0, 1, least=found) == found > 8
    assert verifier.pair_inliers(0, 2, least=found) == 0


def test_re_ranking_refuses_a_gallery_of_binary_features(tmp_path):
    from imgsearch_helpers.retrieval.verify import ORB, Verifier

    verifier = Verifier([save(picture(1), tmp_path / "a.png")], kind=ORB)
    with pytest.raises(UsageError, match="orb"):
        verifier.verified(save(picture(1), tmp_path / "q.png"), [0])


def test_candidate_pairs_are_each_images_nearest_others_as_a_full_similarity_matrix_gives_them():
    """FAISS's search gives the pairs NumPy's matrix product and sort give, identical vectors included."""
    from imgsearch_helpers.retrieval.duplicates import candidate_pairs
    from imgsearch_helpers.vectors import l2_normalize

    rng = np.random.default_rng(1)
    centres = rng.normal(size=(30, 32))
    vectors = l2_normalize(np.float32(centres[rng.integers(0, 30, 300)] + 0.4 * rng.normal(size=(300, 32))))
    vectors[7] = vectors[8]  # two images with one descriptor: each is the other's nearest, itself left out
    similarity = vectors @ vectors.T
    np.fill_diagonal(similarity, -np.inf)
    expected = {(min(i, int(j)), max(i, int(j))) for i in range(300) for j in np.argsort(-similarity[i])[:4]
                if similarity[i, j] >= 0.6}
    found = {(a, b) for a, b, _ in candidate_pairs(vectors, 0.6, neighbours=4)}
    assert found == expected and (7, 8) in found


def test_binary_features_are_matched_as_opencvs_brute_force_matcher_matches_them(tmp_path):
    """`binary_inliers` (FAISS's Hamming search) keeps the ratio-test matches OpenCV's matcher keeps."""
    from imgsearch_helpers.retrieval.verify import ORB, binary_inliers, homography_inliers

    first, second = (ORB.describe(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), ORB.create())
                     for image in (picture(9), warped(picture(9))))
    pairs = [p for p in cv2.BFMatcher(cv2.NORM_HAMMING).knnMatch(first.descriptors, second.descriptors, k=2)
             if len(p) == 2]
    kept = [(a.queryIdx, a.trainIdx) for a, b in pairs if a.distance < 0.75 * b.distance]
    rows, cols = np.array(kept).T
    cv2.setRNGSeed(0)
    expected = homography_inliers(first.points[rows], second.points[cols])
    cv2.setRNGSeed(0)
    assert binary_inliers(first, second) == expected >= 20


def test_a_gallery_images_features_are_found_once_when_threads_ask_for_them_together(tmp_path):
    import threading

    from imgsearch_helpers.retrieval.verify import ORB, Verifier

    calls = []
    counting = type(ORB)("counting", ORB.create,
                         lambda gray, extractor: calls.append(1) or ORB.describe(gray, extractor), ORB.inliers)
    verifier = Verifier([save(picture(10), tmp_path / "a.png")], side=320, kind=counting)
    start = threading.Barrier(4)
    threads = [threading.Thread(target=lambda: (start.wait(), verifier.features(0))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 1 and len(verifier.known) == 1


def test_features_found_while_decoding_are_the_files_and_handed_over_once(tmp_path):
    """`Grays(kind=ORB)` finds the features as the image is decoded; the verifier takes them (they
    are not held twice) and a later ask reads the file, which gives the same features."""
    from imgsearch_helpers.data.images import load_image
    from imgsearch_helpers.retrieval.verify import ORB, Grays

    path = save(picture(11), tmp_path / "a.png")
    grays = Grays(320, ORB)
    grays.keep(path, load_image(path, min_side=320))
    assert set(grays.found) == {path}
    kept = grays.features(path, ORB.create(), ORB)
    assert grays.found == {}
    again = grays.features(path, ORB.create(), ORB)
    assert np.array_equal(kept.descriptors, again.descriptors) and np.array_equal(kept.points, again.points)
    assert len(kept.descriptors) > 100
