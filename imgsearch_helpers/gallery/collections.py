"""Which collection holds which gallery: one collection per gallery folder and model, and a registry.

A collection is named from its gallery's folder name and model plus a hash of the resolved path
(`gallery_photos_lite0_1a2b3c4d`), so two folders called `photos` stay apart. The registry
(`<cache>/collections/registry.json`) records, per Milvus collection, the gallery, the model and
the index it was built with (a search reopens the collection with that index, never rebuilding
it), and which gallery the last ingest indexed (the default for later commands). The in-process
engines keep nothing between runs, so they have no entries.
"""
from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from .._io import write_json
from ..config import Settings

DATASET = "dataset"  # the tutorial gallery, in the configured slice


@dataclass(frozen=True)
class GalleryRef:
    """A gallery: the tutorial dataset (in a slice) or a folder, by its resolved path."""

    key: str  # "dataset:<slice>" or the folder's resolved path
    label: str  # a readable name: "dataset (tiny)" or the folder's path

    @classmethod
    def of(cls, gallery: str | Path, settings: Settings) -> GalleryRef:
        if str(gallery) == DATASET:
            return cls(f"{DATASET}:{settings.slice}", f"the tutorial dataset ({settings.slice} slice)")
        folder = Path(gallery).expanduser().resolve()
        return cls(str(folder), str(folder))

    @property
    def is_dataset(self) -> bool:
        return self.key.startswith(f"{DATASET}:")

    @property
    def folder(self) -> Path | None:
        return None if self.is_dataset else Path(self.key)


def collection_name(gallery: GalleryRef, model: str) -> str:
    """Readable and unique per (gallery, model): folder name, model, and a hash of both."""
    stem = gallery.key.replace(":", "_") if gallery.is_dataset else Path(gallery.key).name
    short_model = model.replace("efficientnet_", "")
    readable = re.sub(r"[^0-9A-Za-z_]+", "_", f"{stem}_{short_model}").strip("_")[:48]
    digest = hashlib.sha1(f"{gallery.key}\n{model}".encode()).hexdigest()[:8]
    return f"gallery_{readable}_{digest}"


@dataclass
class Entry:
    collection: str
    gallery: str  # GalleryRef.key
    label: str
    model: str
    engine: str
    index: dict | None  # IndexSpec.as_dict() of the built index (None: exact search)
    rows: int
    updated: float


class Registry:
    """The collections this machine has built, in one JSON file beside the embedding cache."""

    def __init__(self, settings: Settings):
        self.path = settings.cache_dir / "collections" / "registry.json"

    def _read(self) -> dict:
        if not self.path.is_file():
            return {"collections": {}, "last": None}
        return json.loads(self.path.read_text())

    def _write(self, data: dict) -> None:
        write_json(self.path, data)  # never a half-written registry

    def entries(self) -> list[Entry]:
        return [Entry(**entry) for entry in self._read()["collections"].values()]

    def get(self, collection: str) -> Entry | None:
        entry = self._read()["collections"].get(collection)
        return Entry(**entry) if entry else None

    def record(self, entry: Entry) -> None:
        data = self._read()
        data["collections"][entry.collection] = asdict(entry) | {"updated": time.time()}
        self._write(data)

    def set_last(self, gallery: GalleryRef) -> None:
        data = self._read()
        data["last"] = DATASET if gallery.is_dataset else gallery.key
        self._write(data)

    def remove(self, collection: str) -> None:
        data = self._read()
        data["collections"].pop(collection, None)
        self._write(data)

    def last_gallery(self) -> str:
        """The gallery the last ingest indexed: a folder path, or "dataset"."""
        return self._read().get("last") or DATASET


def list_collections(registry: Registry, settings: Settings) -> dict:
    """Each collection the registry knows: its gallery, model, rows (asked of the engine) and index."""
    from ..index import IndexSpec, open_engine

    rows = []
    for entry in registry.entries():
        index = IndexSpec.from_dict(entry.index) if entry.index else None  # as built: opening never rebuilds
        engine = open_engine("milvus", collection=entry.collection, index=index, settings=settings)
        rows.append({"collection": entry.collection, "gallery": entry.label, "model": entry.model,
                     "rows": engine.count(), "index": entry.index["index_type"] if entry.index else "exact"})
        engine.close()
    return {"collections": rows, "last": registry.last_gallery()}
