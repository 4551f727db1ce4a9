"""Models exported once and kept in the cache, loaded on the fastest runtime that agrees with PyTorch.

`<cache>/models/<model and weights>/` holds `model.onnx`, `classifier.npz` (the classification
head) and `meta.json` (preprocessing, sizes, and each runtime version's check against PyTorch).
With those, a process builds an `Embedder` on OpenVINO or ONNX Runtime without importing torch or
timm; PyTorch loads only to export, to check a runtime it has not checked yet, or to run itself.
"""
from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np

from .._io import atomic_path, read_json, write_json
from ..config import Settings
from ..errors import UsageError
from . import backends, mixed
from .embedder import Embedder, TorchRuntime
from .preprocess import Preprocessing
from .quantize import MIN_COSINE_INT8, calibration_images, int8_variant, quantize
from .registry import identify


def load_embedder(name: str, pretrained: bool, settings: Settings, backend: str, fast: bool = True,
                  checked: bool = True) -> Embedder:
    """`checked=False` uses the named runtime even if it failed its check (to measure what it costs)."""
    check_backend(backend)
    if backend == "torch" or not fast:
        return TorchModel.load(name, pretrained, settings.weights_dir).embedder(fast)
    known = identify(name, pretrained, settings.weights_dir)
    loaded = Loaded(lambda: TorchModel.load(name, pretrained, settings.weights_dir))
    export = Export(settings.cache_dir, known[0] if known else loaded().key)
    if backend == "openvino-int8":
        export.ensure_int8(loaded, settings)
    return load_export(export, loaded, backend, checked, name) or loaded().embedder(fast)


def check_backend(backend: str) -> None:
    if backend not in backends.BACKENDS:
        raise UsageError(f"unknown backend {backend!r}: choose one of {', '.join(backends.BACKENDS)}")


class Loaded:
    """A PyTorch model loaded the first time it is asked for (most processes never ask)."""

    def __init__(self, load):
        self.load, self.model = load, None

    def __call__(self):
        self.model = self.model or self.load()
        return self.model


def load_export(export: Export, loaded: Loaded, backend: str, checked: bool, name: str) -> Embedder | None:
    """The export (written first if missing) on the first runtime of `backend` that passes its
    check; None if none does (the caller falls back to PyTorch)."""
    if not export.exists():
        export.write(loaded())
    for candidate in backends.AUTO if backend == "auto" else (backend,):
        if not backends.installed(candidate):
            if backend != "auto":
                warnings.warn(f"{candidate} is not installed: {name} runs on PyTorch", stacklevel=4)
            continue
        opened = open_checked(export, loaded, candidate)
        if opened is None:
            continue
        runtime, meta, checked_now = opened
        bar = BARS.get(candidate, backends.MIN_COSINE)
        if meta["checks"][runtime.name] >= bar or not checked:
            return export.embedder(name, runtime, meta)
        if checked_now or backend != "auto":  # once, when found out, or when asked for by name
            warnings.warn(f"{runtime.name} gives vectors unlike PyTorch's for {name} (smallest cosine "
                          f"{meta['checks'][runtime.name]:.5f} < {bar}): not used", stacklevel=4)
    return None


def open_checked(export: Export, loaded: Loaded, candidate: str) -> tuple | None:
    """(runtime, meta, whether it was checked just now), or None where the runtime does not apply."""
    if candidate == "openvino-mixed":
        return open_mixed(export, loaded)
    model_file = export.int8 if candidate == "openvino-int8" else export.onnx
    return with_check(export, loaded, backends.open_runtime(candidate, model_file, export.folder / "compiled"))


def with_check(export: Export, loaded: Loaded, runtime) -> tuple:
    """(runtime, meta, whether it was checked just now): each runtime is checked once per version."""
    meta = export.meta()
    checked_now = runtime.name not in meta["checks"]
    if checked_now:
        meta = export.record_check(runtime, loaded())
    return runtime, meta, checked_now


BARS = {"openvino-int8": MIN_COSINE_INT8, "openvino-mixed": mixed.MIN_COSINE_MIXED}


def open_mixed(export: Export, loaded: Loaded) -> tuple | None:
    """OpenVINO f32 + bf16 (see `mixed`) at the earliest candidate cut that clears its bar, each cut
    checked once (the checks are kept: a later process opens the chosen cut at once); if none does,
    the last one tried, for the caller to report; None on a CPU without bf16."""
    if not mixed.has_bf16():
        return None
    cuts = export.cuts()
    known = export.meta()["checks"]
    untried_or_passed = [cut for cut in cuts if known.get(mixed.runtime_name(cut), 1.0) >= mixed.MIN_COSINE_MIXED]
    opened = None
    for cut in untried_or_passed or cuts[-1:]:
        opened = with_check(export, loaded, mixed.MixedOpenVino(export.onnx, export.folder / "compiled", cut))
        if opened[1]["checks"][opened[0].name] >= mixed.MIN_COSINE_MIXED:
            break
    return opened


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


def export_folder(cache_dir: Path, key: str) -> Path:
    """Where the export of the model `key` (model + weights) lives in the cache."""
    return Path(cache_dir) / "models" / re.sub(r"[^0-9A-Za-z_.@-]+", "_", key)


class Export:
    """One model's export in the cache."""

    def __init__(self, cache_dir: Path, key: str):
        self.key = key
        self.folder = export_folder(cache_dir, key)
        self.onnx, self.meta_file, self.head_file = (self.folder / n for n in ("model.onnx", "meta.json",
                                                                                "classifier.npz"))

    def exists(self) -> bool:
        return self.meta_file.is_file() and self.onnx.is_file()

    @property
    def int8(self) -> Path:
        """The quantized model for this CPU (with VNNI or without: see `quantize`)."""
        return self.folder / f"model-{int8_variant()}.xml"

    def ensure_int8(self, loaded: Loaded, settings: Settings) -> None:
        """Quantize the export to INT8 once (calibrated on tutorial gallery images)."""
        if self.int8.is_file():
            return
        if not self.exists():
            self.write(loaded())
        preprocess = Preprocessing.from_dict(self.meta()["preprocessing"])
        quantize(self.onnx, calibration_images(settings, preprocess, preprocess.resize), self.int8,
                 seven_bit=int8_variant() != "int8")

    def cuts(self) -> list[int]:
        """Where the graph can be split for `openvino-mixed` (found once, kept in the meta)."""
        meta = self.meta()
        if "cuts" not in meta:
            meta["cuts"] = mixed.candidate_cuts(self.onnx)
            write_json(self.meta_file, meta)
        return meta["cuts"]

    def meta(self) -> dict:
        return read_json(self.meta_file)

    def write(self, model: TorchModel) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        example = backends.check_batch(model.preprocess)[:2]
        with atomic_path(self.onnx) as scratch:
            backends.export_onnx(model.module, example, scratch)
        head = model.classifier()
        if head is not None:
            np.savez(self.head_file, weights=head[0], bias=head[1])
        write_json(self.meta_file, {"key": self.key, "weights": model.weights, **model.sizes(),
                                    "preprocessing": model.preprocess.as_dict(), "checks": {}})

    def record_check(self, runtime, model: TorchModel) -> dict:
        """Check `runtime` against PyTorch on the fixed batch once per runtime version; the meta after."""
        batch = backends.check_batch(model.preprocess)
        meta = self.meta()
        meta["checks"][runtime.name] = backends.agreement(runtime, model.reference(batch), batch)
        write_json(self.meta_file, meta)
        return meta

    def embedder(self, name: str, runtime, meta: dict) -> Embedder:
        preprocess = Preprocessing.from_dict(meta["preprocessing"])
        head = None
        if self.head_file.is_file():
            with np.load(self.head_file) as saved:
                head = (saved["weights"], saved["bias"])
        return Embedder(name, f"{self.key}|{runtime.name}", preprocess, preprocess.resize, meta["weights"],
                        meta["dim"], meta["classes"], meta["parameters"], runtime, head)
