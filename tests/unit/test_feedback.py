"""POST /predictions/{id}/feedback (FeedbackFunction)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any
from unittest.mock import ANY

import pytest
from imgclf.tables import FeedbackRecord

from tests.unit.conftest import LoggedInUser
from tests.unit.factories import Reply, done_prediction, rest_event

Invoke = Callable[[str, dict[str, Any]], Reply]


def send(invoke: Invoke, user: LoggedInUser, prediction_id: str, body: Any) -> Reply:
    event = rest_event(
        "POST", f"/predictions/{prediction_id}/feedback", body=body, token=user.token
    )
    return invoke("FeedbackFunction", event)


@pytest.fixture
def prediction_id(alice: LoggedInUser) -> str:
    return done_prediction(alice.user_id, uuid.uuid4().hex).id


def test_feedback_is_stored(alice: LoggedInUser, prediction_id: str, invoke: Invoke) -> None:
    body = {"correct": False, "label": "tiger_cat", "comment": "stripes"}
    reply = send(invoke, alice, prediction_id, body)
    assert reply.status == 201
    assert reply.body == {**body, "prediction_id": prediction_id, "created_at": ANY}
    stored = FeedbackRecord.get(prediction_id, alice.user_id)
    assert (stored.correct, stored.label, stored.comment) == (False, "tiger_cat", "stripes")


def test_correct_alone_is_enough(alice: LoggedInUser, prediction_id: str, invoke: Invoke) -> None:
    reply = send(invoke, alice, prediction_id, {"correct": True})
    assert reply.status == 201
    assert (reply.body["label"], reply.body["comment"]) == (None, None)


def test_a_second_submission_replaces_the_first(
    alice: LoggedInUser, prediction_id: str, invoke: Invoke
) -> None:
    send(invoke, alice, prediction_id, {"correct": False, "label": "tabby", "comment": "cat"})
    send(invoke, alice, prediction_id, {"correct": True})
    stored = list(FeedbackRecord.query(prediction_id))
    assert len(stored) == 1
    assert (stored[0].correct, stored[0].label, stored[0].comment) == (True, None, None)


def test_another_users_prediction_is_a_404(
    bob: LoggedInUser, prediction_id: str, invoke: Invoke
) -> None:
    reply = send(invoke, bob, prediction_id, {"correct": True})
    assert reply.status == 404
    assert FeedbackRecord.count() == 0


def test_an_unknown_prediction_is_a_404(alice: LoggedInUser, invoke: Invoke) -> None:
    assert send(invoke, alice, uuid.uuid4().hex, {"correct": True}).status == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "correct"),
        ({"correct": "yes"}, "correct"),
        ({"correct": 1}, "correct"),
        ({"correct": False, "label": "not a class"}, "label"),
        ({"correct": False, "label": "Tabby"}, "label"),
        ({"correct": False, "label": 3}, "label"),
        ({"correct": False, "label": "x" * 101}, "label"),
        ({"correct": True, "comment": "x" * 1001}, "comment"),
        ({"correct": True, "comment": ["x"]}, "comment"),
    ],
)
def test_malformed_feedback_is_a_422_naming_the_field(
    body: dict[str, Any], field: str, alice: LoggedInUser, prediction_id: str, invoke: Invoke
) -> None:
    reply = send(invoke, alice, prediction_id, body)
    assert reply.status == 422
    assert reply.body["detail"][0]["loc"][:2] == ["body", field]


def test_a_1000_character_comment_is_accepted(
    alice: LoggedInUser, prediction_id: str, invoke: Invoke
) -> None:
    assert (
        send(invoke, alice, prediction_id, {"correct": True, "comment": "x" * 1000}).status == 201
    )


def test_bad_json_is_a_400(alice: LoggedInUser, prediction_id: str, invoke: Invoke) -> None:
    event = rest_event(
        "POST", f"/predictions/{prediction_id}/feedback", raw_body="{", token=alice.token
    )
    assert invoke("FeedbackFunction", event).status == 400
