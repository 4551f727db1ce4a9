"""Thumbnails made once: a small JPEG of each gallery image kept in the cache folder, so a page of
results does not decode its photos again at every search (a 12-megapixel HEIC takes 0.4 s, a PNG
screenshot 0.07 s, a phone JPEG 0.02 s; a stored thumbnail about 1 ms).

A thumbnail is keyed by the file's path, size and modification time: an edited or replaced file
gets a new one. Ingest stores them from the images it decodes anyway (`keep`); any other is made
on first display (`get`).
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from PIL import Image

from .images import load_image

THUMB = 160  # long side: small enough for committed notebooks and a page of 20 results
QUALITY = 85


def thumbnail(source) -> Image.Image:
    """A small copy of an image file (or of a PIL image) for a grid."""
    image = source.copy() if isinstance(source, Image.Image) else load_image(source, min_side=THUMB)
    image.thumbnail((THUMB, THUMB))
    return image


class Thumbnails:
    """The thumbnails of one cache folder (`<cache_dir>/thumbnails`)."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def get(self, path) -> Image.Image:
        """The thumbnail of `path`: the stored one, else made from the file and stored."""
        stored = self._where(path)
        if stored is not None and stored.is_file():
            try:
                with Image.open(stored) as image:
                    return image.convert("RGB")
            except OSError:
                pass  # a damaged thumbnail is made again
        made = thumbnail(path)
        if stored is not None:
            self._store(stored, made)
        return made

    def keep(self, path, image: Image.Image) -> None:
        """Store the thumbnail of `path` from its already decoded `image` (none is made twice)."""
        stored = self._where(path)
        if stored is not None and not stored.is_file():
            self._store(stored, thumbnail(image))

    def _where(self, path) -> Path | None:
        try:
            facts = os.stat(path)
        except OSError:
            return None  # `get` then says what is wrong with the file
        key = f"{Path(path).resolve()}|{facts.st_size}|{facts.st_mtime_ns}|{THUMB}"
        digest = hashlib.sha1(key.encode(), usedforsecurity=False).hexdigest()
        return self.folder / digest[:2] / f"{digest}.jpg"

    def _store(self, target: Path, image: Image.Image) -> None:
        """Written to a temporary file, then renamed: a reader sees a whole thumbnail or none."""
        part = None
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=target.parent, suffix=".part", delete=False) as handle:
                part = handle.name
                image.save(handle, "JPEG", quality=QUALITY)
            os.replace(part, target)
        except OSError:  # a cache that cannot be written (read-only, full) only costs speed
            if part:
                Path(part).unlink(missing_ok=True)
