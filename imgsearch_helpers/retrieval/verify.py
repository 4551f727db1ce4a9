"""Re-ranking by geometric verification: the top hits of a vector search are matched to the query
by local features (SIFT keypoints, Lowe's ratio test) and a homography fitted with RANSAC; a hit
whose inliers reach `min_inliers` is the same object or picture seen again. Verified hits move
above the others, each group keeping its vector order, so a query with no verifiable match (a
mirror image, a textureless object) loses nothing. `Verification` is that re-ranking as a step of
the read path (`search.ReadPath`).

Inlier counts are not compared with each other: on the copies benchmark an unrelated product shot
(shared white background, text, the black corners of a rotated copy) reached 70 to 147 inliers
with some copies, more than their originals, while the vector search had the original first.
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import cv2
import faiss
import numpy as np
from PIL import Image

from ..data.images import load_image
from ..errors import UsageError
from ..parallel import bounded_map
from .search import Found, Query, ReadPath, Step

WORKERS = 2  # threads finding gallery features: one per core here
MAX_SIDE = 512  # local features are found on this size: enough for covers and objects, and fast
FEATURES = 500


@dataclass(frozen=True)
class Features:
    points: np.ndarray  # (n, 2) float32 keypoint positions
    descriptors: np.ndarray  # (n, 128) RootSIFT descriptors: float32, or float16 as verifiers keep them


def local_features(path, extractor=None, side: int = MAX_SIDE) -> Features:
    """RootSIFT keypoints of the image at `path`, resized to `side` pixels on its long side (a large
    JPEG is decoded at a reduced scale that keeps at least `side` pixels)."""
    return features_of(file_gray(path, side), extractor)


def file_gray(path, side: int = MAX_SIDE) -> np.ndarray:
    """The image at `path` as uint8 gray at `side` pixels on its long side, as its features are found."""
    return gray_at_side(load_image(path, min_side=side), side)


def gray_at_side(image: Image.Image, side: int = MAX_SIDE) -> np.ndarray:
    """`image` as uint8 gray, resized to `side` pixels on its long side, as its features are found.
    Made gray before resizing: one channel to resample instead of three, half the time (0.9 ms
    against 1.8 for a 512-pixel photo), within 2 levels of resizing first (the same luma weights)."""
    return np.asarray(resized_to_side(image.convert("L"), side))


def features_of(gray: np.ndarray, extractor=None) -> Features:
    """RootSIFT keypoints of a gray image (`gray_at_side`)."""
    keypoints, descriptors = (extractor or cv2.SIFT_create(FEATURES)).detectAndCompute(gray, None)
    if descriptors is None:
        return Features(np.zeros((0, 2), np.float32), np.zeros((0, 128), np.float32))
    descriptors = np.sqrt(descriptors / np.maximum(descriptors.sum(1, keepdims=True), 1e-7))  # RootSIFT
    return Features(np.float32([k.pt for k in keypoints]), descriptors.astype(np.float32))


def at_side(path, side: int = MAX_SIDE) -> Image.Image:
    """The image at `path` resized to `side` pixels on its long side, as its features are found."""
    return resized_to_side(load_image(path, min_side=side), side)


def resized_to_side(image: Image.Image, side: int) -> Image.Image:
    scale = side / max(image.size)  # small images are enlarged: a 1/4-size copy still has keypoints
    return image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                        Image.Resampling.BILINEAR)


def inliers(query: Features, candidate: Features, ratio: float = 0.8, least: int = 8) -> int:
    """Matches consistent with one homography (RANSAC, 8-pixel tolerance); 0 if too few to fit, or
    fewer matches than `least` (the inliers could not reach it)."""
    if len(query.descriptors) < 2 or len(candidate.descriptors) < 2:
        return 0
    rows, cols = ratio_matches(query.descriptors, candidate.descriptors, ratio)
    return homography_inliers(query.points[rows], candidate.points[cols], least)


def homography_inliers(query_points: np.ndarray, candidate_points: np.ndarray, least: int = 8,
                       method: int = cv2.RANSAC) -> int:
    """How many matched points one homography carries onto their matches (RANSAC, 8 pixels); 0 under
    `least` matches (at least 8), with no fit: RANSAC costs as much as the matching. `method`:
    OpenCV's robust estimator (`cv2.USAC_DEFAULT`: see `binary_inliers`)."""
    if len(query_points) < max(8, least):
        return 0
    _, mask = cv2.findHomography(query_points, candidate_points, method, 8.0, maxIters=500)
    return int(mask.sum()) if mask is not None else 0


def binary_inliers(query: Features, candidate: Features, ratio: float = 0.75, least: int = 8) -> int:
    """`inliers` for binary descriptors (ORB): nearest by Hamming distance, Lowe's ratio test. FAISS's
    Hamming search finds the same two nearest distances as OpenCV's brute-force matcher, 4 to 7
    times faster on 500 x 500 ORB descriptors (0.2-0.3 ms against 1.2-2.3), without a Python object
    a match. It holds the GIL (two threads search no faster than one); the fit, the rest of a
    pair's time, does not. The fit is OpenCV's USAC (`USAC_DEFAULT`: a model that cannot be the
    best is dropped after a few points, SPRT): plain RANSAC tries all 500 samples on a pair of
    unrelated photos with 20 chance matches (5.7 ms on 100 random points, against 0.26)."""
    if len(query.descriptors) < 2 or len(candidate.descriptors) < 2:
        return 0
    distances, nearest = faiss.knn_hamming(query.descriptors, candidate.descriptors, 2)
    kept = np.flatnonzero(distances[:, 0] < ratio * distances[:, 1])
    return homography_inliers(query.points[kept], candidate.points[nearest[kept, 0]], least, cv2.USAC_DEFAULT)


@dataclass(frozen=True)
class FeatureKind:
    """How an image's local features are found (`describe`, with an extractor from `create`, one a
    thread) and how two images' are matched (`inliers`)."""

    name: str
    create: Callable[[], object]
    describe: Callable[[np.ndarray, object], Features]  # gray pixels -> features, as kept
    inliers: Callable[..., int]  # (features, features, least=...) -> inliers


def kept_sift(gray: np.ndarray, extractor) -> Features:
    """RootSIFT features with float16 descriptors (128 KB an image instead of 256: verifiers keep thousands)."""
    found = features_of(gray, extractor)
    return Features(found.points, found.descriptors.astype(np.float16))


def orb_features(gray: np.ndarray, extractor) -> Features:
    keypoints, descriptors = extractor.detectAndCompute(gray, None)
    if descriptors is None:
        return Features(np.zeros((0, 2), np.float32), np.zeros((0, 32), np.uint8))
    return Features(np.float32([k.pt for k in keypoints]), descriptors)


# Re-ranking matches an object seen again, from another side or distance: SIFT.
SIFT = FeatureKind("sift", lambda: cv2.SIFT_create(FEATURES), kept_sift, inliers)
# Duplicates match one picture copied: ORB, 15 times faster to find at 320 pixels (1.5 ms against
# 23 ms), 20 KB an image. Over the tutorial gallery plus a copy of each under 13 edits, as
# `find_duplicates` when it was chosen (warm embeddings): SIFT recall 0.955, precision 0.996, 34 s; ORB 0.957, 1.000,
# 16 s; on the Pictures folder both 0.989 and 1.000. Patches of 19 pixels (not 31) leave room for
# keypoints near the edges of a small image; Lowe's ratio 0.75.
ORB = FeatureKind("orb", lambda: cv2.ORB_create(FEATURES, edgeThreshold=19, patchSize=19), orb_features,
                  binary_inliers)


def thread_extractor(local: threading.local, kind: FeatureKind):
    """The calling thread's extractor of `kind`, made on its first use there (an OpenCV extractor
    is not shared between threads)."""
    if not hasattr(local, "extractor"):
        local.extractor = kind.create()
    return local.extractor


def ratio_matches(query: np.ndarray, candidate: np.ndarray, ratio: float) -> tuple[np.ndarray, np.ndarray]:
    """Each query descriptor's nearest candidate descriptor (L2), kept when it is nearer than `ratio`
    times the second nearest (Lowe's ratio test): what OpenCV's brute-force k=2 matcher finds, from
    one matrix product (|a - b|^2 = |a|^2 + |b|^2 - 2 a.b), about half its time. Both at least 2 rows."""
    query, candidate = (d.astype(np.float32, copy=False) for d in (query, candidate))
    partial = (candidate * candidate).sum(1)[None, :] - 2 * (query @ candidate.T)  # |b|^2 - 2 a.b
    rows = np.arange(len(query))
    nearest = partial.argmin(1)
    first = partial[rows, nearest]
    partial[rows, nearest] = np.inf
    own = (query * query).sum(1)  # |a|^2: the same for every column of a row, added after the search
    kept = np.flatnonzero(own + first < ratio * ratio * (own + partial.min(1)))
    return kept, nearest[kept]


@dataclass
class Grays:
    """What verification needs of each image, kept as the images are decoded for embedding
    (`embed_paths(on_image=grays.keep)`), so verification does not decode the files again (a 12-MP
    HEIC or PNG screenshot takes 0.1-0.4 s): the image's `Glance` and, when the features to verify
    by are known (`kind`), those features, found at once on the decoding thread (ORB: 20 KB an
    image) and handed over to the verifier when it asks."""

    side: int = MAX_SIDE
    kind: FeatureKind | None = None  # the features to find while decoding (None: glances only)
    found: dict = field(default_factory=dict)  # path -> Features of `kind`, until the verifier takes them
    glances: dict = field(default_factory=dict)  # path -> Glance
    _local: threading.local = field(default_factory=threading.local, repr=False)  # an extractor a thread

    def keep(self, path, image: Image.Image) -> None:
        gray = gray_at_side(image, self.side)
        if self.kind is not None:
            self.found[str(path)] = self.kind.describe(gray, thread_extractor(self._local, self.kind))
        self.glances[str(path)] = Glance.of(gray, image.size)

    def features(self, path, extractor=None, kind: FeatureKind = SIFT) -> Features:
        """The features of `path`: those found while decoding (given up: the caller keeps them),
        else from the file."""
        if kind is self.kind and str(path) in self.found:
            return self.found.pop(str(path))
        return kind.describe(file_gray(path, self.side), extractor if extractor is not None else kind.create())

    def glance(self, path) -> Glance:
        """The `Glance` of `path`, kept or from the file (then kept: an image is in several pairs).
        Decoded at the verification side as while embedding: shrunk to a glance's size, a large
        photo would pass for one too small for local features."""
        found = self.glances.get(str(path))
        if found is None:
            image = load_image(path, min_side=self.side)
            found = self.glances[str(path)] = Glance.of(gray_at_side(image, self.side), image.size)
        return found


GLANCE = 32  # pixels a side of a glance: a resized copy matches its original to r >= 0.98, other photos stay far below


@dataclass(frozen=True)
class Glance:
    """An image at a glance: its shape and its gray pixels squeezed to 32 x 32. Two glances that
    agree are the same picture at any size, even too small for local features (a 100-pixel image
    and its 50-pixel copy have 9 to 16 inliers; their glances correlate at 0.98 and above). Only for
    small images: screenshots of different photos in one app's frame correlate up to 0.975."""

    aspect: float  # width / height
    pixels: np.ndarray  # (GLANCE * GLANCE,) float32, zero mean, unit length
    side: int  # the long side of the image as decoded (a large JPEG is decoded at a reduced scale)

    @classmethod
    def of(cls, gray: np.ndarray, size: tuple[int, int]) -> Glance:
        small = cv2.resize(gray, (GLANCE, GLANCE), interpolation=cv2.INTER_AREA).astype(np.float32).ravel()
        small -= small.mean()
        return cls(size[0] / size[1], small / max(float(np.linalg.norm(small)), 1e-6), max(size))

    def agrees(self, other: Glance, correlation: float = 0.95, aspect: float = 0.02) -> bool:
        """The same shape (within 2%) and pixels that correlate at `correlation` or more."""
        same_shape = abs(self.aspect - other.aspect) <= aspect * max(self.aspect, other.aspect)
        return same_shape and float(self.pixels @ other.pixels) >= correlation


@dataclass
class Verifier:
    """Re-ranks result rows; the gallery's features are computed once and kept in `known`."""

    gallery_paths: list
    top: int = 10  # hits verified per query
    min_inliers: int = 15
    side: int = MAX_SIDE  # long side local features are found at
    known: dict = field(default_factory=dict, repr=False)  # path -> Features; may be shared between verifiers
    grays: Grays | None = None  # glances and features kept while embedding, when there are
    kind: FeatureKind = SIFT  # the gallery's features; queries are matched by SIFT (`verified`)
    _local: threading.local = field(default_factory=threading.local, repr=False)  # an extractor a thread
    _finding: dict = field(default_factory=dict, repr=False)  # path -> the lock of the thread finding its features
    _guard: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self):
        self.grays = self.grays or Grays(self.side)

    def features(self, index: int) -> Features:
        """The features of a gallery image, found once: pairs checked at once on several threads
        often share an image (`duplicates.verified_pairs`), and each thread finding it again cost a
        third more feature work on 2,000 photos."""
        path = self.gallery_paths[index]
        found = self.known.get(path)
        if found is not None:
            return found
        with self._guard:
            lock = self._finding.setdefault(path, threading.Lock())
        with lock:  # a second thread asking waits for the first one's answer
            found = self.known.get(path)
            if found is None:
                found = self.known[path] = self.grays.features(path, self._extractor(), self.kind)
        with self._guard:
            self._finding.pop(path, None)
        return found

    def forget(self, index: int) -> None:
        """Drop a gallery image's features, found or kept while decoding (its last pair is done)."""
        path = self.gallery_paths[index]
        self.known.pop(path, None)
        self.grays.found.pop(path, None)

    def pair_inliers(self, a: int, b: int, least: int = 8) -> int:
        """The inliers between two gallery images (`duplicates.verified_pairs`); 0 if fewer than `least`."""
        return self.kind.inliers(self.features(a), self.features(b), least=least)

    def _extractor(self):
        """This thread's extractor: `features` may be called from several threads (`duplicates.verified_pairs`)."""
        return thread_extractor(self._local, self.kind)

    def prefetch(self, indexes, workers: int = WORKERS) -> None:
        """Find the features of these gallery images on `workers` threads (OpenCV releases the GIL)."""
        for _ in bounded_map(self.features, list(dict.fromkeys(indexes)), workers, 4 * workers):
            pass  # `features` keeps each in `known`, with its thread's own extractor

    def verified(self, query_path, ranked) -> list[int]:
        """The gallery positions among the first `top` of `ranked` whose inliers reach `min_inliers`, in order."""
        if self.kind is not SIFT:
            raise UsageError(f"re-ranking matches a query by SIFT, not by the gallery's {self.kind.name} features")
        query = local_features(query_path, self._extractor(), self.side)
        head = [int(i) for i in ranked[: self.top]]
        return [i for i in head if inliers(query, self.features(i), least=self.min_inliers) >= self.min_inliers]

    def rerank(self, query_path, ranked: np.ndarray) -> np.ndarray:
        """`ranked` (gallery positions, best first) with the verified among its first `top` moved up, in order."""
        ranked = np.asarray(ranked)
        verified = set(self.verified(query_path, ranked))
        return ranked[moved_up(len(ranked), {j for j, i in enumerate(ranked) if int(i) in verified})]


def moved_up(count: int, chosen: set) -> list[int]:
    """Positions 0..count-1 with `chosen` first, each group in its order."""
    return [i for i in range(count) if i in chosen] + [i for i in range(count) if i not in chosen]


@dataclass
class Verification(Step):
    """Step: each query's top `top` hits checked against its image (`Query.paths`); verified hits move
    up, each marked True or False (`Found.verified`; hits past `top` stay unchecked, None)."""

    paths_of: Callable[[np.ndarray], list[list]]  # rows of gallery ids -> rows of their files
    known: dict = field(default_factory=dict)  # path -> Features, kept between searches
    top: int = 10
    min_inliers: int = 15
    side: int = MAX_SIDE

    @classmethod
    def over(cls, verifier: Verifier) -> Verification:
        """Over `verifier`'s gallery, its positions as ids, with its settings and the features it found."""
        return cls(lambda rows: [[verifier.gallery_paths[i] for i in row] for row in rows], verifier.known,
                   verifier.top, verifier.min_inliers, verifier.side)

    def find(self, query: Query, k: int, below: ReadPath) -> Found:
        if query.paths is None:
            raise UsageError("verification compares the query images with the hits': give their paths")
        found = below.find(query, max(k, self.top))
        orders, flags = [], []
        for query_path, ids, paths in zip(query.paths, found.ids, self.paths_of(found.ids)):
            order, marks = self.rerank(query_path, [path for i, path in zip(ids, paths) if i >= 0])
            orders.append(order)
            flags.append(marks)
        return found.take(orders, k, flags)

    def rerank(self, query_path, paths: list) -> tuple[list[int], list]:
        """The hits' new order, and each one's mark in it (True, False, None: not checked)."""
        checked = min(len(paths), self.top)
        verifier = Verifier(paths, checked, self.min_inliers, self.side, self.known)
        verifier.prefetch(range(checked))
        chosen = set(verifier.verified(query_path, range(len(paths))))
        order = moved_up(len(paths), chosen)
        return order, [i in chosen if i < checked else None for i in order]
