"""Runtimes for the networks: the ONNX export kept in the cache, each runtime checked against
PyTorch before it is used (and skipped when it disagrees), the same search results on every
backend, and a reused export that loads without importing torch. Real ONNX Runtime and OpenVINO."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from realdata import TRAIN

from imgsearch_helpers.config import get_settings
from imgsearch_helpers.embed.stream import embed_paths
from imgsearch_helpers.errors import UsageError
from imgsearch_helpers.index import open_engine
from imgsearch_helpers.models import build_embedder
from imgsearch_helpers.models.exports import HEAD_FILE, TorchModel
from imgsearch_helpers.models.preprocess import Preprocessing
from imgsearch_helpers.runtime import MIN_COSINE, Export, check_batch, mixed

PATHS = [str(p) for label in ("goldfish", "warplane", "Afghan_hound", "brain_coral")
         for p in sorted((TRAIN / label).glob("*.JPEG"))[:6]]


def cosines(a, b):
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


@pytest.fixture(scope="module")
def settings(tmp_path_factory, real_dataset):
    return get_settings(cache_dir=tmp_path_factory.mktemp("backends"))


@pytest.fixture(scope="module")
def torch_vectors(settings):
    return embed_paths(PATHS, build_embedder(settings=settings, backend="torch"), progress=False).vectors


def test_the_export_is_made_once_and_records_each_runtimes_check(settings):
    first = build_embedder(settings=settings, backend="onnxruntime")
    export = Export(settings.cache_dir, "efficientnet_lite0@efficientnet-lite0-57934424")
    assert export.onnx.is_file() and export.meta_file.is_file() and (export.folder / HEAD_FILE).is_file()
    made = export.onnx.stat().st_mtime
    meta = export.meta()
    assert meta["dim"] == 1280 and meta["classes"] == 1000 and meta["preprocessing"]["crop"] == 224
    assert meta["checks"][first.backend] >= MIN_COSINE
    second = build_embedder(settings=settings, backend="onnxruntime")
    assert export.onnx.stat().st_mtime == made and second.key == first.key  # reused, not exported again
    assert first.key.endswith("|" + first.backend)  # its vectors are cached apart from PyTorch's


@pytest.mark.parametrize("backend", ["onnxruntime", "torch"])
def test_vectors_match_pytorch(settings, torch_vectors, backend):
    embedder = build_embedder(settings=settings, backend=backend)
    vectors = embed_paths(PATHS, embedder, progress=False).vectors
    assert cosines(vectors, torch_vectors).min() >= 0.9999


def test_a_runtime_that_fails_its_check_is_not_used(settings, torch_vectors):
    build_embedder(settings=settings, backend="onnxruntime")  # the export and its check exist
    export = Export(settings.cache_dir, "efficientnet_lite0@efficientnet-lite0-57934424")
    meta = export.meta()
    runtime = next(name for name in meta["checks"] if name.startswith("onnxruntime"))
    kept = meta["checks"][runtime]
    meta["checks"][runtime] = 0.9  # as a runtime computing other vectors would score
    export.meta_file.write_text(json.dumps(meta))
    try:
        with pytest.warns(UserWarning, match=r"onnxruntime.*smallest cosine 0\.90000 < 0\.999\): not used"):
            fallback = build_embedder(settings=settings, backend="onnxruntime")
        assert fallback.backend.startswith("torch")
        vectors = embed_paths(PATHS[:4], fallback, progress=False).vectors
        assert cosines(vectors, torch_vectors[:4]).min() >= 0.9999
    finally:
        meta["checks"][runtime] = kept
        export.meta_file.write_text(json.dumps(meta))


def test_openvino_is_checked_and_used_only_if_it_agrees(settings, torch_vectors):
    embedder = build_embedder(settings=settings, backend="openvino")
    checks = Export(settings.cache_dir, "efficientnet_lite0@efficientnet-lite0-57934424").meta()["checks"]
    openvino = next(name for name in checks if name.startswith("openvino"))
    vectors = embed_paths(PATHS, embedder, progress=False).vectors
    if checks[openvino] >= MIN_COSINE:
        assert embedder.backend == openvino and cosines(vectors, torch_vectors).min() >= 0.999
    else:
        assert embedder.backend.startswith("torch")


def test_every_backend_returns_the_same_top_hits(settings, torch_vectors):
    engine = open_engine("exact", metric="IP")
    engine.add(np.arange(len(PATHS)), torch_vectors)
    reference, _ = engine.search(torch_vectors, 5)
    for backend in ("onnxruntime", "openvino", "openvino-mixed", "auto"):
        vectors = embed_paths(PATHS, build_embedder(settings=settings, backend=backend), progress=False).vectors
        found, _ = engine.search(vectors, 5)
        agree = (found[:, :3] == reference[:, :3]).mean()
        assert agree >= 0.95, (backend, agree)


def test_a_network_split_at_a_cut_and_run_in_f32_equals_the_whole(settings):
    import openvino

    build_embedder(settings=settings, backend="onnxruntime")  # the export exists
    export = Export(settings.cache_dir, "efficientnet_lite0@efficientnet-lite0-57934424")
    batch = check_batch(Preprocessing.from_dict(export.meta()["preprocessing"]))
    core = openvino.Core()
    whole = core.compile_model(str(export.onnx), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})(batch)[0]
    cut = export.cuts()[0]
    head, tail = (core.compile_model(half, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
                  for half in mixed.split(export.onnx, cut))
    np.testing.assert_allclose(tail(head(batch)[0])[0], whole, rtol=1e-4, atol=1e-5)


def test_a_tensor_that_a_skip_connection_crosses_is_not_a_cut(settings):
    build_embedder(settings=settings, backend="onnxruntime")
    export = Export(settings.cache_dir, "efficientnet_lite0@efficientnet-lite0-57934424")
    cuts = export.cuts()
    inside_a_residual_block = next(k for k in range(cuts[0], cuts[-1]) if not mixed.is_cut(export.onnx, k))
    with pytest.raises(mixed.NotACut, match=f"convolution {inside_a_residual_block} of .*model.onnx"):
        mixed.split(export.onnx, inside_a_residual_block)
    assert cuts == sorted(set(cuts)) and all(mixed.is_cut(export.onnx, k) for k in cuts)


def test_mixed_precision_takes_the_earliest_cut_that_passes_and_keeps_its_checks(settings, torch_vectors):
    embedder = build_embedder(settings=settings, backend="openvino-mixed")
    export = Export(settings.cache_dir, "efficientnet_lite0@efficientnet-lite0-57934424")
    checks = export.meta()["checks"]
    scores = {cut: checks[mixed.runtime_name(cut)] for cut in export.cuts() if mixed.runtime_name(cut) in checks}
    if not mixed.has_bf16():  # nothing to mix on this CPU: PyTorch, and no cut checked
        assert embedder.backend.startswith("torch") and not scores
        return
    passed = [cut for cut, score in scores.items() if score >= mixed.MIN_COSINE_MIXED]
    if not passed:
        assert embedder.backend.startswith("torch") and sorted(scores) == export.cuts()
        return
    chosen = passed[0]
    assert embedder.backend == mixed.runtime_name(chosen) and embedder.runtime.cut == chosen
    assert sorted(scores) == [cut for cut in export.cuts() if cut <= chosen]  # later cuts never tried
    vectors = embed_paths(PATHS, embedder, progress=False).vectors
    assert cosines(vectors, torch_vectors).min() >= MIN_COSINE
    again = build_embedder(settings=settings, backend="openvino-mixed")
    assert again.backend == embedder.backend and export.meta()["checks"] == checks  # opened, not checked again


def test_class_probabilities_match_the_torch_head(settings):
    model = TorchModel.load("efficientnet_lite0", True, settings.weights_dir)
    embedder = build_embedder(settings=settings, backend="onnxruntime")
    features = embed_paths(PATHS[:4], embedder, progress=False).vectors
    import torch

    with torch.no_grad():
        expected = torch.softmax(model.model.get_classifier()(torch.from_numpy(features)), dim=1).numpy()
    np.testing.assert_allclose(embedder.class_probabilities(features), expected, atol=1e-5)


def test_a_reused_export_loads_without_torch(settings):
    build_embedder(settings=settings)  # "auto": exports and checks what is installed
    script = ("import sys; from imgsearch_helpers.models import build_embedder; e = build_embedder(); "
              "print(e.backend, 'torch' in sys.modules, 'timm' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "IMGSEARCH_CACHE_DIR": str(settings.cache_dir)})
    backend, torch_loaded, timm_loaded = done.stdout.split()
    assert done.returncode == 0 and not backend.startswith("torch")
    assert (torch_loaded, timm_loaded) == ("False", "False")


def test_an_unknown_backend_is_a_usage_error(settings):
    with pytest.raises(UsageError, match="unknown backend 'tpu'"):
        build_embedder(settings=settings, backend="tpu")


def test_int8_is_quantized_once_checked_on_its_own_bar_and_finds_nearly_the_same_hits(settings, torch_vectors):
    from imgsearch_helpers.runtime.quantize import MIN_COSINE_INT8

    embedder = build_embedder(settings=settings, backend="openvino-int8")
    export = Export(settings.cache_dir, "efficientnet_lite0@efficientnet-lite0-57934424")
    made = export.int8.stat().st_mtime
    assert embedder.backend.endswith("-int8") and embedder.key.endswith("|" + embedder.backend)
    assert MIN_COSINE_INT8 <= export.meta()["checks"][embedder.backend] < 1
    vectors = embed_paths(PATHS, embedder, progress=False).vectors
    assert cosines(vectors, torch_vectors).min() >= MIN_COSINE_INT8
    engine = open_engine("exact", metric="IP")
    engine.add(np.arange(len(PATHS)), torch_vectors)
    reference, _ = engine.search(torch_vectors, 4)
    found, _ = engine.search(vectors, 4)
    assert (found[:, 1:4] == reference[:, 1:4]).mean() >= 0.7  # the neighbours beyond itself, mostly kept
    build_embedder(settings=settings, backend="openvino-int8")
    assert export.int8.stat().st_mtime == made  # reused, not quantized again
