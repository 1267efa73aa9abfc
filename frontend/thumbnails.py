"""Small JPEG thumbnails of the images picked on the page, made before they are sent.

They preview the picked files and illustrate the batch's results; the history shows each
prediction's image through the API's short-lived ``image_url`` instead.
"""

from __future__ import annotations

import io

from PIL import Image, ImageOps

THUMBNAIL_SIZE = (160, 160)
#: Refuse to decode images with more pixels than this (decompression bombs); the inference
#: function has its own guard, this one protects the web server.
MAX_PIXELS = 50_000_000


def make_thumbnail(data: bytes) -> bytes | None:
    """A JPEG thumbnail of an image, EXIF orientation applied; None if it cannot be read."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.width * image.height > MAX_PIXELS:
                return None
            image.draft("RGB", THUMBNAIL_SIZE)  # JPEG: decode at a reduced scale, much faster
            small = ImageOps.exif_transpose(image).convert("RGB")
            small.thumbnail(THUMBNAIL_SIZE)
            out = io.BytesIO()
            small.save(out, format="JPEG", quality=80)
            return out.getvalue()
    except (OSError, ValueError, Image.DecompressionBombError):
        return None
