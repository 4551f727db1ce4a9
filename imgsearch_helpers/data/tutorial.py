"""The tutorial dataset: download and verification, catalog, queries, ground truth, slices."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from .._io import sha256_file
from ..config import Settings, display_path, get_settings
from ..errors import DatasetError, UsageError
from .download import download, safe_extract
from .folders import list_images

DATASET_URL = "https://github.com/towhee-io/examples/releases/download/data/reverse_image_search.zip"
DATASET_DIR = "reverse_image_search"
# Taken from the published dataset: the CSV's hash and the file counts after extraction.
CSV_NAME = "reverse_image_search.csv"
CSV_SHA256 = "eb670fb1eab2f03e4cf47958c8b12fc75f3c295e03f74e7ca630b9778fcb416f"
EXPECTED_FILES = {"train": 1000, "test": 100}
TINY_CLASS_STEP = 10  # the tiny slice keeps every 10th class (10 of 100), sorted by name


def dataset_root(settings: Settings | None = None, download_missing: bool = True) -> Path:
    """Path of the verified dataset, downloading it first if it is missing."""
    settings = settings or get_settings()
    root = settings.data_dir / DATASET_DIR
    if not root.exists():
        if not download_missing:
            raise DatasetError(f"dataset not found at {root}")
        return fetch_dataset(settings.data_dir)  # verifies what it extracted
    verify_dataset(root)
    return root


def fetch_dataset(data_dir: Path) -> Path:
    archive = download(DATASET_URL, Path(data_dir) / "reverse_image_search.zip")
    root = safe_extract(archive, Path(data_dir) / DATASET_DIR)
    verify_dataset(root)
    archive.unlink()
    return root


def verify_dataset(root: Path) -> None:
    """Check the extracted content against the published dataset (CSV hash, file counts)."""
    csv = root / CSV_NAME
    if not csv.is_file():
        raise DatasetError(f"{csv} is missing: delete {root} to download the dataset again")
    digest = sha256_file(csv)
    if digest != CSV_SHA256:
        raise DatasetError(f"{csv} has sha256 {digest}, expected {CSV_SHA256}")
    for split, expected in EXPECTED_FILES.items():
        found = len(list_images(root / split))
        if found != expected:
            raise DatasetError(f"{root / split} holds {found} images, expected {expected}")


def slice_labels(labels, slice_name: str) -> list[str]:
    """Deterministic class subset: `full` keeps all, `tiny` every 10th class by name."""
    labels = sorted(set(labels))
    if slice_name == "full":
        return labels
    if slice_name == "tiny":
        return labels[::TINY_CLASS_STEP]
    raise UsageError(f"unknown slice {slice_name!r}: choose 'tiny' or 'full'")


def load_catalog(settings: Settings | None = None) -> pd.DataFrame:
    """Gallery images of the configured slice: columns id, path (absolute), label."""
    settings = settings or get_settings()
    root = dataset_root(settings)
    catalog = pd.read_csv(root / CSV_NAME)
    catalog["path"] = [str((root / p).resolve()) for p in catalog["path"]]
    keep = slice_labels(catalog["label"], settings.slice)
    return catalog[catalog["label"].isin(keep)].reset_index(drop=True)


def load_queries(folder: Path | str | None = None, settings: Settings | None = None) -> pd.DataFrame:
    """Query images laid out as `<label>/<image>`: columns path, label.

    Defaults to the dataset's `test/` folder, restricted to the configured slice's classes.
    """
    settings = settings or get_settings()
    if folder is None:
        folder = dataset_root(settings) / "test"
        keep = set(slice_labels([p.name for p in Path(folder).iterdir() if p.is_dir()], settings.slice))
    else:
        keep = None
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"query folder not found: {folder}")
    rows = [(str(p.resolve()), p.parent.name) for p in list_images(folder) if p.parent != folder.resolve()]
    queries = pd.DataFrame(rows, columns=["path", "label"])
    if keep is not None:
        queries = queries[queries["label"].isin(keep)].reset_index(drop=True)
    if queries.empty:
        raise DatasetError(f"no query images found under {folder} (expected <label>/<image> files)")
    return queries


def short_paths(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of `frame` with its paths shown relative to the repo, for display."""
    return frame.assign(path=frame["path"].map(display_path))


def ground_truth(catalog: pd.DataFrame, queries: pd.DataFrame) -> list[set]:
    """For each query, the gallery ids that share its label."""
    ids_by_label = catalog.groupby("label")["id"].apply(set).to_dict()
    unknown = sorted(set(queries["label"]) - set(ids_by_label))
    if unknown:
        raise DatasetError(f"{len(unknown)} query label(s) have no gallery images: {_some(unknown)}. A query's "
                           f"label is its folder's name and must be a gallery label: {_some(sorted(ids_by_label))}")
    return [ids_by_label[label] for label in queries["label"]]


def _some(names) -> str:
    return ", ".join(map(str, names[:5])) + (" ..." if len(names) > 5 else "")


def holdout_split(catalog: pd.DataFrame, fold: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(gallery, queries): the `fold`-th image of each class (by path) becomes a query, the rest stay.

    A query set no evaluation has used, for checking that a configuration was not tuned on the
    test queries; the chosen images are removed from the gallery, so none finds itself.
    """
    rank = catalog.sort_values("path").groupby("label").cumcount().reindex(catalog.index)
    smallest = int(catalog.groupby("label").size().min())
    if smallest < 2:
        raise ValueError("every class needs at least 2 images to hold one out as a query")
    if not 0 <= fold < smallest:
        raise ValueError(f"fold must be between 0 and {smallest - 1} (the smallest class has {smallest} images)")
    held = rank == fold
    return catalog[~held].reset_index(drop=True), catalog.loc[held, ["path", "label"]].reset_index(drop=True)


COCO_URL = "http://images.cocodataset.org/val2017/{:012d}.jpg"
OBJECT_PHOTOS = (9769, 206831, 409247)  # COCO val2017 ids: a street with a truck, a dog, a desk


def object_photos(settings: Settings | None = None) -> list[Path]:
    """The object-detection photos in `<data_dir>/object/`, downloaded from COCO when missing."""
    settings = settings or get_settings()
    paths = [settings.data_dir / "object" / f"{photo:012d}.jpg" for photo in OBJECT_PHOTOS]
    for photo, path in zip(OBJECT_PHOTOS, paths):
        if not path.is_file():
            download(COCO_URL.format(photo), path)
    return paths
