"""What every HTTP function shares (imgclf.api): auth, error replies, both event formats."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

import jwt
import pytest
from imgclf.settings import get_settings

from tests.unit.conftest import LoggedInUser
from tests.unit.factories import Reply, rest_event

Invoke = Callable[[str, dict[str, Any]], Reply]
SECRET = get_settings().jwt_secret.get_secret_value()
HTTP_FUNCTIONS = ["AuthFunction", "UploadsFunction", "PredictionsFunction", "FeedbackFunction"]


def forged_tokens(user: LoggedInUser) -> dict[str, str]:
    now = int(time.time())
    claims = {"sub": user.user_id, "email": user.email, "iss": "imgclf", "iat": now}
    return {
        "expired": jwt.encode({**claims, "exp": now - 1}, SECRET, algorithm="HS256"),
        "forged": jwt.encode({**claims, "exp": now + 60}, "x" * 64, algorithm="HS256"),
        "alg-none": jwt.encode({**claims, "exp": now + 60}, None, algorithm="none"),
        "wrong-issuer": jwt.encode(
            {**claims, "iss": "other", "exp": now + 60}, SECRET, algorithm="HS256"
        ),
        "garbage": "not-a-jwt",
    }


PROTECTED = [
    (
        "UploadsFunction",
        "POST",
        "/uploads",
        {"filename": "a.jpg", "content_type": "image/jpeg", "size": 1},
    ),
    ("PredictionsFunction", "GET", "/predictions", None),
    ("PredictionsFunction", "GET", "/predictions/abc", None),
    ("FeedbackFunction", "POST", "/predictions/abc/feedback", {"correct": True}),
]


@pytest.mark.parametrize(("function", "method", "path", "body"), PROTECTED)
def test_protected_routes_need_a_token(
    function: str, method: str, path: str, body: Any, aws: None, invoke: Invoke
) -> None:
    reply = invoke(function, rest_event(method, path, body=body))
    assert reply.status == 401
    assert reply.body == {"message": "missing bearer token", "error": "unauthorized"}


@pytest.mark.parametrize("kind", ["expired", "forged", "alg-none", "wrong-issuer", "garbage"])
@pytest.mark.parametrize(("function", "method", "path", "body"), PROTECTED)
def test_protected_routes_refuse_bad_tokens(
    function: str,
    method: str,
    path: str,
    body: Any,
    kind: str,
    alice: LoggedInUser,
    invoke: Invoke,
) -> None:
    token = forged_tokens(alice)[kind]
    reply = invoke(function, rest_event(method, path, body=body, token=token))
    assert reply.status == 401
    assert reply.body["error"] == "unauthorized"


@pytest.mark.parametrize(
    ("function", "path"), [("UploadsFunction", "/uploads"), ("AuthFunction", "/auth/login")]
)
def test_bad_json_is_a_400(function: str, path: str, alice: LoggedInUser, invoke: Invoke) -> None:
    reply = invoke(function, rest_event("POST", path, raw_body="{not json", token=alice.token))
    assert reply.status == 400
    assert reply.body == {"message": "request body is not valid JSON", "error": "bad_request"}


def test_validation_errors_name_the_field_and_never_echo_input(aws: None, invoke: Invoke) -> None:
    reply = invoke(
        "AuthFunction",
        rest_event("POST", "/auth/login", body={"email": "a@example.com", "password": 12345}),
    )
    assert reply.status == 422
    assert reply.body["error"] == "validation_error"
    assert reply.body["message"].startswith("body.password:")
    assert reply.body["detail"][0]["loc"] == ["body", "password"]
    assert "12345" not in json.dumps(reply.body)


def test_function_url_events_use_the_same_routes(alice: LoggedInUser, invoke: Invoke) -> None:
    event = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": "/predictions",
        "rawQueryString": "limit=5",
        "headers": {"authorization": f"Bearer {alice.token}", "host": "x.lambda-url.on.aws"},
        "queryStringParameters": {"limit": "5"},
        "requestContext": {
            "http": {"method": "GET", "path": "/predictions", "sourceIp": "203.0.113.1"},
            "requestId": "r1",
            "stage": "$default",
            "domainName": "x.lambda-url.on.aws",
        },
        "isBase64Encoded": False,
    }
    reply = invoke("PredictionsFunction", event)
    assert reply.status == 200
    assert reply.body == {"items": [], "next_cursor": None}


def test_unknown_route_is_a_json_404(aws: None, invoke: Invoke) -> None:
    reply = invoke("PredictionsFunction", rest_event("GET", "/nope"))
    assert reply.status == 404
    assert reply.body["error"] == "not_found"


def test_cors_headers_answer_a_browser(aws: None, invoke: Invoke) -> None:
    event = rest_event("GET", "/health", headers={"Origin": "http://127.0.0.1:8501"})
    reply = invoke("PredictionsFunction", event)
    assert reply.headers["Access-Control-Allow-Origin"] == "*"


def test_an_unexpected_error_is_a_json_500_without_details(
    alice: LoggedInUser, invoke: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    from imgclf import predictions

    def explode(*args: object) -> None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(predictions, "list_predictions", explode)
    reply = invoke("PredictionsFunction", rest_event("GET", "/predictions", token=alice.token))
    assert reply.status == 500
    assert reply.body == {"message": "internal error", "error": "internal_error"}


@pytest.mark.parametrize("function", HTTP_FUNCTIONS)
def test_openapi_documents_each_route_from_its_types(
    function: str, function_module: Callable[[str], ModuleType]
) -> None:
    schema = json.loads(function_module(function).app.get_openapi_json_schema())
    assert schema["openapi"].startswith("3.")
    assert "bearer" in schema["components"]["securitySchemes"]
    for operations in schema["paths"].values():
        for operation in operations.values():
            successes = [status for status in operation["responses"] if status.startswith("2")]
            assert len(successes) == 1
            # The success reply is the route's return type, not an empty object.
            success = operation["responses"][successes[0]]
            assert success["content"]["application/json"]["schema"]
            for status, response in operation["responses"].items():
                if status.startswith("4") and status != "422":
                    content = response["content"]["application/json"]["schema"]
                    assert content == {"$ref": "#/components/schemas/ErrorReply"}
