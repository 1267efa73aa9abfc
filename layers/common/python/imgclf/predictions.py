"""Predictions as callers see them: one view, read Redis first and DynamoDB second,
long-polling until a result arrives, and a user's list newest first, page by page.

Every view carries ``image_url``, a pre-signed GET of the image signed for that reply
only: Redis and DynamoDB hold the prediction's state, never a link.
"""

from __future__ import annotations

import time
from typing import Literal

from pydantic import BaseModel, Field, ValidationError

from imgclf import cache, storage
from imgclf.cursors import newest_first
from imgclf.errors import NotFound
from imgclf.tables import PENDING, PredictionRecord

# A long-poll re-reads DynamoDB at least this often, in case a completion message was lost.
RECHECK_SECONDS = 5.0
MAX_WAIT_SECONDS = 20


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
    """Which model and weights produced a result."""

    name: str
    weights: str


class PredictionState(BaseModel):
    """A prediction as stored and cached: the view without its per-request image link."""

    id: str
    status: Literal["pending", "done", "failed"]
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
        ModelInfo(name=record.model_name, weights=record.weights)
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
    state = state_of(record)
    if state.status != PENDING:
        # Read-through: the next reader of this finished prediction is served by Redis.
        # (Never a pending state: a completion cached meanwhile would be overwritten.)
        _cache(state, user_id)
    return state


def _read(user_id: str, prediction_id: str, *, trust_pending: bool = False) -> PredictionState:
    """Redis's state if finished (or pending, when trusted), else DynamoDB's."""
    state = _read_cache(user_id, prediction_id)
    if state is not None and (trust_pending or state.status != PENDING):
        return state
    return _read_table(user_id, prediction_id)


def get_prediction(user_id: str, prediction_id: str, wait: float = 0) -> PredictionView:
    """The caller's prediction; NotFound for an unknown id or another user's.

    With ``wait`` > 0, a pending prediction is watched for up to ``wait`` seconds and
    returned as soon as it is done or failed (still pending if time runs out).
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
            wait_for_completion(min(remaining, RECHECK_SECONDS))
            state = _read(user_id, prediction_id)
    return _view(state, user_id)


def list_predictions(user_id: str, limit: int, cursor: str | None = None) -> PredictionPage:
    """Up to ``limit`` of the caller's predictions, newest first, after ``cursor``."""
    page, next_cursor = newest_first(PredictionRecord.by_user, "id", user_id, limit, cursor)
    return PredictionPage(
        items=[_view(state_of(record), user_id) for record in page],
        next_cursor=next_cursor,
    )
