"""What belongs to a gallery: the files a folder walk leaves out on purpose, and how it says so.

Left out by default, each counted by kind in the walk's report (nothing is silent):
- hidden files and folders (a name starting with "."): caches such as `.thumbnails/`, `.Trash-1000/`,
  `.DS_Store`, a `.git/`; `include_hidden` takes them in;
- known cache and system folders without a dot: `@eaDir` (Synology thumbnails), `__MACOSX`,
  `$RECYCLE.BIN`, `System Volume Information`, `#recycle`, `#snapshot`, `lost+found`;
- the set-aside folder `.imgsearch-trash/`, always (duplicates put there stay out of the collection);
- paths matched by the gallery's ignore file, `.imgsearchignore` in its root folder, in gitignore
  syntax (read with `pathspec`): `raw/`, `*.png`, `!keep.png`, `screenshots/**/*.png`;
- files that are not images, by suffix: `.mov`, `.svg`, and RAW files (`.dng`, `.cr2`, `.nef`, ...),
  which are not indexed: a RAW file's JPEG beside it is the photo, so a RAW+JPEG pair is one row.
"""
from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pathspec

from ..errors import DatasetError

IGNORE_FILE = ".imgsearchignore"
TRASH_FOLDER = ".imgsearch-trash"
CACHE_FOLDERS = {"@eaDir", "__MACOSX", "$RECYCLE.BIN", "System Volume Information", "#recycle", "#snapshot",
                 "lost+found"}
RAW_SUFFIXES = {".dng", ".cr2", ".cr3", ".nef", ".arw", ".orf", ".rw2", ".raf", ".pef", ".srw"}
MAX_IGNORE_BYTES = 1_000_000  # an ignore file is a few lines; a bigger one is a mistake, not read
EXAMPLES = 3  # paths named per kind in the report


@dataclass
class Rules:
    """The walk's rules for one gallery: hidden files in or out, and its ignore file's patterns."""

    include_hidden: bool = False
    spec: pathspec.PathSpec | None = None

    @classmethod
    def for_folder(cls, root: Path, include_hidden: bool = False) -> Rules:
        return cls(include_hidden, read_ignore_file(Path(root) / IGNORE_FILE))

    def reason_to_leave_out(self, name: str, relpath: str, is_folder: bool) -> str | None:
        """Why this entry stays out of the gallery (a kind of the report), or None when it belongs."""
        if name == TRASH_FOLDER:
            return "set aside"
        if name.startswith(".") and not self.include_hidden:
            return "hidden folder" if is_folder else "hidden file"
        if is_folder and name in CACHE_FOLDERS:
            return "cache folder"
        if self.spec is not None and self.spec.match_file(f"{relpath}/" if is_folder else relpath):
            return f"in {IGNORE_FILE}"
        return None


def read_ignore_file(path: Path) -> pathspec.PathSpec | None:
    """The patterns of an ignore file (gitignore syntax), or None when the gallery has none."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return None
    if info.st_size > MAX_IGNORE_BYTES or not os.path.isfile(path):
        raise DatasetError(f"{path} is not a small text file of patterns: rename it or make it one")
    try:
        return pathspec.GitIgnoreSpec.from_lines(path.read_text(encoding="utf-8").splitlines())
    except (UnicodeDecodeError, ValueError) as exc:
        raise DatasetError(f"{path}: cannot read its patterns ({exc})") from None


def file_kind(name: str) -> str:
    """The report's kind for a file that is not an image: its suffix (RAW files say so)."""
    suffix = os.path.splitext(name)[1].lower()
    if suffix in RAW_SUFFIXES:
        return f"{suffix} (RAW, not indexed)"
    return suffix or "no suffix"


@dataclass
class Ignored:
    """The entries a walk left out on purpose: how many of each kind, and the first few paths."""

    counts: Counter = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)

    def add(self, kind: str, relpath: str) -> None:
        self.counts[kind] += 1
        named = self.examples.setdefault(kind, [])
        if len(named) < EXAMPLES:
            named.append(relpath)

    def as_dict(self) -> dict[str, dict]:
        """{kind: {"count": n, "examples": [relpath, ...]}}, the most frequent kind first."""
        return {kind: {"count": n, "examples": self.examples[kind]} for kind, n in self.counts.most_common()}


def describe_ignored(ignored: dict[str, dict]) -> str:
    """One line for a report: `ignored: 12 .mov, 1 hidden folder (.thumbnails), 3 in .imgsearchignore`."""
    parts = []
    for kind, entry in ignored.items():
        folders = f" ({', '.join(entry['examples'])}{', ...' if entry['count'] > EXAMPLES else ''})"
        plural = "s" if entry["count"] > 1 and kind.endswith(("folder", "file")) else ""
        parts.append(f"{entry['count']} {kind}{plural}" + (folders if "folder" in kind or kind == "set aside" else ""))
    return f"ignored: {', '.join(parts)}" if parts else ""
