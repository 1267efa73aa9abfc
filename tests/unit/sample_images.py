"""Generated test pictures: every format and colour mode an upload may use, and bad files.

Pictures are smooth gradients with a little noise (like photos, they compress), made from a
seed so every run sees the same bytes.
"""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image


def rgb_array(width: int, height: int, seed: int = 0) -> np.ndarray:
    """An (height, width, 3) uint8 picture: gradients plus noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack(
        [
            255 * x / max(width - 1, 1),
            255 * y / max(height - 1, 1),
            127 + 127 * np.sin((x + y) / 17.0 + seed),
        ],
        axis=-1,
    )
    noise = rng.normal(0, 12, size=base.shape)
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def encode(img: Image.Image, fmt: str, **options: object) -> bytes:
    """``img`` saved as ``fmt`` (Pillow format name)."""
    out = io.BytesIO()
    img.save(out, fmt, **options)
    return out.getvalue()


def jpeg(width: int = 320, height: int = 240, seed: int = 0, **options: object) -> bytes:
    """An RGB JPEG."""
    return encode(Image.fromarray(rgb_array(width, height, seed)), "JPEG", quality=90, **options)


def png(width: int = 300, height: int = 200, seed: int = 1) -> bytes:
    """An RGB PNG."""
    return encode(Image.fromarray(rgb_array(width, height, seed)), "PNG")


def webp(width: int = 260, height: int = 180, seed: int = 2) -> bytes:
    """A lossy RGB WebP."""
    return encode(Image.fromarray(rgb_array(width, height, seed)), "WEBP", quality=80)


def grayscale_jpeg(width: int = 240, height: int = 320, seed: int = 3) -> bytes:
    """A greyscale (mode L) JPEG."""
    return encode(Image.fromarray(rgb_array(width, height, seed)).convert("L"), "JPEG")


def rgba_png(width: int = 200, height: int = 150, seed: int = 4) -> bytes:
    """An RGBA PNG whose alpha varies across the picture."""
    rgb = rgb_array(width, height, seed)
    alpha = np.linspace(0, 255, width, dtype=np.uint8)[None, :].repeat(height, axis=0)
    return encode(Image.fromarray(np.dstack([rgb, alpha])), "PNG")


def cmyk_jpeg(width: int = 250, height: int = 250, seed: int = 5) -> bytes:
    """A CMYK JPEG (as print workflows produce)."""
    return encode(Image.fromarray(rgb_array(width, height, seed)).convert("CMYK"), "JPEG")


def palette_png(width: int = 180, height: int = 120, seed: int = 6) -> bytes:
    """A palette (mode P) PNG."""
    img = Image.fromarray(rgb_array(width, height, seed)).convert("P", palette=Image.ADAPTIVE)
    return encode(img, "PNG")


def tiny_png(seed: int = 7) -> bytes:
    """A 1x1 PNG."""
    return encode(Image.fromarray(rgb_array(1, 1, seed)), "PNG")


def huge_jpeg(seed: int = 8) -> bytes:
    """A 4000x3000 JPEG (a 12 MP photo), upscaled from a small picture to make it quickly."""
    small = Image.fromarray(rgb_array(400, 300, seed))
    return encode(small.resize((4000, 3000), Image.Resampling.BILINEAR), "JPEG", quality=85)


def gray16_png(width: int = 64, height: int = 48) -> tuple[bytes, np.ndarray]:
    """A 16-bit greyscale PNG and its 16-bit samples."""
    samples = (np.arange(width * height, dtype=np.uint32).reshape(height, width) * 21) % 65536
    samples = samples.astype(np.uint16)
    return encode(Image.fromarray(samples), "PNG"), samples


def exif_rotated_png(orientation: int, width: int = 200, height: int = 120, seed: int = 9):
    """(file whose EXIF orientation must be applied, the same picture stored upright)."""
    upright = Image.fromarray(rgb_array(width, height, seed))
    # The stored pixels are the upright picture with the inverse of the display transform.
    stored = {
        3: upright.transpose(Image.Transpose.ROTATE_180),
        6: upright.transpose(Image.Transpose.ROTATE_90),
        8: upright.transpose(Image.Transpose.ROTATE_270),
    }[orientation]
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(stored, "PNG", exif=exif.tobytes()), encode(upright, "PNG")


def bomb_png(width: int = 20000, height: int = 20000) -> bytes:
    """A valid, small PNG of width x height 1-bit pixels: a decompression bomb."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    row = b"\x00" + bytes((width + 7) // 8)  # filter byte + one bit per pixel
    compressor = zlib.compressobj(9)
    body = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")
    )


def corrupt_jpeg() -> bytes:
    """JPEG magic bytes, then garbage."""
    return b"\xff\xd8\xff\xe0" + bytes(range(256)) * 8


def truncated_jpeg() -> bytes:
    """A real JPEG cut off half-way."""
    data = jpeg(320, 240, seed=11)
    return data[: len(data) // 2]


def text_as_jpg() -> bytes:
    """A text file someone named cat.jpg."""
    return b"this is not a picture, just some text saved as cat.jpg\n" * 20
