"""A region of a query image, `x,y,w,h` in the image's pixels as shown (after its EXIF
orientation): searching with it finds what is inside the box, for an object small in the frame."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import UsageError
from .images import load_image

MIN_SIDE = 16  # a smaller box has no features to find


@dataclass(frozen=True)
class Region:
    x: int
    y: int
    w: int
    h: int

    @classmethod
    def parse(cls, text: str) -> Region:
        """`"x,y,w,h"` (whole pixels) as a region, or a UsageError naming the value."""
        parts = str(text).replace(" ", "").split(",")
        if len(parts) != 4 or not all(p.isdigit() for p in parts):
            raise UsageError(f"region {text!r} is not x,y,w,h in whole pixels (e.g. 120,80,300,200)")
        region = cls(*map(int, parts))
        if min(region.w, region.h) < MIN_SIDE:
            raise UsageError(f"region {text!r} is under {MIN_SIDE} pixels on a side")
        return region

    def __str__(self) -> str:
        return f"{self.x},{self.y},{self.w},{self.h}"

    def crop_to(self, path, folder: Path) -> Path:
        """The region of the image at `path` saved as a PNG in `folder`; a UsageError when the box
        leaves the image."""
        image = load_image(path)
        if self.x + self.w > image.width or self.y + self.h > image.height:
            raise UsageError(f"region {self} leaves the image {Path(path).name} ({image.width} x {image.height})")
        target = Path(folder) / f"{Path(path).stem}-region.png"
        image.crop((self.x, self.y, self.x + self.w, self.y + self.h)).save(target)
        return target
