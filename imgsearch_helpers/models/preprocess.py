"""A model's input preprocessing in Pillow and numpy: the tensors timm's eval transform makes
(resize the short side, center crop, scale to [0, 1], normalize), without importing torch.

It is saved beside an exported model, so a command that reuses the export never loads timm.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from PIL import Image

RESAMPLING = {"bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR,
              "nearest": Image.Resampling.NEAREST, "lanczos": Image.Resampling.LANCZOS}


@dataclass(frozen=True)
class Preprocessing:
    crop: int  # side of the square the network sees
    resize: int  # short side before the center crop
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str = "bicubic"

    @classmethod
    def from_timm(cls, config: dict) -> Preprocessing:
        """From timm's `resolve_data_config` (a center crop of `crop_pct`)."""
        if config.get("crop_mode", "center") != "center":
            raise ValueError(f"only center crops are reproduced, not {config['crop_mode']!r}")
        crop = int(config["input_size"][-1])
        return cls(crop, int(crop / config["crop_pct"]), tuple(map(float, config["mean"])),
                   tuple(map(float, config["std"])), config["interpolation"])

    @classmethod
    def from_dict(cls, saved: dict) -> Preprocessing:
        return cls(saved["crop"], saved["resize"], tuple(saved["mean"]), tuple(saved["std"]), saved["interpolation"])

    def as_dict(self) -> dict:
        return asdict(self)

    def __call__(self, image: Image.Image) -> np.ndarray:
        """An RGB image as a (3, crop, crop) float32 array, as timm's transform makes it."""
        width, height = image.size
        short, long = (width, height) if width <= height else (height, width)
        new_long = int(self.resize * long / short)  # torchvision's rounding of the long side
        size = (self.resize, new_long) if width <= height else (new_long, self.resize)
        if size != image.size:
            image = image.resize(size, RESAMPLING[self.interpolation])
        left = int(round((size[0] - self.crop) / 2.0))
        top = int(round((size[1] - self.crop) / 2.0))
        pixels = np.asarray(image.crop((left, top, left + self.crop, top + self.crop)), dtype=np.float32)
        pixels = (pixels / 255.0 - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
        return np.ascontiguousarray(pixels.transpose(2, 0, 1))
