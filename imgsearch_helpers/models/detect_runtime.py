"""YOLOv5's network on OpenVINO (or ONNX Runtime) inside yolov5's own letterbox and non-maximum
suppression: only the network is swapped, so boxes are found, filtered and scaled exactly as before.

The network goes through the export cache (`runtime.export`) once per checkpoint
(`<cache>/models/yolov5-<sha>/`, any image size); what it brings is its own agreement measure:
on fixed images, every prediction's box within MAX_BOX_SHIFT pixels and its scores within
MAX_SCORE_DIFF of PyTorch's. A runtime that fails, or none installed, leaves the detector on
PyTorch with a warning. Measured by `benchmarks/detect.py` (`detect.json`: both runtimes, same run).
"""
from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import torch  # imported with yolov5 anyway: its checkpoints are pickled torch modules

from ..runtime.export import Export, Graph, open_checked

MAX_BOX_SHIFT = 0.5  # pixels, at the network's input size
MAX_SCORE_DIFF = 1e-3
CHECK_SHAPES = ((480, 640), (640, 640))  # a landscape photo's letterbox and a square one
# The detector has no bf16 or INT8 variant: boxes are checked in f32 only.
RUNTIMES = {"auto": ("openvino-f32", "onnxruntime"), "openvino": ("openvino-f32",), "openvino-f32": ("openvino-f32",),
            "openvino-int8": ("openvino-f32",), "onnxruntime": ("onnxruntime",), "torch": ()}


def exported_network(network, sha256: str, cache_dir: Path, backend: str):
    """A stand-in for yolov5's `DetectionModel` that runs on the first runtime of `backend` that is
    installed and passes its check, and that runtime's name; (None, None) to stay on PyTorch."""
    export = Export(cache_dir, f"yolov5-{sha256[:16]}")
    runtime = open_checked(export, RUNTIMES.get(backend, RUNTIMES["auto"]), Boxes(network),
                           lambda: write_export(export, network), named=backend != "auto")
    return (None, None) if runtime is None else (ExportedNetwork(runtime), runtime.name)


def write_export(export: Export, network) -> None:
    module = copy.deepcopy(network).eval()
    module.model[-1].dynamic = True  # anchor grids from the input's shape, so any size works
    export.write({"model": Graph(module, {"images": check_images()[0]}, output="predictions",
                                 dynamic={"images": {0: "batch", 2: "height", 3: "width"},
                                          "predictions": {0: "batch", 1: "anchors"}})}, {})


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


class Boxes:
    """The detector's agreement with PyTorch: the largest box-coordinate and score differences."""

    subject = "boxes"

    def __init__(self, network):
        self.network = network

    def measure(self, runtime) -> dict:
        box_px = score = 0.0
        for image in check_images():
            with torch.no_grad():
                reference = self.network(torch.from_numpy(image))[0].numpy()
            difference = np.abs(runtime.run(image) - reference)
            box_px, score = max(box_px, float(difference[..., :4].max())), max(score, float(difference[..., 4:].max()))
        return {"box_px": box_px, "score": score}

    def passes(self, check: dict, backend: str) -> bool:
        return check["box_px"] <= MAX_BOX_SHIFT and check["score"] <= MAX_SCORE_DIFF

    def explain(self, check: dict, backend: str) -> str:
        return f"box shift {check['box_px']:.3f} px, score {check['score']:.5f}"


class ExportedNetwork(torch.nn.Module):
    """Takes yolov5's letterboxed float batch, returns its predictions (N, anchors, 5 + classes)."""

    def __init__(self, runtime):
        super().__init__()
        self.runtime = runtime
        # yolov5's AutoShape reads the device and dtype from the network's first parameter
        self.placeholder = torch.nn.Parameter(torch.zeros(1), requires_grad=False)

    def forward(self, images, *args, **kwargs):
        return torch.from_numpy(self.runtime.run(images.numpy()))
