"""Every sample event in events/ replayed through the function template.yaml routes it to.

The events are the single source of their ids: the fixture stores the user and the
predictions they name, and swaps in a token signed with this run's secret.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools.utilities.data_classes import S3Event, SQSEvent
from imgclf import passwords, storage, tokens, users
from imgclf.tables import FeedbackRecord, UserRecord

from tests.unit.factories import Reply, done_prediction, pending_prediction

EVENTS = Path(__file__).resolve().parents[2] / "events"

# event file -> expected HTTP status of the reply.
HTTP_EVENTS = {
    "login.json": 200,
    "login-function-url.json": 200,
    "upload.json": 201,
    "get-prediction.json": 200,
    "get-prediction-function-url.json": 200,
    "list-predictions.json": 200,
    "feedback.json": 201,
    "list-feedback.json": 200,
    "health.json": 200,
}
# Events for the inference function (its own tests invoke it with them).
QUEUE_EVENTS = ("s3-put.json", "sqs-s3.json")


def load(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text())


def s3_records(event: dict[str, Any]) -> list[Any]:
    """The S3 records in a plain S3 event or in an SQS batch of S3 notifications."""
    if event["Records"][0].get("eventSource") == "aws:sqs":
        return [
            record
            for message in SQSEvent(event).records
            for record in S3Event(json.loads(message.body)).records
        ]
    return list(S3Event(event).records)


def route_of(template: dict[str, Any], event: dict[str, Any]) -> str:
    """The logical id of the function whose Api event matches the HTTP event."""
    if event.get("version") == "2.0":
        method, path = event["requestContext"]["http"]["method"], event["rawPath"]
    else:
        method, path = event["httpMethod"], event["path"]
    for logical_id, resource in template["Resources"].items():
        for source in resource.get("Properties", {}).get("Events", {}).values():
            if source["Type"] != "Api":
                continue
            pattern = re.sub(r"\{[^/]+\}", "[^/]+", source["Properties"]["Path"])
            if source["Properties"]["Method"].upper() == method and re.fullmatch(pattern, path):
                return logical_id
    raise AssertionError(f"no function in template.yaml routes {method} {path}")


def with_token(event: dict[str, Any], token: str) -> dict[str, Any]:
    for key in ("headers", "multiValueHeaders"):
        for name in event.get(key) or {}:
            if name.lower() == "authorization":
                value = f"Bearer {token}"
                event[key][name] = [value] if key == "multiValueHeaders" else value
    return event


@pytest.fixture
def world(aws: None) -> str:
    """The user and predictions the sample events name; returns that user's token."""
    user_id, prediction_id = storage.parse_upload_key(
        s3_records(load("s3-put.json"))[0].s3.get_object.key
    )
    UserRecord(
        email=users.DEMO_EMAIL,
        user_id=user_id,
        password_hash=passwords.hash_password(users.DEMO_PASSWORD),
    ).save()
    done_prediction(user_id, prediction_id)
    FeedbackRecord(prediction_id=prediction_id, user_id=user_id, correct=True).save()
    for record in s3_records(load("sqs-s3.json")):
        owner, other_id = storage.parse_upload_key(record.s3.get_object.key)
        if other_id != prediction_id:
            pending_prediction(owner, other_id)
    return tokens.issue_token(user_id, users.DEMO_EMAIL)


def test_every_event_file_is_covered() -> None:
    assert sorted(p.name for p in EVENTS.glob("*.json")) == sorted([*HTTP_EVENTS, *QUEUE_EVENTS])


@pytest.mark.parametrize(("name", "status"), HTTP_EVENTS.items())
def test_http_event_gets_the_success_reply(
    name: str,
    status: int,
    world: str,
    template: dict[str, Any],
    invoke: Callable[[str, dict[str, Any]], Reply],
) -> None:
    event = with_token(load(name), world)
    reply = invoke(route_of(template, event), event)
    assert reply.status == status, reply.body
    assert reply.headers["Content-Type"] == "application/json"


def test_login_events_return_a_valid_token(
    world: str, template: dict[str, Any], invoke: Callable[[str, dict[str, Any]], Reply]
) -> None:
    for name in ("login.json", "login-function-url.json"):
        event = load(name)
        body = invoke(route_of(template, event), event).body
        assert tokens.verify_token(body["access_token"]).email == users.DEMO_EMAIL


def test_the_list_feedback_event_lists_the_users_feedback(
    world: str, template: dict[str, Any], invoke: Callable[[str, dict[str, Any]], Reply]
) -> None:
    event = with_token(load("list-feedback.json"), world)
    body = invoke(route_of(template, event), event).body
    [item] = body["items"]
    assert (item["correct"], item["predicted_label"]) == (True, "tabby")
    assert item["object_key"].startswith("uploads/")


@pytest.mark.parametrize("name", QUEUE_EVENTS)
def test_queue_events_name_upload_keys_in_the_upload_bucket(name: str) -> None:
    records = s3_records(load(name))
    assert records
    for record in records:
        assert record.event_name.startswith("ObjectCreated:")
        assert record.s3.bucket.name == "imgclf-uploads-123456789012-us-east-1"
        user_id, prediction_id = storage.parse_upload_key(record.s3.get_object.key)
        assert re.fullmatch("[0-9a-f]{32}", user_id)
        assert re.fullmatch("[0-9a-f]{32}", prediction_id)
