"""What an uploaded file must be before it becomes a query or a gallery image (app and HTTP API),
and how a kept upload is named: never over another file, never hidden, with the extension of
the format it really has (a JPEG sent as `evil.html` is kept as `evil.jpg`)."""
from __future__ import annotations

import os
import re
import unicodedata
from pathlib import Path

from PIL import Image

from ..data.images import load_image
from ..errors import ImageError, InputError

MAX_UPLOAD_MB = 20
MAX_PIXELS = 40_000_000  # 40 MP: any camera photo; a decompression bomb is refused before decoding
MAX_FILES_PER_REQUEST = 10
UPLOADS_QUOTA_FILES = 10_000  # files the uploads folder may hold ...
UPLOADS_QUOTA_MB = 2_000  # ... and their total size
MAX_NAME_BYTES = 120  # a kept file's stem (file systems allow 255 bytes for the whole name)
EXTENSIONS = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "GIF": ".gif", "BMP": ".bmp", "TIFF": ".tif",
              "MPO": ".jpg", "HEIF": ".heic", "AVIF": ".avif"}
UNSAFE_CHARACTERS = re.compile(r'[\x00-\x1f\x7f/\\:*?"<>|]+')


def upload_problem(path: Path) -> str | None:
    """Why an uploaded file cannot be used (None when it can): size first, then whether it decodes."""
    size = Path(path).stat().st_size
    if size > MAX_UPLOAD_MB * 1_000_000:
        return f"the file is {size / 1e6:.1f} MB; the limit is {MAX_UPLOAD_MB} MB."
    try:
        load_image(path, max_pixels=MAX_PIXELS, min_side=224)
    except ImageError as exc:
        return exc.reason + "."
    return None


def kept_name(client_name: str | None, path: Path) -> str:
    """The name an upload is kept under: the client's stem made safe, the real format's extension."""
    stem = Path(UNSAFE_CHARACTERS.sub("_", (client_name or "").replace("\\", "/").rsplit("/", 1)[-1])).stem
    stem = unicodedata.normalize("NFC", stem).strip(" ._") or "upload"  # no dotfiles, no `..`
    while len(stem.encode()) > MAX_NAME_BYTES:
        stem = stem[:-1]
    with Image.open(path) as image:  # the header only: the file was decoded by `upload_problem`
        return stem + EXTENSIONS.get(image.format, ".img")


def check_quota(folder: Path, incoming: list[Path], max_files: int = UPLOADS_QUOTA_FILES,
                max_mb: float = UPLOADS_QUOTA_MB) -> None:
    """InputError when keeping `incoming` would take the uploads folder past its quota."""
    files = [entry for entry in os.scandir(folder) if entry.is_file(follow_symlinks=False)] if folder.is_dir() else []
    count = len(files) + len(incoming)
    size_mb = (sum(entry.stat().st_size for entry in files) + sum(p.stat().st_size for p in incoming)) / 1e6
    if count > max_files or size_mb > max_mb:
        raise InputError(f"the uploads folder is full ({len(files)} files, the quota is {max_files:,} files and "
                         f"{max_mb:,} MB): delete some uploads first")


def keep_upload(path: Path, folder: Path, client_name: str | None) -> Path:
    """Move a checked upload into `folder` under its kept name, never over an existing file."""
    folder.mkdir(parents=True, exist_ok=True)
    name = kept_name(client_name, path)
    stem, suffix = Path(name).stem, Path(name).suffix
    for n in range(UPLOADS_QUOTA_FILES + 1):
        target = folder / (name if n == 0 else f"{stem}-{n}{suffix}")
        try:
            out = open(target, "xb")  # "x": never replaces a file
        except FileExistsError:
            continue
        try:
            with out, open(path, "rb") as source:
                while chunk := source.read(1 << 20):
                    out.write(chunk)
        except OSError:
            target.unlink(missing_ok=True)  # a disk that filled up leaves no half file behind
            raise
        return target
    raise InputError(f"no free name for {name} in the uploads folder")
