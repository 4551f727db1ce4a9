"""YOLOv5's network on OpenVINO (or ONNX Runtime) inside yolov5's own letterbox and non-maximum
suppression: only the network is swapped, so boxes are found, filtered and scaled exactly as before.

The network is exported to ONNX once per checkpoint (`<cache>/models/yolov5-<sha>/`, any image
size) and each runtime version is checked against PyTorch on fixed images when it first loads the
export: every prediction's box within MAX_BOX_SHIFT pixels and its scores within MAX_SCORE_DIFF
of PyTorch's. A runtime that fails, or none installed, leaves the detector on PyTorch with a
warning. Measured by `benchmarks/detect.py` (`detect.json`: both runtimes, same run).
"""
from __future__ import annotations

import copy
import warnings
from pathlib import Path

import numpy as np
import torch  # imported with yolov5 anyway: its checkpoints are pickled torch modules

from .._io import atomic_path, read_json, write_json
from . import backends

MAX_BOX_SHIFT = 0.5  # pixels, at the network's input size
MAX_SCORE_DIFF = 1e-3
CHECK_SHAPES = ((480, 640), (640, 640))  # a landscape photo's letterbox and a square one
# The detector has no bf16 or INT8 variant: boxes are checked in f32 only.
RUNTIMES = {"auto": ("openvino-f32", "onnxruntime"), "openvino": ("openvino-f32",), "openvino-f32": ("openvino-f32",),
            "openvino-int8": ("openvino-f32",), "onnxruntime": ("onnxruntime",), "torch": ()}


def exported_network(network, sha256: str, cache_dir: Path, backend: str):
    """A stand-in for yolov5's `DetectionModel` that runs on the first runtime of `backend` that is
    installed and passes its check, and that runtime's name; (None, None) to stay on PyTorch."""
    export = DetectorExport(cache_dir, sha256)
    candidates = [name for name in RUNTIMES.get(backend, RUNTIMES["auto"]) if backends.installed(name)]
    if candidates and not export.exists():
        export.write(network)
    for candidate in candidates:
        runtime = backends.open_runtime(candidate, export.onnx, export.folder / "compiled")
        check = export.check(runtime, network)
        if check["box_px"] <= MAX_BOX_SHIFT and check["score"] <= MAX_SCORE_DIFF:
            return ExportedNetwork(runtime), runtime.name
        warnings.warn(f"{runtime.name} finds boxes unlike PyTorch's (box shift {check['box_px']:.3f} px, score "
                      f"{check['score']:.5f}): the detector runs on PyTorch", stacklevel=3)
    return None, None


class DetectorExport:
    """One checkpoint's network in the cache: `model.onnx` and `meta.json` (each runtime's check)."""

    def __init__(self, cache_dir: Path, sha256: str):
        self.folder = Path(cache_dir) / "models" / f"yolov5-{sha256[:16]}"
        self.onnx, self.meta_file = self.folder / "model.onnx", self.folder / "meta.json"

    def exists(self) -> bool:
        return self.onnx.is_file() and self.meta_file.is_file()

    def write(self, network) -> None:
        module = copy.deepcopy(network).eval()
        module.model[-1].dynamic = True  # anchor grids from the input's shape, so any size works
        self.folder.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings(), atomic_path(self.onnx) as scratch:
            warnings.simplefilter("ignore")  # the exporter's tracer notices
            torch.onnx.export(module, (torch.from_numpy(check_images()[0]),), str(scratch), input_names=["images"],
                              output_names=["predictions"], opset_version=17, dynamo=False,
                              dynamic_axes={"images": {0: "batch", 2: "height", 3: "width"},
                                            "predictions": {0: "batch", 1: "anchors"}})
        write_json(self.meta_file, {"checks": {}})

    def check(self, runtime, network) -> dict:
        """`runtime` against PyTorch on the fixed images, measured once per runtime version."""
        meta = read_json(self.meta_file)
        if runtime.name not in meta["checks"]:
            meta["checks"][runtime.name] = agreement(runtime, network)
            write_json(self.meta_file, meta)
        return meta["checks"][runtime.name]


def check_images() -> list[np.ndarray]:
    """Seeded smooth colour fields at each CHECK_SHAPES size, scaled to [0, 1] as yolov5 feeds them."""
    from PIL import Image

    rng = np.random.default_rng(0)
    images = []
    for height, width in CHECK_SHAPES:
        field = Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)).resize((width, height),
                                                                                        Image.Resampling.BICUBIC)
        images.append((np.asarray(field, np.float32) / 255).transpose(2, 0, 1)[None].copy())
    return images


def agreement(runtime, network) -> dict:
    """The largest box-coordinate and score differences between `runtime` and PyTorch."""
    box_px = score = 0.0
    for image in check_images():
        with torch.no_grad():
            reference = network(torch.from_numpy(image))[0].numpy()
        difference = np.abs(runtime.run(image) - reference)
        box_px, score = max(box_px, float(difference[..., :4].max())), max(score, float(difference[..., 4:].max()))
    return {"box_px": box_px, "score": score}


class ExportedNetwork(torch.nn.Module):
    """Takes yolov5's letterboxed float batch, returns its predictions (N, anchors, 5 + classes)."""

    def __init__(self, runtime):
        super().__init__()
        self.runtime = runtime
        # yolov5's AutoShape reads the device and dtype from the network's first parameter
        self.placeholder = torch.nn.Parameter(torch.zeros(1), requires_grad=False)

    def forward(self, images, *args, **kwargs):
        return torch.from_numpy(self.runtime.run(images.numpy()))
