"""OpenVINO in mixed precision: the first layers of a network in f32, the rest in bf16.

On a CPU whose bf16 moves the vectors too far for the check against PyTorch (AVX-512 BF16, with
AMX or without: smallest cosine 0.996 for EfficientNet-Lite0), most of the error comes from the
early, high-resolution layers: with only the layers after a cut in bf16, the check passes at
1.1-1.2x f32's speed end to end (measured in `benchmarks/ingest.py`). The graph is split in two at a
convolution's input where that tensor is all the rest of the network needs (a block boundary);
the two halves are compiled apart and run one after the other.

The cut is chosen once per export and OpenVINO version: candidates from early to late, the first
whose check clears `MIN_COSINE_MIXED` (stricter than the usual bar, because the cut is picked on
the very batch it is checked on).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

MIN_COSINE_MIXED = 0.9995
CUT_FRACTIONS = (0.25, 0.33, 0.42, 0.5, 0.6, 0.7)  # of the convolutions kept in f32, tried in order
CONVOLUTIONS = ("Convolution", "GroupConvolution")


class NotACut(ValueError):
    """The chosen tensor is not all the rest of the network depends on."""


def has_bf16() -> bool:
    import openvino

    return "BF16" in openvino.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


def convolution_inputs(model) -> list:
    """The input tensor of each convolution, in the graph's order."""
    return [op.input_value(0) for op in model.get_ordered_ops() if op.get_type_name() in CONVOLUTIONS]


def split(model_file: Path, cut: int) -> tuple:
    """(head, tail): the network up to the input of convolution `cut`, and from there to its output."""
    import openvino
    from openvino import opset13

    core = openvino.Core()
    whole = core.read_model(str(model_file))
    head = openvino.Model([opset13.result(convolution_inputs(whole)[cut])], whole.get_parameters(), "head")
    rest = core.read_model(str(model_file))  # a second copy, rewired: the tensor becomes an input
    tensor = convolution_inputs(rest)[cut]
    shape = openvino.PartialShape([-1, *list(tensor.get_partial_shape())[1:]])
    start = opset13.parameter(shape, openvino.Type.f32, name="cut")
    for consumer in list(tensor.get_target_inputs()):
        consumer.replace_source_output(start.output(0))
    try:
        tail = openvino.Model(rest.get_results(), [start], "tail")
    except RuntimeError as error:  # the rest still reads the network's input (a skip across the cut)
        raise NotACut(f"convolution {cut} of {model_file}: {error}") from None
    return head, tail


def candidate_cuts(model_file: Path) -> list[int]:
    """Cuts to try, earliest (most layers in bf16) first: one at or after each fraction that splits
    the graph cleanly. (Reading the graph takes most of a second: the export keeps the answer.)"""
    import openvino

    count = len(convolution_inputs(openvino.Core().read_model(str(model_file))))
    cuts: list[int] = []
    for fraction in CUT_FRACTIONS:
        for cut in range(max(int(fraction * count), cuts[-1] + 1 if cuts else 1), count):
            if is_cut(model_file, cut):
                cuts.append(cut)
                break
    return cuts


def is_cut(model_file: Path, cut: int) -> bool:
    try:
        split(model_file, cut)
    except NotACut:
        return False
    return True


class MixedOpenVino:
    """A network in two compiled halves: f32 up to the cut, bf16 after it."""

    def __init__(self, model_file, cache_dir, cut: int):
        import openvino

        head, tail = split(Path(model_file), cut)
        core = openvino.Core()
        cache = {"CACHE_DIR": str(cache_dir)}
        self.head = core.compile_model(head, "CPU", {**cache, "INFERENCE_PRECISION_HINT": "f32"})
        self.tail = core.compile_model(tail, "CPU", {**cache, "INFERENCE_PRECISION_HINT": "bf16"})
        self.cut = cut
        self.name = runtime_name(cut)

    def run(self, batch: np.ndarray) -> np.ndarray:
        return self.tail(self.head(np.ascontiguousarray(batch, np.float32))[0])[0]


def runtime_name(cut: int) -> str:
    import openvino

    return f"openvino-{openvino.__version__.split('-')[0]}-f32+bf16@{cut}"
