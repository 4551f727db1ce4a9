"""Read FAISS IVF_FLAT and hnswlib index files the way Feder 0.2.4 does, and refuse what it cannot draw.

Feder parses index files in the browser and, on a file it does not support, logs a warning and
draws nothing (or draws nonsense). Reading the file here first turns that into a Python error
naming the file and the reason. The layouts follow faiss's `write_index` (IndexIVFFlat with a
flat quantizer, array inverted lists) and hnswlib's `saveIndex`.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import FederFileError

METRIC_L2 = 1  # faiss::METRIC_L2 (METRIC_INNER_PRODUCT is 0)
HNSWLIB_HEADER = struct.Struct("<6QiI3QdQ")  # offsetLevel0 ... ef_construction, as hnswlib writes them


@dataclass(frozen=True)
class IvfFlatFile:
    dim: int
    ntotal: int
    nlist: int
    centroids: np.ndarray  # (nlist, dim)
    list_ids: list[np.ndarray]  # ids stored in each inverted list
    vectors: np.ndarray  # (ntotal, dim), rows in the order of `ids`

    @property
    def ids(self) -> np.ndarray:
        return np.concatenate(self.list_ids) if self.list_ids else np.empty(0, np.int64)

    def list_sizes(self) -> np.ndarray:
        return np.array([len(ids) for ids in self.list_ids])

    def probed_lists(self, vector: np.ndarray, nprobe: int) -> np.ndarray:
        """The `nprobe` lists whose centroids are nearest `vector` (L2), as Feder's coarse search picks them."""
        distances = ((self.centroids - np.asarray(vector, np.float32)) ** 2).sum(1)
        return np.argsort(distances, kind="stable")[:nprobe]


@dataclass(frozen=True)
class HnswFile:
    dim: int
    count: int
    M: int
    ef_construction: int
    max_level: int
    labels: np.ndarray


class _Reader:
    def __init__(self, path: Path):
        self.path, self.data, self.pos = path, path.read_bytes(), 0

    def take(self, size: int) -> bytes:
        if self.pos + size > len(self.data):
            raise FederFileError(self.path, f"truncated: needs {self.pos + size:,} bytes, has {len(self.data):,}")
        chunk = self.data[self.pos:self.pos + size]
        self.pos += size
        return chunk

    def unpack(self, fmt: str):
        values = struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt)))
        return values if len(values) > 1 else values[0]

    def fourcc(self) -> str:
        return self.take(4).decode("latin-1")

    def array(self, dtype, count: int) -> np.ndarray:
        return np.frombuffer(self.take(np.dtype(dtype).itemsize * count), dtype=dtype)

    def expect_end(self) -> None:
        if self.pos != len(self.data):
            raise FederFileError(self.path, f"{len(self.data) - self.pos:,} unexpected bytes after the index")


def read_faiss_ivf_flat(path) -> IvfFlatFile:
    """Check that `path` is an L2 IndexIVFFlat Feder can draw, and return its lists."""
    path = Path(path)
    if not path.is_file():
        raise FederFileError(path, "file not found")
    reader = _Reader(path)
    kind = reader.fourcc()
    if kind != "IwFl":
        raise FederFileError(path, f"a faiss index of type {kind!r}; Feder draws IVF_FLAT ('IwFl') only "
                                   "(build it with faiss.IndexIVFFlat, not IndexIDMap, IVF_PQ or HNSW)")
    dim, ntotal, metric = _index_header(reader)
    if metric != METRIC_L2:
        raise FederFileError(path, "metric is inner product; Feder ranks by L2 only "
                                   "(L2-normalize the vectors and build with METRIC_L2 for cosine)")
    nlist, _nprobe = reader.unpack("QQ")
    if reader.fourcc() != "IxF2":
        raise FederFileError(path, "the coarse quantizer is not a flat L2 index (IndexFlatL2)")
    _index_header(reader)
    count = reader.unpack("Q")
    centroids = reader.array(np.float32, count).reshape(nlist, dim)
    map_type, map_size = reader.unpack("BQ")
    if map_type != 0 or map_size != 0:
        raise FederFileError(path, "the index has a direct map (make_direct_map); Feder reads indexes without one")
    if reader.fourcc() != "ilar":
        raise FederFileError(path, "inverted lists are not in-memory array lists (e.g. on-disk lists)")
    lists, code_size = reader.unpack("QQ")
    if reader.fourcc() != "full":
        raise FederFileError(path, "inverted lists are stored sparse (more than half are empty); "
                                   "Feder reads full lists only: use a smaller nlist")
    sizes = reader.array(np.uint64, reader.unpack("Q")).astype(np.int64)
    if code_size != dim * 4:
        raise FederFileError(path, f"codes of {code_size} bytes are not flat float32 vectors of dimension {dim}")
    list_ids, vectors = [], []
    for size in sizes:
        vectors.append(reader.array(np.float32, int(size) * dim).reshape(int(size), dim))
        list_ids.append(reader.array(np.int64, int(size)).copy())
    reader.expect_end()
    if lists != nlist or sum(map(len, list_ids)) != ntotal:
        raise FederFileError(path, "inverted lists do not add up to the index's size")
    return IvfFlatFile(dim, ntotal, nlist, centroids.copy(), list_ids, np.concatenate(vectors))


def _index_header(reader: _Reader) -> tuple[int, int, int]:
    dim, ntotal, _dummy1, _dummy2, _trained, metric = reader.unpack("iqqqBi")
    if metric > 1:
        reader.unpack("f")  # metric_arg, written for metrics other than L2 and IP
    return dim, ntotal, metric


def read_hnswlib(path) -> HnswFile:
    """Check that `path` is an hnswlib index of float vectors whose layout Feder reads."""
    path = Path(path)
    if not path.is_file():
        raise FederFileError(path, "file not found")
    reader = _Reader(path)
    (_offset0, _max_elements, count, size_per_element, label_offset, offset_data, max_level, _enter,
     max_m, max_m0, m, _mult, ef_construction) = HNSWLIB_HEADER.unpack(reader.take(HNSWLIB_HEADER.size))
    vector_bytes = size_per_element - offset_data - 8
    layout_ok = offset_data == max_m0 * 4 + 4 and label_offset == offset_data + vector_bytes
    if not layout_ok or vector_bytes <= 0 or vector_bytes % 4:
        raise FederFileError(path, "not an hnswlib index of float32 vectors (the header does not add up)")
    level0 = np.frombuffer(reader.take(count * size_per_element), np.uint8).reshape(count, size_per_element)
    labels = level0[:, label_offset:label_offset + 8].copy().view(np.uint64).ravel().astype(np.int64)
    links_per_element = max_m * 4 + 4
    for _ in range(count):
        size = reader.unpack("I")
        if size % links_per_element:
            raise FederFileError(path, "corrupt upper-level link lists")
        reader.take(size)
    reader.expect_end()
    return HnswFile(vector_bytes // 4, count, m, ef_construction, max_level, labels)
