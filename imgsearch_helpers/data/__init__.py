"""Data: the tutorial dataset, a user's folders of images, the one decoder, and the copies benchmark.

- `tutorial`: download (checksum, safe extraction), catalog, queries, ground truth, slices;
- `folders`: a gallery folder walked into rows with stable ids (links, odd files, what changed);
- `images` and `files`: every image file read one way (regular files only, the header first);
- `edits` and `copies`: the named, deterministic edits of the copies benchmark;
- `download`: fetch a public file with a checksum.
"""
from .copies import copies_gallery, make_copies
from .edits import EDITS, apply_edit
from .folders import IMAGE_SUFFIXES
from .images import load_image
from .tutorial import (
    dataset_root,
    ground_truth,
    holdout_split,
    load_catalog,
    load_queries,
    object_photos,
    short_paths,
)

__all__ = ["EDITS", "IMAGE_SUFFIXES", "apply_edit", "copies_gallery", "dataset_root", "ground_truth", "holdout_split",
           "load_catalog", "load_image", "load_queries", "make_copies", "object_photos", "short_paths"]
