"""Starting an upload: a pending prediction and a pre-signed POST for its image."""

from __future__ import annotations

import uuid
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from imgclf import predictions, storage
from imgclf.errors import BadRequest, PayloadTooLarge
from imgclf.settings import get_settings
from imgclf.tables import PredictionRecord

CONTENT_TYPES = ("image/jpeg", "image/png", "image/webp")


class UploadLimits(BaseModel):
    """What POST /uploads accepts, for clients to check before they ask."""

    max_bytes: int = Field(description="largest image, in bytes")
    content_types: list[str]


def upload_limits() -> UploadLimits:
    """The limits create_upload enforces (UPLOAD_MAX_BYTES and CONTENT_TYPES)."""
    return UploadLimits(
        max_bytes=get_settings().upload_max_bytes, content_types=list(CONTENT_TYPES)
    )


class UploadRequest(BaseModel):
    """POST /uploads body: what the client is about to upload."""

    model_config = ConfigDict(strict=True)

    filename: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]
    content_type: Annotated[
        str, StringConstraints(strip_whitespace=True, to_lower=True, max_length=100)
    ] = Field(description=f"one of {', '.join(CONTENT_TYPES)}")
    size: int = Field(gt=0, description="bytes")


class PresignedPost(BaseModel):
    """Where and how to POST the file: a multipart form with ``fields`` then ``file``."""

    url: str
    fields: dict[str, str]


class UploadReply(BaseModel):
    """The new prediction's id and the pre-signed POST for its image."""

    prediction_id: str
    upload: PresignedPost
    expires_in: int = Field(description="seconds the upload URL stays valid")


def create_upload(user_id: str, request: UploadRequest) -> UploadReply:
    """Record a pending prediction and pre-sign the POST of its image.

    An unsupported type (BadRequest) or size (PayloadTooLarge) is refused before any URL
    is issued; the signed policy then enforces the same limits on S3's side.
    """
    settings = get_settings()
    if request.content_type not in CONTENT_TYPES:
        raise BadRequest(f"content_type must be one of {', '.join(CONTENT_TYPES)}")
    if request.size > settings.upload_max_bytes:
        raise PayloadTooLarge(f"size must be at most {settings.upload_max_bytes} bytes")
    prediction_id = uuid.uuid4().hex
    key = storage.upload_key(user_id, prediction_id)
    record = PredictionRecord(
        id=prediction_id,
        user_id=user_id,
        object_key=key,
        filename=request.filename,
        content_type=request.content_type,
        size=request.size,
    )
    record.save(condition=PredictionRecord.id.does_not_exist())
    # The client's first long-poll then reads Redis, not DynamoDB.
    predictions.cache_state(record)
    return UploadReply(
        prediction_id=prediction_id,
        upload=PresignedPost.model_validate(storage.presign_upload(key, request.content_type)),
        expires_in=settings.upload_url_ttl_seconds,
    )
