"""GET /health: liveness, whether the cache and the database answer, and the upload limits
clients show."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from imgclf import cache, tables
from imgclf.predictions import ModelInfo
from imgclf.uploads import UploadLimits, upload_limits


class Health(BaseModel):
    """The API answers; the cache may be down (everything still works, slower); with the
    database down the status is ``degraded`` and requests that need it answer 503."""

    status: Literal["ok", "degraded"]
    cache: Literal["up", "down"]
    database: Literal["up", "down"]
    upload: UploadLimits
    model: ModelInfo | None = Field(
        description="what the inference function runs (name, weights, engine, precision), as "
        "its latest sandbox announced it; null before one has started or with the cache down"
    )


def check_health() -> Health:
    """The API's health and the limits POST /uploads enforces."""
    database = tables.reachable()
    return Health(
        status="ok" if database else "degraded",
        cache="up" if cache.ping() else "down",
        database="up" if database else "down",
        upload=upload_limits(),
        model=cache.running_model(),
    )
