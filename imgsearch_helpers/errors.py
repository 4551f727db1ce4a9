"""Every error the package raises on purpose: one base class, families by what the user can do.

Each family carries the exit code of the `imgsearch` command line, so the command line maps any
of them without knowing where it came from. Anything else that escapes is a bug (a traceback).
"""
from __future__ import annotations


class ImgsearchError(Exception):
    """A failure the user can act on; the message names the file, value or server and what to do."""

    exit_code = 1


# --- exit code 2: a value the package does not accept -------------------------------------------
class UsageError(ImgsearchError, ValueError):
    """An unknown name or a parameter out of range (a model, an engine, an index parameter, a setting)."""

    exit_code = 2


class FilterError(UsageError):
    """A metadata filter that cannot be parsed, or names a field the collection does not have."""


# --- exit code 3: input that cannot be read ------------------------------------------------------
class InputError(ImgsearchError, ValueError):
    """A file or folder that cannot be used as it is."""

    exit_code = 3


class FileError(InputError):
    """One file that cannot be used; the message is `<path>: <reason>`."""

    def __init__(self, path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class ImageError(FileError):
    """A file that cannot be used as an image."""


class DatasetError(InputError):
    """The dataset or a folder of images is missing, incomplete or laid out otherwise."""


class UploadTooLarge(InputError):
    """An upload over the size limit (the HTTP API answers 413)."""


class FederFileError(FileError):
    """An index file Feder cannot draw."""


# --- exit code 4: nothing to search yet ----------------------------------------------------------
class NotBuiltError(ImgsearchError):
    """The collection has not been built (or holds fewer rows than its catalog)."""

    exit_code = 4


# --- exit code 1: a component, a server or a download failed --------------------------------------
class EngineError(ImgsearchError):
    """An index engine refused a call (Milvus, FAISS, hnswlib, exact)."""


class DimensionMismatchError(EngineError):
    """Vectors whose width differs from what the collection or index stores."""


class EngineUnavailableError(EngineError):
    """The engine cannot be reached: a server that is down, a refused connection."""


class DatabaseLockedError(EngineUnavailableError):
    """A Milvus Lite database that another process holds open."""


class CacheError(ImgsearchError):
    """The embedding cache cannot be opened or written (a read-only or full folder, a damaged file)."""


class DownloadError(ImgsearchError):
    """A file could not be downloaded (no network, a broken transfer)."""


class ModelWeightsUnavailable(ImgsearchError):
    """Pretrained weights that are neither local nor downloadable here."""


class ClipUnavailable(ModelWeightsUnavailable):
    """CLIP's weights cannot be loaded (the offline text path still works)."""


class DetectorError(ImgsearchError):
    """A detector checkpoint that is unknown or has no verified checksum."""


class ChecksumMismatch(DetectorError):
    """A checkpoint whose sha256 differs from the pinned value."""


class FederScriptError(ImgsearchError):
    """Feder's script is missing or is not the pinned version."""


class BrowserUnavailable(ImgsearchError):
    """No Chromium to draw pages with."""


class RenderError(ImgsearchError):
    """A page failed to draw in the browser (script errors, a view that never finished)."""


class ServerError(ImgsearchError):
    """A local server (Milvus standalone, the app, JupyterLab) that did not start, answer or stop."""


def brief(exc: BaseException, limit: int = 120) -> str:
    """An exception as `Type: message`, shortened at a word boundary (a library's message can run
    for pages; one cut mid-word reads as a typo)."""
    text = " ".join(str(exc).split())
    if len(text) > limit:
        text = text[:limit].rsplit(" ", 1)[0].rstrip(",;:") + " ..."
    return f"{type(exc).__name__}: {text}"
