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
    whole: bool = False  # squeeze the whole image into the square instead of cropping its center

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
        return cls(saved["crop"], saved["resize"], tuple(saved["mean"]), tuple(saved["std"]), saved["interpolation"],
                   saved.get("whole", False))

    def as_dict(self) -> dict:
        return asdict(self)

    def __call__(self, image: Image.Image) -> np.ndarray:
        """An RGB image as a (3, crop, crop) float32 array, as timm's transform makes it (or, if
        `whole`, the whole image resized to the square: nothing at the edges is lost)."""
        return self.normalize(self.pixels(image))

    def pixels(self, image: Image.Image) -> np.ndarray:
        """The (crop, crop, 3) uint8 pixels the network sees, before `normalize` (a quarter of the
        float input's bytes, for sending between processes).

        Only the region that survives the center crop is resampled (Pillow's `box`), straight to
        the crop's size: the same sampling grid as resizing the whole image and then cropping, at
        half the cost; a few pixels differ by one level of rounding.
        """
        if self.whole:
            return np.asarray(image.resize((self.crop, self.crop), RESAMPLING[self.interpolation]))
        width, height = image.size
        short, long = (width, height) if width <= height else (height, width)
        new_long = int(self.resize * long / short)  # torchvision's rounding of the long side
        resized = (self.resize, new_long) if width <= height else (new_long, self.resize)
        left = int(round((resized[0] - self.crop) / 2.0))
        top = int(round((resized[1] - self.crop) / 2.0))
        x_scale, y_scale = width / resized[0], height / resized[1]
        box = (left * x_scale, top * y_scale, (left + self.crop) * x_scale, (top + self.crop) * y_scale)
        return np.asarray(image.resize((self.crop, self.crop), RESAMPLING[self.interpolation], box=box))

    def normalize(self, pixels: np.ndarray) -> np.ndarray:
        """(crop, crop, 3) uint8 pixels -> (3, crop, crop) float32, scaled and normalized."""
        out = np.empty((3, self.crop, self.crop), np.float32)
        for channel, (mean, std) in enumerate(zip(self.mean, self.std)):
            np.multiply(pixels[..., channel], np.float32(1.0 / (255.0 * std)), out=out[channel])
            out[channel] -= np.float32(mean / std)
        return out
