"""What every HTTP function shares (imgclf.api): auth, error replies, both event formats."""

from __future__ import annotations

import base64
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


# Every route that takes a JSON body, with a body it would accept.
JSON_ROUTES = [
    ("AuthFunction", "/auth/login", {"email": "a@example.com", "password": "pw"}),
    ("UploadsFunction", "/uploads", {"filename": "a.jpg", "content_type": "image/jpeg", "size": 1}),
    ("FeedbackFunction", "/predictions/abc/feedback", {"correct": True}),
]
NOT_JSON = {"message": "request body is not valid JSON", "error": "bad_request"}


def v2_event(path: str, body: str, *, token: str, content_type: str, b64: bool) -> dict:
    """A Function URL (payload 2.0) POST."""
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {"authorization": f"Bearer {token}", "content-type": content_type},
        "requestContext": {
            "http": {"method": "POST", "path": path, "sourceIp": "203.0.113.1"},
            "requestId": "r1",
            "stage": "$default",
        },
        "body": body,
        "isBase64Encoded": b64,
    }


def binary(data: bytes, event: dict[str, Any]) -> dict[str, Any]:
    # API Gateway and Function URLs base64-encode a body that is not UTF-8 text.
    return {**event, "body": base64.b64encode(data).decode(), "isBase64Encoded": True}


@pytest.mark.parametrize(
    "raw",
    [
        b"\xff\xfe\x00garbage",  # not UTF-8 (the issue's own body)
        b'{"email": "\xe9"}',  # JSON syntax, but Latin-1 inside
        b"[" * 100_000,  # nested past the parser's recursion limit
        b'{"size": ' + b"9" * 5000 + b"}",  # an integer past Python's digit limit
        b'{"filename": "\\ud800"}',  # a lone surrogate: no UTF-8 text holds one
        b"\xef\xbb\xbf{}",  # a byte-order mark
        b"{not json",
    ],
)
@pytest.mark.parametrize(("function", "path", "body"), JSON_ROUTES)
def test_a_body_that_is_not_utf8_json_is_a_400_on_both_event_formats(
    function: str, path: str, body: Any, raw: bytes, alice: LoggedInUser, invoke: Invoke
) -> None:
    rest = binary(raw, rest_event("POST", path, token=alice.token))
    assert (invoke(function, rest).status, invoke(function, rest).body) == (400, NOT_JSON)
    url = v2_event(
        path,
        base64.b64encode(raw).decode(),
        token=alice.token,
        content_type="application/json",
        b64=True,
    )
    assert (invoke(function, url).status, invoke(function, url).body) == (400, NOT_JSON)


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/xml",
        "application/jsonx",
    ],
)
@pytest.mark.parametrize(("function", "path", "body"), JSON_ROUTES)
def test_a_content_type_other_than_json_is_a_415_on_both_event_formats(
    function: str, path: str, body: Any, content_type: str, alice: LoggedInUser, invoke: Invoke
) -> None:
    expected = (
        415,
        {"message": "Content-Type must be application/json", "error": "unsupported_media_type"},
    )
    event = rest_event(
        "POST", path, body=body, token=alice.token, headers={"Content-Type": content_type}
    )
    reply = invoke(function, event)
    assert (reply.status, reply.body) == expected
    url = v2_event(path, json.dumps(body), token=alice.token, content_type=content_type, b64=False)
    reply = invoke(function, url)
    assert (reply.status, reply.body) == expected


@pytest.mark.parametrize("content_type", ["application/json; charset=utf-8", "Application/JSON"])
def test_json_with_parameters_or_capitals_is_json(
    content_type: str, aws: None, invoke: Invoke
) -> None:
    event = rest_event(
        "POST",
        "/auth/login",
        body={"email": "nobody@example.com", "password": "pw"},
        headers={"Content-Type": content_type},
    )
    assert invoke("AuthFunction", event).status == 401  # read, checked, refused


@pytest.mark.parametrize(
    ("headers", "raw"),
    [
        ({}, "{not json"),
        ({}, '{"correct": "not a bool", "filename": 3}'),
        ({"Content-Type": "text/plain"}, '{"correct": true}'),
        ({}, None),
    ],
)
@pytest.mark.parametrize(("function", "path", "body"), JSON_ROUTES[1:])
def test_without_a_token_it_is_a_401_whatever_the_body(
    function: str, path: str, body: Any, headers: dict, raw: str | None, aws: None, invoke: Invoke
) -> None:
    event = rest_event("POST", path, raw_body=raw, headers=headers)
    reply = invoke(function, event)
    assert (reply.status, reply.body["error"]) == (401, "unauthorized")
    event = binary(b"\xff\xfe\x00garbage", rest_event("POST", path, token="forged"))
    assert invoke(function, event).status == 401


def test_without_a_token_bad_parameters_are_a_401_too(aws: None, invoke: Invoke) -> None:
    event = rest_event("GET", "/predictions", query={"limit": "not a number"})
    assert invoke("PredictionsFunction", event).status == 401


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


@pytest.mark.parametrize("function", HTTP_FUNCTIONS)
def test_openapi_documents_the_body_errors_of_every_json_route(
    function: str, function_module: Callable[[str], ModuleType]
) -> None:
    schema = json.loads(function_module(function).app.get_openapi_json_schema())
    for operations in schema["paths"].values():
        for operation in operations.values():
            if "requestBody" in operation:
                assert {"400", "415", "422"} <= set(operation["responses"])
            if operation.get("security"):
                assert "401" in operation["responses"]
