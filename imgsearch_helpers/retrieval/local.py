"""Find the original from a real photo by local features: a cover, a carton, a painting
photographed in clutter, at an angle, under glare, filling a corner of the frame.

Every gallery image leaves up to `FEATURES` RootSIFT descriptors in a `index.descriptors.DescriptorIndex`
under its id. A query's descriptors vote: each looks up its `NEIGHBOURS` nearest gallery rows and
votes once for every image among the first ones that passes Lowe's ratio test against the last
(the ratio is taken to a neighbour that shows the background, so up to `NEIGHBOURS - 1` gallery
images of one object all get their votes). The images with most votes, and the global
descriptor's top hits, are then verified: the voting pairs of each must fit one homography
(RANSAC); the inliers are the evidence. A hit is a match when its inliers reach `MIN_INLIERS`;
matches are ordered by inliers plus `GLOBAL_WEIGHT` times the global cosine (siblings of one
package share a logo, the colours tell them apart), and the global descriptor's other hits follow,
not verified (another view of an object may share too few features). The engine's searches show
only the matches: a query with none is "no match".

Settings were chosen on grocery_packages, ukbench_mini and the copies benchmark
(`benchmarks/instance.py`): small references (198 pixels) need the low contrast threshold
and 1,000 features; the photos of shops need the ratio test against the background.
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

FEATURES = 1000  # keypoints per image, strongest first
CONTRAST = 0.02  # SIFT's contrast threshold (OpenCV's default 0.04 finds too few on small references)
SIDE = 512  # long side features are found at; smaller images are enlarged
NEIGHBOURS = 6
RATIO = 0.8
CANDIDATES = 10  # images by votes verified per query, besides the global descriptor's top hits
MIN_INLIERS = 10
GLOBAL_WEIGHT = 10.0
WORKERS = 2  # threads finding features: OpenCV releases the GIL


def sift():
    return cv2.SIFT_create(FEATURES, contrastThreshold=CONTRAST)


def image_features(path, extractor=None) -> Features:
    """RootSIFT features of the image at `path`, as the local index stores them."""
    return local_features(path, extractor or sift(), SIDE)


@dataclass
class Match:
    """One gallery image's evidence for a query: its votes and the voting pairs that fit one
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


@dataclass
class Votes:
    """Each vote as (query feature, gallery row, gallery image)."""

    query_rows: np.ndarray
    gallery_rows: np.ndarray
    images: np.ndarray

    def counts(self) -> dict[int, int]:
        images, counts = np.unique(self.images, return_counts=True)
        return dict(zip(images.tolist(), counts.tolist()))


def vote(store: DescriptorIndex, query: Features) -> Votes:
    """The ratio test over the gallery: one vote per query feature and image (see the module's notes)."""
    empty = np.zeros(0, np.int64)
    if not len(store) or not len(query.descriptors):
        return Votes(empty, empty, empty)
    distances, rows = store.search(query.descriptors, NEIGHBOURS)
    images = np.where(rows >= 0, store.image_ids[np.maximum(rows, 0)], -1)
    background = distances[:, -1:] if rows.shape[1] == NEIGHBOURS else np.inf  # fewer rows: all may vote
    passed = (distances[:, :-1] < RATIO ** 2 * background) & (rows[:, :-1] >= 0)
    first = np.ones_like(passed)
    for j in range(1, passed.shape[1]):  # an image once per query feature
        first[:, j] = ~(images[:, :j] == images[:, j:j + 1]).any(axis=1)
    query_rows, columns = np.nonzero(passed & first)
    return Votes(query_rows, rows[query_rows, columns], images[query_rows, columns])


def verify_votes(store: DescriptorIndex, query: Features, votes: Votes, image_id: int) -> Match:
    """The image's voting pairs that fit one homography (RANSAC, 8-pixel tolerance); each gallery
    feature counted once, so a repeated pattern cannot vote many times for itself."""
    chosen = votes.images == image_id
    gallery_rows, first = np.unique(votes.gallery_rows[chosen], return_index=True)
    query_rows = votes.query_rows[chosen][first]
    count = int(chosen.sum())
    source, target = query.points[query_rows], store.points[gallery_rows].astype(np.float32)
    if len(source) < 8:
        return Match(image_id, count, source[:0], target[:0])
    _, mask = cv2.findHomography(source, target, cv2.RANSAC, 8.0, maxIters=500)
    kept = mask.ravel().astype(bool) if mask is not None else np.zeros(len(source), bool)
    return Match(image_id, count, source[kept], target[kept])


def match_query(store: DescriptorIndex, query: Features, also: Sequence[int] = ()) -> list[Match]:
    """The images with most votes and those in `also`, verified, most inliers first."""
    votes = vote(store, query)
    counts = votes.counts()
    by_votes = sorted(counts, key=counts.get, reverse=True)[:CANDIDATES]
    candidates = dict.fromkeys([*by_votes, *(int(i) for i in also if int(i) in counts)])
    matches = [verify_votes(store, query, votes, image_id) for image_id in candidates]
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
    top: int = 10  # global hits verified beside the images with most votes
    features_of: Callable[[str], Features] = image_features

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
    query = image_features(query_path)
    match = verify_votes(store, query, vote(store, query), image_id)
    images = [np.asarray(at_side(path, SIDE)) for path in (query_path, gallery_path)]
    left = [cv2.KeyPoint(float(x), float(y), 4) for x, y in match.query_points]
    right = [cv2.KeyPoint(float(x), float(y), 4) for x, y in match.gallery_points]
    pairs = [cv2.DMatch(i, i, 0) for i in range(len(left))]
    drawn = cv2.drawMatches(images[0], left, images[1], right, pairs, None, matchColor=(0, 200, 0),
                            flags=cv2.DrawMatchesFlags_NOT_DRAW_SINGLE_POINTS)
    return Drawn(drawn, match.inliers)
