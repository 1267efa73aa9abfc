"""A prediction whose image never arrives ends ``expired`` (imgclf.predictions, read by
PredictionsFunction and FeedbackFunction); one whose image did arrive is left to inference."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from imgclf import cache, predictions, storage
from imgclf.settings import get_settings
from imgclf.tables import DONE, EXPIRED, PENDING, TIMESTAMP_FORMAT, PredictionRecord, utc_timestamp

from tests.unit.conftest import LoggedInUser
from tests.unit.factories import Reply, pending_prediction, rest_event

Invoke = Callable[[str, dict[str, Any]], Reply]


def created_ago(seconds: float) -> str:
    return (datetime.now(UTC) - timedelta(seconds=seconds)).strftime(TIMESTAMP_FORMAT)


def window() -> int:
    """The upload URL's lifetime plus the grace."""
    settings = get_settings()
    return settings.upload_url_ttl_seconds + settings.upload_grace_seconds


def overdue(user: LoggedInUser) -> PredictionRecord:
    """A pending prediction created just over its window ago, with no image in S3."""
    return pending_prediction(user.user_id, uuid.uuid4().hex, created_at=created_ago(window() + 1))


def get(invoke: Invoke, user: LoggedInUser, path: str, **query: str) -> Reply:
    event = rest_event("GET", path, token=user.token, query=query or None)
    return invoke("PredictionsFunction", event)


def assert_expired(view: dict[str, Any]) -> None:
    assert view["status"] == "expired", view
    assert view["error"] == "the image was never uploaded"
    assert view["completed_at"]
    assert view["result"] is None


def test_a_prediction_past_its_window_with_no_image_reads_expired(
    alice: LoggedInUser, invoke: Invoke
) -> None:
    record = overdue(alice)
    reply = get(invoke, alice, f"/predictions/{record.id}")
    assert reply.status == 200
    assert_expired(reply.body)
    # Written once, from pending only: DynamoDB says so, with its removal time (TTL).
    stored = PredictionRecord.get(record.id, consistent_read=True)
    assert (stored.status, stored.error) == (EXPIRED, predictions.EXPIRED_REASON)
    assert stored.expires_at.timestamp() == int(
        predictions.removal_time(record.created_at).timestamp()
    )
    assert stored.expires_at > datetime.now(UTC) + timedelta(days=1)
    # Redis serves the finished state from now on, like any result.
    assert cache.read_prediction(record.id)["status"] == "expired"


def test_the_list_shows_it_expired(alice: LoggedInUser, invoke: Invoke) -> None:
    record = overdue(alice)
    fresh = pending_prediction(alice.user_id, uuid.uuid4().hex)
    reply = get(invoke, alice, "/predictions")
    assert reply.status == 200
    by_id = {item["id"]: item for item in reply.body["items"]}
    assert_expired(by_id[record.id])
    assert by_id[fresh.id]["status"] == "pending"  # still inside its window
    assert PredictionRecord.get(record.id).status == EXPIRED


def test_inside_its_window_it_stays_pending(alice: LoggedInUser, invoke: Invoke) -> None:
    record = pending_prediction(
        alice.user_id, uuid.uuid4().hex, created_at=created_ago(window() - 5)
    )
    assert get(invoke, alice, f"/predictions/{record.id}").body["status"] == "pending"
    assert PredictionRecord.get(record.id).status == PENDING


def test_an_image_that_arrived_is_left_to_inference(alice: LoggedInUser, invoke: Invoke) -> None:
    # Uploaded in time but not classified yet (a backlog, a restart): never "never uploaded".
    record = overdue(alice)
    boto3.client("s3").put_object(
        Bucket=get_settings().upload_bucket, Key=record.object_key, Body=b"\x89PNG"
    )
    assert get(invoke, alice, f"/predictions/{record.id}").body["status"] == "pending"
    assert PredictionRecord.get(record.id).status == PENDING


def test_a_result_written_meanwhile_wins_over_the_expiry(
    alice: LoggedInUser, invoke: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    record = overdue(alice)

    def finished_while_we_looked(key: str) -> bool:
        # Inference finishes it between the read and the expiry's conditional write.
        PredictionRecord.get(record.id).update(
            actions=[
                PredictionRecord.status.set(DONE),
                PredictionRecord.completed_at.set(utc_timestamp()),
            ]
        )
        return False

    monkeypatch.setattr(storage, "object_exists", finished_while_we_looked)
    reply = get(invoke, alice, f"/predictions/{record.id}")
    assert reply.body["status"] == "done"
    assert PredictionRecord.get(record.id).status == DONE


def test_a_long_poll_ends_expired_at_the_deadline(
    alice: LoggedInUser, invoke: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    # POST /uploads caches the new prediction as pending; a long-poll that began inside
    # the window must answer expired once the deadline passes, not sleep out its wait.
    monkeypatch.setenv("UPLOAD_URL_TTL_SECONDS", "1")
    monkeypatch.setenv("UPLOAD_GRACE_SECONDS", "1")
    get_settings.cache_clear()
    body = {"filename": "never.png", "content_type": "image/png", "size": 10}
    created = invoke(
        "UploadsFunction", rest_event("POST", "/uploads", body=body, token=alice.token)
    )
    assert created.status == 201
    prediction_id = created.body["prediction_id"]
    started = time.monotonic()
    reply = get(invoke, alice, f"/predictions/{prediction_id}", wait="15")
    elapsed = time.monotonic() - started
    assert_expired(reply.body)
    assert 0.5 < elapsed < 5, elapsed
    # A later read trusts no stale pending state either.
    assert_expired(get(invoke, alice, f"/predictions/{prediction_id}", wait="5").body)


def send_feedback(invoke: Invoke, user: LoggedInUser, prediction_id: str) -> Reply:
    event = rest_event(
        "POST", f"/predictions/{prediction_id}/feedback", body={"correct": True}, token=user.token
    )
    return invoke("FeedbackFunction", event)


def test_feedback_on_an_expired_prediction_is_a_409(alice: LoggedInUser, invoke: Invoke) -> None:
    record = overdue(alice)
    get(invoke, alice, f"/predictions/{record.id}")  # the read that ends it
    reply = send_feedback(invoke, alice, record.id)
    assert reply.status == 409
    assert reply.body == {
        "message": "prediction expired: the image was never uploaded",
        "error": "conflict",
    }


def test_feedback_on_a_pending_prediction_is_a_409(alice: LoggedInUser, invoke: Invoke) -> None:
    record = pending_prediction(alice.user_id, uuid.uuid4().hex)
    reply = send_feedback(invoke, alice, record.id)
    assert reply.status == 409
    assert "pending" in reply.body["message"]
