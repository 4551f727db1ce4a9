"""The copies benchmark's edits: named, deterministic (seeded by the image's name), each an RGB
PIL image in and out. `MILD` are the edits a duplicate finder must never miss; the others are the
hard ones the issue's targets name (a quarter crop, 30 degrees, a perspective warp, three at once).
"""
from __future__ import annotations

import io
import zlib

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageOps


def crop_area(image: Image.Image, share: float, seed: int) -> Image.Image:
    """A crop keeping `share` of the area, same aspect, at a seeded position."""
    rng = np.random.default_rng(seed)
    width, height = image.size
    w, h = max(1, round(width * share ** 0.5)), max(1, round(height * share ** 0.5))
    left, top = int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))
    return image.crop((left, top, left + w, top + h))


def rotate(image: Image.Image, degrees: float) -> Image.Image:
    """Rotated about the center, the canvas grown to hold it, corners filled black (as editors do)."""
    return image.rotate(degrees, resample=Image.Resampling.BICUBIC, expand=True)


def perspective(image: Image.Image, seed: int, strength: float = 0.2) -> Image.Image:
    """Each corner pulled inwards by up to `strength` of the side, as a photo taken at an angle."""
    rng = np.random.default_rng(seed)
    width, height = image.size
    shift = rng.uniform(0, strength, size=(4, 2)) * (width, height)
    corners = np.float32([[0, 0], [width, 0], [width, height], [0, height]])
    pulled = corners + shift * [[1, 1], [-1, 1], [-1, -1], [1, -1]]
    coefficients = _perspective_coefficients(pulled, corners)
    return image.transform(image.size, Image.Transform.PERSPECTIVE, coefficients, Image.Resampling.BICUBIC)


def _perspective_coefficients(target: np.ndarray, source: np.ndarray) -> tuple:
    """Pillow's 8 coefficients mapping output pixels (`target` corners) back to input pixels."""
    rows = []
    for (x, y), (u, v) in zip(target, source):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
    return tuple(np.linalg.solve(np.float64(rows), source.reshape(8).astype(np.float64)))


def downscale(image: Image.Image, factor: int = 4) -> Image.Image:
    return image.resize((max(1, image.width // factor), max(1, image.height // factor)), Image.Resampling.BILINEAR)


def jpeg(image: Image.Image, quality: int = 10) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def colour_shift(image: Image.Image) -> Image.Image:
    """A strong cast: hue rotated a third of the way round, saturation and contrast raised."""
    hsv = np.asarray(image.convert("HSV")).copy()
    hsv[..., 0] = (hsv[..., 0].astype(np.int16) + 85) % 256
    shifted = Image.fromarray(hsv, "HSV").convert("RGB")
    return ImageEnhance.Contrast(ImageEnhance.Color(shifted).enhance(1.5)).enhance(1.3)


def grayscale(image: Image.Image) -> Image.Image:
    return ImageOps.grayscale(image).convert("RGB")


def overlay(image: Image.Image, seed: int) -> Image.Image:
    """A caption band and a logo-like badge drawn over the picture."""
    rng = np.random.default_rng(seed)
    edited = image.copy()
    draw = ImageDraw.Draw(edited)
    width, height = edited.size
    band = int(height * 0.18)
    draw.rectangle((0, height - band, width, height), fill=(20, 20, 20))
    draw.text((width * 0.05, height - band * 0.7), "SHARED  " + str(int(rng.integers(1000, 9999))),
              fill=(255, 255, 255), font_size=max(10, band // 2))
    side = int(min(width, height) * 0.22)
    x, y = int(rng.integers(0, width - side)), int(rng.integers(0, max(1, height - band - side)))
    draw.ellipse((x, y, x + side, y + side), fill=(230, 40, 40), outline=(255, 255, 255), width=max(1, side // 12))
    return edited


def screenshot(image: Image.Image) -> Image.Image:
    """The picture shrunk onto a light page with a title bar and margins, as a screenshot of a viewer."""
    width, height = image.size
    page = Image.new("RGB", (int(width * 1.3), int(height * 1.45)), (242, 242, 242))
    draw = ImageDraw.Draw(page)
    draw.rectangle((0, 0, page.width, int(height * 0.12)), fill=(60, 63, 70))
    page.paste(image, ((page.width - width) // 2, int(height * 0.25)))
    return page


def mirror(image: Image.Image) -> Image.Image:
    return ImageOps.mirror(image)


def combination(image: Image.Image, seed: int) -> Image.Image:
    """Crop to half the area, rotate 10 degrees, recompress at JPEG quality 30."""
    return jpeg(rotate(crop_area(image, 0.5, seed), 10), 30)


EDITS = {
    "crop 50%": lambda image, seed: crop_area(image, 0.5, seed),
    "crop 25%": lambda image, seed: crop_area(image, 0.25, seed),
    "rotate 10": lambda image, seed: rotate(image, 10),
    "rotate 30": lambda image, seed: rotate(image, 30),
    "perspective": perspective,
    "downscale 1/4": lambda image, seed: downscale(image),
    "jpeg 10": lambda image, seed: jpeg(image),
    "colour shift": lambda image, seed: colour_shift(image),
    "grayscale": lambda image, seed: grayscale(image),
    "overlay": overlay,
    "screenshot": lambda image, seed: screenshot(image),
    "mirror": lambda image, seed: mirror(image),
    "combination": combination,
}
HARD = ("crop 25%", "rotate 30", "perspective", "combination")
MILD = tuple(name for name in EDITS if name not in HARD)


def seed_for(name: str) -> int:
    """A stable seed from an image's name (the same edit every run, on every machine)."""
    return zlib.crc32(name.encode())


def apply_edit(edit: str, image: Image.Image, name: str) -> Image.Image:
    if edit not in EDITS:
        raise ValueError(f"unknown edit {edit!r}: choose from {', '.join(EDITS)}")
    return EDITS[edit](image, seed_for(f"{edit}/{name}"))
