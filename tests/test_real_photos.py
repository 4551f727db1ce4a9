"""The real-photo sets download, arrange and verify as a new user's machine does it: the download
code runs on file:// addresses holding the shared copy in the upstream layouts (the Internet
Archive's members of UKBench's zip, the Grocery Store Dataset repository's archive)."""
import shutil
import zipfile
from pathlib import Path

import pytest

from imgsearch_helpers.config import get_settings
from imgsearch_helpers.data import real_photos
from imgsearch_helpers.data.folders import list_images
from imgsearch_helpers.errors import DatasetError


@pytest.fixture(scope="module")
def shared():
    return get_settings().data_dir


def relative_files(root: Path) -> list[str]:
    return sorted(path.relative_to(root).as_posix() for path in list_images(root))


def upstream_grocery_zip(source: Path, archive: Path) -> Path:
    """The shared copy laid out as the repository's archive, with a fruit and a description beside."""
    top = "GroceryStoreDataset-master/dataset"
    with zipfile.ZipFile(archive, "w") as zf:
        for image in (source / "gallery").glob("*/*.jpg"):
            product = image.parent.name
            zf.write(image, f"{top}/iconic-images-and-descriptions/Packages/Kind/{product}/{image.name}")
            zf.writestr(f"{top}/iconic-images-and-descriptions/Packages/Kind/{product}/{product}_Description.txt", "")
        for image in (source / "queries").glob("*/*.jpg"):
            split, name = image.name.split("_", 1)
            zf.write(image, f"{top}/{split}/Packages/Kind/{image.parent.name}/{name}")
        fruit = next((source / "gallery").glob("*/*.jpg"))
        zf.write(fruit, f"{top}/iconic-images-and-descriptions/Fruit/Kiwi/Kiwi_Iconic.jpg")
        zf.write(fruit, f"{top}/train/Fruit/Kiwi/Kiwi_001.jpg")
        zf.write(source / "LICENSE", "GroceryStoreDataset-master/LICENSE")
    return archive


def test_grocery_packages_download_is_arranged_and_verified(shared, tmp_path, monkeypatch):
    archive = upstream_grocery_zip(shared / "grocery_packages", tmp_path / "upstream.zip")
    monkeypatch.setattr(real_photos, "GROCERY_URL", archive.as_uri())
    settings = get_settings(data_dir=tmp_path / "data")
    root = real_photos.grocery_packages(settings)
    assert root == tmp_path / "data" / "grocery_packages"
    assert relative_files(root) == relative_files(shared / "grocery_packages")  # no fruit, no description
    assert (root / "LICENSE").is_file()
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["grocery_packages"]  # archive removed
    assert real_photos.grocery_packages(settings) == root  # present: verified, not fetched again


def test_ukbench_mini_is_fetched_photo_by_photo(shared, tmp_path, monkeypatch):
    members = tmp_path / "archive" / "full"
    members.mkdir(parents=True)
    for photo in list_images(shared / "ukbench_mini"):
        shutil.copy(photo, members / photo.name)
    monkeypatch.setattr(real_photos, "UKBENCH_URL", (members.as_uri() + "/ukbench{:05d}.jpg"))
    root = real_photos.ukbench_mini(get_settings(data_dir=tmp_path / "data"))
    assert relative_files(root) == relative_files(shared / "ukbench_mini")
    assert (root / "g0013" / "ukbench00055.jpg").is_file()


def test_a_changed_download_is_refused_and_leaves_nothing(shared, tmp_path, monkeypatch):
    members = tmp_path / "archive"
    members.mkdir()
    for photo in list_images(shared / "ukbench_mini"):
        shutil.copy(photo, members / photo.name)
    changed = members / "ukbench00007.jpg"
    changed.write_bytes(changed.read_bytes() + b"\0")  # one byte more: same count, other bytes
    monkeypatch.setattr(real_photos, "UKBENCH_URL", members.as_uri() + "/ukbench{:05d}.jpg")
    with pytest.raises(DatasetError, match="differ from the published set"):
        real_photos.ukbench_mini(get_settings(data_dir=tmp_path / "data"))
    assert not (tmp_path / "data" / "ukbench_mini").exists()
    assert not (tmp_path / "data" / "ukbench_mini.part").exists()


def test_a_present_folder_missing_a_photo_is_named(shared, tmp_path):
    copy = tmp_path / "data" / "ukbench_mini"
    shutil.copytree(shared / "ukbench_mini", copy)
    (copy / "g0002" / "ukbench00009.jpg").unlink()
    with pytest.raises(DatasetError, match=r"ukbench_mini holds 55 images, expected 56"):
        real_photos.ukbench_mini(get_settings(data_dir=tmp_path / "data"))
