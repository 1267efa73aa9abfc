"""A deterministic, varied set of generated images for the load tests.

The set mixes formats (JPEG, PNG, WebP), sizes (thumbnails to full-HD photos) and modes
(RGB, grayscale, RGBA, palette), drawn with Pillow and numpy from a fixed seed, so every run
uploads the same pixels. `unique_variant` then gives each upload different bytes for the same
pixels (a metadata field holds a nonce): the inference function deduplicates by SHA-256, and a
load test that re-sent identical bytes would measure the cache, not the model.
"""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

CONTENT_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}
EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}

# (format, width, height, mode): phone-photo and web-image shapes, portrait and landscape.
SPECS: tuple[tuple[str, int, int, str], ...] = (
    ("JPEG", 640, 480, "RGB"),
    ("JPEG", 1024, 768, "RGB"),
    ("JPEG", 1920, 1080, "RGB"),
    ("JPEG", 480, 640, "RGB"),
    ("JPEG", 800, 600, "L"),
    ("JPEG", 224, 224, "RGB"),
    ("JPEG", 1280, 960, "RGB"),
    ("JPEG", 320, 240, "RGB"),
    ("PNG", 512, 512, "RGB"),
    ("PNG", 800, 600, "RGBA"),
    ("PNG", 300, 200, "P"),
    ("PNG", 256, 384, "RGB"),
    ("WEBP", 1024, 768, "RGB"),
    ("WEBP", 640, 640, "RGB"),
    ("WEBP", 720, 1280, "RGB"),
    ("WEBP", 400, 300, "RGBA"),
)

# Nonce length in bytes (hex of a uuid4); the WebP placeholder has exactly this length.
NONCE_LENGTH = 32
_WEBP_PLACEHOLDER = b"imgclf-load-nonce-placeholder-00"
_XMP_PREFIX = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><!-- '
_XMP_SUFFIX = b" --></x:xmpmeta>"


@dataclass(frozen=True)
class SampleImage:
    """One generated image: its file name, MIME type, encoded bytes and pixel size."""

    filename: str
    content_type: str
    data: bytes
    width: int
    height: int
    mode: str

    @property
    def format(self) -> str:
        """Pillow's name of the encoding: JPEG, PNG or WEBP."""
        return next(fmt for fmt, mime in CONTENT_TYPES.items() if mime == self.content_type)


def _scene(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    """A photo-like RGB picture: a smooth gradient, a few shapes, mild sensor noise."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    base = rng.uniform(40, 200, size=3)
    slope = rng.uniform(-80, 80, size=(3, 2))
    channels = [
        base[c] + slope[c, 0] * xs / max(width, 1) + slope[c, 1] * ys / max(height, 1)
        for c in range(3)
    ]
    pixels = np.stack(channels, axis=-1)
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(4, 10))):
        x0, x1 = sorted(rng.integers(0, width, size=2).tolist())
        y0, y1 = sorted(rng.integers(0, height, size=2).tolist())
        colour = tuple(int(v) for v in rng.integers(0, 256, size=3))
        if rng.random() < 0.5:
            draw.ellipse((x0, y0, x1 + 1, y1 + 1), fill=colour)
        else:
            draw.rectangle((x0, y0, x1 + 1, y1 + 1), fill=colour)
    noise = rng.normal(0, 6, size=(height, width, 3))
    noisy = np.asarray(image, dtype=np.float32) + noise
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8), "RGB")


def _encode(image: Image.Image, fmt: str, mode: str) -> bytes:
    """Encode in `fmt` after converting to `mode`; WebP carries an XMP placeholder."""
    if mode == "RGBA":
        alpha = Image.linear_gradient("L").resize(image.size)
        converted = image.copy()
        converted.putalpha(alpha)
    elif mode == "P":
        converted = image.quantize(colors=64)
    else:
        converted = image.convert(mode)
    buffer = io.BytesIO()
    if fmt == "JPEG":
        converted.save(buffer, "JPEG", quality=88)
    elif fmt == "PNG":
        converted.save(buffer, "PNG", optimize=False)
    else:
        xmp = _XMP_PREFIX + _WEBP_PLACEHOLDER + _XMP_SUFFIX
        converted.save(buffer, "WEBP", quality=85, method=2, xmp=xmp)
    return buffer.getvalue()


def generate_images(seed: int = 20260226) -> list[SampleImage]:
    """Generate the load-test image set (same bytes for the same seed)."""
    rng = np.random.default_rng(seed)
    images = []
    for index, (fmt, width, height, mode) in enumerate(SPECS):
        data = _encode(_scene(rng, width, height), fmt, mode)
        images.append(
            SampleImage(
                filename=f"sample-{index:02d}-{width}x{height}-{mode.lower()}.{EXTENSIONS[fmt]}",
                content_type=CONTENT_TYPES[fmt],
                data=data,
                width=width,
                height=height,
                mode=mode,
            )
        )
    return images


def unique_variant(image: SampleImage, nonce: str) -> bytes:
    """The same pixels with `nonce` (32 ASCII chars) in a metadata field, so a new SHA-256.

    JPEG gets a COM segment after SOI, PNG a tEXt chunk after IHDR (with its CRC), WebP its
    XMP placeholder replaced in place (same length, so the RIFF sizes stay right).
    """
    token = nonce.encode("ascii")
    if len(token) != NONCE_LENGTH:
        raise ValueError(f"nonce must be {NONCE_LENGTH} ASCII characters")
    data = image.data
    if image.content_type == "image/jpeg":
        segment = b"\xff\xfe" + struct.pack(">H", len(token) + 2) + token
        return data[:2] + segment + data[2:]
    if image.content_type == "image/png":
        payload = b"imgclf-load\x00" + token
        chunk = struct.pack(">I", len(payload)) + b"tEXt" + payload
        chunk += struct.pack(">I", zlib.crc32(b"tEXt" + payload) & 0xFFFFFFFF)
        ihdr_end = 8 + 4 + 4 + 13 + 4  # signature, length, type, IHDR data, CRC
        return data[:ihdr_end] + chunk + data[ihdr_end:]
    if _WEBP_PLACEHOLDER not in data:
        raise ValueError(f"{image.filename} has no nonce placeholder")
    return data.replace(_WEBP_PLACEHOLDER, token, 1)
