"""What belongs to a gallery (`data.rules`): hidden files and folders, caches, the set-aside folder
and the ignore file's patterns are left out of a walk and counted by kind; nothing else is."""
import pytest
from PIL import Image

from imgsearch_helpers.data.folders import scan_folder
from imgsearch_helpers.data.rules import describe_ignored
from imgsearch_helpers.errors import DatasetError


def image(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8)).save(path)


@pytest.fixture
def folder(tmp_path):
    for relpath in ("a/1.jpg", "a/.2.jpg", ".cache/3.jpg", "@eaDir/4.jpg", ".imgsearch-trash/5.jpg", "raw/6.jpg",
                    "b/7.png", "b/8.png", "b/deep/9.PNG"):
        image(tmp_path / relpath)
    (tmp_path / "b" / "clip.MOV").write_bytes(b"x")
    (tmp_path / "a" / "shot.CR2").write_bytes(b"x")
    (tmp_path / ".imgsearchignore").write_text("raw/\nb/*.png\n!b/8.png\n")
    return tmp_path


def kinds(gallery) -> dict:
    return {kind: entry["count"] for kind, entry in gallery.attrs["ignored"].items()}


def test_a_walk_keeps_the_photos_and_counts_what_it_leaves_out_by_kind(folder):
    gallery = scan_folder(folder)
    assert sorted(gallery["relpath"]) == ["a/1.jpg", "b/8.png", "b/deep/9.PNG"]  # b/*.png is one level deep
    assert kinds(gallery) == {"hidden file": 2, "hidden folder": 1, "cache folder": 1, "set aside": 1,
                              "in .imgsearchignore": 2, ".mov": 1, ".cr2 (RAW, not indexed)": 1}


def test_include_hidden_takes_in_hidden_photos_but_never_the_set_aside_folder_or_caches(folder):
    gallery = scan_folder(folder, include_hidden=True)
    assert {"a/.2.jpg", ".cache/3.jpg"} <= set(gallery["relpath"])
    assert not any(p.startswith((".imgsearch-trash", "@eaDir")) for p in gallery["relpath"])


def test_the_report_line_names_folders_and_counts_files():
    line = describe_ignored({".mov": {"count": 12, "examples": ["a.mov"]},
                             "hidden folder": {"count": 2, "examples": [".thumbnails", ".git"]}})
    assert line == "ignored: 12 .mov, 2 hidden folders (.thumbnails, .git)"
    assert describe_ignored({}) == ""


def test_a_folder_of_only_left_out_files_says_why_it_has_no_images(tmp_path):
    image(tmp_path / ".thumbnails" / "1.jpg")
    with pytest.raises(DatasetError, match=r"no images under .*ignored: 1 hidden folder \(\.thumbnails\)"):
        scan_folder(tmp_path)


def test_an_ignore_file_that_is_not_text_is_a_clear_error(tmp_path):
    image(tmp_path / "1.jpg")
    (tmp_path / ".imgsearchignore").write_bytes(b"\xff\xfe\x00junk")
    with pytest.raises(DatasetError, match=r"\.imgsearchignore: cannot read its patterns"):
        scan_folder(tmp_path)
