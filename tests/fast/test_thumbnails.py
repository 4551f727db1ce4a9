"""imgsearch_helpers.data.thumbnails: a gallery image's thumbnail is made once, kept in the cache,
made again when the file changes, and a cache that cannot be written only costs speed."""
import os

import numpy as np
import pytest
from PIL import Image

from imgsearch_helpers.data.thumbnails import THUMB, Thumbnails
from imgsearch_helpers.errors import ImageError


def photo(path, width=900, height=600, seed=0):
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, quality=90)
    return path


def stored(folder):
    return sorted(folder.rglob("*.jpg"))


def test_a_thumbnail_is_made_once_and_then_read_from_the_cache(tmp_path):
    thumbs = Thumbnails(tmp_path / "thumbs")
    source = photo(tmp_path / "a.jpg")
    first = thumbs.get(source)
    assert max(first.size) == THUMB and first.size == (THUMB, round(THUMB * 600 / 900))
    [kept] = stored(tmp_path / "thumbs")
    kept.unlink()
    Image.new("RGB", (7, 5), (0, 255, 0)).save(kept)  # a marker: the stored file is what is read
    assert thumbs.get(source).size == (7, 5)


def test_a_changed_file_gets_a_new_thumbnail(tmp_path):
    thumbs = Thumbnails(tmp_path / "thumbs")
    source = photo(tmp_path / "a.jpg")
    thumbs.get(source)
    photo(source, 600, 900, seed=1)  # replaced: other size, other pixels
    os.utime(source, ns=(1, 1))
    assert thumbs.get(source).size == (round(THUMB * 600 / 900), THUMB)
    assert len(stored(tmp_path / "thumbs")) == 2


def test_keep_stores_the_thumbnail_of_an_already_decoded_image(tmp_path):
    thumbs = Thumbnails(tmp_path / "thumbs")
    source = photo(tmp_path / "a.jpg")
    thumbs.keep(source, Image.new("RGB", (320, 320), (255, 0, 0)))
    thumbs.keep(source, Image.new("RGB", (320, 320), (0, 0, 255)))  # none is made twice
    shown = thumbs.get(source)
    assert shown.size == (THUMB, THUMB) and shown.getpixel((5, 5))[0] > 200  # the first one kept
    assert len(stored(tmp_path / "thumbs")) == 1


def test_a_damaged_thumbnail_is_made_again(tmp_path):
    thumbs = Thumbnails(tmp_path / "thumbs")
    source = photo(tmp_path / "a.jpg")
    thumbs.get(source)
    [kept] = stored(tmp_path / "thumbs")
    kept.write_bytes(b"not a jpeg")
    assert max(thumbs.get(source).size) == THUMB


def test_a_cache_that_cannot_be_written_still_shows_the_image(tmp_path):
    blocked = tmp_path / "thumbs"
    blocked.write_text("a file where the folder would be")
    thumbs = Thumbnails(blocked)
    assert max(thumbs.get(photo(tmp_path / "a.jpg")).size) == THUMB
    assert not list(tmp_path.rglob("*.part"))


def test_an_unreadable_file_is_named(tmp_path):
    thumbs = Thumbnails(tmp_path / "thumbs")
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"no image here")
    with pytest.raises(ImageError, match="junk.jpg"):
        thumbs.get(junk)
    with pytest.raises(ImageError, match="missing.jpg"):
        thumbs.get(tmp_path / "missing.jpg")
    assert not stored(tmp_path / "thumbs")
