"""Where a network runs: OpenVINO or ONNX Runtime on an exported ONNX file, or PyTorch.

A backend is chosen by name (`IMGSEARCH_BACKEND`). `auto` takes the first runtime that is
installed and passed its check against PyTorch (`export`), fastest first: OpenVINO at the CPU's
default precision (bf16 where the CPU has it, else f32), OpenVINO with only the layers after a cut
in bf16 (`mixed`), OpenVINO in f32, ONNX Runtime, then PyTorch (`benchmarks/ingest.py` measures
them side by side). `openvino-int8` (`quantize`) is used only when asked for by name.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Protocol

import numpy as np

from ..errors import UsageError

BACKENDS = ("auto", "openvino", "openvino-mixed", "openvino-f32", "openvino-int8", "onnxruntime", "torch")
AUTO = ("openvino", "openvino-mixed", "openvino-f32", "onnxruntime")  # tried in this order; PyTorch if none passes


class Runtime(Protocol):
    name: str  # e.g. "openvino-2026.4.1-f32": checks are kept per runtime version

    def run(self, batch: np.ndarray) -> np.ndarray: ...


def check_backend(backend: str) -> None:
    if backend not in BACKENDS:
        raise UsageError(f"unknown backend {backend!r}: choose one of {', '.join(BACKENDS)}")


def installed(backend: str) -> bool:
    return importlib.util.find_spec(backend.split("-")[0]) is not None


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
