"""The image networks in the export cache (`runtime.export`): what a timm model (or its regional
GeM head, `descriptors`) brings to it, and the `Embedder` an opened runtime is wrapped in.

`<cache>/models/<model and weights>/` holds `model.onnx` (the pre-logit network), `classifier.npz`
(the classification head) and `meta.json` (preprocessing, sizes, and each runtime version's
smallest cosine with PyTorch on the fixed batch). With those, a process builds an `Embedder` on
OpenVINO or ONNX Runtime without importing torch or timm; PyTorch loads only to export, to check a
runtime it has not checked yet, or to run itself.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..config import Settings
from ..runtime.agreement import Cosine, check_batch
from ..runtime.backends import AUTO, BACKENDS, check_backend
from ..runtime.export import Export, Graph, Loaded, open_checked
from ..runtime.mixed import MIN_COSINE_MIXED
from ..runtime.quantize import MIN_COSINE_INT8, calibration_images
from .embedder import Embedder, TorchRuntime
from .preprocess import Preprocessing
from .registry import identify

RUNTIMES = {"auto": AUTO, **{backend: (backend,) for backend in BACKENDS if backend not in ("auto", "torch")}}
BARS = {"openvino-int8": MIN_COSINE_INT8, "openvino-mixed": MIN_COSINE_MIXED}  # the rest: MIN_COSINE
HEAD_FILE = "classifier.npz"


def load_embedder(name: str, pretrained: bool, settings: Settings, backend: str, fast: bool = True,
                  checked: bool = True) -> Embedder:
    """`checked=False` uses the named runtime even if it failed its check (to measure what it costs)."""
    check_backend(backend)
    if backend == "torch" or not fast:
        return TorchModel.load(name, pretrained, settings.weights_dir).embedder(fast)
    known = identify(name, pretrained, settings.weights_dir)
    loaded = Loaded(lambda: TorchModel.load(name, pretrained, settings.weights_dir))
    export = Export(settings.cache_dir, known[0] if known else loaded().key)
    return open_exported(export, loaded, name, backend, settings, checked) or loaded().embedder(fast)


def open_exported(export: Export, loaded: Loaded, name: str, backend: str, settings: Settings,
                  checked: bool = True) -> Embedder | None:
    """`name` on the first runtime of `backend` that passes its check; None if none does (the
    caller falls back to PyTorch). `loaded()`: the TorchModel (or the like) to export and check."""
    def write():
        write_export(export, loaded())

    if backend == "openvino-int8":
        export.ensure(write)
        export.ensure_int8(lambda: calibration(export, settings))
    agreement = Cosine(f"{name} vectors", lambda: reference(loaded()), bars=BARS)
    runtime = open_checked(export, RUNTIMES[backend], agreement, write, named=backend != "auto", checked=checked)
    return None if runtime is None else exported_embedder(export, name, runtime)


def reference(model) -> tuple[np.ndarray, np.ndarray]:
    """The fixed batch and PyTorch's vectors for it: what every runtime is checked against."""
    batch = check_batch(model.preprocess)
    return batch, model.reference(batch)


def calibration(export: Export, settings: Settings) -> list[np.ndarray]:
    """Gallery images preprocessed as the exported network takes them (INT8's activation ranges)."""
    preprocess = Preprocessing.from_dict(export.meta()["preprocessing"])
    return calibration_images(settings, preprocess, preprocess.resize)


def write_export(export: Export, model) -> None:
    """The network as ONNX, its classifier head beside it, and what an `Embedder` needs in the meta."""
    head = model.classifier()

    def save_head(folder: Path) -> None:
        if head is not None:
            np.savez(folder / HEAD_FILE, weights=head[0], bias=head[1])

    export.write({"model": Graph(model.module, {"images": check_batch(model.preprocess)[:2]})},
                 {"key": export.key, "weights": model.weights, **model.sizes(),
                  "preprocessing": model.preprocess.as_dict()}, beside=save_head)


def exported_embedder(export: Export, name: str, runtime) -> Embedder:
    meta = export.meta()
    preprocess = Preprocessing.from_dict(meta["preprocessing"])
    head = None
    if (export.folder / HEAD_FILE).is_file():
        with np.load(export.folder / HEAD_FILE) as saved:
            head = (saved["weights"], saved["bias"])
    return Embedder(name, f"{export.key}|{runtime.name}", preprocess, preprocess.resize, meta["weights"],
                    meta["dim"], meta["classes"], meta["parameters"], runtime, head)


class TorchModel:
    """A timm model with its weights, and what an export keeps of it."""

    def __init__(self, name: str, model, key: str, weights: str):
        from timm.data import resolve_data_config

        from .embedder import pre_logits

        self.name, self.model, self.key, self.weights = name, model, key, weights
        self.module = pre_logits(model)
        self.preprocess = Preprocessing.from_timm(resolve_data_config({}, model=model))

    @classmethod
    def load(cls, name: str, pretrained: bool, weights_dir: Path) -> TorchModel:
        from .weights import load_model

        return cls(name, *load_model(name, pretrained, weights_dir))

    def reference(self, batch: np.ndarray) -> np.ndarray:
        return TorchRuntime(self.module, fast=False).run(batch)

    def sizes(self) -> dict:
        return {"dim": int(self.model.num_features), "classes": int(self.model.num_classes),
                "parameters": sum(p.numel() for p in self.model.parameters())}

    def classifier(self) -> tuple[np.ndarray, np.ndarray] | None:
        head = self.model.get_classifier()
        if not hasattr(head, "weight"):
            return None
        return head.weight.detach().numpy().astype(np.float32), head.bias.detach().numpy().astype(np.float32)

    def embedder(self, fast: bool = True) -> Embedder:
        return Embedder(self.name, self.key, self.preprocess, self.preprocess.resize, self.weights,
                        runtime=TorchRuntime(self.module, fast), classifier=self.classifier(), **self.sizes())
