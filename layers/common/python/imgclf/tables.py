"""DynamoDB tables as pynamodb models: users, predictions, feedback.

Table names, region and endpoint come from the settings when this module is first imported
(in Lambda the environment is complete before any code runs), so the same models talk to AWS,
moto or LocalStack (pynamodb does not read AWS_ENDPOINT_URL by itself; Meta.host does it).
"""

from __future__ import annotations

from datetime import UTC, datetime

from pynamodb.attributes import (
    BooleanAttribute,
    JSONAttribute,
    NumberAttribute,
    TTLAttribute,
    UnicodeAttribute,
)
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex
from pynamodb.models import Model

from imgclf.settings import get_settings

PENDING, DONE, FAILED = "pending", "done", "failed"
# A pending prediction whose image never arrived, once its upload URL (and the grace) is past.
EXPIRED = "expired"
TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"

_settings = get_settings()


def utc_timestamp() -> str:
    """Now as ISO-8601 UTC with microseconds and a Z: sorts as text in time order."""
    return datetime.now(UTC).strftime(TIMESTAMP_FORMAT)


def parse_timestamp(timestamp: str) -> datetime:
    """The UTC time a ``utc_timestamp`` names."""
    return datetime.strptime(timestamp, TIMESTAMP_FORMAT).replace(tzinfo=UTC)


def connect(*models: type[Model]) -> None:
    """Create these tables' DynamoDB clients now. Call it at init, as Lambda advises for SDK
    clients: the cold start, not the first request, then pays for loading botocore's models
    (about 0.1 CPU-s a client). No request is sent."""
    for model in models:
        model._get_connection().connection.client  # noqa: B018 (the property builds it)


class _Connection:
    """Where every table lives: the region, and the emulator when AWS_ENDPOINT_URL is set.

    Short timeouts and two retries (pynamodb's defaults are 15 s, 30 s and three): a
    DynamoDB that does not answer fails a request in seconds (503), inside the function's
    Timeout, instead of holding it.
    """

    region = _settings.aws_region
    host = _settings.aws_endpoint_url
    connect_timeout_seconds = 1
    read_timeout_seconds = 5
    max_retry_attempts = 2


def reachable() -> bool:
    """Whether DynamoDB answers (one GetItem, of a key no prediction has)."""
    try:
        PredictionRecord.get("-health-check-")
    except PredictionRecord.DoesNotExist:
        return True
    except Exception:  # any failure to answer means "down" for a health check
        return False
    return True


class UserRecord(Model):
    """A user who can log in; the email (lower-cased) is the key."""

    class Meta(_Connection):
        table_name = _settings.users_table

    email = UnicodeAttribute(hash_key=True)
    user_id = UnicodeAttribute()
    password_hash = UnicodeAttribute()
    created_at = UnicodeAttribute(default_for_new=utc_timestamp)


class ByUserIndex(GlobalSecondaryIndex["PredictionRecord"]):
    """A user's predictions by creation time (query with scan_index_forward=False)."""

    class Meta:
        index_name = "by-user"
        projection = AllProjection()

    user_id = UnicodeAttribute(hash_key=True)
    created_at = UnicodeAttribute(range_key=True)


class PredictionRecord(Model):
    """One uploaded image and its classification; status moves pending -> done | failed, or
    pending -> expired when the image never arrived.

    ``expires_at`` (DynamoDB TTL) is set while the prediction is pending or expired, so one
    whose image never came is removed in time; finishing it (done or failed) clears it."""

    class Meta(_Connection):
        table_name = _settings.predictions_table

    id = UnicodeAttribute(hash_key=True)
    user_id = UnicodeAttribute()
    created_at = UnicodeAttribute(default_for_new=utc_timestamp)
    status = UnicodeAttribute(default_for_new=PENDING)
    object_key = UnicodeAttribute()
    filename = UnicodeAttribute()
    content_type = UnicodeAttribute()
    size = NumberAttribute()
    completed_at = UnicodeAttribute(null=True)
    # {label, score, top5: [{class_id, label, score}]}, stored as one JSON string: it is
    # only ever read whole, and one string costs a fraction of ~25 typed nested values to
    # write, store and parse.
    result = JSONAttribute(null=True)
    error = UnicodeAttribute(null=True)
    model_name = UnicodeAttribute(null=True)
    weights = UnicodeAttribute(null=True)
    engine = UnicodeAttribute(null=True)
    precision = UnicodeAttribute(null=True)
    sha256 = UnicodeAttribute(null=True)
    # {read_ms, decode_ms, inference_ms, batch_size}, one JSON string likewise
    timings = JSONAttribute(null=True)
    expires_at = TTLAttribute(null=True)

    by_user = ByUserIndex()


class FeedbackByUserIndex(GlobalSecondaryIndex["FeedbackRecord"]):
    """A user's feedback by the time it was (last) sent (query with scan_index_forward=False)."""

    class Meta:
        index_name = "by-user"
        projection = AllProjection()

    user_id = UnicodeAttribute(hash_key=True)
    created_at = UnicodeAttribute(range_key=True)


class FeedbackRecord(Model):
    """A user's verdict on a prediction: one per user and prediction (a resend replaces it)."""

    class Meta(_Connection):
        table_name = _settings.feedback_table

    prediction_id = UnicodeAttribute(hash_key=True)
    user_id = UnicodeAttribute(range_key=True)
    correct = BooleanAttribute()
    label = UnicodeAttribute(null=True)
    comment = UnicodeAttribute(null=True)
    created_at = UnicodeAttribute(default_for_new=utc_timestamp)

    by_user = FeedbackByUserIndex()
