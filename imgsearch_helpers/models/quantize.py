"""INT8 post-training quantization of an exported network (NNCF on OpenVINO), calibrated on
images of the tutorial gallery: the `openvino-int8` backend, measured beside the others in
`benchmarks/ingest.py` and used only when asked for by name (see the README for why).

Quantization moves the vectors more than a change of runtime does, so its check against PyTorch
has a bar of its own (`MIN_COSINE_INT8`): it catches a broken quantization; whether retrieval
survives is what the benchmark's mHR@10 tells.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..config import Settings
from ..errors import DatasetError
from ..images import load_image

CALIBRATION_IMAGES = 200  # every 5th gallery image, in file order
MIN_COSINE_INT8 = 0.95


def calibration_images(settings: Settings, preprocess, min_side: int) -> list[np.ndarray]:
    """Preprocessed gallery images of the tutorial dataset (which must be on disk already)."""
    gallery = Path(settings.data_dir) / "reverse_image_search" / "train"
    files = sorted(gallery.glob("*/*.JPEG"))[::5][:CALIBRATION_IMAGES]
    if not files:
        raise DatasetError(f"openvino-int8 calibrates on the tutorial gallery, which is not in {gallery}: run "
                           "notebook 1 (or `imgsearch ingest`) once to download it, or set IMGSEARCH_DATA_DIR")
    return [preprocess(load_image(file, min_side=min_side)) for file in files]


def quantize(onnx_file: Path, images: list[np.ndarray], out_xml: Path) -> None:
    """Write the INT8 model (OpenVINO IR) of `onnx_file`, its activation ranges taken on `images`."""
    import nncf
    import openvino

    model = openvino.Core().read_model(str(onnx_file))
    quantized = nncf.quantize(model, nncf.Dataset(images, lambda image: image[None]), subset_size=len(images),
                              preset=nncf.QuantizationPreset.MIXED)
    scratch = out_xml.with_name(out_xml.stem + ".part.xml")
    openvino.save_model(quantized, str(scratch))
    scratch.with_suffix(".bin").replace(out_xml.with_suffix(".bin"))
    scratch.replace(out_xml)  # the .xml last: a model file that exists is whole
