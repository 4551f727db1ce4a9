"""On-disk embedding cache keyed by model and image content (SQLite: safe across processes)."""
from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from .config import Settings, get_settings

SCHEMA = """
CREATE TABLE IF NOT EXISTS embeddings (
    model TEXT NOT NULL,
    digest TEXT NOT NULL,
    vector BLOB NOT NULL,
    PRIMARY KEY (model, digest)
)
"""


def content_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_json(path: Path, data: dict) -> None:
    """Write JSON whole or not at all: another process reads the old file or the new one."""
    scratch = Path(path).with_suffix(".part")
    scratch.write_text(json.dumps(data, indent=2) + "\n")
    scratch.replace(path)


class EmbeddingCache:
    """Maps (model key, sha256 of the file bytes) to a float32 vector.

    Keying by content rather than path means a renamed or copied image is still a hit, and an
    edited image is recomputed.
    """

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(SCHEMA)
        self._db.commit()

    def get_many(self, model: str, digests: Iterable[str]) -> dict[str, np.ndarray]:
        digests = list(dict.fromkeys(digests))
        found = {}
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
        with self._db:
            self._db.executemany("INSERT OR REPLACE INTO embeddings VALUES (?, ?, ?)", rows)

    def count(self, model: str | None = None) -> int:
        if model is None:
            return self._db.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0]
        return self._db.execute("SELECT COUNT(*) FROM embeddings WHERE model = ?", [model]).fetchone()[0]

    def close(self) -> None:
        self._db.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def open_cache(settings: Settings | None = None) -> EmbeddingCache:
    """The embedding cache every notebook, benchmark and command shares: `<cache_dir>/embeddings.sqlite`."""
    settings = settings or get_settings()
    return EmbeddingCache(settings.cache_dir / "embeddings.sqlite")
