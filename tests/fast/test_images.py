"""imgsearch_helpers.data.images: every file becomes an upright RGB image or a clear ImageError."""
import numpy as np
import pytest
from PIL import Image

from imgsearch_helpers.data.images import MAX_PIXELS, ImageError, load_image, to_rgb

RED, BLUE, WHITE = (255, 0, 0), (0, 0, 255), (255, 255, 255)


def noise(width, height, seed=0):
    """A seeded RGB noise image (noise does not compress away, so JPEGs have real data)."""
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return Image.fromarray(pixels, mode="RGB")


def save(image, path, **options):
    image.save(path, **options)
    return path


def palette_image():
    """2x1 palette image: pixel (0, 0) is red (index 0), pixel (1, 0) is blue (index 1)."""
    image = Image.new("P", (2, 1), 0)
    image.putpalette([*RED, *BLUE] + [0] * (256 * 3 - 6))
    image.putpixel((1, 0), 1)
    return image


def test_jpeg_decodes_to_rgb_with_its_size(tmp_path):
    image = load_image(save(noise(37, 23), tmp_path / "photo.jpg"))
    assert image.mode == "RGB"
    assert image.size == (37, 23)


def test_max_pixels_default_allows_8000_square_but_not_more():
    assert 8000 * 8000 <= MAX_PIXELS < 8001 * 8001


@pytest.mark.parametrize(
    ("name", "image", "options"),
    [
        ("gray.png", Image.new("L", (5, 4), 128), {}),
        ("one_bit.png", Image.new("1", (5, 4), 1), {}),
        ("gray_alpha.png", Image.new("LA", (5, 4), (128, 255)), {}),
        ("cmyk.jpg", Image.new("CMYK", (5, 4), (0, 255, 255, 0)), {}),
        ("cmyk.tif", Image.new("CMYK", (5, 4), (0, 255, 255, 0)), {}),
        ("int32.tif", Image.fromarray(np.arange(20, dtype=np.int32).reshape(4, 5) * 1000), {}),
        ("palette.png", palette_image().resize((5, 4)), {}),
        ("palette_transparent.png", palette_image().resize((5, 4)), {"transparency": 1}),
        ("rgba.png", Image.new("RGBA", (5, 4), (1, 2, 3, 255)), {}),
    ],
)
def test_every_mode_comes_out_rgb(tmp_path, name, image, options):
    path = save(image, tmp_path / name, **options)
    with Image.open(path) as stored:
        assert stored.mode == image.mode  # the file really holds that mode
    result = load_image(path)
    assert result.mode == "RGB"
    assert result.size == (5, 4)


def test_cmyk_colours_survive(tmp_path):
    for name in ("cmyk.jpg", "cmyk.tif"):
        path = save(Image.new("CMYK", (4, 4), (0, 255, 255, 0)), tmp_path / name)
        r, g, b = load_image(path).getpixel((2, 2))
        assert r > 240 and g < 15 and b < 15, name  # no cyan, full magenta and yellow = red


def test_transparent_rgba_pixel_becomes_white(tmp_path):
    image = Image.new("RGBA", (2, 1), (*RED, 255))
    image.putpixel((1, 0), (*BLUE, 0))
    result = load_image(save(image, tmp_path / "rgba.png"))
    assert result.getpixel((0, 0)) == RED
    assert result.getpixel((1, 0)) == WHITE


def test_half_transparent_la_pixel_blends_with_white(tmp_path):
    result = load_image(save(Image.new("LA", (1, 1), (0, 128)), tmp_path / "la.png"))
    # black at alpha 128/255 over white: 255 * (1 - 128/255) = 127
    assert result.getpixel((0, 0)) == pytest.approx((127, 127, 127), abs=1)


def test_palette_transparency_index_becomes_white_and_opaque_palette_keeps_colours(tmp_path):
    transparent = load_image(save(palette_image(), tmp_path / "t.png", transparency=1))
    opaque = load_image(save(palette_image(), tmp_path / "o.png"))
    assert transparent.getpixel((0, 0)) == RED
    assert transparent.getpixel((1, 0)) == WHITE
    assert opaque.getpixel((0, 0)) == RED
    assert opaque.getpixel((1, 0)) == BLUE


def test_16bit_grayscale_scales_min_to_0_and_max_to_255(tmp_path):
    pixels = np.array([[1000, 2000], [3000, 5000]], dtype=np.uint16)
    path = save(Image.fromarray(pixels), tmp_path / "deep.png")
    with Image.open(path) as stored:
        assert stored.mode == "I;16"
    result = np.asarray(load_image(path))
    assert result.shape == (2, 2, 3)
    assert (result[..., 0] == result[..., 1]).all() and (result[..., 0] == result[..., 2]).all()
    # (v - 1000) / 4000 * 255: 0, 63.75 -> 64, 127.5 -> 128 (round half to even), 255
    np.testing.assert_array_equal(result[..., 0], [[0, 64], [128, 255]])


def test_constant_16bit_image_does_not_divide_by_zero():
    result = to_rgb(Image.fromarray(np.full((3, 3), 777, dtype=np.uint16)))
    assert result.mode == "RGB"
    assert np.asarray(result).max() == 0


def test_to_rgb_returns_rgb_images_unchanged():
    image = noise(3, 3)
    assert to_rgb(image) is image


def test_exif_orientation_6_rotates(tmp_path):
    image = Image.new("RGB", (40, 20), RED)
    image.paste(BLUE, (0, 0, 20, 20))  # left half blue
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    path = save(image, tmp_path / "rotated.jpg", exif=exif.tobytes(), quality=95)
    result = load_image(path)
    assert result.size == (20, 40)
    # clockwise rotation moves the left half to the top
    top, bottom = result.getpixel((10, 5)), result.getpixel((10, 35))
    assert top[2] > 200 and top[0] < 50
    assert bottom[0] > 200 and bottom[2] < 50


def assert_image_error(path, reason, **kwargs):
    with pytest.raises(ImageError) as info:
        load_image(path, **kwargs)
    message = str(info.value)
    assert str(path) in message
    assert reason in message
    assert info.value.path == str(path)
    return info.value


def test_empty_file(tmp_path):
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    assert_image_error(path, "empty")


def test_truncated_jpeg(tmp_path):
    whole = save(noise(64, 64), tmp_path / "whole.jpg").read_bytes()
    path = tmp_path / "half.jpg"
    path.write_bytes(whole[: len(whole) // 2])
    assert_image_error(path, "corrupt or truncated")


def test_text_file_named_jpg(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("this is not a picture\n")
    assert_image_error(path, "not an image")


def test_missing_path(tmp_path):
    assert_image_error(tmp_path / "nowhere.jpg", "not found")


def test_directory(tmp_path):
    folder = tmp_path / "folder.jpg"
    folder.mkdir()
    assert_image_error(folder, "not a file")


def test_image_over_pixel_limit(tmp_path):
    path = save(Image.new("RGB", (20, 20)), tmp_path / "big.png")
    assert_image_error(path, "too large", max_pixels=100)
    assert load_image(path, max_pixels=400).size == (20, 20)  # exactly at the limit is fine


def test_image_error_is_a_value_error():
    assert issubclass(ImageError, ValueError)


def test_bytes_decode_like_the_file(tmp_path):
    path = save(noise(30, 10, seed=1), tmp_path / "photo.jpg")
    from_path, from_bytes = load_image(path), load_image(path, data=path.read_bytes())
    assert from_bytes.size == from_path.size
    np.testing.assert_array_equal(np.asarray(from_bytes), np.asarray(from_path))


def test_bytes_errors_name_the_path(tmp_path):
    path = tmp_path / "given.jpg"  # never created: bytes are used, not the file
    assert_image_error(path, "empty", data=b"")
    assert_image_error(path, "not an image", data=b"plain text")
    assert_image_error(path, "too large", data=save(Image.new("L", (20, 20)), tmp_path / "x.png").read_bytes(),
                       max_pixels=100)


@pytest.mark.parametrize("min_side", [200, 300, 450])
def test_min_side_decodes_large_jpeg_smaller_but_not_below_min_side(tmp_path, min_side):
    path = save(noise(2000, 1000, seed=2), tmp_path / "large.jpg")
    result = load_image(path, min_side=min_side)
    assert result.mode == "RGB"
    assert min_side <= min(result.size) < 1000
    assert result.size[0] == 2 * result.size[1]  # aspect ratio kept


@pytest.mark.parametrize("min_side, size", [(100, (200, 100)), (150, (400, 200)), (400, (800, 400))])
def test_min_side_shrinks_a_png_by_whole_factors_but_not_below_min_side(tmp_path, min_side, size):
    path = save(noise(800, 400, seed=3), tmp_path / "large.png")
    result = load_image(path, min_side=min_side)
    assert result.size == size
    whole = np.asarray(load_image(path), np.float32)
    factor = 800 // size[0]
    blocks = whole.reshape(size[1], factor, size[0], factor, 3).mean(axis=(1, 3))  # each block's average
    assert np.abs(np.asarray(result, np.float32) - blocks).max() <= 1


def test_a_png_size_is_read_from_its_header_without_decoding_its_pixels(tmp_path):
    from imgsearch_helpers.data.images import upright_size

    path = tmp_path / "screenshot.png"
    Image.effect_noise((300, 200), 64).convert("RGB").save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # pixels cut off halfway: decoding them fails
    with pytest.raises(ImageError, match="truncated"):
        load_image(path)
    assert upright_size(path) == (300, 200)


def test_a_png_turned_by_an_exif_chunk_before_its_pixels_is_sized_as_shown(tmp_path):
    from imgsearch_helpers.data.images import upright_size

    exif = Image.Exif()
    exif[0x0112] = 6  # turned 90 degrees: shown 200 wide, 300 high
    path = tmp_path / "turned.png"
    Image.new("RGB", (300, 200), (10, 20, 30)).save(path, exif=exif.tobytes())
    assert upright_size(path) == (200, 300) == load_image(path).size
