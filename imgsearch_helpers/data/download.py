"""Fetch a public file with a progress bar, and unpack a zip without letting it write outside."""
from __future__ import annotations

import shutil
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath

from tqdm import tqdm  # text bars: no widget state in saved notebooks

from ..errors import DownloadError


def download(url: str, dest: Path, timeout: float = 30.0) -> Path:
    """Download `url` to `dest` through a `.part` file, so a broken transfer leaves no `dest`."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(partial, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=f"download {dest.name}") as bar:
                received = 0
                while chunk := response.read(1 << 20):
                    out.write(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
            if total is not None and received != total:
                raise OSError(f"transfer ended after {received:,} of {total:,} bytes")
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise DownloadError(f"could not download {url}: {exc}") from exc
    partial.replace(dest)
    return dest


def safe_extract(archive: Path, dest: Path) -> Path:
    """Extract `archive` into `dest`, refusing absolute paths, `..` parts and symbolic links."""
    dest = Path(dest)
    staging = dest.with_name(dest.name + ".extracting")
    shutil.rmtree(staging, ignore_errors=True)
    with zipfile.ZipFile(archive) as zf:
        for member in zf.infolist():
            _check_member(archive, member)
        zf.extractall(staging)
    shutil.rmtree(dest, ignore_errors=True)
    staging.replace(dest)
    return dest


def _check_member(archive: Path, member: zipfile.ZipInfo) -> None:
    name = PurePosixPath(member.filename.replace("\\", "/"))
    if name.is_absolute() or ".." in name.parts or (name.parts and name.parts[0].endswith(":")):
        raise DownloadError(f"{archive}: refusing unsafe path {member.filename!r}")
    is_symlink = (member.external_attr >> 16) & 0o170000 == 0o120000
    if is_symlink:
        raise DownloadError(f"{archive}: refusing symbolic link {member.filename!r}")
