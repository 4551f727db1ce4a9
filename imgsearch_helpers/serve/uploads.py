"""What an uploaded file must be before it becomes a query or a gallery image (app and HTTP API)."""
from __future__ import annotations

from pathlib import Path

from ..errors import ImageError
from ..images import load_image

MAX_UPLOAD_MB = 20
MAX_PIXELS = 40_000_000  # 40 MP: any camera photo; a decompression bomb is refused before decoding


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
