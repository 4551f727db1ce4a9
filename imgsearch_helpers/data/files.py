"""The one way the package opens a user's file (a gallery image, a query): regular files only,
never blocking, never read past a size limit.

A FIFO named `x.jpg` would block an open or a read forever, `/dev/zero` never ends, and a junk
file of gigabytes would be read whole: each is refused with an `ImageError` naming the file and why.
The type is checked on the open descriptor (`fstat`), so a file swapped for a FIFO between a
check and the open is still refused.
"""
from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO

from ..errors import ImageError

MAX_FILE_BYTES = 256 * 2**20  # an uncompressed 64-megapixel RGB TIFF (192 MB) fits; a disk image does not
CHUNK_BYTES = 2**20
# O_NONBLOCK: opening a FIFO returns at once instead of waiting for a writer; no effect on regular files.
OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
KINDS = {stat.S_IFIFO: "a FIFO", stat.S_IFSOCK: "a socket", stat.S_IFCHR: "a character device",
         stat.S_IFBLK: "a block device"}


@contextmanager
def open_regular(path, limit: int = MAX_FILE_BYTES) -> Iterator[BinaryIO]:
    """`path` opened for reading, if it is a non-empty regular file of at most `limit` bytes."""
    try:
        check_regular(path, os.stat(path), limit)  # a device is not even opened (some act on open)
        descriptor = os.open(path, OPEN_FLAGS)
    except OSError as exc:
        raise ImageError(path, cannot_read(exc)) from None
    try:
        check_regular(path, os.fstat(descriptor), limit)
    except BaseException:
        os.close(descriptor)
        raise
    with os.fdopen(descriptor, "rb") as handle:
        yield handle


def check_regular(path, info: os.stat_result, limit: int = MAX_FILE_BYTES) -> None:
    """Raise an `ImageError` unless `info` is that of a non-empty regular file of at most `limit` bytes."""
    check_kind(path, info)
    if info.st_size == 0:
        raise ImageError(path, "empty file (0 bytes)")
    if info.st_size > limit:
        raise ImageError(path, over_limit(info.st_size, limit))


def check_kind(path, info: os.stat_result) -> None:
    """Raise an `ImageError` unless `info` is that of a regular file (not a folder, a FIFO, a device...)."""
    if stat.S_ISDIR(info.st_mode):
        raise ImageError(path, "not a file (a folder)")
    if not stat.S_ISREG(info.st_mode):
        raise ImageError(path, f"not a regular file ({KINDS.get(stat.S_IFMT(info.st_mode), 'of an unknown kind')})")


def cannot_read(exc: OSError) -> str:
    return "cannot read file (not found)" if isinstance(exc, FileNotFoundError) else \
        f"cannot read file ({exc.strerror or exc})"


def over_limit(size: int, limit: int) -> str:
    return f"file of {byte_size(size)} is over the {byte_size(limit)} limit for an image"


def byte_size(count: int) -> str:
    """2**20 bytes is '1 MB' (binary units, as file managers count)."""
    for unit, scale in (("GB", 2**30), ("MB", 2**20), ("KB", 2**10)):
        if count >= scale:
            return f"{count / scale:.1f} {unit}".replace(".0 ", " ")
    return f"{count} bytes"


def chunks(handle: BinaryIO, path, limit: int = MAX_FILE_BYTES) -> Iterator[bytes]:
    """The rest of an open file in pieces, stopped past `limit` (a file can grow after its fstat)."""
    total = 0
    while chunk := handle.read(CHUNK_BYTES):
        total += len(chunk)
        if total > limit:
            raise ImageError(path, over_limit(total, limit))
        yield chunk


def read_all(handle: BinaryIO, path, limit: int = MAX_FILE_BYTES) -> bytes:
    return b"".join(chunks(handle, path, limit))


def sha256_of(handle: BinaryIO, path, limit: int = MAX_FILE_BYTES) -> str:
    """The sha256 of the rest of an open file, hashed piece by piece: the same hex digest as
    `embed.cache.content_digest` of its bytes (the embedding cache's key), without holding them."""
    digest = hashlib.sha256()
    for chunk in chunks(handle, path, limit):
        digest.update(chunk)
    return digest.hexdigest()
