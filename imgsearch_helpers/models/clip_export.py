"""CLIP's two towers exported to ONNX once and run on OpenVINO in f32, as the image networks and
the sentence model are (`models.exports`, `text.exported`).

`<cache>/models/<model>@<weights>/` holds `image.onnx` (pixels in, the image tower's vector out),
`text.onnx` (token ids in, the text tower's vector out) and `meta.json`, where each runtime
version's check against PyTorch is kept per tower: seeded colour fields for the image tower, fixed
sentences for the text tower, every vector's cosine >= `backends.MIN_COSINE`. A tower that fails
its check stays on PyTorch (with a warning); `IMGSEARCH_BACKEND=torch` keeps both there.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import torch

from .._io import write_json
from . import backends
from .sentence_export import CHECK_SENTENCES

TOWERS = ("image", "text")


class ImageTower(torch.nn.Module):
    def __init__(self, clip):
        super().__init__()
        self.clip = clip  # a submodule: its weights export as weights

    def forward(self, images):
        return self.clip.encode_image(images)


class TextTower(ImageTower):
    def forward(self, tokens):
        return self.clip.encode_text(tokens)


class TokensRuntime:
    """The text tower's runtime: token ids (int64) in, where an image runtime takes float pixels."""

    def __init__(self, runtime: backends.OpenVino):
        self.runtime, self.name = runtime, runtime.name

    def run(self, tokens) -> np.ndarray:
        return self.runtime.run_inputs([np.asarray(tokens, np.int64)])


def load_towers(network, preprocess, tokenizer, size: int, folder: Path) -> tuple:
    """(image runtime, text runtime), each None where that tower stays on PyTorch (OpenVINO
    missing, or its check failed); exports the towers into `folder` first if they are not there."""
    if not backends.installed("openvino"):
        return None, None
    modules = {"image": ImageTower(network).eval(), "text": TextTower(network).eval()}
    examples = {"image": backends.check_batch(preprocess, side=size),
                "text": tokenizer(list(CHECK_SENTENCES)).numpy()}
    if not (folder / "meta.json").is_file():
        write_towers(modules, examples, folder)
    return tuple(checked_runtime(folder, tower, modules[tower], examples[tower]) for tower in TOWERS)


def write_towers(modules: dict, examples: dict, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for tower in TOWERS:
        scratch = folder / f"{tower}.part.onnx"
        backends.export_onnx(modules[tower], examples[tower][:2], scratch, input_name=tower)
        scratch.replace(folder / f"{tower}.onnx")
    write_json(folder / "meta.json", {"checks": {}})  # last: a folder that has it is whole


def checked_runtime(folder: Path, tower: str, module, example: np.ndarray):
    """The tower on OpenVINO f32 if it agrees with PyTorch (checked once per runtime version), else None."""
    runtime = backends.OpenVino(folder / f"{tower}.onnx", folder / "compiled", "f32")
    runtime = TokensRuntime(runtime) if tower == "text" else runtime
    meta = json.loads((folder / "meta.json").read_text())
    check = f"{tower} {runtime.name}"
    if check not in meta["checks"]:
        with torch.no_grad():
            reference = module(torch.from_numpy(example)).float().numpy()
        meta["checks"][check] = backends.agreement(runtime, reference, example)
        write_json(folder / "meta.json", meta)
    if meta["checks"][check] >= backends.MIN_COSINE:
        return runtime
    warnings.warn(f"{runtime.name} gives CLIP {tower} vectors unlike PyTorch's (smallest cosine "
                  f"{meta['checks'][check]:.5f} < {backends.MIN_COSINE}): that tower runs on PyTorch", stacklevel=4)
    return None
