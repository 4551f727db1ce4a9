"""A folder made to look like a person's Pictures, from any images, with its planted duplicates known.

    python benchmarks/pictures_folder.py --sources DIR --out DIR [--photos 1000] [--side 4032]

Each source image (any `<group>/<image>` or flat folder; each used once) becomes one photo, enlarged
to `--side` on its long side (4032: a 12-megapixel phone photo):
- most are phone JPEGs stored sideways or upside down with the EXIF orientation that turns them
  upright (1, 6, 1, 8, 1, 3 in turn), under `DCIM/100APPLE/`, `Camera Roll/<year>/<place with accents>/`
  and a deep unsorted tree; every 20th is an iPhone HEIC, every 9th a PNG screenshot (the photo on a
  phone screen, 1170 x 2532), every 25th a small web image (100-400 px);
- planted copies, `--pairs` of each kind, of photos chosen in turn: exact (the same bytes), resized
  to 1/8, re-encoded at JPEG quality 40, cropped 10% (5% off each side), rotated by EXIF only (the
  pixels turned, the orientation tag turning them back), a JPEG of a HEIC photo, a screenshot of a
  photo; they go to `Backup/`, `WhatsApp Images/`, `Edited/`... under other names;
- what else such a folder holds: a hidden `.thumbnails/` cache (small copies: not part of the
  collection), `@eaDir/` (a NAS's thumbnails), a video, notes, an empty and a truncated JPEG, and a
  link to a photo already in the folder.
The truth (`<out>.truth.json`, beside the folder) lists the planted pairs (original, copy, kind) as
paths relative to the folder, and the photos and the files that are not (hidden, caches, broken).
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import random
from pathlib import Path

from PIL import Image, ImageDraw

from imgsearch_helpers.data.folders import list_images
from imgsearch_helpers.data.images import load_image

ORIENTATIONS = (1, 6, 1, 8, 1, 3)  # half upright as stored, as phones save landscape photos
TURN_TO_STORE = {1: None, 3: Image.Transpose.ROTATE_180, 6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270}
SCREEN = (1170, 2532)  # an iPhone's screenshot, portrait
KINDS = ("exact", "resized 1/8", "quality 40", "cropped 10%", "rotated by EXIF", "HEIC to JPEG", "screenshot")
PLACES = ("Été à Paris", "Lisboa 2023", "Zürich", "garden", "birthday Ana", "München Oktober")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sources", type=Path, required=True, help="a folder of images (searched recursively)")
    parser.add_argument("--out", type=Path, required=True, help="the folder to make (must not exist)")
    parser.add_argument("--photos", type=int, default=1000, help="photos, one per source image (default 1000)")
    parser.add_argument("--pairs", type=int, default=40, help="planted copies of each kind (default 40)")
    parser.add_argument("--side", type=int, default=4032, help="a photo's long side in pixels (default 4032)")
    args = parser.parse_args()
    truth = make_pictures(args.sources, args.out, args.photos, args.pairs, args.side)
    print(f"{len(truth['photos'])} photos, {len(truth['pairs'])} planted copies, {len(truth['left_out'])} "
          f"files that are not photos of the collection, under {args.out}")


def make_pictures(sources: Path, out: Path, photos: int = 1000, pairs: int = 40, side: int = 4032,
                  seed: int = 0) -> dict:
    """Write the folder (see the module docstring) and its truth file; returns the truth."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)  # a run cut short goes on: the files already written are kept
    chosen = list_images(sources)[:photos]
    if len(chosen) < photos:
        raise SystemExit(f"{sources} holds {len(chosen)} images, fewer than --photos {photos}")
    rng = random.Random(seed)
    folder = Folder(out)
    made = [folder.photo(i, load_image(path), side, rng) for i, path in enumerate(chosen)]
    truth = {"photos": [m["relpath"] for m in made], "pairs": [], "left_out": []}
    truth["pairs"] = folder.plant_copies(made, pairs)
    truth["photos"] += [copy for _, copy, _ in truth["pairs"]]
    truth["left_out"] = folder.clutter(made)
    Path(f"{out}.truth.json").write_text(json.dumps(truth, indent=1, ensure_ascii=False))
    return truth


class Folder:
    """Writes the photos and copies of one generated Pictures folder."""

    def __init__(self, root: Path):
        self.root = root
        self.count = itertools.count(1)

    def write(self, relpath: str, image, **options) -> str:
        """Save `image` (or what the callable `image` makes) once: the same seed and sources write
        the same file, so a run cut short goes on where it stopped."""
        target = self.root / relpath
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            (image() if callable(image) else image).save(target, **options)
        return relpath

    def photo(self, i: int, source: Image.Image, side: int, rng: random.Random) -> dict:
        """One photo of the collection: its relpath and kind (its copies read it back: 12-MP images are
        not kept in memory)."""
        number = next(self.count)
        if i % 25 == 24:
            small = rng.randint(100, 400)
            return {"relpath": self.write(f"Downloads/web {number}.png", lambda: enlarged(source, small)),
                    "kind": "web"}
        if i % 9 == 8:
            shot = self.write(f"Screenshots/Screenshot {number:05d}.png",
                              lambda: screenshot_of(enlarged(source, side)))
            return {"relpath": shot, "kind": "screenshot"}
        if i % 20 == 19:  # x265's fastest preset: its default takes a minute a 12-MP photo here
            relpath = self.write(f"iPhone export/IMG_{number:04d}.HEIC", lambda: enlarged(source, side), quality=80,
                                 enc_params={"preset": "ultrafast"})
            return {"relpath": relpath, "kind": "heic"}
        orientation = ORIENTATIONS[i % len(ORIENTATIONS)]
        place = ["DCIM/100APPLE", f"Camera Roll/{2019 + i % 6}/{PLACES[i % len(PLACES)]}",
                 "Unsorted/old phone/backup/2017/misc"][i % 3]
        stored, exif = lambda: stored_sideways(enlarged(source, side), orientation)[0], exif_for(orientation)
        relpath = self.write(f"{place}/IMG_{number:04d}.JPG", stored, exif=exif, quality=90)
        return {"relpath": relpath, "kind": "jpeg"}

    def plant_copies(self, made: list[dict], pairs: int) -> list[tuple[str, str, str]]:
        """`pairs` copies of each kind, of photos taken in turn (each photo copied at most once; fewer
        JPEGs of HEIC photos when the folder has fewer HEIC photos)."""
        heic = [m for m in made if m["kind"] == "heic"]
        plain = iter(m for m in made if m["kind"] == "jpeg")
        planted = []
        for kind in KINDS:
            originals = heic[:pairs] if kind == "HEIC to JPEG" else [next(plain, None) for _ in range(pairs)]
            if None in originals:
                raise SystemExit(f"too few photos for {pairs} copies of each kind: use more --photos")
            planted += [(original["relpath"], self.copy(kind, original, n), kind)
                        for n, original in enumerate(originals)]
        return planted

    def copy(self, kind: str, original: dict, n: int) -> str:
        image, name = load_image(self.root / original["relpath"]), f"{kind.replace('/', ' of ')} {n:03d}"
        if kind == "exact":
            target = self.root / "Backup" / f"copy of {Path(original['relpath']).name}"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes((self.root / original["relpath"]).read_bytes())
            return target.relative_to(self.root).as_posix()
        if kind == "resized 1/8":
            small = image.resize((max(1, image.width // 8), max(1, image.height // 8)), Image.Resampling.LANCZOS)
            return self.write(f"WhatsApp Images/IMG-{n:04d}-WA.jpg", small, quality=85)
        if kind == "quality 40":
            return self.write(f"Sent/{name}.jpg", image, quality=40)
        if kind == "cropped 10%":
            dx, dy = image.width // 20, image.height // 20
            return self.write(f"Edited/{name}.jpg", image.crop((dx, dy, image.width - dx, image.height - dy)),
                              quality=90)
        if kind == "rotated by EXIF":
            stored, exif = stored_sideways(image, 6)
            return self.write(f"Edited/{name} turned.jpg", stored, exif=exif, quality=90)
        if kind == "HEIC to JPEG":
            return self.write(f"iPhone export/converted/{name}.jpg", image, quality=90)
        return self.write(f"Screenshots/{name}.png", screenshot_of(image))

    def clutter(self, made: list[dict]) -> list[str]:
        """Files a Pictures folder holds that are not photos of the collection; their relpaths."""
        left_out = []
        for m in made[:30]:
            thumb = enlarged(load_image(self.root / m["relpath"]), 160)
            left_out.append(self.write(f".thumbnails/normal/{Path(m['relpath']).stem}.png", thumb))
        first = load_image(self.root / made[0]["relpath"])
        left_out.append(self.write("@eaDir/IMG_0001.JPG/SYNOPHOTO_THUMB_M.jpg", enlarged(first, 320)))
        for relpath, data in [("Videos/clip.mov", os.urandom(4096)), ("notes.txt", b"holiday list"),
                              ("Broken/empty.jpg", b"")]:
            (self.root / relpath).parent.mkdir(parents=True, exist_ok=True)
            (self.root / relpath).write_bytes(data)
            left_out.append(relpath)
        whole = (self.root / made[0]["relpath"]).read_bytes()
        (self.root / "Broken" / "truncated.jpg").write_bytes(whole[:len(whole) // 3])
        left_out.append("Broken/truncated.jpg")
        link = self.root / "Favourites" / "best.jpg"
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(self.root / made[1]["relpath"], link.parent))  # a photo already in
        return left_out + ["Favourites/best.jpg"]


def enlarged(image: Image.Image, side: int) -> Image.Image:
    """`image` scaled so that its long side is `side` pixels."""
    scale = side / max(image.size)
    return image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                        Image.Resampling.BICUBIC)


def stored_sideways(upright: Image.Image, orientation: int) -> tuple[Image.Image, bytes]:
    """The pixels as a phone stores them and the EXIF whose orientation tag turns them upright."""
    turn = TURN_TO_STORE[orientation]
    return (upright.transpose(turn) if turn else upright), exif_for(orientation)


def exif_for(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif.tobytes()


def screenshot_of(photo: Image.Image) -> Image.Image:
    """The photo shown on a phone screen: fitted to the width, bars of the viewer above and below."""
    screen = Image.new("RGB", SCREEN, (16, 16, 16))
    fitted = enlarged(photo, SCREEN[0]) if photo.width >= photo.height else enlarged(photo, SCREEN[1] - 400)
    screen.paste(fitted, ((SCREEN[0] - fitted.width) // 2, (SCREEN[1] - fitted.height) // 2))
    draw = ImageDraw.Draw(screen)
    draw.rectangle((0, 0, SCREEN[0], 140), fill=(245, 245, 245))  # status and title bar
    draw.text((60, 60), "9:41   Photos", fill=(0, 0, 0))
    draw.rectangle((0, SCREEN[1] - 200, SCREEN[0], SCREEN[1]), fill=(245, 245, 245))  # the viewer's tool bar
    return screen


if __name__ == "__main__":
    main()
