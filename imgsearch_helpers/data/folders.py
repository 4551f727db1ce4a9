"""A gallery folder as rows with stable ids and metadata, and what an ingest must change to match it.

An image's id comes from its path relative to the gallery root (the first 63 bits of its
BLAKE2b hash), so it does not change when other files come or go; a renamed file gets a new id
but is not embedded again, since the embedding cache is keyed by content. A gallery's rows carry
the metadata stored beside each vector (`FIELDS`): its label (the parent folder's name), folder
and path relative to the root, file size and modification time, width and height, and the
sha256 of its bytes. The tutorial dataset keeps its published ids (0-999), which its ground
truth uses.

A scan never stops at one odd path: it leaves the file out and names it with the reason, in the
rows' `attrs["skipped"]` as (path, reason) pairs, which `plan_sync` carries into `SyncPlan.skipped`.
Symbolic links:
- links to files and to folders are followed, each target once (known by st_dev, st_ino): a
  file or folder already reached by another path is not read again but skipped as "same file as
  <relpath>" (a link back to a folder it sits in as "... (a loop)"). Paths without links are
  taken first, then the links in the order met, so a link never takes a plain path's place;
- a row's relpath is the path inside the gallery as the user sees it, the link's own path and not
  its target's: a link to a photo outside the gallery is indexed under the link's name;
- dangling links (named like an image, or with no suffix: a folder), FIFOs, sockets, devices,
  names that are not UTF-8 (Milvus stores them as UTF-8 strings), folders that cannot be listed
  and files removed between the listing and their stat are skipped and named.
Hidden files and folders, caches, the ignore file's patterns and files that are not images are
left out by `rules.Rules` and counted by kind in `attrs["ignored"]` (`rules.Ignored.as_dict`).
Files are only listed and stat-ed here; reading them is `describe_files`'s (through
`images.describe_image_file`: regular files only, the header first). Every folder of images is
listed by this walk: a gallery (`scan_folder`), queries and any other folder (`list_images`).
"""
from __future__ import annotations

import hashlib
import os
import stat
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

from ..errors import DatasetError, ImageError
from .files import cannot_read, check_kind
from .images import describe_image_file
from .rules import Ignored, Rules, describe_ignored, file_kind

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".heic", ".heif",
                  ".avif"}
FIELDS = {"label": "str", "folder": "str", "relpath": "str", "size": "int", "mtime": "float", "width": "int",
          "height": "int", "digest": "str"}
COLUMNS = ["path", "relpath", "label", "folder", "size", "mtime"]


def stable_id(relative_path: str) -> int:
    """A non-negative int64 from the path relative to the gallery root (posix form)."""
    return int.from_bytes(hashlib.blake2b(relative_path.encode("utf-8"), digest_size=8).digest(), "big") >> 1


def scan_folder(root: Path, include_hidden: bool = False) -> pd.DataFrame:
    """Every image under `root`: id, path (absolute), relpath (posix), label, folder, size, mtime.

    Files directly in `root` are labelled by its own name. Only the file system's listing is read.
    Links and odd files as the module docstring says; the files left out are in `attrs["skipped"]`.
    """
    walk = walk_folder(root, include_hidden)
    if not walk.rows:
        first = "".join(f"; {len(walk.skipped)} left out, e.g. {path}: {reason}" for path, reason in walk.skipped[:1])
        ignored = describe_ignored(walk.ignored.as_dict())
        raise DatasetError(f"no images under {walk.root} (looked for {', '.join(sorted(IMAGE_SUFFIXES))}){first}"
                           + (f"; {ignored}" if ignored else ""))
    return walk.frame()


def list_images(folder: Path, include_hidden: bool = False) -> list[Path]:
    """The image files under `folder` as a scan finds them (links and odd files by its rules), sorted."""
    return walk_folder(folder, include_hidden).paths()


def walk_folder(root: Path, include_hidden: bool = False) -> Walk:
    """The walk of every image under `root`: its tree read, then the links met in it followed."""
    root = Path(root).resolve()
    if not root.is_dir():
        raise DatasetError(f"image folder not found: {root}")
    walk = Walk(root, Rules.for_folder(root, include_hidden))
    walk.read_tree(root, ".")
    walk.follow_links()
    return walk


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
    """Rows for these image files of the gallery `root`, by the rules of a scan: a file outside the
    gallery, or one a scan would skip, is left out and named in `attrs["skipped"]`."""
    walk = Walk(Path(root).resolve())
    for file in map(Path, files):
        relpath = walk.relpath_of(file)
        if relpath is None:
            walk.skip(file, f"not inside the gallery folder {walk.root}")
        else:
            walk.add(file, relpath)
    return walk.frame()


class Walk:
    """The rows of a gallery's image files, and the files left out with their reasons."""

    def __init__(self, root: Path, rules: Rules | None = None):
        self.root = root
        self.rules = rules or Rules()
        self.rows: list[tuple] = []
        self.skipped: list[tuple[str, str]] = []
        self.ignored = Ignored()  # left out on purpose (rules), by kind
        self.reached = {_identity(os.stat(root)): "."}  # (st_dev, st_ino) -> the first relpath to it
        self.links: deque[tuple[Path, str]] = deque()  # met in the walk, followed after it

    def read_tree(self, top: Path, reltop: str) -> None:
        """Add the images under `top` (depth first, in name order); links wait in `links`."""
        folders = [(top, reltop)]
        while folders:
            folder, relfolder = folders.pop()
            subfolders = []
            for entry in self.listing(folder):
                path, relpath = Path(entry.path), _join(relfolder, entry.name)
                if self.leaves_out(entry.name, relpath, _is_folder(entry)):
                    continue
                if entry.is_symlink():
                    self.links.append((path, relpath))
                elif entry.is_dir(follow_symlinks=False):
                    subfolders.append((path, relpath))
                elif is_image_name(entry.name):
                    self.add(path, relpath)
                else:
                    self.ignored.add(file_kind(entry.name), relpath)
            folders.extend(reversed([item for item in subfolders if self.claim_folder(*item)]))  # popped in order

    def leaves_out(self, name: str, relpath: str, is_folder: bool) -> bool:
        """True (and counted) for an entry the rules keep out: hidden, a cache, in the ignore file."""
        reason = self.rules.reason_to_leave_out(name, relpath, is_folder)
        if reason:
            self.ignored.add(reason, relpath)
        return reason is not None

    def listing(self, folder: Path) -> list[os.DirEntry]:
        try:
            with os.scandir(folder) as entries:
                return sorted(entries, key=lambda entry: entry.name)
        except OSError as exc:
            self.skip(folder, f"cannot list folder ({exc.strerror or exc})")
            return []

    def follow_links(self) -> None:
        """Each link met (and each met in a folder reached through one): its folder is read, its
        image added, unless another path reached the same one first."""
        while self.links:
            link, relpath = self.links.popleft()
            try:
                info = os.stat(link)
            except OSError as exc:
                if is_image_name(link.name) or not link.suffix:  # could be a photo or a folder
                    self.skip(link, _broken_link(link, exc))
                continue
            if stat.S_ISDIR(info.st_mode):
                if self.claim_folder(link, relpath, info):
                    self.read_tree(link, relpath)
            elif is_image_name(link.name):
                self.add(link, relpath)
            else:
                self.ignored.add(file_kind(link.name), relpath)

    def add(self, path: Path, relpath: str) -> None:
        """A row for an image file, unless it is skipped (and named)."""
        if not _is_utf8(relpath):
            return self.skip(path, "name is not UTF-8: the collection cannot store it (rename the file)")
        try:
            info = os.stat(path)
            check_kind(path, info)
        except FileNotFoundError:
            return self.skip(path, "removed while the folder was read")
        except OSError as exc:
            return self.skip(path, cannot_read(exc))
        except ImageError as exc:
            return self.skip(path, exc.reason)
        if self.claim(path, relpath, info):
            parent = PurePosixPath(relpath).parent
            folder = "" if str(parent) == "." else str(parent)
            self.rows.append((str(self.root / relpath), relpath, parent.name or self.root.name, folder,
                              info.st_size, info.st_mtime))

    def claim_folder(self, folder: Path, relpath: str, info: os.stat_result | None = None) -> bool:
        try:
            return self.claim(folder, relpath, info or os.stat(folder))
        except OSError as exc:
            self.skip(folder, cannot_read(exc))
            return False

    def claim(self, path: Path, relpath: str, info: os.stat_result) -> bool:
        """True for the first path to reach this file or folder; a later one is skipped, naming the first."""
        first = self.reached.setdefault(_identity(info), relpath)
        if first != relpath:
            kind = "folder" if stat.S_ISDIR(info.st_mode) else "file"
            loop = " (a loop)" if first == "." or relpath.startswith(f"{first}/") else ""
            self.skip(path, f"same {kind} as {'the gallery folder' if first == '.' else first}{loop}")
        return first == relpath

    def relpath_of(self, file: Path) -> str | None:
        """`file`'s path inside the gallery as the user sees it (a link keeps its own name); None outside."""
        absolute = Path(os.path.abspath(file))
        for folder in (absolute.parent, absolute.parent.resolve()):
            if folder.is_relative_to(self.root):
                return (folder / absolute.name).relative_to(self.root).as_posix()
        return None

    def skip(self, path, reason: str) -> None:
        self.skipped.append((printable(path), reason))

    def paths(self) -> list[Path]:
        """The image files the walk found, sorted."""
        return sorted(Path(path) for path, *_ in self.rows)

    def frame(self) -> pd.DataFrame:
        """The rows with their ids; `attrs["skipped"]`: the (path, reason) of each file left out."""
        gallery = pd.DataFrame(self.rows, columns=COLUMNS)
        gallery.insert(0, "id", [stable_id(p) for p in gallery["relpath"]])
        repeated = gallery["id"].duplicated(keep=False)
        if repeated.any():  # 63-bit hashes: about one chance in 10^10 for a million files
            raise DatasetError(f"two paths share an id: {', '.join(gallery.loc[repeated, 'relpath'][:2])}; rename one")
        gallery.attrs["skipped"] = self.skipped
        gallery.attrs["ignored"] = self.ignored.as_dict()
        return gallery


def is_image_name(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES


def printable(path) -> str:
    """A path as text that can be printed and stored: bytes that are not UTF-8 shown as \\xNN."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # undecodable bytes of a file name arrive as lone surrogates
        return False
    return True


def _is_folder(entry: os.DirEntry) -> bool:
    """A folder, or a link to one; a link that cannot be followed is not (the walk names it later)."""
    try:
        return entry.is_dir()
    except OSError:
        return False


def _identity(info: os.stat_result) -> tuple[int, int]:
    return info.st_dev, info.st_ino


def _join(folder: str, name: str) -> str:
    return name if folder == "." else f"{folder}/{name}"


def _broken_link(link: Path, exc: OSError) -> str:
    if not isinstance(exc, FileNotFoundError):
        return f"cannot follow link ({exc.strerror or exc})"
    try:
        return f"dangling link (nothing at {printable(os.readlink(link))})"
    except OSError:
        return "removed while the folder was read"


def dataset_rows(catalog: pd.DataFrame, root: Path) -> pd.DataFrame:
    """The tutorial dataset's catalog (its published ids) with the same columns as a scanned folder."""
    files = [Path(p) for p in catalog["path"]]
    info = [f.stat() for f in files]
    relative = [PurePosixPath(f.relative_to(root).as_posix()) for f in files]
    return catalog.assign(relpath=[str(r) for r in relative], folder=[str(r.parent) for r in relative],
                          size=[i.st_size for i in info], mtime=[i.st_mtime for i in info])


def describe_files(gallery: pd.DataFrame) -> pd.DataFrame:
    """`gallery` with width, height (upright, from the header) and digest (sha256 of the bytes);
    a file that cannot be read as an image gets 0 x 0 and an empty digest, and its bytes past the
    header are never read (embedding then reports it)."""
    described = [_describe(Path(file)) for file in gallery["path"]]
    return gallery.assign(width=[w for w, _, _ in described], height=[h for _, h, _ in described],
                          digest=[d for _, _, d in described])


def _describe(path: Path) -> tuple[int, int, str]:
    try:
        return describe_image_file(path)
    except ImageError:
        return 0, 0, ""


@dataclass
class SyncPlan:
    """What an ingest changes so the collection holds exactly the gallery's files."""

    added: pd.DataFrame  # files with no row yet (rows of the gallery)
    changed: pd.DataFrame  # files whose size or modification time differ from their row
    removed: list[int]  # ids of rows whose file is gone
    unchanged: int
    renamed: int = 0  # added files whose content a removed row had (their vectors come from the cache)
    touched: list[int] = field(default_factory=list)  # changed on disk but with the same content
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason): files the scan left out
    ignored: dict[str, dict] = field(default_factory=dict)  # kind -> count and examples: left out by the rules

    def to_embed(self) -> pd.DataFrame:
        """The rows whose vectors an ingest computes: files added, and those changed in content."""
        return pd.concat([self.added, self.changed[~self.changed["id"].isin(self.touched)]], ignore_index=True)

    def summary(self) -> str:
        parts = [f"{len(self.added)} added", f"{len(self.changed) - len(self.touched)} changed",
                 f"{len(self.removed)} removed", f"{self.unchanged + len(self.touched)} unchanged"]
        text = ", ".join(parts) + (f" ({self.renamed} renamed or copied)" if self.renamed else "")
        ignored = sum(entry["count"] for entry in self.ignored.values())
        text += f", {len(self.skipped)} left out by the scan" if self.skipped else ""
        return text + (f", {ignored} ignored (hidden, caches, not images)" if ignored else "")


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


def plan_sync(gallery: pd.DataFrame, stored: pd.DataFrame, describe: bool = True) -> SyncPlan:
    """Compare the folder's files with the collection's rows (`id`, `size`, `mtime`, `digest`);
    the files its scan left out (`attrs["skipped"]`) go into the plan's `skipped`.

    Files whose size and modification time match their row are not read again. With `describe`,
    new and changed files are read here (`describe_files`), and a changed file with the same bytes
    (a touched file) keeps its vector and only gets new metadata. Without it nothing is read: for
    an ingest that reads each file where it embeds it (on Ray's workers), every changed file is embedded.
    """
    listing = compare_listing(gallery, stored)
    skipped, ignored = list(gallery.attrs.get("skipped", [])), dict(gallery.attrs.get("ignored", {}))
    if not describe:
        return SyncPlan(listing.added, listing.modified, listing.removed, listing.unchanged, skipped=skipped,
                        ignored=ignored)
    stored = by_id(stored)
    added, changed = describe_files(listing.added), describe_files(listing.modified)
    touched = changed.loc[changed["digest"].to_numpy() == stored.loc[changed["id"], "digest"].to_numpy(), "id"]
    gone = stored.loc[listing.removed, "digest"] if listing.removed else pd.Series(dtype=str)
    renamed = int(added["digest"].isin(gone).sum()) if listing.removed else 0
    return SyncPlan(added, changed, listing.removed, listing.unchanged, renamed, [int(i) for i in touched], skipped,
                    ignored)
