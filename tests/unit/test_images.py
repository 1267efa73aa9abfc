"""Uploaded bytes -> model pixels: exactly Keras's load_img, plus the checks uploads need."""

from __future__ import annotations

import io
from collections.abc import Callable

import keras
import numpy as np
import pytest
from imgclf import images

from tests.unit import sample_images as samples


def keras_pixels(data: bytes) -> np.ndarray:
    """The Keras reference: load_img(target_size=(224, 224)) -> img_to_array."""
    return keras.utils.img_to_array(keras.utils.load_img(io.BytesIO(data), target_size=(224, 224)))


PICTURES: dict[str, Callable[[], bytes]] = {
    "jpeg": samples.jpeg,
    "png": samples.png,
    "webp": samples.webp,
    "grayscale": samples.grayscale_jpeg,
    "rgba": samples.rgba_png,
    "cmyk": samples.cmyk_jpeg,
    "palette": samples.palette_png,
    "1x1": samples.tiny_png,
    "224x224": lambda: samples.png(224, 224),
    "4000x3000": samples.huge_jpeg,
}


@pytest.mark.parametrize("kind", PICTURES)
def test_pixels_equal_keras_load_img(kind: str) -> None:
    data = PICTURES[kind]()
    pixels = images.load_pixels(data)
    assert pixels.shape == (224, 224, 3)
    assert pixels.dtype == np.uint8
    np.testing.assert_array_equal(pixels.astype(np.float32), keras_pixels(data))


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_exif_orientation_is_applied(orientation: int) -> None:
    rotated, upright = samples.exif_rotated_png(orientation)
    # Without the orientation the stored pixels differ from the upright picture ...
    assert not np.array_equal(keras_pixels(rotated), keras_pixels(upright))
    # ... with it, they are the upright picture's, pixel for pixel.
    np.testing.assert_array_equal(
        images.load_pixels(rotated).astype(np.float32), keras_pixels(upright)
    )


def test_sixteen_bit_greyscale_keeps_its_top_eight_bits() -> None:
    data, samples16 = samples.gray16_png()
    img = images.open_image(data)
    assert img.mode == "RGB"
    got = np.asarray(img)
    expected = (samples16 >> 8).astype(np.uint8)
    for channel in range(3):
        np.testing.assert_array_equal(got[..., channel], expected)


@pytest.mark.parametrize(
    ("data", "fmt"),
    [
        (b"\xff\xd8\xff\xe0rest", "JPEG"),
        (b"\x89PNG\r\n\x1a\nrest", "PNG"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "WEBP"),
        (b"GIF89a", None),
        (b"RIFF\x00\x00\x00\x00WAVEfmt ", None),
        (b"", None),
    ],
)
def test_format_comes_from_magic_bytes(data: bytes, fmt: str | None) -> None:
    assert images.sniff_format(data) == fmt


def test_declared_type_does_not_matter_a_png_named_jpg_decodes() -> None:
    # The magic bytes decide: a PNG uploaded as image/jpeg is still read as a PNG.
    assert images.load_pixels(samples.png()).shape == (224, 224, 3)


def test_gif_is_not_accepted() -> None:
    gif = samples.encode(samples.Image.fromarray(samples.rgb_array(20, 20)), "GIF")
    with pytest.raises(images.NotAnImage):
        images.load_pixels(gif)


@pytest.mark.parametrize(
    ("make", "error", "words"),
    [
        (lambda: b"", images.NotAnImage, "empty"),
        (samples.text_as_jpg, images.NotAnImage, "not a JPEG, PNG or WebP"),
        (samples.corrupt_jpeg, images.UnreadableImage, "cannot be decoded"),
        (samples.truncated_jpeg, images.UnreadableImage, "cannot be decoded"),
        (samples.bomb_png, images.ImageBomb, "pixels"),
    ],
)
def test_bad_files_raise_typed_errors_with_a_reason(
    make: Callable[[], bytes], error: type[images.ImageError], words: str
) -> None:
    with pytest.raises(error) as caught:
        images.load_pixels(make())
    assert words in caught.value.message
    assert isinstance(caught.value, images.ImageError)


def test_pixel_limit_is_checked_from_the_header_before_decoding() -> None:
    # 4000x3000 = 12 MP: refused under a 10 MP limit, accepted under the default.
    data = samples.huge_jpeg()
    with pytest.raises(images.ImageBomb, match="4000x3000"):
        images.load_pixels(data, max_pixels=10_000_000)
    assert images.load_pixels(data).shape == (224, 224, 3)


def test_size_limit() -> None:
    images.check_size(100, 100)
    with pytest.raises(images.ImageTooLarge, match="101 bytes"):
        images.check_size(101, 100)


def test_load_many_decodes_a_batch_in_order_and_reports_each_failure() -> None:
    files = [samples.jpeg(seed=1), b"", samples.png(seed=2), samples.truncated_jpeg()]
    decoded = images.load_many(files)
    assert [type(d.error) for d in decoded] == [
        type(None),
        images.NotAnImage,
        type(None),
        images.UnreadableImage,
    ]
    np.testing.assert_array_equal(decoded[0].pixels, images.load_pixels(files[0]))
    np.testing.assert_array_equal(decoded[2].pixels, images.load_pixels(files[2]))
    assert decoded[1].pixels is None and decoded[3].pixels is None
    assert all(d.decode_ms >= 0 for d in decoded)
