"""S3: where uploads live, the pre-signed POST a client uploads with, the pre-signed GET it
shows an image with, and a bounded read."""

from __future__ import annotations

from functools import lru_cache
from typing import Any
from urllib.parse import unquote_plus

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from imgclf.errors import BadRequest, NotFound, PayloadTooLarge
from imgclf.settings import get_settings

UPLOAD_PREFIX = "uploads/"


@lru_cache(maxsize=1)
def client() -> Any:
    """The process's S3 client: SigV4; path-style when an emulator endpoint is set, so
    pre-signed URLs look like http://127.0.0.1:PORT/bucket and resolve without DNS tricks."""
    settings = get_settings()
    addressing = "path" if settings.aws_endpoint_url else "auto"
    return boto3.client(
        "s3",
        region_name=settings.aws_region,
        endpoint_url=settings.aws_endpoint_url,
        # Timeouts and retries as the tables' (tables._Connection): fail fast, not hang.
        config=Config(
            signature_version="s3v4",
            s3={"addressing_style": addressing},
            connect_timeout=1,
            read_timeout=5,
            retries={"mode": "standard", "total_max_attempts": 3},
        ),
    )


def upload_key(user_id: str, prediction_id: str) -> str:
    """The object key of a prediction's image."""
    return f"{UPLOAD_PREFIX}{user_id}/{prediction_id}"


def parse_upload_key(key: str) -> tuple[str, str]:
    """(user_id, prediction_id) from an object key, as S3 event notifications encode it."""
    parts = unquote_plus(key).split("/")
    if len(parts) != 3 or f"{parts[0]}/" != UPLOAD_PREFIX or not all(parts[1:]):
        raise BadRequest(f"not an upload key: {key!r}")
    return parts[1], parts[2]


def presign_upload(key: str, content_type: str, size: int) -> dict[str, Any]:
    """A pre-signed POST ``{url, fields}`` whose policy pins the key, the content type and
    the size (exactly ``size`` bytes: S3 refuses any other length); it expires after
    UPLOAD_URL_TTL_SECONDS."""
    settings = get_settings()
    return client().generate_presigned_post(
        Bucket=settings.upload_bucket,
        Key=key,
        Fields={"Content-Type": content_type},
        Conditions=[
            {"Content-Type": content_type},
            ["content-length-range", size, size],
        ],
        ExpiresIn=settings.upload_url_ttl_seconds,
    )


def presign_download(key: str) -> str:
    """A pre-signed GET of an object in the upload bucket, valid IMAGE_URL_TTL_SECONDS.

    Signed per request and never stored: whoever holds the URL can read the image until
    it expires, so it is only ever handed to the image's owner.
    """
    settings = get_settings()
    return client().generate_presigned_url(
        "get_object",
        Params={"Bucket": settings.upload_bucket, "Key": key},
        ExpiresIn=settings.image_url_ttl_seconds,
    )


def object_exists(key: str) -> bool:
    """Whether the upload bucket holds ``key`` (a HEAD request)."""
    try:
        client().head_object(Bucket=get_settings().upload_bucket, Key=key)
    except ClientError as exc:
        if exc.response["Error"]["Code"] in {"404", "NoSuchKey", "NotFound"}:
            return False
        raise
    return True


def read_object(key: str, max_bytes: int, bucket: str | None = None) -> bytes:
    """The object's bytes; PayloadTooLarge beyond ``max_bytes``, NotFound if it is gone.

    The size is checked before the body is read, and the read itself is capped, so a
    huge object never lands in memory.
    """
    try:
        reply = client().get_object(Bucket=bucket or get_settings().upload_bucket, Key=key)
    except ClientError as exc:
        if exc.response["Error"]["Code"] in {"NoSuchKey", "404", "NoSuchBucket"}:
            raise NotFound(f"no object {key!r}") from exc
        raise
    body = reply["Body"]
    try:
        if reply["ContentLength"] > max_bytes:
            raise PayloadTooLarge(f"object {key!r} is larger than {max_bytes} bytes")
        data = body.read(max_bytes + 1)
    finally:
        body.close()
    if len(data) > max_bytes:
        raise PayloadTooLarge(f"object {key!r} is larger than {max_bytes} bytes")
    return data
