"""Starting an upload: a pending prediction and a pre-signed POST for its image."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints

from imgclf import predictions, storage
from imgclf.errors import PayloadTooLarge
from imgclf.settings import get_settings
from imgclf.tables import PredictionRecord

ImageType = Literal["image/jpeg", "image/png", "image/webp"]
CONTENT_TYPES: tuple[str, ...] = get_args(ImageType)


def _normalized_type(value: Any) -> Any:
    # " Image/PNG" is image/png; the schema's enum lists the canonical spellings.
    return value.strip().lower() if isinstance(value, str) else value


def _integral(value: Any) -> Any:
    # JSON has one number type: 55.0 is the integer 55, as JSON Schema's "integer" says.
    return int(value) if isinstance(value, float) and value.is_integer() else value


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

    filename: Annotated[str, StringConstraints(min_length=1, max_length=255)]
    content_type: Annotated[ImageType, BeforeValidator(_normalized_type)]
    # The schema's maximum is this deployment's UPLOAD_MAX_BYTES; a larger size is a 413.
    size: Annotated[int, BeforeValidator(_integral)] = Field(
        gt=0,
        description="bytes: the upload's policy takes exactly this length",
        json_schema_extra={"maximum": get_settings().upload_max_bytes},
    )


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

    A size over UPLOAD_MAX_BYTES (PayloadTooLarge) is refused before any URL is issued (the
    type is checked by UploadRequest); the signed policy then pins the type and the exact
    size on S3's side. The prediction carries ``expires_at`` (DynamoDB TTL) from the start,
    so it is removed in time even if its image never comes and nobody reads it.
    """
    settings = get_settings()
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
    record.expires_at = predictions.removal_time(record.created_at)
    record.save(condition=PredictionRecord.id.does_not_exist())
    # The client's first long-poll then reads Redis, not DynamoDB.
    predictions.cache_state(record)
    return UploadReply(
        prediction_id=prediction_id,
        upload=PresignedPost.model_validate(
            storage.presign_upload(key, request.content_type, request.size)
        ),
        expires_in=settings.upload_url_ttl_seconds,
    )
