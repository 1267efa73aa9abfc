"""Events, records and a Lambda context the unit tests build."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from imgclf import storage
from imgclf.tables import DONE, PredictionRecord, utc_timestamp


@dataclass
class FakeLambdaContext:
    """The attributes powertools reads from the Lambda context."""

    function_name: str = "imgclf-test"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:imgclf-test"
    aws_request_id: str = "52fdfc07-2182-454f-963f-5f0f9a621d72"


@dataclass
class Reply:
    """An HTTP reply from a handler: status, headers and the JSON body."""

    status: int
    headers: dict[str, str]
    body: Any


def rest_event(
    method: str,
    path: str,
    *,
    body: Any = None,
    raw_body: str | None = None,
    token: str | None = None,
    query: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A minimal API Gateway REST (v1) proxy event."""
    headers = {"Content-Type": "application/json", **(headers or {})}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return {
        "httpMethod": method,
        "path": path,
        "resource": path,
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": query,
        "multiValueQueryStringParameters": {k: [v] for k, v in query.items()} if query else None,
        "pathParameters": None,
        "body": raw_body if raw_body is not None else None if body is None else json.dumps(body),
        "isBase64Encoded": False,
        "requestContext": {"requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef", "stage": "Prod"},
    }


def done_prediction(
    user_id: str, prediction_id: str, created_at: str | None = None
) -> PredictionRecord:
    """Store a finished prediction, as the inference function leaves it."""
    record = PredictionRecord(
        id=prediction_id,
        user_id=user_id,
        object_key=storage.upload_key(user_id, prediction_id),
        filename="cat.jpg",
        content_type="image/jpeg",
        size=48213,
        status=DONE,
        completed_at=utc_timestamp(),
        result={
            "label": "tabby",
            "score": 0.71,
            "top5": [
                {"class_id": "n02123045", "label": "tabby", "score": 0.71},
                {"class_id": "n02123159", "label": "tiger_cat", "score": 0.2},
            ],
        },
        model_name="resnet50",
        weights="random",
        engine="openvino",
        precision="f32",
    )
    if created_at is not None:
        record.created_at = created_at
    record.save()
    return record


def pending_prediction(
    user_id: str, prediction_id: str, created_at: str | None = None
) -> PredictionRecord:
    """Store a prediction whose image is not classified yet."""
    record = PredictionRecord(
        id=prediction_id,
        user_id=user_id,
        object_key=storage.upload_key(user_id, prediction_id),
        filename="dog.png",
        content_type="image/png",
        size=1234,
    )
    if created_at is not None:
        record.created_at = created_at
    record.save()
    return record
