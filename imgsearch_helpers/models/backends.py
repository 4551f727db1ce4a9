"""Where a network runs: OpenVINO or ONNX Runtime on an exported ONNX file, or PyTorch.

A network is exported once per model and weights (`torch.onnx.export`) into the cache, and each
runtime is checked against PyTorch on a fixed batch when it first loads that export (every
vector's cosine with PyTorch's >= MIN_COSINE); the result is kept per runtime version, so later
processes load the export without importing torch. `auto` takes the first runtime that is
installed and passed, fastest first: OpenVINO at the CPU's default precision (bf16 where the CPU
has it, else f32), OpenVINO with only the layers after a cut in bf16 (`mixed`), OpenVINO in f32,
ONNX Runtime, then PyTorch's trace (`benchmarks/ingest.py` measures them side by side). A runtime
that fails the check is skipped (with a warning the first time).
"""
from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path
from typing import Protocol

import numpy as np

BACKENDS = ("auto", "openvino", "openvino-mixed", "openvino-f32", "openvino-int8", "onnxruntime", "torch")
AUTO = ("openvino", "openvino-mixed", "openvino-f32", "onnxruntime")  # tried in this order; PyTorch if none passes
MIN_COSINE = 0.999
CHECK_BATCH = 8  # images in the fixed batch every export is checked on


class Runtime(Protocol):
    name: str  # e.g. "openvino-2026.4.1", the cache and the checks are kept per runtime version

    def run(self, batch: np.ndarray) -> np.ndarray: ...


def installed(backend: str) -> bool:
    return importlib.util.find_spec(backend.split("-")[0]) is not None


def version(backend: str) -> str:
    if backend == "openvino":
        import openvino

        return openvino.__version__
    import onnxruntime

    return onnxruntime.__version__


class OnnxRuntime:
    """ONNX Runtime's CPU provider, both cores for every batch (a single image too: measured faster
    than one thread here)."""

    def __init__(self, onnx_file, threads: int = 2):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.log_severity_level = 3  # warnings about unused initializers are noise here
        self.session = onnxruntime.InferenceSession(str(onnx_file), options, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name
        self.name = f"onnxruntime-{onnxruntime.__version__}"

    def run(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input: np.ascontiguousarray(batch, np.float32)})[0]


class OpenVino:
    """OpenVINO on the CPU at its default precision (bf16 where the CPU has it, else f32), with
    compiled blobs cached beside the export so a new process compiles in milliseconds."""

    def __init__(self, model_file, cache_dir, precision: str | None = None, weights: str = ""):
        import openvino

        core = openvino.Core()
        config = {"CACHE_DIR": str(cache_dir), **({"INFERENCE_PRECISION_HINT": precision} if precision else {})}
        self.compiled = core.compile_model(str(model_file), "CPU", config)
        precision = self.compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
        self.name = f"openvino-{openvino.__version__.split('-')[0]}-{precision}" + (f"-{weights}" if weights else "")

    def run(self, batch: np.ndarray) -> np.ndarray:
        return self.compiled(np.ascontiguousarray(batch, np.float32))[0]

    def run_inputs(self, inputs: list[np.ndarray]) -> np.ndarray:
        """The first output for a network of several inputs (e.g. a text encoder's token ids and mask)."""
        return self.compiled(inputs)[0]


def open_runtime(backend: str, model_file, cache_dir) -> Runtime:
    """`model_file`: the export's ONNX file (for openvino-int8, its quantized OpenVINO IR)."""
    if backend == "openvino-int8":
        weights = Path(model_file).stem.removeprefix("model-")  # int8, or 7bit-int8
        return OpenVino(model_file, cache_dir, "f32", weights=weights)  # the layers left in float stay f32
    if backend.startswith("openvino"):
        return OpenVino(model_file, cache_dir, "f32" if backend == "openvino-f32" else None)
    if backend == "onnxruntime":
        return OnnxRuntime(model_file)
    raise ValueError(f"no exported runtime called {backend!r}")


def export_onnx(module, example, path, input_name: str = "images") -> None:
    """Write `module` (a torch module taking one batch, e.g. float32 NCHW) as ONNX with a dynamic batch size."""
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's deprecation and tracer notices
        torch.onnx.export(module, (torch.from_numpy(example),), str(path), input_names=[input_name],
                          output_names=["features"], dynamic_axes={input_name: {0: "batch"}, "features": {0: "batch"}},
                          opset_version=17, dynamo=False)


def check_batch(preprocess, side: int | None = None) -> np.ndarray:
    """The fixed batch exports are checked on: seeded smooth colour fields (8 x 8 random pixels
    enlarged to `side`, by default the preprocessing's resize), preprocessed like photos. On real
    gallery photos and on these, runtimes differ from PyTorch alike (bf16: smallest cosine 0.997 on
    both); white noise would flatter or punish them."""
    from PIL import Image

    rng = np.random.default_rng(0)
    fields = [Image.fromarray(rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8)).resize(
        (side or preprocess.resize,) * 2, Image.Resampling.BICUBIC) for _ in range(CHECK_BATCH)]
    return np.stack([preprocess(field) for field in fields])


def agreement(runtime: Runtime, reference: np.ndarray, batch: np.ndarray) -> float:
    """The smallest cosine between a runtime's vectors and PyTorch's on the same batch."""
    out = runtime.run(batch)
    cosine = (out * reference).sum(1) / np.maximum(np.linalg.norm(out, axis=1) * np.linalg.norm(reference, axis=1),
                                                   1e-12)
    return float(cosine.min())
