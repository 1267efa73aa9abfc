"""POST /uploads (UploadsFunction): a pending prediction and a pre-signed POST."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import pytest
from imgclf.settings import get_settings
from imgclf.tables import PENDING, PredictionRecord

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
    assert ["content-length-range", 1, get_settings().upload_max_bytes] in policy["conditions"]

    record = PredictionRecord.get(prediction_id)
    assert (record.user_id, record.status, record.object_key) == (alice.user_id, PENDING, key)
    assert (record.filename, record.size) == ("cat.jpg", 48213)


@pytest.mark.parametrize("content_type", ["image/gif", "application/pdf", "text/html", ""])
def test_unsupported_type_is_a_400_before_any_url(
    content_type: str, alice: LoggedInUser, invoke: Invoke
) -> None:
    reply = upload(invoke, alice, {**GOOD, "content_type": content_type})
    assert reply.status == 400
    assert reply.body["error"] == "bad_request"
    assert "image/jpeg" in reply.body["message"]
    assert PredictionRecord.count() == 0


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
