"""From uploaded bytes to the 224x224 RGB pixels ResNet50 takes.

The steps are Keras's ``load_img(path, target_size=(224, 224))`` (Pillow decode,
``convert("RGB")``, nearest-neighbour resize), so a picture gives exactly the pixels the
Keras reference pipeline gives, with what an upload from the internet needs on top:
- the format comes from the magic bytes (JPEG, PNG, WebP), whatever the declared type;
- a decompression-bomb limit on the pixel count, checked from the header before decoding;
- the EXIF orientation is applied, so a phone photo is classified the way it is shown;
- 16-bit greyscale is scaled to 8 bits (``convert("RGB")`` would clip it to white).
Every failure is an ``ImageError`` whose message is the reason a user sees.
"""

from __future__ import annotations

import io
import os
import time
import warnings
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image, ImageOps

TARGET_SIZE = (224, 224)
"""(height, width) of the model input."""

MAX_PIXELS = 50_000_000
"""Largest width x height decoded (50 MP: 200 MB as RGBA); larger is treated as a bomb."""

_MAGIC = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
)
_EXIF_ORIENTATION = 0x0112
# Integer modes Pillow gives 16-bit greyscale PNGs; their convert("RGB") clips at 255.
_WIDE_INT_MODES = frozenset({"I", "I;16", "I;16B", "I;16L", "I;16N"})


class ImageError(Exception):
    """An upload that can never be classified; retrying cannot help."""

    code = "invalid_image"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotAnImage(ImageError):
    """The bytes are not a JPEG, PNG or WebP file (empty, text, another format)."""

    code = "not_an_image"


class ImageTooLarge(ImageError):
    """The file is larger than the upload limit."""

    code = "too_large"


class ImageBomb(ImageError):
    """The header declares more pixels than ``MAX_PIXELS`` (a decompression bomb)."""

    code = "too_many_pixels"


class UnreadableImage(ImageError):
    """The header looks right but the picture cannot be decoded (corrupt or truncated)."""

    code = "unreadable"


def sniff_format(data: bytes) -> str | None:
    """The format the magic bytes announce: ``"JPEG"``, ``"PNG"``, ``"WEBP"`` or ``None``."""
    for magic, name in _MAGIC:
        if data.startswith(magic):
            return name
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return None


def check_size(size: int, max_bytes: int) -> None:
    """Raise ``ImageTooLarge`` when ``size`` bytes exceed ``max_bytes``."""
    if size > max_bytes:
        raise ImageTooLarge(f"the file is {size} bytes; the limit is {max_bytes} bytes")


def open_image(data: bytes, *, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Decode ``data`` into an upright RGB Pillow image of its own size.

    Raises ``NotAnImage``, ``ImageBomb`` or ``UnreadableImage``.
    """
    fmt = sniff_format(data)
    if fmt is None:
        if not data:
            raise NotAnImage("the file is empty")
        raise NotAnImage("the file is not a JPEG, PNG or WebP image")
    try:
        with warnings.catch_warnings():
            # Pillow's own, looser bomb warning: our limit below is the one that counts.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data), formats=[fmt])
        width, height = img.size
        if width < 1 or height < 1:
            raise UnreadableImage(f"the {fmt} image has no pixels")
        if width * height > max_pixels:
            raise ImageBomb(
                f"the image is {width}x{height} pixels; the limit is {max_pixels} pixels"
            )
        img.load()
        img = _upright(img)
        return _to_rgb(img)
    except Image.DecompressionBombError as exc:
        # Pillow's own, higher limit tripped while reading the header.
        raise ImageBomb(f"the image has more than {max_pixels} pixels") from exc
    except ImageError:
        raise
    # Pillow reports bad data as any of these, depending on the codec and where it breaks.
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError) as exc:
        raise UnreadableImage(f"the {fmt} image cannot be decoded: {exc}") from exc


def to_model_input(img: Image.Image) -> np.ndarray:
    """Resize as ``keras.utils.load_img(target_size=(224, 224))`` does: (224, 224, 3) uint8."""
    size = (TARGET_SIZE[1], TARGET_SIZE[0])
    if img.size != size:
        img = img.resize(size, Image.Resampling.NEAREST)
    return np.asarray(img, dtype=np.uint8)


def load_pixels(data: bytes, *, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """``data`` (JPEG/PNG/WebP bytes) -> (224, 224, 3) uint8 RGB, or an ``ImageError``."""
    return to_model_input(open_image(data, max_pixels=max_pixels))


@dataclass(frozen=True)
class Decoded:
    """One file of a batch: its pixels, or the error that stopped it; and the time it took."""

    pixels: np.ndarray | None
    error: Exception | None
    decode_ms: float


def start_loading(data: bytes, *, max_pixels: int = MAX_PIXELS) -> Future[Decoded]:
    """``load_pixels`` of one file, started now on the decoder threads (one per core:
    Pillow decodes without the GIL); the future's result is its ``Decoded``."""
    return _decoder_pool().submit(_timed_load, data, max_pixels)


def load_many(files: Sequence[bytes], *, max_pixels: int = MAX_PIXELS) -> list[Decoded]:
    """``load_pixels`` for each file, on every core; one ``Decoded`` per file, in order."""
    started = [start_loading(data, max_pixels=max_pixels) for data in files]
    return [future.result() for future in started]


@lru_cache(maxsize=1)
def _decoder_pool() -> ThreadPoolExecutor:
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return ThreadPoolExecutor(max_workers=cores, thread_name_prefix="decode")


def _timed_load(data: bytes, max_pixels: int) -> Decoded:
    started = time.perf_counter()
    try:
        pixels, error = load_pixels(data, max_pixels=max_pixels), None
    except Exception as exc:  # ImageError, or a bug: the caller tells them apart
        pixels, error = None, exc
    return Decoded(pixels, error, (time.perf_counter() - started) * 1000.0)


def _upright(img: Image.Image) -> Image.Image:
    try:
        orientation = img.getexif().get(_EXIF_ORIENTATION, 1)
    except Exception:  # a broken EXIF block must not lose the picture
        return img
    if orientation in (2, 3, 4, 5, 6, 7, 8):
        return ImageOps.exif_transpose(img)
    return img


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode in _WIDE_INT_MODES:
        wide = np.asarray(img, dtype=np.int64)
        # 16-bit samples: keep the top 8 bits. 32-bit "I" holding 8-bit data stays as is.
        shift = 8 if wide.max(initial=0) > 255 else 0
        img = Image.fromarray((np.clip(wide, 0, 65535) >> shift).astype(np.uint8))
    if img.mode != "RGB":
        img = img.convert("RGB")
    return img
