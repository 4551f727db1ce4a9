"""Duplicates in a folder: exact copies by content hash, near copies (resized, recompressed,
cropped, retouched) by descriptor similarity, confirmed by geometric verification.

A pair is near-duplicate when its cosine reaches `sure`, or reaches `threshold` and the two images
agree at a glance (small images only: the same shape, 32 x 32 gray pixels correlated at 0.95, a
resized copy of a thumbnail too small for local features) or share at least MIN_INLIERS RANSAC-consistent local
features. Pairs join into groups
(union-find), so three copies of one photo are one group.
"""
from __future__ import annotations

import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import faiss
import numpy as np

from ..config import Settings, get_settings
from ..data.folders import walk_folder
from ..data.images import describe_image_file
from ..embed.cache import EmbeddingCache
from ..embed.stream import embed_paths
from ..errors import ImageError
from ..models.descriptors import build_instance_embedder
from ..parallel import bounded_map
from ..vectors import l2_normalize
from .verify import ORB, WORKERS, Glance, Grays, Verifier

THRESHOLD = 0.60  # candidates: cosine of regional GeM descriptors (Lite0) at or above this
SURE = 0.90  # accepted without verification (a mirror image has no matching local features)
MIN_INLIERS = 20  # ORB inliers (`verify.ORB`); at 18 four wrong pairs of the copies benchmark joined, at 20 none
# Local features of both images of a pair at this long side. Over the gallery plus a copy of each
# (warm embeddings, by SIFT): 512 px 53 s, precision 0.986, recall 0.958; 384 px 37 s, 0.980,
# 0.957; 320 px 31 s, 0.996, 0.950. Re-ranking keeps 512 (one query, ten candidates).
VERIFY_SIDE = 320
GLANCE_BELOW = 256  # long side (pixels) under which a pair may be confirmed at a glance (`small_copies`)
NEIGHBOURS = 10  # candidates an image: its most similar others, so pairs grow with the images, not their square
AHEAD = 2 * WORKERS  # pairs checked ahead of the answers (`verified_pairs`): a pair taken ahead may join nothing
CHUNK = 2048  # images whose neighbours are searched at a time (memory stays at CHUNK x n)


@dataclass
class Duplicates:
    groups: list[list[str]]  # each group's paths, sorted; groups by size, then first path
    exact_pairs: int
    near_pairs: int
    skipped: list[ImageError] = field(default_factory=list)
    ignored: dict[str, dict] = field(default_factory=dict)  # left out by the folder's rules (`data.rules`)
    work: dict = field(default_factory=dict)  # what each step did and its seconds (`Work`)

    def as_dict(self) -> dict:
        return {"groups": self.groups, "exact_pairs": self.exact_pairs, "near_pairs": self.near_pairs,
                "skipped": [f"{e.path}: {e.reason}" for e in self.skipped], "ignored": self.ignored,
                "work": self.work}


class Work(dict):
    """Counts and seconds of `find_duplicates`' steps, for finding where a big folder's time goes:
    each step's seconds and the CPU seconds of the whole process in them (their ratio is the cores
    the step kept busy)."""

    def __init__(self):
        super().__init__(seconds={}, cpu_seconds={})
        self._started = (time.perf_counter(), time.process_time())

    def lap(self, step: str) -> None:
        """The seconds since the last lap (or the start) are `step`'s."""
        now = (time.perf_counter(), time.process_time())
        self["seconds"][step] = round(now[0] - self._started[0], 1)
        self["cpu_seconds"][step] = round(now[1] - self._started[1], 1)
        self._started = now


def find_duplicates(paths, settings: Settings | None = None, cache: EmbeddingCache | None = None,
                    threshold: float = THRESHOLD, sure: float = SURE, verify: bool = True,
                    progress: bool = True, embedder=None, side: int = VERIFY_SIDE,
                    include_hidden: bool = False, apart: set[frozenset[str]] = frozenset()) -> Duplicates:
    """Groups of duplicate images among `paths` (or every image under a folder, hidden ones only
    with `include_hidden`); `apart`: pairs of paths a user said are not duplicates (never joined
    directly; a third image like both can still join them)."""
    settings = settings or get_settings()
    work = Work()
    paths, skipped, ignored = _image_paths(paths, include_hidden)
    groups = UnionFind(len(paths))
    first_with: dict[str, int] = {}  # digest -> the first file with those bytes
    unique, exact = [], 0  # the files embedded: every one but the later exact copies
    sizes = [_file_size(path) for path in paths]
    shared = Counter(sizes)
    for i, path in enumerate(paths):
        if shared[sizes[i]] > 1:  # a file whose size no other file has has no exact copy: no hash
            try:  # regular files only, hashed in pieces; a junk file is not read past its header
                digest = describe_image_file(path)[2]
            except ImageError as exc:
                skipped.append(exc)
                continue
            first = first_with.setdefault(digest, i)
            if first != i:  # a later exact copy: joined to the first, not embedded
                if frozenset((paths[first], path)) not in apart:
                    exact += groups.union(first, i)
                continue
        unique.append(i)
    work.lap("exact copies")
    grays = Grays(side, ORB) if verify else None  # features found while decoding for the model: no file decoded twice
    embedded = embed_paths([paths[i] for i in unique], embedder or build_instance_embedder(settings=settings),
                           cache, progress=progress, on_image=grays.keep if grays else None)
    kept = [unique[p] for p in embedded.positions]
    work.lap("descriptors")
    pairs = [(a, b, cosine) for a, b, cosine in candidate_pairs(l2_normalize(embedded.vectors), threshold)
             if frozenset((paths[kept[a]], paths[kept[b]])) not in apart]
    at_a_glance = {(a, b) for a, b, cosine in pairs if verify and cosine < sure
                   and small_copies(grays.glance(paths[kept[a]]), grays.glance(paths[kept[b]]))}
    near = sum(groups.union(kept[a], kept[b]) for a, b, cosine in pairs if cosine >= sure or (a, b) in at_a_glance)
    work.lap("candidate pairs")
    to_verify = [(a, b) for a, b, cosine in pairs if cosine < sure and (a, b) not in at_a_glance] if verify else []
    checked = []
    if to_verify:
        verifier = Verifier([paths[i] for i in kept], side=side, grays=grays, kind=ORB)
        joined = lambda a, b: groups.find(kept[a]) == groups.find(kept[b])  # noqa: E731
        for a, b in verified_pairs(order_pairs(to_verify, len(kept)), verifier, joined, checked=checked):
            near += groups.union(kept[a], kept[b])
    work.lap("verification")
    work.update(images=len(paths), embedded=embedded.report.embedded, from_cache=embedded.report.from_cache,
                candidate_pairs=len(pairs), to_verify=len(to_verify), pairs_matched=len(checked),
                images_matched=len({i for pair in checked for i in pair}))
    return Duplicates(groups.groups(paths), exact, near, skipped + embedded.report.failures, ignored, dict(work))


def verified_pairs(pairs: list[tuple[int, int]], verifier: Verifier, joined=lambda a, b: False, ahead: int = AHEAD,
                   checked: list | None = None):
    """The pairs whose images share MIN_INLIERS local features, as they are found (`checked`, when
    given, gets every pair matched, found or not). A pair whose
    images `joined` says are already in one group is not checked: its answer would join nothing
    (the caller joins each pair found before asking about the next ones, so of a burst of n copies
    about n - 1 pairs are checked, not all n(n-1)/2). Features are found and pairs matched on
    WORKERS threads, a few pairs ahead, and an image's features are dropped after its last pair:
    the memory held follows the pairs in reach, not every image verified (20 KB each)."""
    last_use = {i: n for n, pair in enumerate(pairs) for i in pair}
    unjoined = ((n, pair) for n, pair in enumerate(pairs) if not joined(*pair))  # asked as each pair is taken

    def match(item):
        n, pair = item
        return n, pair, verifier.pair_inliers(*pair, least=MIN_INLIERS) >= MIN_INLIERS

    done = 0
    for n, pair, match_found in bounded_map(match, unjoined, WORKERS, ahead):
        if checked is not None:
            checked.append(pair)
        if match_found:
            yield pair
        for i in [i for pair in pairs[done:n + 1] for i in pair if last_use[i] <= n]:
            verifier.forget(i)
        done = n + 1


def order_pairs(pairs: list[tuple[int, int]], count: int) -> list[tuple[int, int]]:
    """The pairs in an order that keeps few images' features held at once (`verified_pairs` drops an
    image's after its last pair): images ranked by reverse Cuthill-McKee, which keeps the images of a
    pair close in rank, and each pair taken when its later-ranked image comes. In the order of their
    first image, an image's features wait for its pair with a far later one; and candidate pairs
    chain most of a big folder into one cluster, so taking clusters one by one is not enough."""
    if not pairs:
        return []
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import reverse_cuthill_mckee

    first, second = np.asarray(pairs).T
    graph = coo_matrix((np.ones(len(pairs), np.int8), (first, second)), shape=(count, count)).tocsr()
    rank = np.empty(count, np.int64)
    rank[reverse_cuthill_mckee(graph, symmetric_mode=False)] = np.arange(count)
    return sorted(pairs, key=lambda pair: (max(rank[pair[0]], rank[pair[1]]), min(rank[pair[0]], rank[pair[1]])))


def small_copies(a: Glance, b: Glance) -> bool:
    """A pair too small for local features (either image at most GLANCE_BELOW pixels long) whose
    glances agree. Larger pairs are left to local features: a glance cannot tell two screenshots of
    one app apart (their frame is most of the picture)."""
    return min(a.side, b.side) <= GLANCE_BELOW and a.agrees(b)


def _file_size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return -1  # hashed, and so named with its reason


def _image_paths(paths, include_hidden: bool = False) -> tuple[list[str], list[ImageError], dict]:
    """The paths to compare, and (for a folder) the files its walk skipped or ignored, so the report names them."""
    if isinstance(paths, (str, Path)):
        folder = Path(paths)
        if not folder.is_dir():
            raise ImageError(folder, "no such folder")
        walk = walk_folder(folder, include_hidden)
        left_out = [ImageError(path, reason) for path, reason in walk.skipped]
        return [str(path) for path in walk.paths()], left_out, walk.ignored.as_dict()
    return [str(p) for p in paths], [], {}


def candidate_pairs(vectors: np.ndarray, threshold: float, neighbours: int = NEIGHBOURS):
    """(i, j, cosine) with i < j, each pair once: every image with its `neighbours` most similar
    others, those at or above `threshold`. Bounded per image, so a folder of bursts (many shots
    of one scene) gives at most `neighbours` pairs an image, not every pair of the burst. FAISS's
    exact search (`faiss.knn`, CHUNK queries at a time) finds them in half the time of a matrix
    product and a partial sort in NumPy (20,000 descriptors: 5.3 s against 11.9)."""
    count = len(vectors)
    reach = min(neighbours, count - 1)
    if reach < 1:
        return
    vectors = np.ascontiguousarray(vectors, np.float32)
    seen = set()
    for start in range(0, count, CHUNK):
        cosines, nearest = faiss.knn(vectors[start:start + CHUNK], vectors, reach + 1,
                                     metric=faiss.METRIC_INNER_PRODUCT)
        for i, row_cosines, row_nearest in zip(range(start, count), cosines, nearest):
            others = [(int(j), float(cosine)) for j, cosine in zip(row_nearest, row_cosines) if j != i and j >= 0]
            for j, cosine in others[:reach]:  # itself left out (an identical vector may come first)
                pair = (min(i, j), max(i, j))
                if cosine >= threshold and pair not in seen:
                    seen.add(pair)
                    yield *pair, cosine


class UnionFind:
    def __init__(self, n: int):
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, a: int, b: int) -> int:
        """Join the groups of a and b; 1 if they were apart (a new pair joined), else 0."""
        root_a, root_b = self.find(a), self.find(b)
        if root_a == root_b:
            return 0
        self.parent[max(root_a, root_b)] = min(root_a, root_b)
        return 1

    def groups(self, paths: list[str]) -> list[list[str]]:
        members: dict[int, list[str]] = {}
        for i, path in enumerate(paths):
            members.setdefault(self.find(i), []).append(path)
        found = [sorted(group) for group in members.values() if len(group) > 1]
        return sorted(found, key=lambda group: (-len(group), group[0]))
