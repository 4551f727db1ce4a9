"""On-disk embedding cache keyed by model and image content (SQLite: safe across processes)."""
from __future__ import annotations

import errno
import os
import shutil
import sqlite3
from collections.abc import Iterable, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from .._io import sha256_bytes
from ..config import Settings, get_settings
from ..errors import CacheError

SCHEMA = """
CREATE TABLE IF NOT EXISTS embeddings (
    model TEXT NOT NULL,
    digest TEXT NOT NULL,
    vector BLOB NOT NULL,
    PRIMARY KEY (model, digest)
)
"""
LOW_SPACE = 1 << 20  # bytes: below this a failed write is taken for a full disk


def content_digest(data: bytes) -> str:
    """The cache's key for a file's bytes: their sha256."""
    return sha256_bytes(data)


class EmbeddingCache:
    """Maps (model key, sha256 of the file bytes) to a float32 vector.

    Keying by content rather than path means a renamed or copied image is still a hit, and an
    edited image is recomputed.
    """

    def __init__(self, path: Path | str):
        self.path = Path(path)
        with self._reported():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(SCHEMA)
            self._db.commit()

    def get_many(self, model: str, digests: Iterable[str]) -> dict[str, np.ndarray]:
        digests = list(dict.fromkeys(digests))
        found = {}
        with self._reported():
            for start in range(0, len(digests), 500):  # stay under SQLite's variable limit
                chunk = digests[start : start + 500]
                marks = ",".join("?" * len(chunk))
                rows = self._db.execute(
                    f"SELECT digest, vector FROM embeddings WHERE model = ? AND digest IN ({marks})",
                    [model, *chunk],
                )
                found.update((d, np.frombuffer(v, dtype=np.float32)) for d, v in rows)
        return found

    def put_many(self, model: str, digests: Iterable[str], vectors: np.ndarray) -> None:
        rows = [(model, d, np.asarray(v, dtype=np.float32).tobytes()) for d, v in zip(digests, vectors)]
        with self._reported(), self._db:
            self._db.executemany("INSERT OR REPLACE INTO embeddings VALUES (?, ?, ?)", rows)

    def get_or_compute(self, model: str, digests: Sequence[str], compute) -> tuple[np.ndarray, np.ndarray]:
        """The vectors for `digests`, in order, and which of them the cache held; `compute(positions)`
        gives the others' vectors (rows for those positions of `digests`), which are then stored."""
        found = self.get_many(model, digests)
        held = np.array([digest in found for digest in digests], dtype=bool)
        vectors = [found.get(digest) for digest in digests]
        missing = np.flatnonzero(~held)
        if len(missing):
            computed = np.asarray(compute(missing), dtype=np.float32)
            self.put_many(model, [digests[i] for i in missing], computed)
            for position, vector in zip(missing, computed):
                vectors[position] = vector
        return (np.stack(vectors) if vectors else np.empty((0, 0), np.float32)), held

    def count(self, model: str | None = None) -> int:
        with self._reported():
            if model is None:
                return self._db.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0]
            return self._db.execute("SELECT COUNT(*) FROM embeddings WHERE model = ?", [model]).fetchone()[0]

    @contextmanager
    def _reported(self):
        """SQLite's and the file system's failures as a CacheError naming the file and the fix."""
        try:
            yield
        except (sqlite3.DatabaseError, OSError) as exc:
            raise CacheError(f"embedding cache {self.path} cannot be used ({exc}): {self._remedy(exc)}") from exc

    def _remedy(self, exc: Exception) -> str:
        """What is wrong with the folder, as far as can be told, and what to do."""
        folder = self.path.parent
        if getattr(exc, "errno", None) in (errno.EEXIST, errno.ENOTDIR):  # from mkdir
            return "part of its path is a file, not a folder. Move that file, or set IMGSEARCH_CACHE_DIR elsewhere."
        if is_read_only(folder, exc):
            return "its folder is read-only. Make it writable, or set IMGSEARCH_CACHE_DIR to a writable folder."
        if is_full(folder, exc):
            return (f"its disk is full ({free_bytes(folder) or 0:,} bytes free). Free some space there, or set "
                    "IMGSEARCH_CACHE_DIR to a folder on another disk.")
        return ("set IMGSEARCH_CACHE_DIR to a writable folder, or delete the file if it is damaged (it is only a "
                "cache: vectors are computed again).")

    def close(self) -> None:
        self._db.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def is_read_only(folder: Path, exc: Exception) -> bool:
    return (getattr(exc, "sqlite_errorname", "").startswith("SQLITE_READONLY")
            or getattr(exc, "errno", None) == errno.EROFS
            or (folder.is_dir() and not os.access(folder, os.W_OK)))  # also a read-only mount, even for root


def is_full(folder: Path, exc: Exception) -> bool:
    free = free_bytes(folder)
    return (getattr(exc, "sqlite_errorname", "") == "SQLITE_FULL" or getattr(exc, "errno", None) == errno.ENOSPC
            or (free is not None and free < LOW_SPACE))  # SQLite reports some as "disk I/O error"


def free_bytes(folder: Path) -> int | None:
    """Free space on the disk holding `folder` (None when it cannot be told)."""
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def open_cache(settings: Settings | None = None) -> EmbeddingCache:
    """The embedding cache every notebook, benchmark and command shares: `<cache_dir>/embeddings.sqlite`."""
    settings = settings or get_settings()
    return EmbeddingCache(settings.cache_dir / "embeddings.sqlite")
