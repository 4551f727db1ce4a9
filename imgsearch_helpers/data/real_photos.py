"""The real-photo sets of notebook 08 and the instance benchmarks, downloaded on first use:

- `ukbench_mini/`: the first 56 photos of UKBench (Nistér and Stewénius, CVPR 2006), 14 objects
  x 4 viewpoints as `g<group>/ukbench<n>.jpg`, fetched one by one out of the Internet Archive's copy
  of the 2 GB archive (its download service reads single members of a zip);
- `grocery_packages/`: the packaged products of the Grocery Store Dataset (Klasson et al., WACV
  2019; MIT licence): `gallery/<product>/<product>_Iconic.jpg`, the studio image of each product,
  and `queries/<product>/<split>_<file>.jpg`, the phone photos taken in shops, arranged from the
  dataset repository's archive.

Each set is checked against the copy the project's figures were measured on: the image count and a
sha256 over every image's path and sha256 (`tree_digest`). A folder already under the data
directory (`IMGSEARCH_DATA_DIR`) is checked the same way and nothing is downloaded.
"""
from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

from .._io import sha256_file
from ..config import Settings, get_settings
from ..errors import DatasetError
from .download import download, safe_extract
from .folders import list_images

UKBENCH_DIR = "ukbench_mini"
UKBENCH_URL = "https://archive.org/download/ukbench/ukbench.zip/full/ukbench{:05d}.jpg"
UKBENCH_PHOTOS = 56  # 14 groups of 4 views; a photo's group is its number divided by 4
UKBENCH_DIGEST = "f9d7512783848ee11327cd6371453c3a414c6ff5ab686b2aace668f7f55dc451"

GROCERY_DIR = "grocery_packages"
GROCERY_URL = "https://github.com/marcusklasson/GroceryStoreDataset/archive/refs/heads/master.zip"
GROCERY_IMAGES = 1776  # 31 studio images and 1,745 phone photos
GROCERY_DIGEST = "093a74553d7eea4812ec853f6f62215253385a1bc7c24df5202b1dbcf93c15c5"
SPLITS = ("train", "val", "test")


def ukbench_mini(settings: Settings | None = None) -> Path:
    """The verified `ukbench_mini` folder, downloaded first when it is missing."""
    root = (settings or get_settings()).data_dir / UKBENCH_DIR
    return _verified(root, UKBENCH_PHOTOS, UKBENCH_DIGEST, fetch_ukbench)


def grocery_packages(settings: Settings | None = None) -> Path:
    """The verified `grocery_packages` folder, downloaded and arranged first when it is missing."""
    root = (settings or get_settings()).data_dir / GROCERY_DIR
    return _verified(root, GROCERY_IMAGES, GROCERY_DIGEST, fetch_grocery)


def _verified(root: Path, images: int, digest: str, fetch) -> Path:
    if not root.exists():
        staging = root.with_name(root.name + ".part")  # a broken download leaves no half folder
        shutil.rmtree(staging, ignore_errors=True)
        try:
            fetch(staging)
            verify_tree(staging, images, digest)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        staging.replace(root)
        return root
    verify_tree(root, images, digest)
    return root


def tree_digest(root: Path) -> tuple[int, str]:
    """(images, sha256 over the sorted lines `<relative path> <sha256 of the file>`)."""
    lines = [f"{path.relative_to(root).as_posix()} {sha256_file(path)}\n" for path in list_images(root)]
    return len(lines), hashlib.sha256("".join(sorted(lines)).encode()).hexdigest()


def verify_tree(root: Path, images: int, digest: str) -> None:
    found, found_digest = tree_digest(root)
    if found != images:
        raise DatasetError(f"{root} holds {found} images, expected {images}: delete it to download it again")
    if found_digest != digest:
        raise DatasetError(f"{root}: the images differ from the published set this project was measured on "
                           f"(digest {found_digest[:12]}, expected {digest[:12]}): delete it to download it again")


def fetch_ukbench(dest: Path) -> None:
    for number in range(UKBENCH_PHOTOS):
        download(UKBENCH_URL.format(number), dest / f"g{number // 4:04d}" / f"ukbench{number:05d}.jpg")


def fetch_grocery(dest: Path) -> None:
    archive = download(GROCERY_URL, dest.with_name("GroceryStoreDataset.zip"))
    extracted = safe_extract(archive, dest.with_name(dest.name + ".zip-contents"))
    try:
        arrange_grocery(dataset_folder(extracted), dest)
    finally:
        shutil.rmtree(extracted, ignore_errors=True)
        archive.unlink(missing_ok=True)


def dataset_folder(extracted: Path) -> Path:
    """The repository's `dataset/` folder inside its archive (under `<repository>-<branch>/`)."""
    found = sorted(extracted.glob("*/dataset/iconic-images-and-descriptions"))
    if not found:
        raise DatasetError(f"{extracted}: no dataset/iconic-images-and-descriptions folder in the archive")
    return found[0].parent


def arrange_grocery(dataset: Path, dest: Path) -> None:
    """Copy the packaged products' studio images to `gallery/` and their shop photos to `queries/`.
    A product is a folder `Packages/<kind>/<product>/` holding `<product>_Iconic.jpg`."""
    iconic = sorted((dataset / "iconic-images-and-descriptions" / "Packages").glob("*/*/*_Iconic.jpg"))
    products = {path.parent.name for path in iconic if path.name == f"{path.parent.name}_Iconic.jpg"}
    for path in iconic:
        if path.parent.name in products:
            _copy(path, dest / "gallery" / path.parent.name / path.name)
    for split in SPLITS:
        for path in sorted((dataset / split / "Packages").glob("*/*/*.jpg")):
            if path.parent.name in products:
                _copy(path, dest / "queries" / path.parent.name / f"{split}_{path.name}")
    licence = dataset.parent / "LICENSE"
    if licence.is_file():
        _copy(licence, dest / "LICENSE")


def _copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
