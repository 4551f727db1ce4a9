"""Preprocessing in Pillow and numpy gives the tensors timm's eval transform gives (real photos,
every size the dataset has, both Lite input sizes), without importing torch."""
import numpy as np
import pytest
import timm
from realdata import ROOT
from timm.data import create_transform, resolve_data_config

from imgsearch_helpers.data.images import load_image
from imgsearch_helpers.models.preprocess import Preprocessing

PHOTOS = sorted((ROOT / "train").glob("*/*.JPEG"))[::71]


@pytest.mark.parametrize("architecture", ["tf_efficientnet_lite0", "tf_efficientnet_lite2", "resnet18"])
def test_the_tensors_are_timms_up_to_one_level_of_rounding(real_dataset, architecture):
    config = resolve_data_config({}, model=timm.create_model(architecture, pretrained=False))
    reference, ours = create_transform(**config), Preprocessing.from_timm(config)
    differences = []
    for path in PHOTOS:
        image = load_image(path, min_side=ours.resize)
        expected, got = reference(image).numpy(), ours(image)
        assert got.shape == expected.shape and got.dtype == np.float32
        differences.append(np.abs(got - expected))
    step = 1 / (255 * min(config["std"]))  # one grey level after normalizing
    assert max(d.max() for d in differences) <= 2 * step + 1e-6
    assert np.mean([d.mean() for d in differences]) < 1e-3 * step


def test_it_round_trips_through_the_saved_form():
    p = Preprocessing(224, 256, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), "bicubic")
    assert Preprocessing.from_dict(p.as_dict()) == p
