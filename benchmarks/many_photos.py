"""Many distinct phone-size photos from a few thousand images, for the figures at 20,000 photos.

    python benchmarks/many_photos.py --sources DIR [DIR ...] --out data/photos-20k [--photos 20000] [--side 2048]

Photo i is a view of source image i mod n (the sources' images, searched recursively, in order): a
crop of 45-100% of each side at a random place, mirrored every other time, with a colour cast,
enlarged to `--side` pixels on its long side and saved as a JPEG (quality 90) under
`DCIM/<100 + i // 1000>APPLE/IMG_<i>.JPG`; every other photo is stored turned with the EXIF
orientation that turns it upright, as phones save them. Views of one source overlap as a burst of
shots of one scene does: the folder measures time and memory, not which pairs are duplicates.
A run cut short goes on where it stopped (files already written are kept).
"""
from __future__ import annotations

import argparse
import random
from multiprocessing import Pool
from pathlib import Path

from PIL import Image, ImageChops

from imgsearch_helpers.data.folders import list_images
from imgsearch_helpers.data.images import load_image

TURNED = {6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270}  # stored turned, shown upright by EXIF


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sources", type=Path, nargs="+", required=True, help="folders of images")
    parser.add_argument("--out", type=Path, required=True, help="the folder to write")
    parser.add_argument("--photos", type=int, default=20000, help="photos to make (default 20000)")
    parser.add_argument("--side", type=int, default=2048, help="a photo's long side in pixels (default 2048)")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    sources = [str(path) for folder in args.sources for path in list_images(folder)]
    jobs = [(i, sources[i % len(sources)], str(photo_path(args.out, i)), args.side) for i in range(args.photos)]
    with Pool(args.workers) as pool:
        made = sum(pool.imap_unordered(make_photo, jobs, chunksize=16))
    print(f"{args.photos} photos from {len(sources)} images under {args.out} ({made} made now)")


def photo_path(out: Path, i: int) -> Path:
    return out / "DCIM" / f"{100 + i // 1000}APPLE" / f"IMG_{i:05d}.JPG"


def make_photo(job) -> int:
    """Write photo `i` (see the module docstring); 0 if it was already there."""
    i, source, target, side = job
    target = Path(target)
    if target.exists():
        return 0
    chance = random.Random(i)
    image = view(load_image(source), chance)
    scale = side / max(image.size)
    image = image.resize((round(image.width * scale), round(image.height * scale)), Image.Resampling.BICUBIC)
    orientation = (1, 6, 1, 8)[i % 4]
    exif = Image.Exif()
    exif[0x0112] = orientation
    if orientation in TURNED:
        image = image.transpose(TURNED[orientation])
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".part")
    image.save(partial, "JPEG", quality=90, exif=exif.tobytes())
    partial.rename(target)  # a photo is there whole or not at all
    return 1


def view(image: Image.Image, chance: random.Random) -> Image.Image:
    """A random crop (45-100% of each side), mirrored half the time, with a colour cast."""
    width, height = image.size
    w, h = round(width * chance.uniform(0.45, 1.0)), round(height * chance.uniform(0.45, 1.0))
    left, top = chance.randint(0, width - w), chance.randint(0, height - h)
    image = image.crop((left, top, left + w, top + h))
    if chance.random() < 0.5:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    cast = Image.new("RGB", image.size, tuple(chance.randint(0, 60) for _ in range(3)))
    return ImageChops.add(image, cast)


if __name__ == "__main__":
    main()
