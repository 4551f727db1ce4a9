"""Find the original from a real photo by local features: a cover, a carton, a painting photographed in
clutter, at an angle, under glare, filling a corner of the frame.

Every gallery image leaves up to `GALLERY_FEATURES` RootSIFT descriptors in a
`index.descriptors.DescriptorIndex` under its id. A query's descriptors vote: each looks up its
`BACKGROUND` nearest gallery rows and votes once for every image among the first `VOTERS` that
passes Lowe's ratio test against the last (a neighbour that shows the background, so up to `VOTERS`
gallery images of one object all get their votes). The `CANDIDATES` images with most votes and the
global descriptor's first `CANDIDATES` hits are then verified pair by pair: the query's features
matched to the image's own (ratio test within the pair) must fit one homography (OpenCV's USAC, a
faster RANSAC); the inliers are the evidence. Matching within the pair keeps the evidence of the
right image when a large gallery crowds the votes' ratio test. A hit is a match when its inliers
reach `MIN_INLIERS`; matches are ordered by inliers plus `GLOBAL_WEIGHT` times the global cosine
(siblings of one package share a logo, the colours tell them apart), and the global descriptor's
other hits follow, not verified (another view of an object may share too few features). The engine's
searches show only the matches: a query with none is "no match".

Settings were chosen on grocery_packages (with and without the tutorial's 1,000 images as
distractors), ukbench_mini and the copies benchmark (`benchmarks/instance.py`): small references
(198 pixels) need the low contrast threshold; a query found at 384 pixels and 1,000 features and a
gallery image at 512 pixels and 500 features kept top-1 and cut the search time; the photos of shops
need the ratio test against the background.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from ..embed.stream import Progress
from ..errors import ImageError
from ..index.descriptors import DescriptorIndex
from ..parallel import bounded_map
from .search import Found, Query, ReadPath, Step
from .verify import Features, at_side, local_features

FEATURES = 1000  # keypoints of a query, strongest first
GALLERY_FEATURES = 500  # keypoints stored per gallery image: fewer rows to search, as many matches
CONTRAST = 0.02  # SIFT's contrast threshold (OpenCV's default 0.04 finds too few on small references)
SIDE = 512  # long side a gallery image's features are found at; smaller images are enlarged
QUERY_SIDE = 384  # a query's: phone photos need no enlargement, and SIFT takes half the time
VOTERS, BACKGROUND = 5, 11  # neighbours that may vote; the one the ratio is taken to
SEARCH_EF = 32  # the graph's search breadth for votes (the pair verification recovers what it misses)
RATIO = 0.8
CANDIDATES = 3  # images by votes, and global hits, verified per query
MIN_INLIERS = 10
GLOBAL_WEIGHT = 10.0
WORKERS = 2  # threads finding features: OpenCV releases the GIL


def sift(features: int = GALLERY_FEATURES):
    return cv2.SIFT_create(features, contrastThreshold=CONTRAST)


def image_features(path, extractor=None) -> Features:
    """RootSIFT features of the gallery image at `path`, as the local index stores them."""
    return local_features(path, extractor or sift(), SIDE)


def query_features(path, extractor=None) -> Features:
    """RootSIFT features of a query image, as its search finds them."""
    return local_features(path, extractor or sift(FEATURES), QUERY_SIDE)


@dataclass
class Match:
    """One gallery image's evidence for a query: its votes and the matched pairs that fit one
    homography (`query_points[i]` matches `gallery_points[i]`, in the images' feature scale)."""

    image_id: int
    votes: int
    query_points: np.ndarray
    gallery_points: np.ndarray

    @property
    def inliers(self) -> int:
        return len(self.query_points)

    @property
    def matched(self) -> bool:
        return self.inliers >= MIN_INLIERS


def vote(store: DescriptorIndex, query: Features) -> dict[int, int]:
    """Votes per gallery image by the ratio test over the gallery: one vote per query feature and
    image (see the module's notes)."""
    if not len(store) or not len(query.descriptors):
        return {}
    distances, rows = store.search(query.descriptors, BACKGROUND, SEARCH_EF)
    images = np.where(rows >= 0, store.image_ids[np.maximum(rows, 0)], -1)
    background = distances[:, -1:] if rows.shape[1] == BACKGROUND else np.inf  # fewer rows: all may vote
    passed = (distances[:, :VOTERS] < RATIO ** 2 * background) & (rows[:, :VOTERS] >= 0)
    first = np.ones_like(passed)
    for j in range(1, passed.shape[1]):  # an image once per query feature
        first[:, j] = ~(images[:, :j] == images[:, j:j + 1]).any(axis=1)
    voted, counts = np.unique(images[:, :VOTERS][passed & first], return_counts=True)
    return dict(zip(voted.tolist(), counts.tolist()))


def verify_pair(store: DescriptorIndex, query: Features, image_id: int, votes: int = 0) -> Match:
    """The query's features matched to the image's own (nearest of its rows, Lowe's ratio 0.8 to the
    second; each gallery feature once) that fit one homography (8-pixel tolerance)."""
    points, descriptors = store.rows_of(image_id)
    empty = np.zeros((0, 2), np.float32)
    if len(points) < 2 or len(query.descriptors) < 2:
        return Match(image_id, votes, empty, empty)
    similarities = query.descriptors @ descriptors.T  # both unit length: squared distance = 2 - 2 cos
    rows = np.arange(len(similarities))
    nearest = similarities.argmax(axis=1)
    first = similarities[rows, nearest]
    similarities[rows, nearest] = -np.inf
    second = similarities.max(axis=1)
    good = np.flatnonzero(2 - 2 * first < RATIO ** 2 * (2 - 2 * second))
    gallery_rows, kept = np.unique(nearest[good], return_index=True)
    source, target = query.points[good[kept]], points[gallery_rows]
    if len(source) < 8:
        return Match(image_id, votes, empty, empty)
    # OpenCV's USAC stops early where RANSAC runs all its iterations on a wrong image's pairs
    _, mask = cv2.findHomography(source, target, cv2.USAC_FAST, 8.0, maxIters=500)
    inlying = mask.ravel().astype(bool) if mask is not None else np.zeros(len(source), bool)
    return Match(image_id, votes, source[inlying], target[inlying])


def match_query(store: DescriptorIndex, query: Features, also: Sequence[int] = ()) -> list[Match]:
    """The images with most votes and the first of `also` (the global search's hits), verified,
    most inliers first."""
    counts = vote(store, query)
    by_votes = sorted(counts, key=counts.get, reverse=True)[:CANDIDATES]
    candidates = dict.fromkeys([*by_votes, *(int(i) for i in list(also)[:CANDIDATES] if int(i) >= 0)])
    matches = [verify_pair(store, query, image_id, counts.get(image_id, 0)) for image_id in candidates]
    return sorted(matches, key=lambda m: m.inliers, reverse=True)


def index_images(store: DescriptorIndex, image_ids, paths, progress: bool = True, workers: int = WORKERS) -> list:
    """Find the features of these images and store them under their ids; the `ImageError`s of the
    files that could not be read (their ids keep no rows)."""
    failures, bar = [], Progress(len(paths), "local features", progress)

    def find(path):
        try:
            return image_features(path)
        except ImageError as error:
            return error

    kept_ids, points, descriptors = [], [], []
    for image_id, found in zip(image_ids, bounded_map(find, [str(p) for p in paths], workers, 4 * workers)):
        bar.embedded()
        if isinstance(found, ImageError):
            failures.append(found)
            continue
        kept_ids.append(image_id)
        points.append(found.points)
        descriptors.append(found.descriptors)
    bar.close()
    kept = set(kept_ids)
    store.remove([i for i in image_ids if i not in kept])
    if kept_ids:
        store.put(kept_ids, points, descriptors)
    return failures


@dataclass
class LocalMatching(Step):
    """Step: each query's matches by local features (`match_query`) among the store's images and
    the global search's top `top`, ordered by evidence (see the module's notes), marked verified,
    their inliers in `Found.inliers`; then the global search's other hits in its order, marked not
    verified. Callers that show only matches keep the verified ones."""

    store: DescriptorIndex
    top: int = 10  # global hits asked for: the first `CANDIDATES` are verified, the others follow the matches
    features_of: Callable[[str], Features] = query_features

    def find(self, query: Query, k: int, below: ReadPath) -> Found:
        if query.paths is None:
            raise ValueError("local matching needs the query images' paths")
        found = below.find(query, max(k, self.top))
        rows = [self.rank(self.features_of(path), ids, sims) for path, ids, sims in
                zip(query.paths, found.ids, found.distances)]
        return ranked_found(rows, k, found.gone)

    def rank(self, features: Features, ids: np.ndarray, similarities: np.ndarray) -> list[tuple]:
        """(image id, score, inliers, matched) of the query's matches, best first, then of the other
        global hits (score: their cosine)."""
        known = {int(i): float(s) for i, s in zip(ids, similarities) if i >= 0}
        floor = min(known.values(), default=0.0)  # images past the global top are no closer than its last
        checked = {m.image_id: m for m in match_query(self.store, features, list(known))}
        matches = [m for m in checked.values() if m.matched]
        scored = sorted(((m.image_id, m.inliers + GLOBAL_WEIGHT * known.get(m.image_id, floor), m.inliers, True)
                         for m in matches), key=lambda hit: hit[1], reverse=True)
        chosen = {hit[0] for hit in scored}
        rest = [(i, s, checked[i].inliers if i in checked else 0, False) for i, s in known.items() if i not in chosen]
        return scored + rest


def ranked_found(rows: list[list[tuple]], k: int, gone: int = 0) -> Found:
    """Hits as (id, score, inliers, matched) per query, best first, as a `Found` of k columns."""
    ids, scores = np.full((len(rows), k), -1, np.int64), np.full((len(rows), k), np.nan, np.float32)
    inliers, flags = np.zeros((len(rows), k), np.int64), np.full((len(rows), k), None, object)
    for r, hits in enumerate(rows):
        for c, (image_id, score, count, matched) in enumerate(hits[:k]):
            ids[r, c], scores[r, c], inliers[r, c], flags[r, c] = image_id, score, count, matched
    return Found(ids, scores, flags, gone, inliers)


@dataclass
class Drawn:
    """A query's matches with one gallery image drawn side by side (`cv2.drawMatches`)."""

    image: np.ndarray = field(repr=False)  # RGB
    inliers: int


def draw_match(query_path, gallery_path, store: DescriptorIndex, image_id: int) -> Drawn:
    """The query and the gallery image side by side, a line for each verified match between them."""
    match = verify_pair(store, query_features(query_path), image_id)
    images = [np.asarray(at_side(path, side)) for path, side in ((query_path, QUERY_SIDE), (gallery_path, SIDE))]
    left = [cv2.KeyPoint(float(x), float(y), 4) for x, y in match.query_points]
    right = [cv2.KeyPoint(float(x), float(y), 4) for x, y in match.gallery_points]
    pairs = [cv2.DMatch(i, i, 0) for i in range(len(left))]
    drawn = cv2.drawMatches(images[0], left, images[1], right, pairs, None, matchColor=(0, 200, 0),
                            flags=cv2.DrawMatchesFlags_NOT_DRAW_SINGLE_POINTS)
    return Drawn(drawn, match.inliers)
