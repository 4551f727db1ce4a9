"""INT8 post-training quantization of an exported network (NNCF on OpenVINO), calibrated on
images of the tutorial gallery: the `openvino-int8` backend, measured beside the others in
`benchmarks/ingest.py` and used only when asked for by name (docs/runtimes.md says why).

Quantization moves the vectors more than a change of runtime does, so its check against PyTorch
has a bar of its own (`MIN_COSINE_INT8`): it catches a broken quantization; whether retrieval
survives is what the benchmark's mHR@10 tells. Measured on the check batch: 0.954 on a CPU with
VNNI; 0.917 on one without (AVX2), 0.928 there with NNCF's overflow fix, which this module applies
on such CPUs: without VNNI the int8 products are summed in pairs into 16 bits and can saturate, and
7-bit weights keep them in range. mHR@10 stayed within 0.002 of PyTorch's on both CPUs
(`benchmarks/results/ingest.json`, `ingest_avx2.json`).
"""
from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np

from ..config import Settings
from ..data.images import load_image
from ..errors import DatasetError

CALIBRATION_IMAGES = 200  # every 5th gallery image, in file order
MIN_COSINE_INT8 = 0.9
VNNI_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")  # as /proc/cpuinfo names them


@cache  # read once per process: the path of the int8 file is asked for on every load
def has_vnni() -> bool:
    """Whether the CPU sums int8 products in 32 bits (else NNCF's overflow fix is needed)."""
    cpuinfo = Path("/proc/cpuinfo")
    flags = set(cpuinfo.read_text().split()) if cpuinfo.is_file() else set()
    return bool(flags & set(VNNI_FLAGS))


def int8_variant() -> str:
    """The quantized model's name on this CPU: `int8`, or `7bit-int8` (the overflow fix) without VNNI."""
    return "int8" if has_vnni() else "7bit-int8"


def calibration_images(settings: Settings, preprocess, min_side: int) -> list[np.ndarray]:
    """Preprocessed gallery images of the tutorial dataset (which must be on disk already)."""
    gallery = Path(settings.data_dir) / "reverse_image_search" / "train"
    files = sorted(gallery.glob("*/*.JPEG"))[::5][:CALIBRATION_IMAGES]
    if not files:
        raise DatasetError(f"openvino-int8 calibrates on the tutorial gallery, which is not in {gallery}: run "
                           "notebook 1 (or `imgsearch ingest`) once to download it, or set IMGSEARCH_DATA_DIR")
    return [preprocess(load_image(file, min_side=min_side)) for file in files]


def quantize(onnx_file: Path, images: list[np.ndarray], out_xml: Path, seven_bit: bool) -> None:
    """Write the INT8 model (OpenVINO IR) of `onnx_file`, its activation ranges taken on `images`;
    `seven_bit`: the overflow fix in every layer (NNCF's default fixes the first one only)."""
    import nncf
    import openvino
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, OverflowFix

    model = openvino.Core().read_model(str(onnx_file))
    fix = OverflowFix.ENABLE if seven_bit else OverflowFix.FIRST_LAYER
    quantized = nncf.quantize(model, nncf.Dataset(images, lambda image: image[None]), subset_size=len(images),
                              preset=nncf.QuantizationPreset.MIXED,
                              advanced_parameters=AdvancedQuantizationParameters(overflow_fix=fix))
    scratch = out_xml.with_name(out_xml.stem + ".part.xml")
    openvino.save_model(quantized, str(scratch))
    scratch.with_suffix(".bin").replace(out_xml.with_suffix(".bin"))
    scratch.replace(out_xml)  # the .xml last: a model file that exists is whole
