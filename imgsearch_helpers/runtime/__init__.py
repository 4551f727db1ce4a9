"""Where networks run: exported once to ONNX, each runtime checked against PyTorch, the first
runtime of a backend choice that passes opened.

    export = Export(settings.cache_dir, key)                    # <cache>/models/<key>/
    runtime = open_checked(export, AUTO, Cosine(subject, reference), write, named=False)
    # None: no runtime agrees with PyTorch (or none is installed); stay on PyTorch

`export` is the one cache, `agreement` how a runtime is measured against PyTorch, `backends` the
runtimes (ONNX Runtime, OpenVINO), `mixed` OpenVINO's f32 + bf16 split, `quantize` INT8.
Importing this package loads neither torch nor a runtime.
"""
from .agreement import MIN_COSINE, Agreement, Cosine, check_batch
from .backends import AUTO, BACKENDS, check_backend
from .export import Export, Graph, Loaded, open_checked

__all__ = ["AUTO", "BACKENDS", "MIN_COSINE", "Agreement", "Cosine", "Export", "Graph", "Loaded", "check_backend",
           "check_batch", "open_checked"]
