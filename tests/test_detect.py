"""Object detection: checksum before unpickling, largest-box choice, fallback, real detections, crop cache."""
import hashlib
import json
import os
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from PIL import Image

from imgsearch_helpers.config import get_settings
from imgsearch_helpers.data.images import ImageError, load_image
from imgsearch_helpers.data.tutorial import object_photos
from imgsearch_helpers.models.detect import (
    CHECKPOINTS,
    Box,
    ChecksumMismatch,
    DetectorError,
    chosen_box,
    crop_paths,
    crop_to,
    largest_box,
    load_detector,
    verify_checkpoint,
)
from imgsearch_helpers.models.detect_runtime import MAX_BOX_SHIFT, MAX_SCORE_DIFF
from imgsearch_helpers.runtime import Export


class WritesAMarker:
    """Unpickling this writes a file: proof that a checkpoint was (or was not) loaded."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture(scope="module")
def detector():
    return load_detector("yolov5n", get_settings())


@pytest.fixture(scope="module")
def photos():
    return object_photos(get_settings())


def box(x1, y1, x2, y2, score=0.5, label="thing"):
    return Box(x1, y1, x2, y2, score, label)


def test_largest_box_by_area_then_score():
    small, big, big_sure = box(0, 0, 10, 10), box(0, 0, 30, 20, 0.4), box(5, 5, 35, 25, 0.9)
    assert largest_box([small, big]) is big
    assert largest_box([big, big_sure, small]) is big_sure  # same area: the higher score
    assert largest_box([]) is None
    assert box(10, 10, 5, 5).area == 0


def test_crop_to_clips_to_the_image_and_falls_back_to_the_whole_image():
    image = Image.new("RGB", (100, 60), "white")
    assert crop_to(image, None) is image
    assert crop_to(image, box(-20, 10, 50, 200)).size == (50, 50)
    assert crop_to(image, box(40, 40, 41, 41)) is image  # a box under 2 px is no crop


def test_a_checkpoint_with_the_wrong_sha256_is_never_unpickled(tmp_path):
    marker = tmp_path / "unpickled"
    weights = tmp_path / "weights"
    weights.mkdir()
    (weights / "yolov5n.pt").write_bytes(pickle.dumps(WritesAMarker(marker)))
    with pytest.raises(ChecksumMismatch, match=r"yolov5n\.pt has sha256 .* expected 4f180cf2"):
        load_detector("yolov5n", get_settings(weights_dir=weights))
    assert not marker.exists()


def test_unpinned_checkpoint_needs_a_checksum_from_the_user(tmp_path, monkeypatch):
    monkeypatch.delenv("IMGSEARCH_DETECTOR_SHA256", raising=False)
    path = tmp_path / "yolov5s.pt"
    path.write_bytes(b"not a checkpoint")
    digest = hashlib.sha256(b"not a checkpoint").hexdigest()
    assert CHECKPOINTS["yolov5s"].sha256 is None
    with pytest.raises(DetectorError, match=f"sha256 {digest}.*IMGSEARCH_DETECTOR_SHA256={digest}"):
        load_detector("yolov5s", get_settings(weights_dir=tmp_path))
    verify_checkpoint(path, digest.upper())  # a matching value (any case) is accepted


def test_unknown_detector_name():
    with pytest.raises(ValueError, match="unknown detector 'yolo9000'"):
        load_detector("yolo9000")


def test_detector_finds_the_main_object_of_real_photos(detector, photos):
    images = [load_image(p) for p in photos]
    found = detector.detect(images)
    assert len(found) == len(photos)
    labels = [{b.label for b in boxes} for boxes in found]
    assert "truck" in labels[0] and "dog" in labels[1] and "laptop" in labels[2]
    dog = largest_box(found[1])
    assert dog.label == "dog" and dog.score >= detector.confidence
    assert 0 <= dog.x1 < dog.x2 <= images[1].width and 0 <= dog.y1 < dog.y2 <= images[1].height


def test_crop_paths_cuts_the_largest_box_and_reuses_its_crops(detector, photos, tmp_path):
    settings = get_settings(cache_dir=tmp_path)
    blank = tmp_path / "blank.png"
    Image.new("RGB", (320, 240), (128, 128, 128)).save(blank)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 not really a jpeg")
    crops = crop_paths([photos[1], blank, broken], detector, settings, progress=False)
    dog = chosen_box(crops[0])
    assert dog.label == "dog"
    assert Image.open(crops[0]).size == (round(dog.x2) - int(dog.x1), round(dog.y2) - int(dog.y1))
    assert chosen_box(crops[1]) is None and Image.open(crops[1]).size == (320, 240)  # nothing found: whole image
    assert crops[2] == broken  # unreadable: left for the embedding step to report
    stamp = crops[0].stat().st_mtime_ns
    assert crop_paths([photos[1]], detector, settings, progress=False) == [crops[0]]
    assert crops[0].stat().st_mtime_ns == stamp  # not detected and written again


def test_a_run_with_every_crop_cached_shows_no_progress_bar(detector, photos, tmp_path, capsys):
    settings = get_settings(cache_dir=tmp_path)
    crop_paths([photos[1]], detector, settings)
    assert "detect" in capsys.readouterr().err  # one image to detect: a bar
    crop_paths([photos[1]], detector, settings)
    assert "detect" not in capsys.readouterr().err  # nothing to detect: no "0img" bar


def test_loading_the_detector_keeps_pillows_errors_for_bad_files(detector, tmp_path):
    """ultralytics (imported by yolov5) patches Image.open; a non-image must still be an ImageError."""
    assert detector is not None
    fake = tmp_path / "notes.jpg"
    fake.write_text("not an image")
    with pytest.raises(ImageError, match="notes.jpg: not an image file"):
        load_image(fake)


def test_an_images_boxes_do_not_depend_on_the_other_images_passed_with_it(detector, photos):
    truck, dog, desk = (load_image(p) for p in photos)
    alone = detector.detect([truck])[0]
    assert detector.detect([dog, truck, desk])[1] == alone
    assert {b.label for b in alone} >= {"truck", "person"}


def test_loading_the_detector_leaves_matplotlib_and_pillow_as_they_were():
    """yolov5 switches matplotlib to Agg and ultralytics patches Image.open when imported."""
    script = textwrap.dedent("""
        import matplotlib
        matplotlib.use("svg")
        from PIL import Image
        pillow_open = Image.open
        from imgsearch_helpers.models.detect import load_detector
        load_detector("yolov5n")
        print(matplotlib.get_backend(), Image.open is pillow_open)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["svg", "True"]


def test_the_first_detector_on_a_machine_prints_no_settings_notice(tmp_path):
    """ultralytics announces a new settings file, with the home path, on its first import."""
    script = textwrap.dedent("""
        import os
        from imgsearch_helpers.models.detect import load_detector
        load_detector("yolov5n")
        print("YOLO_VERBOSE" in os.environ)
    """)
    env = {**os.environ, "YOLO_CONFIG_DIR": str(tmp_path)}
    env.pop("YOLO_VERBOSE", None)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert list(tmp_path.rglob("settings.json")), "ultralytics did not create its settings: not a first import"
    assert "Settings" not in done.stdout + done.stderr and str(tmp_path) not in done.stdout + done.stderr
    assert done.stdout.split() == ["False"]  # the variable is not left behind


@pytest.fixture(scope="module")
def torch_detector():
    return load_detector("yolov5n", get_settings(), backend="torch")


def overlap(a, b) -> float:
    """Intersection over union of two boxes."""
    width, height = min(a.x2, b.x2) - max(a.x1, b.x1), min(a.y2, b.y2) - max(a.y1, b.y1)
    inter = max(width, 0) * max(height, 0)
    return inter / ((a.x2 - a.x1) * (a.y2 - a.y1) + (b.x2 - b.x1) * (b.y2 - b.y1) - inter)


def test_the_default_detector_runs_on_openvino_with_pytorchs_boxes(detector, torch_detector, photos):
    """The networks agree on the real photos within the export check's bars. After non-maximum
    suppression a box may still move a pixel: two candidates whose scores differ by less than the
    runtimes do (seen: a cup, 0.6918626 against 0.6918623, boxes 1.1 px apart) swap places."""
    assert detector.backend.startswith("openvino-") and detector.backend.endswith("-f32")
    assert torch_detector.backend.startswith("torch-")
    images = [load_image(p) for p in photos]
    exported_network, torch_network = detector.model.model.model, torch_detector.model.model.model
    for image in images:
        pixels = torch.from_numpy(np.asarray(image.convert("RGB").resize((640, 640)), np.float32).transpose(2, 0, 1)
                                  [None].copy() / 255)
        with torch.no_grad():
            difference = (exported_network(pixels) - torch_network(pixels)[0]).abs()
        assert difference[..., :4].max() <= MAX_BOX_SHIFT and difference[..., 4:].max() <= MAX_SCORE_DIFF
    for exported, reference in zip(detector.detect(images), torch_detector.detect(images)):
        assert [b.label for b in exported] == [b.label for b in reference] and exported
        for a, b in zip(exported, reference):
            assert overlap(a, b) >= 0.95 and abs(a.score - b.score) < 1e-3


def test_the_detector_export_is_written_once_checked_per_runtime_and_reused(tmp_path):
    settings = get_settings(cache_dir=tmp_path)
    first = load_detector("yolov5n", settings, backend="openvino")
    export = Export(tmp_path, f"yolov5-{first.sha256[:16]}")  # the folder an existing cache has
    meta = json.loads(export.meta_file.read_text())
    assert list(meta["checks"]) == [first.backend]
    assert meta["checks"][first.backend]["box_px"] <= MAX_BOX_SHIFT
    stamp = export.onnx.stat().st_mtime_ns
    again = load_detector("yolov5n", settings, backend="openvino")
    assert again.backend == first.backend and export.onnx.stat().st_mtime_ns == stamp


def test_a_runtime_that_moves_boxes_leaves_the_detector_on_pytorch(tmp_path, monkeypatch):
    import imgsearch_helpers.models.detect_runtime as runtime

    settings = get_settings(cache_dir=tmp_path)
    monkeypatch.setattr(runtime, "MAX_BOX_SHIFT", -1.0)  # no runtime can agree this closely
    with pytest.warns(UserWarning, match="boxes unlike PyTorch's"):
        fallback = load_detector("yolov5n", settings, backend="openvino")
    assert fallback.backend.startswith("torch-")
    assert "dog" in {b.label for b in fallback.detect([load_image(object_photos(settings)[1])])[0]}


def test_crops_are_kept_apart_per_runtime(detector, torch_detector, photos, tmp_path):
    settings = get_settings(cache_dir=tmp_path)
    exported, reference = (crop_paths([photos[0]], d, settings, progress=False)[0] for d in (detector, torch_detector))
    assert exported.parent != reference.parent and exported.name == reference.name
    assert chosen_box(exported).label == chosen_box(reference).label == "truck"
