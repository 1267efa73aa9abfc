"""POST /uploads (UploadsFunction): a pending prediction and a pre-signed POST."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from imgclf.settings import get_settings
from imgclf.tables import PENDING, PredictionRecord, parse_timestamp

from tests.unit.conftest import LoggedInUser
from tests.unit.factories import Reply, rest_event

Invoke = Callable[[str, dict[str, Any]], Reply]
GOOD = {"filename": "cat.jpg", "content_type": "image/jpeg", "size": 48213}


def upload(invoke: Invoke, user: LoggedInUser, body: Any) -> Reply:
    return invoke("UploadsFunction", rest_event("POST", "/uploads", body=body, token=user.token))


@pytest.mark.parametrize("content_type", ["image/jpeg", "image/png", "image/webp", "Image/PNG"])
def test_upload_creates_a_pending_prediction_and_a_presigned_post(
    content_type: str, alice: LoggedInUser, invoke: Invoke
) -> None:
    reply = upload(invoke, alice, {**GOOD, "content_type": content_type})
    assert reply.status == 201
    prediction_id = reply.body["prediction_id"]
    key = f"uploads/{alice.user_id}/{prediction_id}"
    assert reply.body["expires_in"] == get_settings().upload_url_ttl_seconds
    fields = reply.body["upload"]["fields"]
    assert fields["key"] == key
    assert fields["Content-Type"] == content_type.lower()
    policy = json.loads(base64.b64decode(fields["policy"]))
    # Exactly the declared size: S3 refuses a file of any other length.
    assert ["content-length-range", 48213, 48213] in policy["conditions"]

    record = PredictionRecord.get(prediction_id)
    assert (record.user_id, record.status, record.object_key) == (alice.user_id, PENDING, key)
    assert (record.filename, record.size) == ("cat.jpg", 48213)


def test_a_new_prediction_carries_its_removal_time(alice: LoggedInUser, invoke: Invoke) -> None:
    # DynamoDB's TTL removes it in time even if the image never comes and nobody reads it.
    record = PredictionRecord.get(upload(invoke, alice, GOOD).body["prediction_id"])
    settings = get_settings()
    after = (
        settings.upload_url_ttl_seconds
        + settings.upload_grace_seconds
        + settings.expired_retention_seconds
    )
    removal = parse_timestamp(record.created_at) + timedelta(seconds=after)
    assert record.expires_at.timestamp() == int(removal.timestamp())  # TTL: epoch seconds


@pytest.mark.parametrize("content_type", ["image/gif", "application/pdf", "text/html", ""])
def test_unsupported_type_is_a_422_naming_the_types_before_any_url(
    content_type: str, alice: LoggedInUser, invoke: Invoke
) -> None:
    reply = upload(invoke, alice, {**GOOD, "content_type": content_type})
    assert reply.status == 422
    assert reply.body["error"] == "validation_error"
    assert reply.body["message"].startswith("body.content_type:")
    assert "image/jpeg" in reply.body["message"]
    assert PredictionRecord.count() == 0


def test_the_schema_says_what_the_server_takes(function_module) -> None:
    schema = json.loads(function_module("UploadsFunction").app.get_openapi_json_schema())
    request = schema["components"]["schemas"]["UploadRequest"]["properties"]
    assert request["content_type"]["enum"] == ["image/jpeg", "image/png", "image/webp"]
    assert request["size"]["maximum"] == get_settings().upload_max_bytes
    assert (request["filename"]["minLength"], request["filename"]["maxLength"]) == (1, 255)


def test_an_integral_number_is_an_integer_size(alice: LoggedInUser, invoke: Invoke) -> None:
    # JSON Schema's "integer" takes 55.0 (schemathesis sends it); 55.5 and "55" stay 422.
    reply = upload(invoke, alice, {**GOOD, "size": 55.0})
    assert reply.status == 201
    assert PredictionRecord.get(reply.body["prediction_id"]).size == 55


def test_a_blank_filename_is_taken_as_the_schema_says(alice: LoggedInUser, invoke: Invoke) -> None:
    # minLength 1 is all the schema asks; whitespace is a name like any other.
    assert upload(invoke, alice, {**GOOD, "filename": " "}).status == 201


def test_oversize_is_a_413_before_any_url(alice: LoggedInUser, invoke: Invoke) -> None:
    reply = upload(invoke, alice, {**GOOD, "size": get_settings().upload_max_bytes + 1})
    assert reply.status == 413
    assert reply.body["error"] == "payload_too_large"
    assert PredictionRecord.count() == 0


def test_the_size_limit_is_configurable(
    alice: LoggedInUser, invoke: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UPLOAD_MAX_BYTES", "1000")
    get_settings.cache_clear()
    assert upload(invoke, alice, {**GOOD, "size": 1000}).status == 201
    assert upload(invoke, alice, {**GOOD, "size": 1001}).status == 413


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"content_type": "image/png", "size": 1}, "filename"),
        ({"filename": "a.png", "size": 1}, "content_type"),
        ({"filename": "a.png", "content_type": "image/png"}, "size"),
        ({**GOOD, "size": "12"}, "size"),
        ({**GOOD, "size": 1.5}, "size"),
        ({**GOOD, "size": 0}, "size"),
        ({**GOOD, "size": -5}, "size"),
        ({**GOOD, "filename": ""}, "filename"),
        ({**GOOD, "filename": "x" * 256}, "filename"),
        ({**GOOD, "filename": 3}, "filename"),
        ({**GOOD, "content_type": "image/" + "x" * 200}, "content_type"),
    ],
)
def test_malformed_upload_is_a_422_naming_the_field(
    body: dict[str, Any], field: str, alice: LoggedInUser, invoke: Invoke
) -> None:
    reply = upload(invoke, alice, body)
    assert reply.status == 422
    assert ["body", field] in [error["loc"] for error in reply.body["detail"]]
