"""The one export cache: a network exported once, each runtime checked against PyTorch once, the
first runtime of a backend choice that passes opened; None, and the caller stays on PyTorch, if none does.

`<cache>/models/<key>/` holds the network's ONNX graphs (`model.onnx`; CLIP's towers `image.onnx`
and `text.onnx`), the files its user keeps beside them (an image model's classifier head, the
sentence model's tokenizer), compiled OpenVINO blobs (`compiled/`) and `meta.json`, written last
(a folder that has it is whole): what the user records (preprocessing, sizes, padding) and
`checks`, each runtime version's agreement with PyTorch (keyed by the runtime's name, prefixed by
the graph's for a graph other than `model`). A later process opens a checked runtime without
importing torch: PyTorch loads only to export, or to check a runtime version not checked yet.

A network brings the rest: its torch module and example inputs (`Graph`, written by `write`), its
agreement measure and bar (`agreement.Agreement`), and what it wraps the opened runtime in.
"""
from __future__ import annotations

import re
import sys
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._io import atomic_path, read_json, write_json
from . import mixed
from .agreement import Agreement
from .backends import installed, open_runtime
from .quantize import int8_variant, quantize


@dataclass
class Graph:
    """A torch module to export, with example inputs (numpy arrays by input name)."""

    module: object
    inputs: dict[str, np.ndarray]
    output: str = "features"
    dynamic: dict[str, dict[int, str]] | None = None  # default: the batch axis of every input and the output


class Loaded:
    """A PyTorch model loaded the first time it is asked for (a process that opens a checked export never asks)."""

    def __init__(self, load: Callable):
        self.load, self.model = load, None

    def __call__(self):
        self.model = self.model or self.load()
        return self.model


def export_folder(cache_dir: Path, key: str) -> Path:
    """Where the export of `key` (a network and its weights) lives in the cache."""
    return Path(cache_dir) / "models" / re.sub(r"[^0-9A-Za-z_.@-]+", "_", key)


class Export:
    """One network's export in the cache; `graphs`: the names of its ONNX files."""

    def __init__(self, cache_dir: Path, key: str, graphs: tuple[str, ...] = ("model",)):
        self.key, self.graphs = key, graphs
        self.folder = export_folder(cache_dir, key)
        self.meta_file, self.compiled = self.folder / "meta.json", self.folder / "compiled"

    def graph(self, name: str = "model") -> Path:
        return self.folder / f"{name}.onnx"

    @property
    def onnx(self) -> Path:
        return self.graph()

    def exists(self) -> bool:
        return self.meta_file.is_file() and all(self.graph(name).is_file() for name in self.graphs)

    def ensure(self, write: Callable[[], None]) -> None:
        """Export the network (`write`, which loads torch) unless the export is whole already; said
        once, so that the first command on a machine is not seconds of silence."""
        if not self.exists():
            print(f"preparing {self.folder.name} for this computer, once: export to ONNX and checks against "
                  "PyTorch (10-30 s)", file=sys.stderr, flush=True)
            write()

    def meta(self) -> dict:
        return read_json(self.meta_file)

    def write(self, graphs: Mapping[str, Graph], meta: dict, beside: Callable[[Path], None] | None = None) -> None:
        """Export each graph, then let `beside` write its files into the folder, then the meta (last)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        for name, graph in graphs.items():
            with atomic_path(self.graph(name)) as scratch:
                export_onnx(graph, scratch)
        if beside is not None:
            beside(self.folder)
        write_json(self.meta_file, {**meta, "checks": {}})

    def check(self, runtime, agreement: Agreement, graph: str = "model") -> tuple:
        """(the runtime's score, whether measured just now): measured once per runtime version, kept in the meta."""
        name = runtime.name if graph == "model" else f"{graph} {runtime.name}"
        meta = self.meta()
        measured_now = name not in meta["checks"]
        if measured_now:
            meta["checks"][name] = agreement.measure(runtime)
            write_json(self.meta_file, meta)
        return meta["checks"][name], measured_now

    def cuts(self) -> list[int]:
        """Where the graph can be split for `openvino-mixed` (found once, kept in the meta)."""
        meta = self.meta()
        if "cuts" not in meta:
            meta["cuts"] = mixed.candidate_cuts(self.onnx)
            write_json(self.meta_file, meta)
        return meta["cuts"]

    @property
    def int8(self) -> Path:
        """The quantized model for this CPU (with VNNI or without: see `quantize`)."""
        return self.folder / f"model-{int8_variant()}.xml"

    def ensure_int8(self, calibration: Callable[[], list[np.ndarray]]) -> None:
        """Quantize the export to INT8 once, its activation ranges taken on `calibration()` (inputs)."""
        if not self.int8.is_file():
            quantize(self.onnx, calibration(), self.int8, seven_bit=int8_variant() != "int8")


def export_onnx(graph: Graph, path: Path) -> None:
    import torch

    names = list(graph.inputs)
    dynamic = graph.dynamic or {name: {0: "batch"} for name in (*names, graph.output)}
    # not under no_grad: there torch takes fast paths the exporter cannot write (CLIP's attention)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's deprecation and tracer notices
        torch.onnx.export(graph.module, tuple(torch.from_numpy(graph.inputs[name]) for name in names), str(path),
                          input_names=names, output_names=[graph.output], dynamic_axes=dynamic, opset_version=17,
                          dynamo=False)


def open_checked(export: Export, candidates: tuple[str, ...], agreement: Agreement, write: Callable[[], None],
                 named: bool, checked: bool = True, graph: str = "model"):
    """The first of `candidates` (backend names) that is installed and passes its check, the export
    written first (`write`) if it is not whole; None if none passes. A candidate missing is reported
    when `named` (asked for by name); one that fails, when found out or when `named`, and only if no
    candidate passes: a failure passed over for the next runtime is the choice working (its score
    is kept in the export's meta), not something for the user's terminal.
    `checked=False` opens the first candidate even if it failed (to measure what that costs)."""
    failures = []
    for candidate in candidates:
        if not installed(candidate):
            if named:
                warnings.warn(f"{candidate} is not installed: {agreement.subject} come from PyTorch", stacklevel=3)
            continue
        export.ensure(write)
        opened = open_candidate(export, candidate, agreement, graph)
        if opened is None:
            continue
        runtime, score, measured_now = opened
        if agreement.passes(score, candidate) or not checked:
            return runtime
        if measured_now or named:
            failures.append(f"{runtime.name} gives {agreement.subject} unlike PyTorch's "
                            f"({agreement.explain(score, candidate)}): not used")
    for failure in failures:
        warnings.warn(failure, stacklevel=3)
    return None


def open_candidate(export: Export, candidate: str, agreement: Agreement, graph: str) -> tuple | None:
    """(runtime, score, whether measured just now), or None where the candidate does not apply."""
    if candidate == "openvino-mixed":
        return open_mixed(export, agreement)
    model_file = export.int8 if candidate == "openvino-int8" else export.graph(graph)
    runtime = open_runtime(candidate, model_file, export.compiled)
    return (runtime, *export.check(runtime, agreement, graph))


def open_mixed(export: Export, agreement: Agreement) -> tuple | None:
    """OpenVINO f32 + bf16 (see `mixed`) at the earliest candidate cut that passes, each cut checked
    once (a later process opens the chosen cut at once); if none passes, the last one tried, for the
    caller to report; None on a CPU without bf16."""
    if not mixed.has_bf16():
        return None
    cuts = export.cuts()
    known = export.meta()["checks"]
    untried_or_passed = [cut for cut in cuts if mixed.runtime_name(cut) not in known
                         or agreement.passes(known[mixed.runtime_name(cut)], "openvino-mixed")]
    opened = None
    for cut in untried_or_passed or cuts[-1:]:
        runtime = mixed.MixedOpenVino(export.onnx, export.compiled, cut)
        opened = (runtime, *export.check(runtime, agreement))
        if agreement.passes(opened[1], "openvino-mixed"):
            break
    return opened
