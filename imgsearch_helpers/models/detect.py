"""Object detection with YOLOv5 (PyPI `yolov5`): find boxes, crop the largest, cache the crops.

A YOLOv5 checkpoint is a pickle, and unpickling runs code, so a checkpoint is loaded only after
its sha256 matches a pinned value. Crops are written as image files under the cache folder,
keyed by the source image's content, so the embedding cache and a rerun reuse them.
"""
from __future__ import annotations

import json
import os
import sys
import warnings
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import matplotlib
from PIL import Image
from tqdm import tqdm

from .._io import atomic_path, sha256_file, write_json
from ..config import Settings, display_path, get_settings
from ..data.download import download
from ..data.images import load_image
from ..errors import ChecksumMismatch, DetectorError, ImageError, UsageError
from ..parallel import bounded_map

RELEASES = "https://github.com/ultralytics/yolov5/releases/download"


@dataclass(frozen=True)
class Checkpoint:
    url: str
    sha256: str | None  # None: no checksum verified by this project; the user must supply one


CHECKPOINTS = {
    # sha256 of the official file, checked against the copy used in this project's CI
    "yolov5n": Checkpoint(f"{RELEASES}/v6.1/yolov5n.pt",
                          "4f180cf23ba0717ada0badd6c685026d73d48f184d00fc159c2641284b2ac0a3"),
    "yolov5s": Checkpoint(f"{RELEASES}/v7.0/yolov5s.pt", None),
}


@dataclass(frozen=True)
class Box:
    x1: float
    y1: float
    x2: float
    y2: float
    score: float
    label: str

    @property
    def area(self) -> float:
        return max(0.0, self.x2 - self.x1) * max(0.0, self.y2 - self.y1)


def largest_box(boxes: Sequence[Box]) -> Box | None:
    """The box with the largest area (the higher score on a tie); None when there is none."""
    return max(boxes, key=lambda b: (b.area, b.score), default=None)


def crop_to(image: Image.Image, box: Box | None) -> Image.Image:
    """The image inside `box` (clipped to the image), or the whole image when there is no box."""
    if box is None:
        return image
    left, top = max(0, int(box.x1)), max(0, int(box.y1))
    right, bottom = min(image.width, int(round(box.x2))), min(image.height, int(round(box.y2)))
    if right - left < 2 or bottom - top < 2:
        return image
    return image.crop((left, top, right, bottom))


def verify_checkpoint(path: Path, expected: str | None) -> None:
    """Refuse a checkpoint whose sha256 is unknown or differs from the pinned value."""
    actual = sha256_file(path)
    if expected is None:
        raise DetectorError(
            f"{display_path(path)} has sha256 {actual}, and no checksum is pinned for it. It is a pickle "
            f"(loading runs code): compare the value with the publisher's, then set IMGSEARCH_DETECTOR_SHA256={actual}."
        )
    if actual != expected.lower():
        raise ChecksumMismatch(
            f"{display_path(path)} has sha256 {actual}, expected {expected}: refusing to load it "
            "(a corrupt or substituted checkpoint). Delete the file to download it again."
        )


def checkpoint_path(name: str, settings: Settings) -> Path:
    """The local checkpoint for `name`: from the weights folder, else downloaded into it."""
    if name not in CHECKPOINTS:
        raise UsageError(f"unknown detector {name!r}: choose one of {', '.join(CHECKPOINTS)}")
    path = settings.weights_dir / f"{name}.pt"
    if not path.is_file():
        download(CHECKPOINTS[name].url, path)
    return path


@contextmanager
def _pickle_loading_allowed():
    """torch >= 2.6 loads only plain tensors by default; YOLOv5 checkpoints are whole pickled models."""
    previous = os.environ.get("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD")
    os.environ["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] = "1"
    try:
        with warnings.catch_warnings():  # torch warns that it obeys the variable: we checked the sha256
            warnings.filterwarnings("ignore", "Environment variable TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", UserWarning)
            yield
    finally:
        if previous is None:
            os.environ.pop("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD")
        else:
            os.environ["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] = previous


def _import_yolov5():
    import huggingface_hub.errors

    # yolov5 7.0.14 (its last release) imports `huggingface_hub.utils._errors`, which newer
    # huggingface_hub moved to `huggingface_hub.errors`; requirements.txt explains the pins.
    sys.modules.setdefault("huggingface_hub.utils._errors", huggingface_hub.errors)
    with _process_state_kept(), _ultralytics_quiet(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", "pkg_resources is deprecated", UserWarning)
        import yolov5
    # yolov5 calls the deprecated torch.cuda.amp.autocast on every call, even on the CPU: this one
    # message is left out for the process, so the model's own call (notebook 4) is quiet too
    warnings.filterwarnings("ignore", r".*torch\.cuda\.amp\.autocast", FutureWarning)
    return yolov5


@contextmanager
def _ultralytics_quiet():
    """ultralytics announces the settings file it creates on its first import on a machine, with
    the user's home path, into the output of the notebook that loads the detector; its log level
    is fixed from YOLO_VERBOSE at import (a value the user set is kept)."""
    previous = os.environ.get("YOLO_VERBOSE")
    os.environ.setdefault("YOLO_VERBOSE", "False")
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("YOLO_VERBOSE", None)


@contextmanager
def _process_state_kept():
    """Undo what importing yolov5 changes for the whole process.

    ultralytics (imported by yolov5) replaces PIL's Image.open with a wrapper that tries to
    install a HEIF plugin on any unrecognised file (ModuleNotFoundError offline, instead of a
    clear ImageError), and yolov5.utils.plots switches matplotlib to Agg, which stops figures
    from showing in notebooks.
    """
    pillow_open, backend = Image.open, matplotlib.get_backend()
    try:
        yield
    finally:
        Image.open = pillow_open
        if matplotlib.get_backend() != backend:
            matplotlib.use(backend)


class Detector:
    """A YOLOv5 model on the CPU: `detect` takes PIL images and returns the boxes of each.

    Images go through the network one at a time: yolov5 pads a batch to its largest image, so a
    box would depend on which images shared its batch, and on 2 CPU cores single images were
    also faster (22.5 vs 17.5 images/s for batches of 8, yolov5n at 640 px).
    """

    def __init__(self, name: str, model, path: Path, sha256: str, confidence: float, backend: str = "torch"):
        self.name, self.model, self.path, self.sha256 = name, model, path, sha256
        self.confidence = model.conf = confidence
        self.backend = backend  # the runtime the network runs on, e.g. "openvino-2026.4.1-f32"

    def detect(self, images: Sequence[Image.Image], size: int = 640) -> list[list[Box]]:
        return [self._detect_one(image, size) for image in images]

    def _detect_one(self, image: Image.Image, size: int) -> list[Box]:
        results = self.model(image, size=size)
        names = results.names
        return [Box(*map(float, row[:5]), names[int(row[5])]) for row in results.xyxy[0].tolist()]

    def __repr__(self) -> str:
        return f"Detector({self.name}, {display_path(self.path)}, sha256 {self.sha256[:12]}, runs on {self.backend})"


def load_detector(name: str = "yolov5n", settings: Settings | None = None, confidence: float = 0.25,
                  backend: str | None = None) -> Detector:
    """Load a YOLOv5 checkpoint after checking its sha256 (pinned, or settings.detector_sha256).

    Its network runs on `backend` (default: settings.backend) as `detect_runtime` exports and
    checks it: OpenVINO f32 for `auto`, PyTorch for `torch` or when no exported runtime agrees.
    """
    settings = settings or get_settings()
    path = checkpoint_path(name, settings)
    expected = settings.detector_sha256 or CHECKPOINTS[name].sha256
    verify_checkpoint(path, expected)
    yolov5 = _import_yolov5()
    with _pickle_loading_allowed():
        model = yolov5.load(str(path.resolve()), device="cpu")  # an absolute path: a bare name means a hub id
    from ..runtime.backends import check_backend
    from .detect_runtime import exported_network
    from .embedder import torch_runtime_name

    backend = backend or settings.backend
    check_backend(backend)
    network, runtime = exported_network(model.model.model, expected, settings.cache_dir, backend)
    if network is not None:
        model.model.model = network  # AutoShape > DetectMultiBackend > the network: letterbox and NMS stay yolov5's
    return Detector(name, model, path, expected, confidence, runtime or torch_runtime_name())


def crop_paths(paths: Sequence[str | Path], detector: Detector, settings: Settings | None = None,
               progress: bool = True) -> list[Path]:
    """For each image, a file holding its largest detected object (or the whole image if none).

    Crops live under `<cache>/crops/<detector sha>-conf<threshold>-<runtime>/`, named by the source file's
    sha256, with the chosen box beside them as JSON (written last: it marks a finished crop);
    images already cropped are not detected again. The next image is decoded on a worker thread
    while the detector runs. An unreadable image keeps its own path, so that embedding reports
    it like any other bad file.
    """
    settings = settings or get_settings()
    folder = settings.cache_dir / "crops" / f"{detector.sha256[:16]}-conf{detector.confidence}-{detector.backend}"
    folder.mkdir(parents=True, exist_ok=True)
    targets = [_crop_file(Path(path), folder) for path in paths]
    todo = [(i, Path(p)) for i, (p, t) in enumerate(zip(paths, targets))
            if t.parent == folder and not t.with_suffix(".json").exists()]
    bar = progress and bool(todo)  # a run with every crop cached shows no empty bar
    for i, image in tqdm(bounded_map(_decode, todo, workers=1, ahead=4), total=len(todo),
                         desc=f"detect {detector.name}", unit="img", disable=not bar):
        if image is None:
            targets[i] = Path(paths[i])
            continue
        box = largest_box(detector.detect([image])[0])
        with atomic_path(targets[i]) as scratch:
            crop_to(image, box).save(scratch, format="JPEG", quality=95)
        write_json(targets[i].with_suffix(".json"), asdict(box) if box else None)  # last: marks a finished crop
    return targets


def _crop_file(path: Path, folder: Path) -> Path:
    """Where the crop of `path` is kept; the path itself when the file cannot be read."""
    try:
        return folder / f"{sha256_file(path)}.jpg"
    except OSError:
        return path


def _decode(item: tuple[int, Path]) -> tuple[int, Image.Image | None]:
    position, path = item
    try:
        return position, load_image(path)
    except ImageError:
        return position, None


def chosen_box(crop: Path) -> Box | None:
    """The box a crop file was cut from (None: no detection, the crop is the whole image)."""
    data = json.loads(Path(crop).with_suffix(".json").read_text())
    return Box(**data) if data else None
