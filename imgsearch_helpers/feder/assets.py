"""What a Feder view needs in the browser, delivered inline: Feder's script, values as JSON, thumbnails.

The browser never fetches a local file: federpy passes the index as a URL, which fails for local
files and under JupyterLab's URLs. Here the script (a local copy when one is configured, else
the pinned CDN URL), the index bytes and the images travel inside the HTML itself.
"""
from __future__ import annotations

import base64
import hashlib
import io
import json
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from .._io import sha256_bytes, sha256_file, write_bytes
from ..config import Settings, display_path, get_settings
from ..data.images import load_image
from ..errors import FederScriptError, ImageError
from ..parallel import bounded_map

FEDER_VERSION = "0.2.4"
FEDER_PACKAGE = f"@zilliz/feder@{FEDER_VERSION}"
FEDER_SHA256 = "4477205ed0d7a851c226e9eb75802d4509558a527c323b685652e53155a14ab6"  # its dist/index.js
CDN_URL = f"https://unpkg.com/{FEDER_PACKAGE}/dist/index.js"


@dataclass(frozen=True)
class FederScript:
    """Feder's ES module: its source to inline, or the URL the browser imports it from."""

    code: str | None
    url: str | None
    origin: str

    @property
    def key(self) -> str:
        return hashlib.sha256((self.code or self.url).encode()).hexdigest()[:16]


def default_feder_js(settings: Settings) -> Path:
    """Where `make feder-js` puts the script when IMGSEARCH_FEDER_JS is not set."""
    return settings.assets_dir / f"feder-{FEDER_VERSION}.js"


def feder_script(settings: Settings | None = None) -> FederScript:
    """Feder's module: a configured local copy (which must exist), else the default local copy when
    `make feder-js` made one, else the pinned CDN URL. A local copy must match the pinned sha256."""
    settings = settings or get_settings()
    path = settings.feder_js or default_feder_js(settings)
    if not path.is_file():
        if settings.feder_js:
            raise FederScriptError(f"IMGSEARCH_FEDER_JS points at {display_path(path)}, which does not exist: "
                                   "run `make feder-js`, or unset it to load Feder from the CDN")
        return FederScript(None, CDN_URL, f"{CDN_URL} (the browser needs internet; `make feder-js` makes a local copy)")
    data = path.read_bytes()
    digest = sha256_bytes(data)
    if digest != FEDER_SHA256:
        raise FederScriptError(f"{display_path(path)} has sha256 {digest}, not that of {FEDER_PACKAGE}'s "
                               f"dist/index.js ({FEDER_SHA256}): run `make feder-js` to fetch the pinned version")
    return FederScript(data.decode("utf-8"), None, f"local copy {display_path(path)}")


def fetch_feder_js(settings: Settings | None = None) -> Path:
    """Put the pinned Feder script at settings.feder_js, from the npm registry (`npm pack`), checked."""
    settings = settings or get_settings()
    target = settings.feder_js or default_feder_js(settings)
    if target.is_file() and sha256_file(target) == FEDER_SHA256:
        return target
    npm = shutil.which("npm")
    if npm is None:
        raise FederScriptError("npm is not installed: install Node.js, or download dist/index.js of "
                               f"{FEDER_PACKAGE} by hand and set IMGSEARCH_FEDER_JS to it")
    with tempfile.TemporaryDirectory() as scratch:
        done = subprocess.run([npm, "pack", FEDER_PACKAGE, "--pack-destination", scratch, "--silent"],
                              capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            raise FederScriptError(f"npm pack {FEDER_PACKAGE} failed: {done.stderr.strip()[-500:]}")
        tarball = next(Path(scratch).glob("*.tgz"))
        with tarfile.open(tarball) as archive:
            code = archive.extractfile("package/dist/index.js").read()
    digest = sha256_bytes(code)
    if digest != FEDER_SHA256:
        raise FederScriptError(f"{FEDER_PACKAGE} from npm has sha256 {digest}, expected {FEDER_SHA256}")
    write_bytes(target, code)
    return target


def js_value(value) -> str:
    """`value` as a JavaScript literal safe inside an inline <script>: JSON, never pasted Python.

    True/None become true/null, quotes and backslashes are escaped, NaN is refused, and `<`, `>`
    and `&` are written as \\u escapes so that no string can close the script element.
    """
    try:
        text = json.dumps(value, ensure_ascii=True, allow_nan=False, default=_plain)
    except ValueError as exc:
        raise ValueError(f"cannot pass {value!r:.80} to JavaScript: {exc}") from None
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _plain(value):
    """numpy numbers and arrays, and paths, as plain JSON values."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot pass a {type(value).__name__} to JavaScript")


def thumbnail_url(path, size: int = 64, quality: int = 70) -> str:
    """A small JPEG of the image as a data: URL (what Feder's panels show)."""
    image = load_image(path, min_side=size)
    image.thumbnail((size, size))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def thumbnail_urls(paths_by_id: Mapping[int, str | Path], size: int = 64, progress: bool = True) -> dict[str, str]:
    """{id: data URL} for every readable image (unreadable ones are left out: Feder shows no picture)."""

    def make(item):
        key, path = item
        try:
            return str(key), thumbnail_url(path, size)
        except ImageError:
            return str(key), None

    items = list(paths_by_id.items())
    made = bounded_map(make, items, workers=2, ahead=16)
    return {key: url for key, url in tqdm(made, total=len(items), desc="thumbnails", unit="img",
                                          disable=not progress) if url}
