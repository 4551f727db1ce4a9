"""imgsearch_helpers.data.tutorial (dataset checks, catalog, queries, ground truth, slices) and .download."""
import hashlib
import http.server
import os
import random
import threading
import zipfile
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from imgsearch_helpers.config import get_settings
from imgsearch_helpers.data import tutorial as data
from imgsearch_helpers.data.download import DownloadError, download, safe_extract
from imgsearch_helpers.data.folders import list_images, scan_folder
from imgsearch_helpers.data.tutorial import (
    DatasetError,
    ground_truth,
    load_queries,
    slice_labels,
    verify_dataset,
)

# The mirror next to the repo, unless IMGSEARCH_DATA_DIR names another (get_settings resolves it).


def write_jpeg(path, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), (seed * 40 % 256, 80, 160)).save(path)
    return path


# ---------------------------------------------------------------- a fake dataset for verify_dataset


def make_fake_dataset(root, labels=("ant", "bee", "cat"), per_label=2):
    """The real layout in miniature: train/<label>/*.JPEG, test/<label>/*.JPEG and the CSV."""
    rows = ["id,path,label"]
    for i, label in enumerate(labels):
        for j in range(per_label):
            name = f"n{i:04d}_{j}.JPEG"
            write_jpeg(root / "train" / label / name, seed=i)
            rows.append(f"{len(rows) - 1},./train/{label}/{name},{label}")
        write_jpeg(root / "test" / label / f"n{i:04d}_q.JPEG", seed=i)
    (root / data.CSV_NAME).write_text("\n".join(rows) + "\n")
    return root


@pytest.fixture
def fake_root(tmp_path):
    return make_fake_dataset(tmp_path / data.DATASET_DIR)


@pytest.fixture
def fake_root_accepted(fake_root, monkeypatch):
    """The fake dataset with the pinned hash and counts swapped for its own."""
    digest = hashlib.sha256((fake_root / data.CSV_NAME).read_bytes()).hexdigest()
    monkeypatch.setattr(data, "CSV_SHA256", digest)
    monkeypatch.setattr(data, "EXPECTED_FILES", {"train": 6, "test": 3})
    return fake_root


def test_fake_csv_fails_the_pinned_hash(fake_root):
    csv = fake_root / data.CSV_NAME
    with pytest.raises(DatasetError) as info:
        verify_dataset(fake_root)
    message = str(info.value)
    assert str(csv) in message and "sha256" in message
    assert hashlib.sha256(csv.read_bytes()).hexdigest() in message
    assert data.CSV_SHA256 in message


def test_missing_csv(fake_root):
    (fake_root / data.CSV_NAME).unlink()
    with pytest.raises(DatasetError, match="is missing"):
        verify_dataset(fake_root)


def test_fake_dataset_passes_with_its_own_hash_and_counts(fake_root_accepted):
    verify_dataset(fake_root_accepted)  # no error: the checks below fail for one reason each


def test_wrong_train_count(fake_root_accepted):
    next((fake_root_accepted / "train" / "bee").iterdir()).unlink()
    with pytest.raises(DatasetError) as info:
        verify_dataset(fake_root_accepted)
    assert str(fake_root_accepted / "train") in str(info.value)
    assert "holds 5 images, expected 6" in str(info.value)


def test_wrong_test_count(fake_root_accepted):
    write_jpeg(fake_root_accepted / "test" / "cat" / "extra.jpg")
    with pytest.raises(DatasetError, match="holds 4 images, expected 3") as info:
        verify_dataset(fake_root_accepted)
    assert str(fake_root_accepted / "test") in str(info.value)


def test_non_image_files_are_not_counted(fake_root_accepted):
    (fake_root_accepted / "train" / "ant" / "notes.txt").write_text("x")
    (fake_root_accepted / "train" / "ant" / ".DS_Store").write_bytes(b"x")
    verify_dataset(fake_root_accepted)


def test_dataset_root_without_download_reports_missing_dataset(tmp_path):
    settings = get_settings(data_dir=tmp_path, slice="full")
    with pytest.raises(DatasetError, match="dataset not found"):
        data.dataset_root(settings, download_missing=False)


# ---------------------------------------------------------------- the real dataset


# ---------------------------------------------------------------- slices, queries, ground truth


def test_slice_labels_is_deterministic_and_order_free():
    labels = [f"label_{i:03d}" for i in range(100)] * 3
    shuffled = labels.copy()
    random.Random(0).shuffle(shuffled)
    tiny = slice_labels(labels, "tiny")
    assert tiny == slice_labels(shuffled, "tiny") == [f"label_{i:03d}" for i in range(0, 100, 10)]
    assert slice_labels(shuffled, "full") == sorted(set(labels))


def test_slice_labels_rejects_unknown_slice():
    with pytest.raises(ValueError, match="huge"):
        slice_labels(["a"], "huge")


def test_load_queries_from_a_folder(tmp_path):
    folder = tmp_path / "my queries"
    write_jpeg(folder / "cat" / "a.jpg")
    write_jpeg(folder / "cat" / "b.PNG")
    write_jpeg(folder / "dog" / "c.jpeg")
    write_jpeg(folder / "loose.jpg")  # not inside a <label>/ folder: ignored
    (folder / "dog" / "readme.txt").write_text("not an image")
    queries = load_queries(folder)
    assert sorted(zip(queries["label"], [Path(p).name for p in queries["path"]])) == [
        ("cat", "a.jpg"),
        ("cat", "b.PNG"),
        ("dog", "c.jpeg"),
    ]
    assert all(Path(p).is_absolute() and Path(p).is_file() for p in queries["path"])
    assert load_queries(str(folder)).equals(queries)


def test_a_folder_is_listed_by_the_gallery_walk(tmp_path, monkeypatch):
    folder = tmp_path / "photos"
    photo = write_jpeg(folder / "cat" / "a.jpg")
    write_jpeg(folder / "cat" / "b.png")
    write_jpeg(folder / "loose.jpg")
    (folder / "dog").mkdir()
    (folder / "dog" / "again.jpg").symlink_to(photo)  # the same file by another path
    (folder / "dog" / "gone.jpg").symlink_to(tmp_path / "nothing.jpg")  # dangling
    os.mkfifo(folder / "dog" / "pipe.jpg")
    (folder / "linked").symlink_to(folder / "cat")  # the same folder by another path
    listed = list_images(folder)
    assert [p.relative_to(folder).as_posix() for p in listed] == ["cat/a.jpg", "cat/b.png", "loose.jpg"]
    assert listed == sorted(Path(p) for p in scan_folder(folder)["path"])  # one walk for a gallery and a folder
    monkeypatch.chdir(tmp_path)
    queries = load_queries("photos")  # given relative: the loose file is still no query
    assert sorted(Path(p).name for p in queries["path"]) == ["a.jpg", "b.png"] and set(queries["label"]) == {"cat"}


def test_load_queries_folder_without_images(tmp_path):
    folder = tmp_path / "empty queries"
    (folder / "cat").mkdir(parents=True)
    (folder / "cat" / "notes.txt").write_text("x")
    with pytest.raises(DatasetError, match="no query images") as info:
        load_queries(folder)
    assert str(folder) in str(info.value)


def test_load_queries_missing_folder(tmp_path):
    folder = tmp_path / "nowhere"
    with pytest.raises(DatasetError, match="not found") as info:
        load_queries(folder)
    assert str(folder) in str(info.value)


def test_ground_truth_by_label():
    catalog = pd.DataFrame({"id": [0, 1, 2, 3], "label": ["cat", "dog", "cat", "eel"]})
    queries = pd.DataFrame({"label": ["dog", "cat", "cat"]})
    assert ground_truth(catalog, queries) == [{1}, {0, 2}, {0, 2}]


def test_ground_truth_names_an_unknown_query_label():
    catalog = pd.DataFrame({"id": [0, 1], "label": ["cat", "dog"]})
    queries = pd.DataFrame({"label": ["cat", "zebra"]})
    with pytest.raises(DatasetError, match="1 query label.*zebra"):
        ground_truth(catalog, queries)


# ---------------------------------------------------------------- download and safe_extract


def make_zip(path, entries):
    """entries: (name or ZipInfo, content) pairs."""
    with zipfile.ZipFile(path, "w") as archive:
        for name, content in entries:
            archive.writestr(name, content)
    return path


def symlink_entry(name):
    info = zipfile.ZipInfo(name)
    info.external_attr = 0o120777 << 16
    return info


def files_under(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        ("../evil.txt", "unsafe path"),
        ("ok/../../evil.txt", "unsafe path"),
        ("ABSOLUTE", "unsafe path"),
        ("C:/evil.txt", "unsafe path"),
        (symlink_entry("link"), "symbolic link"),
    ],
)
def test_safe_extract_refuses_unsafe_members(tmp_path, entry, reason):
    work = tmp_path / "work"
    work.mkdir()
    if entry == "ABSOLUTE":
        entry = str(tmp_path / "absolute_evil.txt")
    archive = make_zip(work / "bad.zip", [("good.txt", "fine"), (entry, "../outside_target")])
    before = files_under(tmp_path)
    with pytest.raises(DownloadError, match=reason) as info:
        safe_extract(archive, work / "dest")
    assert str(archive) in str(info.value)
    assert files_under(tmp_path) == before  # nothing written anywhere, not even inside dest


def test_safe_extract_good_zip_replaces_dest(tmp_path):
    archive = make_zip(tmp_path / "good.zip", [("a.txt", "alpha"), ("sub/b.txt", "beta")])
    dest = tmp_path / "dest"
    (dest / "stale").mkdir(parents=True)
    assert safe_extract(archive, dest) == dest
    assert (dest / "a.txt").read_text() == "alpha"
    assert (dest / "sub" / "b.txt").read_text() == "beta"
    assert files_under(dest) == ["a.txt", "sub", "sub/b.txt"]  # old content gone
    assert not (tmp_path / "dest.extracting").exists()


def test_download_file_url(tmp_path):
    source = tmp_path / "source.bin"
    source.write_bytes(bytes(range(256)) * 100)
    dest = tmp_path / "sub" / "copy.bin"
    assert download(source.as_uri(), dest) == dest
    assert dest.read_bytes() == source.read_bytes()
    assert not dest.with_name("copy.bin.part").exists()


@pytest.fixture
def no_proxy(monkeypatch):
    """Talk to 127.0.0.1 directly even where the environment sets a proxy."""
    for var in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/x", "file:///nonexistent/imgsearch/missing.zip"])
def test_download_failure_leaves_nothing(tmp_path, no_proxy, url):
    dest = tmp_path / "out.zip"
    with pytest.raises(DownloadError, match="could not download") as info:
        download(url, dest, timeout=5)
    assert url in str(info.value)
    assert files_under(tmp_path) == []


class PartialSender(http.server.BaseHTTPRequestHandler):
    """Promises 100,000 bytes and sends 1,000; on /stall it then waits instead of closing."""

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "100000")
        self.end_headers()
        self.wfile.write(b"x" * 1000)
        self.wfile.flush()
        if self.path == "/stall":
            self.server.release.wait(10)

    def log_message(self, *args):
        pass


@pytest.fixture
def partial_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), PartialSender)
    server.daemon_threads = True
    server.release = threading.Event()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.release.set()
    server.shutdown()
    server.server_close()


def test_download_stalled_mid_transfer_removes_the_part_file(tmp_path, partial_server, no_proxy):
    with pytest.raises(DownloadError, match="timed out"):
        download(partial_server + "/stall", tmp_path / "out.zip", timeout=0.3)
    assert files_under(tmp_path) == []


def test_download_shorter_than_content_length_is_an_error(tmp_path, partial_server, no_proxy):
    with pytest.raises(DownloadError):
        download(partial_server + "/short", tmp_path / "out.zip", timeout=5)
    assert files_under(tmp_path) == []
