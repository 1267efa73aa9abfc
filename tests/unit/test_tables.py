"""imgclf.tables: the records' defaults and the indexes the code queries."""

from __future__ import annotations

import re

from imgclf.tables import (
    PENDING,
    FeedbackRecord,
    PredictionRecord,
    UserRecord,
    connect,
    utc_timestamp,
)

from tests.unit.factories import done_prediction, pending_prediction


def test_timestamps_are_utc_with_microseconds_and_sort_as_text() -> None:
    first, second = utc_timestamp(), utc_timestamp()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", first)
    assert first <= second


def test_a_new_prediction_is_pending_with_a_creation_time(aws: None) -> None:
    record = pending_prediction("u1", "p1")
    stored = PredictionRecord.get("p1")
    assert stored.status == PENDING
    assert stored.created_at == record.created_at


def test_by_user_lists_one_users_predictions_newest_first(aws: None) -> None:
    done_prediction("u1", "old", created_at="2026-01-01T00:00:00.000000Z")
    done_prediction("u1", "new", created_at="2026-02-01T00:00:00.000000Z")
    done_prediction("u2", "other", created_at="2026-03-01T00:00:00.000000Z")
    found = PredictionRecord.by_user.query("u1", scan_index_forward=False)
    assert [record.id for record in found] == ["new", "old"]


def test_users_are_keyed_by_email(aws: None) -> None:
    UserRecord(email="a@example.com", user_id="u1", password_hash="h").save()
    assert UserRecord.get("a@example.com").user_id == "u1"


def test_connect_builds_a_tables_client_at_once(aws):
    FeedbackRecord._connection = None  # as in a fresh sandbox: no connection yet
    connect(FeedbackRecord)
    assert FeedbackRecord._get_connection().connection._client is not None
