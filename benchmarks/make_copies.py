"""Write the tutorial's images under the first N edits into a folder: distractors for a scale row.

    python benchmarks/make_copies.py --out data/copies-9 --edits 9    # 9,000 images, <edit>/<image id>.jpg

The copies are made once (a file already there is kept), the same way the copies benchmark makes its
queries (`imgsearch_helpers.data.copies.make_copies`).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from imgsearch_helpers.config import get_settings
from imgsearch_helpers.data.copies import copies_gallery, make_copies
from imgsearch_helpers.data.edits import EDITS
from imgsearch_helpers.data.tutorial import load_catalog


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="folder to write <edit>/<image id>.jpg into")
    parser.add_argument("--edits", type=int, default=len(EDITS), help=f"how many edits, in order (of {len(EDITS)})")
    args = parser.parse_args()
    gallery = copies_gallery(load_catalog(get_settings()))
    copies = make_copies(gallery, args.out, edits=tuple(EDITS)[:args.edits])
    print(f"{len(copies)} images under {args.out}")


if __name__ == "__main__":
    main()
