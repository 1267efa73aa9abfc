"""POST /predictions/{id}/feedback and GET /feedback (FeedbackFunction)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any
from unittest.mock import ANY

import jwt
import pytest
from imgclf import labels
from imgclf.settings import get_settings
from imgclf.tables import FeedbackRecord, PredictionRecord

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


# --------------------------------------------------------------------------- GET /feedback


def list_feedback(invoke: Invoke, token: str | None, **query: str) -> Reply:
    event = rest_event("GET", "/feedback", token=token, query=query or None)
    return invoke("FeedbackFunction", event)


def _feedback_at(user: LoggedInUser, prediction_id: str, at: str, **fields: Any) -> None:
    record = FeedbackRecord(prediction_id=prediction_id, user_id=user.user_id, **fields)
    record.created_at = at
    record.save()


def _history(user: LoggedInUser, count: int) -> list[str]:
    """``count`` predictions with feedback one minute apart; their ids, newest first."""
    ids = []
    for minute in range(count):
        prediction = done_prediction(user.user_id, uuid.uuid4().hex)
        _feedback_at(user, prediction.id, f"2026-11-26T09:{minute:02}:00.000000Z", correct=True)
        ids.append(prediction.id)
    return ids[::-1]


def test_list_joins_each_feedback_with_its_prediction(
    alice: LoggedInUser, prediction_id: str, invoke: Invoke
) -> None:
    send(invoke, alice, prediction_id, {"correct": False, "label": "tiger_cat", "comment": "hm"})
    reply = list_feedback(invoke, alice.token)
    assert reply.status == 200
    assert reply.body == {
        "items": [
            {
                "prediction_id": prediction_id,
                "object_key": f"uploads/{alice.user_id}/{prediction_id}",
                "filename": "cat.jpg",
                "predicted_label": "tabby",
                "correct": False,
                "label": "tiger_cat",
                "comment": "hm",
                "created_at": FeedbackRecord.get(prediction_id, alice.user_id).created_at,
            }
        ],
        "next_cursor": None,
    }


def test_list_pages_newest_first_with_an_opaque_cursor(
    alice: LoggedInUser, bob: LoggedInUser, invoke: Invoke
) -> None:
    expected = _history(alice, 5)
    _history(bob, 2)
    seen: list[str] = []
    query = {"limit": "2"}
    pages = 0
    while True:
        reply = list_feedback(invoke, alice.token, **query)
        assert reply.status == 200
        seen += [item["prediction_id"] for item in reply.body["items"]]
        pages += 1
        if reply.body["next_cursor"] is None:
            break
        query = {"limit": "2", "cursor": reply.body["next_cursor"]}
    assert seen == expected
    assert pages == 3


def test_a_resent_feedback_moves_to_the_top(alice: LoggedInUser, invoke: Invoke) -> None:
    older, newer = _history(alice, 2)[::-1]
    send(invoke, alice, older, {"correct": False, "label": "tabby"})
    items = list_feedback(invoke, alice.token).body["items"]
    assert [(i["prediction_id"], i["label"]) for i in items] == [(older, "tabby"), (newer, None)]


def test_another_users_feedback_is_never_listed(
    alice: LoggedInUser, bob: LoggedInUser, prediction_id: str, invoke: Invoke
) -> None:
    send(invoke, alice, prediction_id, {"correct": True})
    assert list_feedback(invoke, bob.token).body == {"items": [], "next_cursor": None}


def test_a_cursor_cannot_reach_another_users_feedback(
    alice: LoggedInUser, bob: LoggedInUser, invoke: Invoke
) -> None:
    _history(alice, 3)
    bobs = _history(bob, 1)
    cursor = list_feedback(invoke, alice.token, limit="1").body["next_cursor"]
    items = list_feedback(invoke, bob.token, cursor=cursor).body["items"]
    assert [item["prediction_id"] for item in items] in ([], bobs)


def test_another_users_prediction_is_never_joined(
    alice: LoggedInUser, bob: LoggedInUser, invoke: Invoke
) -> None:
    # Cannot happen through the API (feedback needs one's own prediction): a stray record.
    bobs = done_prediction(bob.user_id, uuid.uuid4().hex)
    _feedback_at(alice, bobs.id, "2026-11-26T09:00:00.000000Z", correct=True)
    [item] = list_feedback(invoke, alice.token).body["items"]
    assert item["prediction_id"] == bobs.id
    assert item["object_key"] is item["filename"] is item["predicted_label"] is None


def test_feedback_on_a_deleted_prediction_is_listed_without_it(
    alice: LoggedInUser, prediction_id: str, invoke: Invoke
) -> None:
    send(invoke, alice, prediction_id, {"correct": True})
    PredictionRecord.get(prediction_id).delete()
    [item] = list_feedback(invoke, alice.token).body["items"]
    assert (item["prediction_id"], item["correct"], item["object_key"]) == (
        prediction_id,
        True,
        None,
    )


@pytest.mark.parametrize("token", [None, "not-a-jwt"])
def test_listing_needs_a_valid_token(token: str | None, aws: None, invoke: Invoke) -> None:
    reply = list_feedback(invoke, token)
    assert reply.status == 401
    assert reply.body["error"] == "unauthorized"


def test_an_expired_token_is_a_401(alice: LoggedInUser, invoke: Invoke) -> None:
    claims = jwt.decode(alice.token, options={"verify_signature": False})
    claims["iat"] = claims["exp"] = int(time.time()) - 60
    secret = get_settings().jwt_secret.get_secret_value()
    expired = jwt.encode(claims, secret, algorithm="HS256")
    assert list_feedback(invoke, expired).status == 401


@pytest.mark.parametrize("cursor", ["garbage!", "e30", "bm90IGpzb24"])
def test_an_invalid_cursor_is_a_400(cursor: str, alice: LoggedInUser, invoke: Invoke) -> None:
    reply = list_feedback(invoke, alice.token, cursor=cursor)
    assert reply.status == 400
    assert reply.body == {"message": "invalid cursor", "error": "bad_request"}


@pytest.mark.parametrize("query", [{"limit": "0"}, {"limit": "101"}, {"cursor": "a" * 513}])
def test_limit_and_cursor_out_of_range_are_a_422(
    query: dict[str, str], alice: LoggedInUser, invoke: Invoke
) -> None:
    assert list_feedback(invoke, alice.token, **query).status == 422


def test_the_schema_lists_the_labels_the_server_takes(function_module) -> None:
    schema = json.loads(function_module("FeedbackFunction").app.get_openapi_json_schema())
    label = schema["components"]["schemas"]["FeedbackRequest"]["properties"]["label"]
    [names] = [option["enum"] for option in label["anyOf"] if "enum" in option]
    assert set(names) == set(labels.CLASS_NAMES)
    assert len(names) == len(set(names))  # "crane" and "maillot" once each
    assert {"type": "null"} in label["anyOf"]
