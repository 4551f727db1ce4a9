"""The copies benchmark's files: each gallery image under each edit, written once as JPEG
(quality 95) into `<cache>/copies/<edit>/` and reused, named by the original's gallery position."""
from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from .._io import atomic_path
from .edits import EDITS, apply_edit
from .images import load_image


def copies_gallery(catalog: pd.DataFrame) -> pd.DataFrame:
    """The gallery with each image its own group: a copy's only relevant image is its original."""
    return pd.DataFrame({"path": catalog["path"].tolist(), "label": [f"{i:05d}" for i in range(len(catalog))]})


def make_copies(gallery: pd.DataFrame, folder: Path, edits=tuple(EDITS), every: int = 1) -> pd.DataFrame:
    """Queries (path, label, edit): every `every`-th gallery image under each edit, made if missing."""
    rows = []
    for edit in edits:
        target = Path(folder) / re.sub(r"[^0-9a-z]+", "-", edit.lower()).strip("-")
        target.mkdir(parents=True, exist_ok=True)
        for path, group in zip(gallery["path"][::every], gallery["label"][::every]):
            out = target / f"{group}.jpg"
            if not out.is_file():
                with atomic_path(out) as scratch:
                    apply_edit(edit, load_image(path), group).save(scratch, "JPEG", quality=95)
            rows.append((str(out), group, edit))
    return pd.DataFrame(rows, columns=["path", "label", "edit"])
