"""Small JPEG thumbnails of the images this front end uploaded, keyed by prediction id.

The API does not serve images back (see README "Using the app"), so the web app keeps a
thumbnail of each image it sends, on its own disk, to show in the user's history. Prediction
ids are random 128-bit values and the app shows only ids the API lists for the logged-in
user, so one user never sees another's thumbnails.
"""

from __future__ import annotations

import io
import os
import re
import tempfile
from pathlib import Path

from PIL import Image, ImageOps

THUMBNAIL_SIZE = (160, 160)
#: Refuse to decode images with more pixels than this (decompression bombs); the inference
#: function has its own guard, this one protects the web server.
MAX_PIXELS = 50_000_000
_SAFE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


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


class ThumbnailStore:
    """Thumbnails on disk, one file per prediction id."""

    def __init__(self, directory: Path | None = None):
        default = Path(tempfile.gettempdir()) / "imgclf-thumbnails"
        self.directory = directory or Path(os.environ.get("IMGCLF_THUMBNAIL_DIR") or default)

    def _path(self, prediction_id: str) -> Path | None:
        # Ids come from the API, but never let one name a file outside the directory.
        if not _SAFE_ID.match(prediction_id):
            return None
        return self.directory / f"{prediction_id}.jpg"

    def put(self, prediction_id: str, image: bytes) -> bytes | None:
        """Make and keep the thumbnail of ``image``; returns it (None if unreadable)."""
        thumbnail = make_thumbnail(image)
        path = self._path(prediction_id)
        if thumbnail is None or path is None:
            return thumbnail
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(thumbnail)
        tmp.replace(path)
        return thumbnail

    def get(self, prediction_id: str) -> bytes | None:
        """The thumbnail kept for this prediction, if this front end uploaded it."""
        path = self._path(prediction_id)
        try:
            return path.read_bytes() if path else None
        except OSError:
            return None
