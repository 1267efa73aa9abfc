"""GET /health: liveness, whether the cache answers, and the upload limits clients show."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from imgclf import cache
from imgclf.uploads import UploadLimits, upload_limits


class Health(BaseModel):
    """The API answers; the cache may be down (everything still works, slower)."""

    status: Literal["ok"]
    cache: Literal["up", "down"]
    upload: UploadLimits


def check_health() -> Health:
    """The API's health and the limits POST /uploads enforces."""
    return Health(status="ok", cache="up" if cache.ping() else "down", upload=upload_limits())
