"""Predictions as callers see them: one view, read Redis first and DynamoDB second,
long-polling until a result arrives, and a user's list newest first, page by page.

A prediction whose image never arrives ends ``expired``: once its upload URL's lifetime plus
UPLOAD_GRACE_SECONDS have passed since it was created (``upload_deadline``), the first read
that finds it pending with no object in S3 writes it expired (only from pending, so a
result written meanwhile wins and a late inference event finds it final). Every read goes
through that check, so no read ever shows a prediction pending past its deadline unless its
image did arrive (inference then ends it done or failed, through retries and the
dead-letter queue). An image that arrived is never called "never uploaded".

Every view carries ``image_url``, a pre-signed GET of the image signed for that reply
only: Redis and DynamoDB hold the prediction's state, never a link.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Literal

from aws_lambda_powertools import Logger
from pydantic import BaseModel, Field, ValidationError
from pynamodb.exceptions import UpdateError

from imgclf import cache, storage
from imgclf.cursors import newest_first
from imgclf.errors import NotFound
from imgclf.settings import get_settings
from imgclf.tables import EXPIRED, PENDING, PredictionRecord, parse_timestamp, utc_timestamp

logger = Logger(child=True)

# A long-poll re-reads DynamoDB at least this often, in case a completion message was lost.
RECHECK_SECONDS = 5.0
MAX_WAIT_SECONDS = 20
EXPIRED_REASON = "the image was never uploaded"


class ClassScore(BaseModel):
    """One of the top five classes."""

    class_id: str
    label: str
    score: float


class Result(BaseModel):
    """The best class and the top five."""

    label: str
    score: float
    top5: list[ClassScore]


class ModelInfo(BaseModel):
    """Which model, weights, engine and precision produced a result (results stored before
    engines were named have no engine or precision)."""

    name: str
    weights: str
    engine: str | None = None
    precision: str | None = None


class PredictionState(BaseModel):
    """A prediction as stored and cached: the view without its per-request image link."""

    id: str
    status: Literal["pending", "done", "failed", "expired"] = Field(
        description="pending until the image is classified; done or failed then; expired "
        "when the image never arrived before its upload URL expired (error says so)"
    )
    filename: str
    created_at: str
    completed_at: str | None
    result: Result | None
    error: str | None
    model: ModelInfo | None


class PredictionView(PredictionState):
    """A prediction as its owner sees it."""

    image_url: str = Field(
        description="pre-signed GET of the uploaded image, valid for IMAGE_URL_TTL_SECONDS"
    )


class PredictionPage(BaseModel):
    """A page of the caller's predictions, newest first; pass next_cursor for the next."""

    items: list[PredictionView]
    next_cursor: str | None


def state_of(record: PredictionRecord) -> PredictionState:
    """The state of a stored prediction, as the views show it and Redis caches it."""
    model = (
        ModelInfo(
            name=record.model_name,
            weights=record.weights,
            engine=record.engine,
            precision=record.precision,
        )
        if record.model_name and record.weights
        else None
    )
    return PredictionState(
        id=record.id,
        status=record.status,
        filename=record.filename,
        created_at=record.created_at,
        completed_at=record.completed_at,
        result=None if record.result is None else Result.model_validate(record.result),
        error=record.error,
        model=model,
    )


def upload_deadline(created_at: str) -> datetime:
    """When a prediction created at ``created_at`` expires if its image has not arrived:
    UPLOAD_URL_TTL_SECONDS (the pre-signed POST's lifetime) plus UPLOAD_GRACE_SECONDS."""
    settings = get_settings()
    window = settings.upload_url_ttl_seconds + settings.upload_grace_seconds
    return parse_timestamp(created_at) + timedelta(seconds=window)


def removal_time(created_at: str) -> datetime:
    """The ``expires_at`` (DynamoDB TTL) of a prediction until it finishes:
    EXPIRED_RETENTION_SECONDS after its upload deadline."""
    retention = timedelta(seconds=get_settings().expired_retention_seconds)
    return upload_deadline(created_at) + retention


def _overdue(status: str, created_at: str) -> bool:
    return status == PENDING and datetime.now(UTC) >= upload_deadline(created_at)


def _settle(record: PredictionRecord) -> PredictionRecord:
    """The record, written ``expired`` first if it is pending past its upload deadline and
    its image is not in S3; as it then stands."""
    if not _overdue(record.status, record.created_at):
        return record
    if storage.object_exists(record.object_key):
        return record  # it arrived: inference ends it done or failed
    try:
        record.update(
            actions=[
                PredictionRecord.status.set(EXPIRED),
                PredictionRecord.error.set(EXPIRED_REASON),
                PredictionRecord.completed_at.set(utc_timestamp()),
                PredictionRecord.expires_at.set(removal_time(record.created_at)),
            ],
            condition=PredictionRecord.status == PENDING,
        )
    except UpdateError as exc:
        if exc.cause_response_code != "ConditionalCheckFailedException":
            raise
        record.refresh(consistent_read=True)  # finished meanwhile: that state stands
        return record
    logger.info("prediction expired", extra={"prediction_id": record.id})
    publish_result(record)  # caches it and wakes its long-pollers
    return record


def _cache(state: PredictionState, user_id: str) -> None:
    # The owner is cached with the state, so a cache hit can still refuse other users.
    cache.write_prediction(state.id, {**state.model_dump(), "user_id": user_id})


def _view(state: PredictionState, user_id: str) -> PredictionView:
    # Signed now, for this reply only: a cached link would outlive its signature. The key
    # is the one the upload was given (the cache holds no object_key).
    image_url = storage.presign_download(storage.upload_key(user_id, state.id))
    return PredictionView(**dict(state), image_url=image_url)


def cache_state(record: PredictionRecord) -> None:
    """Cache a prediction's state with its owner (call after its DynamoDB write).

    The uploads function caches each new prediction as pending, before its image can
    exist, so no completion can race it; readers cache only finished states.
    """
    _cache(state_of(record), record.user_id)


def publish_result(record: PredictionRecord) -> None:
    """Cache a finished prediction and wake its long-pollers (call after the DynamoDB write)."""
    cache_state(record)
    cache.publish_status(record.id, record.status)


def _read_cache(user_id: str, prediction_id: str) -> PredictionState | None:
    """The state Redis holds (pending as its upload cached it, or finished), or None."""
    cached = cache.read_prediction(prediction_id)
    if cached is None:
        return None
    if cached.pop("user_id", None) != user_id:
        raise NotFound("prediction not found")
    try:
        return PredictionState.model_validate(cached)
    except ValidationError:  # a stale shape (older code): DynamoDB answers
        return None


def _read_table(user_id: str, prediction_id: str) -> PredictionState:
    try:
        record = PredictionRecord.get(prediction_id, consistent_read=True)
    except PredictionRecord.DoesNotExist:
        raise NotFound("prediction not found") from None
    if record.user_id != user_id:
        raise NotFound("prediction not found")
    state = state_of(_settle(record))
    if state.status != PENDING:
        # Read-through: the next reader of this finished prediction is served by Redis.
        # (Never a pending state: a completion cached meanwhile would be overwritten.)
        _cache(state, user_id)
    return state


def _read(user_id: str, prediction_id: str, *, trust_pending: bool = False) -> PredictionState:
    """Redis's state if finished (or pending, when trusted and not past its upload
    deadline), else DynamoDB's."""
    state = _read_cache(user_id, prediction_id)
    if state is not None and state.status != PENDING:
        return state
    if state is not None and trust_pending and not _overdue(state.status, state.created_at):
        return state
    return _read_table(user_id, prediction_id)


def _next_check(state: PredictionState, remaining: float) -> float:
    """How long a long-poll waits before reading again: at most RECHECK_SECONDS, and no
    later than the prediction's upload deadline (when it may expire)."""
    until_deadline = (upload_deadline(state.created_at) - datetime.now(UTC)).total_seconds()
    wait = min(remaining, RECHECK_SECONDS)
    return min(wait, until_deadline + 0.05) if until_deadline > 0 else wait


def get_prediction(user_id: str, prediction_id: str, wait: float = 0) -> PredictionView:
    """The caller's prediction; NotFound for an unknown id or another user's.

    With ``wait`` > 0, a pending prediction is watched for up to ``wait`` seconds and
    returned as soon as it is done, failed or expired (still pending if time runs out).
    """
    cached = _read_cache(user_id, prediction_id)
    if cached is not None and cached.status != PENDING:
        return _view(cached, user_id)
    if wait <= 0:
        return _view(_read_table(user_id, prediction_id), user_id)
    deadline = time.monotonic() + min(wait, MAX_WAIT_SECONDS)
    with cache.completion_waiter(prediction_id) as wait_for_completion:
        # Subscribed before the state is read again, so a completion in between is not
        # missed. A pending state in Redis spares that read DynamoDB; after a wait only a
        # finished one is trusted, so a lost cache write delays a result at most
        # RECHECK_SECONDS.
        state = _read(user_id, prediction_id, trust_pending=cached is not None)
        while state.status == PENDING and (remaining := deadline - time.monotonic()) > 0:
            wait_for_completion(_next_check(state, remaining))
            state = _read(user_id, prediction_id)
    return _view(state, user_id)


def list_predictions(user_id: str, limit: int, cursor: str | None = None) -> PredictionPage:
    """Up to ``limit`` of the caller's predictions, newest first, after ``cursor``."""
    page, next_cursor = newest_first(PredictionRecord.by_user, "id", user_id, limit, cursor)
    return PredictionPage(
        items=[_view(state_of(_settle(record)), user_id) for record in page],
        next_cursor=next_cursor,
    )
