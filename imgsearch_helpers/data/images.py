"""The one image decoder of the package: any file in, an upright RGB image out, or a clear error.

Files are opened by `files.open_regular` (regular files only, up to a size limit), and their
bytes are read only after the header names an image format.
"""
from __future__ import annotations

import io
from contextlib import contextmanager, nullcontext
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from pillow_heif import register_heif_opener

from ..errors import ImageError
from .files import open_regular, read_all, sha256_of

register_heif_opener()  # HEIC/HEIF, what iPhones save by default (AVIF is Pillow's own)

# 64 megapixels: a 8000 x 8000 photo passes, a decompression bomb does not.
MAX_PIXELS = 64_000_000
ROTATED = {5, 6, 7, 8}  # EXIF orientations that swap width and height


def load_image(
    path, data: bytes | None = None, max_pixels: int = MAX_PIXELS, min_side: int | None = None
) -> Image.Image:
    """Decode `path` (or its already-read bytes `data`) to an upright RGB image.

    `min_side` lets large JPEGs decode at a reduced scale (never below `min_side` pixels on the
    short side), which is much faster and loses nothing a 224-pixel model can see; other formats
    (a PNG screenshot, a HEIC photo) are decoded whole and then shrunk by the same whole factors.
    """
    path = Path(path)
    if data is not None and not data:
        raise ImageError(path, "empty file (0 bytes)")
    # No warnings.catch_warnings here: images are decoded on worker threads, and that context
    # manager swaps the process-wide filters (threads would undo each other's and the caller's).
    # Pillow may still print its bomb warning (past 89 MP) just before _check_size rejects the image.
    source = nullcontext(io.BytesIO(data)) if data is not None else open_regular(path)
    with source as handle, pillow_errors(path), Image.open(handle) as opened:
        _check_size(path, opened, max_pixels)
        if min_side:
            _reduce_while_decoding(opened, min_side)
        opened.load()
        ImageOps.exif_transpose(opened, in_place=True)  # an upright image is not copied
    return _reduced(to_rgb(opened), min_side) if min_side else to_rgb(opened)


def read_image_bytes(path) -> bytes:
    """The bytes of an image file, read only once its header shows an image format: a junk file
    named `.jpg` is refused after a few bytes, not read whole."""
    with open_regular(path) as handle:
        _size_from_header(path, handle)
        handle.seek(0)
        return read_all(handle, path)


def describe_image_file(path) -> tuple[int, int, str]:
    """(width, height) as shown, from the header, and the sha256 of the bytes (hashed in pieces,
    never held whole); a file whose header is no image is not read further."""
    with open_regular(path) as handle:
        width, height = _size_from_header(path, handle)
        handle.seek(0)
        return width, height, sha256_of(handle, path)


def upright_size(source) -> tuple[int, int]:
    """(width, height) as the image is shown, read from the header of a file (a path) or a file
    object; (0, 0) when it cannot be read."""
    try:
        with nullcontext(source) if hasattr(source, "read") else open_regular(source) as handle:
            return _size_from_header(source, handle)
    except ImageError:
        return 0, 0


def _size_from_header(path, handle) -> tuple[int, int]:
    with pillow_errors(path), Image.open(handle) as image:  # reads the header only
        width, height = image.size
        return (height, width) if _header_orientation(image) in ROTATED else (width, height)


def _header_orientation(image: Image.Image) -> int | None:
    """The EXIF orientation an opened image's header gives. A PNG's is read only from an eXIf chunk
    before its pixels: asked for its EXIF, Pillow decodes a whole PNG to look for the chunk after
    them (a phone screenshot: 36 ms, twice an ingest, on the thread that feeds the network). The
    pixels are still turned when decoded (`load_image`)."""
    if image.format == "PNG" and "exif" not in image.info:
        return None
    return image.getexif().get(0x0112)


@contextmanager
def pillow_errors(path):
    """Pillow's failures to open or decode `path` as an `ImageError` saying which kind."""
    try:
        yield
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(path, "not an image file (unrecognised format)") from None
    except Image.DecompressionBombError as exc:
        raise ImageError(path, f"image too large ({exc})") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(path, f"corrupt or truncated image ({exc})") from None


def _check_size(path: Path, image: Image.Image, max_pixels: int) -> None:
    width, height = image.size
    if width * height > max_pixels:
        raise ImageError(path, f"image too large: {width} x {height} pixels (limit {max_pixels:,})")
    if width == 0 or height == 0:
        raise ImageError(path, f"image has no pixels ({width} x {height})")


def _reduce_while_decoding(image: Image.Image, min_side: int) -> None:
    if image.format != "JPEG":
        return
    scale = min(image.size) // min_side  # JPEG decoders can shrink by 1/2, 1/4, 1/8
    if scale >= 2:
        image.draft("RGB", (image.size[0] // scale, image.size[1] // scale))


def _reduced(image: Image.Image, min_side: int) -> Image.Image:
    """`image` shrunk by the largest whole factor that keeps `min_side` pixels on its short side,
    averaging each block of pixels, as a JPEG decoder's reduced scales do: resampling a 12-megapixel
    HEIC or a phone screenshot straight to a network's input costs more than decoding it."""
    factor = min(image.size) // min_side
    return image.reduce(factor) if factor >= 2 else image


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any PIL mode to RGB: transparency onto white, 16-bit and float scaled to 8-bit."""
    if image.mode == "RGB":
        return image
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        return _scale_to_8bit(image).convert("RGB")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")  # L, 1, P, CMYK, YCbCr, LAB, HSV


def _scale_to_8bit(image: Image.Image) -> Image.Image:
    pixels = np.asarray(image, dtype=np.float64)
    low, high = float(pixels.min()), float(pixels.max())
    span = high - low if high > low else 1.0
    return Image.fromarray(((pixels - low) / span * 255.0).round().astype(np.uint8), mode="L")
