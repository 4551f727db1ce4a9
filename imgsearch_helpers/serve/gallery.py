"""A gallery folder as rows with stable ids and metadata, and what an ingest must change to match it.

An image's id comes from its path relative to the gallery root (the first 63 bits of its
BLAKE2b hash), so it does not change when other files come or go; a renamed file gets a new id
but is not embedded again, since the embedding cache is keyed by content. A gallery's rows carry
the metadata stored beside each vector (`FIELDS`): its label (the parent folder's name), folder
and path relative to the root, file size and modification time, width and height, and the
sha256 of its bytes. The tutorial dataset keeps its published ids (0-999), which its ground
truth uses.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd
from PIL import Image

from ..cache import content_digest
from ..data import IMAGE_SUFFIXES
from ..errors import DatasetError

FIELDS = {"label": "str", "folder": "str", "relpath": "str", "size": "int", "mtime": "float", "width": "int",
          "height": "int", "digest": "str"}
ROTATED = {5, 6, 7, 8}  # EXIF orientations that swap width and height


def stable_id(relative_path: str) -> int:
    """A non-negative int64 from the path relative to the gallery root (posix form)."""
    return int.from_bytes(hashlib.blake2b(relative_path.encode("utf-8"), digest_size=8).digest(), "big") >> 1


def scan_folder(root: Path) -> pd.DataFrame:
    """Every image under `root`: id, path (absolute), relpath (posix), label, folder, size, mtime.

    Files directly in `root` are labelled by its own name. Only the file system's listing is read.
    """
    root = Path(root).resolve()
    if not root.is_dir():
        raise DatasetError(f"image folder not found: {root}")
    files = list(_image_files(root))
    if not files:
        raise DatasetError(f"no images under {root} (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
    return file_rows(root, files)


def _image_files(root: Path):
    for directory, subdirs, names in os.walk(root):
        subdirs.sort()  # a stable order, folder by folder
        yield from (Path(directory) / name for name in sorted(names) if Path(name).suffix.lower() in IMAGE_SUFFIXES)


def manifest_rows(root: Path, manifest) -> pd.DataFrame:
    """The gallery's rows from a manifest instead of a folder walk: a text file with one image path
    per line, relative to `root` or absolute inside it (blank lines and `#` comments ignored)."""
    manifest, root = Path(manifest), Path(root).resolve()
    if not manifest.is_file():
        raise DatasetError(f"manifest not found: {manifest}")
    lines = [line.strip() for line in manifest.read_text().splitlines()]
    files = [root / line for line in lines if line and not line.startswith("#")]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise DatasetError(f"{manifest} lists {len(missing)} file(s) that do not exist, e.g. {missing[0]}")
    if not files:
        raise DatasetError(f"{manifest} lists no files")
    return file_rows(root, files)


def file_rows(root: Path, files) -> pd.DataFrame:
    """Rows for image files inside the gallery `root` (a file outside it is an error naming it)."""
    root, rows = Path(root).resolve(), []
    for file in map(Path, files):
        file = file.resolve()
        if not file.is_relative_to(root):
            raise DatasetError(f"{file} is not inside the gallery folder {root}")
        info = file.stat()
        relative = PurePosixPath(file.relative_to(root).as_posix())
        folder = str(relative.parent) if relative.parent != PurePosixPath(".") else ""
        rows.append((str(file), str(relative), relative.parent.name or root.name, folder, info.st_size, info.st_mtime))
    gallery = pd.DataFrame(rows, columns=["path", "relpath", "label", "folder", "size", "mtime"])
    gallery.insert(0, "id", [stable_id(p) for p in gallery["relpath"]])
    repeated = gallery["id"].duplicated(keep=False)
    if repeated.any():  # 63-bit hashes: about one chance in 10^10 for a million files
        raise DatasetError(f"two paths share an id: {', '.join(gallery.loc[repeated, 'relpath'][:2])}; rename one")
    return gallery


def dataset_rows(catalog: pd.DataFrame, root: Path) -> pd.DataFrame:
    """The tutorial dataset's catalog (its published ids) with the same columns as a scanned folder."""
    files = [Path(p) for p in catalog["path"]]
    info = [f.stat() for f in files]
    relative = [PurePosixPath(f.relative_to(root).as_posix()) for f in files]
    return catalog.assign(relpath=[str(r) for r in relative], folder=[str(r.parent) for r in relative],
                          size=[i.st_size for i in info], mtime=[i.st_mtime for i in info])


def describe_files(gallery: pd.DataFrame) -> pd.DataFrame:
    """`gallery` with width, height (upright, from the header) and digest (sha256 of the bytes);
    a file that cannot be read gets 0 x 0 and an empty digest (embedding then reports it)."""
    sizes = [upright_size(Path(file)) for file in gallery["path"]]
    return gallery.assign(width=[w for w, _ in sizes], height=[h for _, h in sizes],
                          digest=[_digest(Path(file)) for file in gallery["path"]])


def upright_size(source) -> tuple[int, int]:
    """(width, height) as the image is shown, read from the header of a file or a file object;
    (0, 0) when it cannot be read."""
    try:
        with Image.open(source) as image:
            width, height = image.size
            return (height, width) if image.getexif().get(0x0112) in ROTATED else (width, height)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return 0, 0


def _digest(path: Path) -> str:
    try:
        return content_digest(path.read_bytes())
    except OSError:
        return ""


@dataclass
class SyncPlan:
    """What an ingest changes so the collection holds exactly the gallery's files."""

    added: pd.DataFrame  # files with no row yet (rows of the gallery)
    changed: pd.DataFrame  # files whose size or modification time differ from their row
    removed: list[int]  # ids of rows whose file is gone
    unchanged: int
    renamed: int = 0  # added files whose content a removed row had (their vectors come from the cache)
    touched: list[int] = field(default_factory=list)  # changed on disk but with the same content

    def summary(self) -> str:
        parts = [f"{len(self.added)} added", f"{len(self.changed) - len(self.touched)} changed",
                 f"{len(self.removed)} removed", f"{self.unchanged + len(self.touched)} unchanged"]
        return ", ".join(parts) + (f" ({self.renamed} renamed or copied)" if self.renamed else "")


@dataclass
class Listing:
    """A folder's files against the collection's rows, from sizes and modification times alone."""

    added: pd.DataFrame  # files with no row yet
    modified: pd.DataFrame  # files whose size or modification time differ from their row
    removed: list[int]  # ids of rows whose file is gone
    unchanged: int


def by_id(stored: pd.DataFrame) -> pd.DataFrame:
    """The collection's rows indexed by id (an empty frame with the compared columns when none)."""
    return stored.set_index("id") if len(stored) else pd.DataFrame(columns=["size", "mtime", "digest"])


def compare_listing(gallery: pd.DataFrame, stored: pd.DataFrame) -> Listing:
    """Which files are new, modified or gone, without reading any file (rows: `id`, `size`, `mtime`)."""
    stored = by_id(stored)
    known = gallery["id"].isin(stored.index)
    present = gallery[known]
    row = stored.loc[present["id"]]
    same = (row["size"].to_numpy() == present["size"].to_numpy()) & np.isclose(
        row["mtime"].to_numpy(dtype=float), present["mtime"].to_numpy(dtype=float), rtol=0, atol=1e-3)
    removed_ids = stored.index.difference(pd.Index(gallery["id"]))
    return Listing(gallery[~known], present[~same], [int(i) for i in removed_ids], int(same.sum()))


def plan_sync(gallery: pd.DataFrame, stored: pd.DataFrame) -> SyncPlan:
    """Compare the folder's files with the collection's rows (`id`, `size`, `mtime`, `digest`).

    Files whose size and modification time match their row are not read again. A changed file is
    hashed: the same bytes (a touched file) keep their vector and only get new metadata.
    """
    listing = compare_listing(gallery, stored)
    stored = by_id(stored)
    added, changed = describe_files(listing.added), describe_files(listing.modified)
    touched = changed.loc[changed["digest"].to_numpy() == stored.loc[changed["id"], "digest"].to_numpy(), "id"]
    gone = stored.loc[listing.removed, "digest"] if listing.removed else pd.Series(dtype=str)
    renamed = int(added["digest"].isin(gone).sum()) if listing.removed else 0
    return SyncPlan(added, changed, listing.removed, listing.unchanged, renamed, [int(i) for i in touched])
