"""Configuration: one typed object read from the environment.

Every field is read from the environment variable of the same name in upper case
(``users_table`` <- ``USERS_TABLE``). template.yaml sets them (Globals or the function);
the tests check that every field here is set there.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import lru_cache

from pydantic import BaseModel, ConfigDict, Field, SecretStr


class Settings(BaseModel):
    """What the functions need from their environment."""

    model_config = ConfigDict(frozen=True, alias_generator=str.upper, populate_by_name=True)

    users_table: str
    predictions_table: str
    feedback_table: str
    upload_bucket: str
    redis_url: str = "redis://localhost:6379/0"
    jwt_secret: SecretStr = Field(min_length=32)
    jwt_issuer: str = "imgclf"
    jwt_ttl_seconds: int = Field(default=3600, gt=0)
    upload_max_bytes: int = Field(default=10 * 1024 * 1024, gt=0)
    upload_url_ttl_seconds: int = Field(default=300, gt=0)
    # A prediction whose image has not arrived this long after its upload URL expired ends
    # `expired`; the grace covers an upload still in flight when its URL expired.
    upload_grace_seconds: int = Field(default=60, ge=0)
    # How long an expired prediction stays listed before DynamoDB's TTL removes it.
    expired_retention_seconds: int = Field(default=7 * 86400, gt=0)
    # Lifetime of the pre-signed GET (image_url) in every prediction view.
    image_url_ttl_seconds: int = Field(default=300, gt=0)
    result_ttl_seconds: int = Field(default=86400, gt=0)
    model_weights: str = "imagenet"
    # openvino | tensorflow; auto | f32 | bf16 (imgclf.model checks both).
    inference_engine: str = "openvino"
    inference_precision: str = "auto"
    # Inference only: its second event source, whose messages are marked failed, not retried.
    dead_letter_queue_arn: str | None = None
    # Not in template.yaml: Lambda sets AWS_REGION; AWS_ENDPOINT_URL points every client
    # at an emulator (moto, LocalStack) and is unset in AWS.
    aws_region: str = "us-east-1"
    aws_endpoint_url: str | None = None

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build the settings from ``environ`` (default: the process environment)."""
        environ = os.environ if environ is None else environ
        # An empty variable means unset (e.g. AWS_ENDPOINT_URL= in a shell).
        return cls.model_validate({k: v for k, v in environ.items() if v != ""})


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read once (tests call ``get_settings.cache_clear()``)."""
    return Settings.from_environ()
