"""Files the package writes for itself, written whole or not at all, and the one sha256 helper.

Every file another process may read while it is being written (results the tests read back,
the collection registry, model exports, cached crops) goes through `atomic_path`: the content
lands in a scratch file beside the target (same folder, so the rename is atomic; a unique name,
so two writers never share one), which then replaces the target in one step.
"""
from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

CHUNK = 1 << 20


@contextmanager
def atomic_path(path) -> Iterator[Path]:
    """A scratch path to write instead of `path` (same suffix, for writers that read it); on
    success it replaces `path`, on failure it is removed and `path` is left as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_name(f".{path.stem}.{os.getpid()}-{threading.get_ident()}.part{path.suffix}")
    try:
        yield scratch
        scratch.replace(path)
    finally:
        scratch.unlink(missing_ok=True)


def write_bytes(path, data: bytes) -> Path:
    with atomic_path(path) as scratch:
        scratch.write_bytes(data)
    return Path(path)


def write_text(path, text: str) -> Path:
    with atomic_path(path) as scratch:
        scratch.write_text(text)
    return Path(path)


def write_json(path, data) -> Path:
    """JSON, indented, numpy numbers written as plain ones."""
    return write_text(path, json.dumps(data, indent=2, default=_plain) + "\n")


def read_json(path, default=None):
    """The JSON in `path`; `default` when there is no such file."""
    path = Path(path)
    if default is not None and not path.is_file():
        return default
    return json.loads(path.read_text())


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path) -> str:
    """The sha256 of a file of the package's own (a checkpoint, an export), read in pieces."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _plain(value):
    """numpy scalars and arrays as JSON numbers and lists."""
    if hasattr(value, "tolist"):
        return value.tolist()
    return float(value)
