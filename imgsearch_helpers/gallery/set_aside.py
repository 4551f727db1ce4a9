"""Acting on duplicates without losing anything: keep one photo of a group, move the others aside.

Files set aside are moved, never deleted, into the gallery's `.imgsearch-trash/<batch>/`, under
their path in the gallery, and each move is written to `.imgsearch-trash/journal.jsonl` first; an
undo moves the last batch back (a file that took a moved file's place is never overwritten: the
undo stops and names it). The folder is left out of every walk (`data.rules`), so the collection
loses the moved files' rows at the next ingest, and gets them back after an undo.

The keeper of a group: a file in a protected folder if there is one (a protected file is never
moved), else the one with most pixels, then the largest file, then the oldest, then the first path.
"Not duplicates" answers are kept in `.imgsearch-trash/not-duplicates.json` and leave their pair
out of the next search for duplicates.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from .._io import write_json
from ..data.images import upright_size
from ..data.rules import TRASH_FOLDER
from ..errors import DatasetError

JOURNAL = "journal.jsonl"
NOT_DUPLICATES = "not-duplicates.json"


@dataclass
class Move:
    source: str  # relpath in the gallery
    target: str  # relpath in the gallery, inside the trash folder


def choose_keeper(root: Path, group: list[str], protected: tuple[str, ...] = ()) -> str:
    """The file of `group` (absolute paths) to keep: see the module docstring."""
    def rank(path: str):
        info = os.stat(path)
        width, height = upright_size(path)
        return (not in_protected(root, path, protected), -width * height, -info.st_size, info.st_mtime, path)
    return min(group, key=rank)


def in_protected(root: Path, path: str, protected: tuple[str, ...]) -> bool:
    relpath = PurePosixPath(Path(os.path.abspath(path)).relative_to(root).as_posix())
    return any(relpath.is_relative_to(folder.strip("/")) for folder in protected)


def set_aside(root: Path, groups: list[list[str]], protected: tuple[str, ...] = ()) -> list[Move]:
    """Move every file of each group but its keeper into a new batch of the trash folder."""
    root = Path(root).resolve()
    batch = time.strftime("%Y%m%d-%H%M%S")
    keepers = [choose_keeper(root, group, protected) for group in groups]
    moves = [Move(relative(root, path), f"{TRASH_FOLDER}/{batch}/{relative(root, path)}")
             for group, keeper in zip(groups, keepers) for path in group
             if path != keeper and not in_protected(root, path, protected)]
    journal = root / TRASH_FOLDER / JOURNAL
    journal.parent.mkdir(exist_ok=True)
    for move in moves:
        target = root / move.target
        if target.exists():
            raise DatasetError(f"{target} already exists: nothing more was moved")
        with journal.open("a") as log:  # written before the move: an interrupted batch can still be undone
            log.write(json.dumps({"batch": batch, "source": move.source, "target": move.target}) + "\n")
        target.parent.mkdir(parents=True, exist_ok=True)
        os.rename(root / move.source, target)
    return moves


def undo(root: Path) -> list[Move]:
    """Move the last batch back where it came from; the journal then forgets it."""
    root = Path(root).resolve()
    journal = root / TRASH_FOLDER / JOURNAL
    entries = [json.loads(line) for line in journal.read_text().splitlines()] if journal.is_file() else []
    if not entries:
        raise DatasetError(f"nothing to undo in {root}: no files were set aside")
    batch = entries[-1]["batch"]
    moves = [Move(e["source"], e["target"]) for e in entries if e["batch"] == batch]
    back = [m for m in moves if (root / m.target).exists()]  # a move cut short never happened
    for move in back:
        if (root / move.source).exists():
            raise DatasetError(f"{root / move.source} exists again: move it away, then undo")
    for move in back:
        (root / move.source).parent.mkdir(parents=True, exist_ok=True)
        os.rename(root / move.target, root / move.source)
    kept = [e for e in entries if e["batch"] != batch]
    journal.write_text("".join(json.dumps(e) + "\n" for e in kept))
    return back


def relative(root: Path, path: str) -> str:
    """`path`'s relpath in the gallery; a file reached through a link to another folder is refused,
    since moving it would move a file outside the gallery."""
    absolute = Path(os.path.abspath(path))
    if not absolute.is_relative_to(root) or not absolute.parent.resolve().is_relative_to(root):
        raise DatasetError(f"{path} is not inside {root} (reached through a link?): it is not moved")
    return absolute.relative_to(root).as_posix()


def not_duplicates(root: Path) -> set[frozenset[str]]:
    """The pairs a user said are not duplicates, as absolute paths (as a walk of `root` names them)."""
    root = Path(root).resolve()
    return {frozenset(str(root / relpath) for relpath in pair) for pair in remembered_pairs(root)}


def remembered_pairs(root: Path) -> set[frozenset[str]]:
    path = Path(root) / TRASH_FOLDER / NOT_DUPLICATES
    return {frozenset(pair) for pair in json.loads(path.read_text())} if path.is_file() else set()


def remember_not_duplicates(root: Path, paths: list[str]) -> int:
    """Remember that these files (absolute or relative paths) are not duplicates of each other; the
    number of pairs now remembered."""
    root = Path(root).resolve()
    relpaths = sorted({relative(root, path if os.path.isabs(path) else root / path) for path in paths})
    pairs = remembered_pairs(root) | {frozenset((a, b)) for i, a in enumerate(relpaths) for b in relpaths[i + 1:]}
    (root / TRASH_FOLDER).mkdir(exist_ok=True)
    write_json(root / TRASH_FOLDER / NOT_DUPLICATES, sorted(sorted(pair) for pair in pairs))
    return len(pairs)
