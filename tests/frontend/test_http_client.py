"""The HTTP client's own logic: error mapping, type sniffing, views, re-login, URLs.

The whole flow against the real API is in tests/integration/test_frontend_*.py; here a tiny
HTTP server stands in for the API where a behaviour is hard to provoke from the real one
(an expired token, a non-JSON 502, an S3 XML refusal).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from frontend.client import (
    IMAGE_TYPES,
    ApiClient,
    ApiError,
    BadRequest,
    Endpoints,
    Forbidden,
    NotAnImage,
    NotFound,
    PayloadTooLarge,
    Prediction,
    ServerError,
    Unauthorized,
    Unreachable,
    UploadForm,
    UploadLimits,
    UploadRejected,
    detect_image_type,
    error_from_response,
    human_size,
)
from frontend.thumbnails import make_thumbnail


def _response(
    status: int, body: bytes, content_type: str = "application/json"
) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = body
    response.headers["Content-Type"] = content_type
    response.reason = "Reason"
    return response


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, BadRequest),
        (401, Unauthorized),
        (403, Forbidden),
        (404, NotFound),
        (413, PayloadTooLarge),
        (422, BadRequest),
        (502, ServerError),
        (504, ServerError),
        (409, ApiError),
    ],
)
def test_errors_are_typed_by_status_and_keep_the_api_message(status, kind):
    body = json.dumps({"message": "the API's own words", "error": "some_code"}).encode()
    error = error_from_response(_response(status, body))
    assert type(error) is kind
    assert error.message == "the API's own words"
    assert error.code == "some_code"
    assert error.status == status
    assert str(error) == f"the API's own words (HTTP {status})"


def test_a_non_json_error_keeps_its_text():
    error = error_from_response(_response(502, b"Bad Gateway from the proxy", "text/plain"))
    assert isinstance(error, ServerError)
    assert error.message == "Bad Gateway from the proxy"


def test_the_gateways_unknown_route_message_is_kept():
    error = error_from_response(_response(403, b'{"message": "Missing Authentication Token"}'))
    assert isinstance(error, Forbidden)
    assert error.message == "Missing Authentication Token"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", "image/jpeg"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "image/png"),
        (b"RIFF\x24\x00\x00\x00WEBPVP8 ", "image/webp"),
        (b"GIF89a......", None),
        (b"RIFF\x24\x00\x00\x00WAVEfmt ", None),
        (b"hello, this is text", None),
        (b"", None),
    ],
)
def test_the_type_comes_from_the_magic_bytes(data, expected):
    assert detect_image_type(data) == expected


def test_human_size():
    assert human_size(512) == "512 bytes"
    assert human_size(1536) == "1.5 KiB"
    assert human_size(10 * 1024 * 1024) == "10.0 MiB"


def test_the_urls_come_from_the_environment():
    assert Endpoints.from_env({}).url("auth", "/auth/login") == "http://127.0.0.1:3000/auth/login"
    endpoints = Endpoints.from_env(
        {"IMGCLF_API_URL": "https://x.example/Prod/", "IMGCLF_FEEDBACK_URL": "https://fb.example"}
    )
    assert endpoints.url("predictions", "/health") == "https://x.example/Prod/health"
    assert endpoints.url("feedback", "/predictions/a/feedback") == (
        "https://fb.example/predictions/a/feedback"
    )


def test_the_prediction_view_is_read_with_its_result_and_model():
    prediction = Prediction.from_json(
        {
            "id": "abc",
            "status": "done",
            "filename": "cat.png",
            "created_at": "2026-01-01T00:00:00.000000Z",
            "completed_at": "2026-01-01T00:00:01.000000Z",
            "result": {
                "label": "tabby",
                "score": 0.5,
                "top5": [{"class_id": "n02123045", "label": "tabby", "score": 0.5}],
            },
            "error": None,
            "model": {
                "name": "resnet50",
                "weights": "random",
                "engine": "openvino",
                "precision": "bf16",
            },
            "image_url": "http://127.0.0.1:4566/bucket/uploads/u/abc?X-Amz-Signature=s",
        }
    )
    assert prediction.model_text == "resnet50 (random weights, openvino bf16)"
    assert prediction.image_url.endswith("/uploads/u/abc?X-Amz-Signature=s")
    assert prediction.finished and prediction.random_weights
    assert (prediction.label, prediction.score, prediction.top5[0].class_id) == (
        "tabby",
        0.5,
        "n02123045",
    )
    pending = Prediction.from_json({"id": "x", "status": "pending", "result": None, "model": None})
    assert not pending.finished and pending.label is None and pending.top5 == ()
    older = Prediction.from_json({"id": "y", "model": {"name": "resnet50", "weights": "imagenet"}})
    assert older.model_text == "resnet50 (imagenet weights)"


# --------------------------------------------------------------------------- a stand-in API


class _FakeApi(BaseHTTPRequestHandler):
    """Just enough of the API for the client's re-login and error paths."""

    tokens_issued = 0
    current_token = ""

    def log_message(self, *args):  # keep pytest's output clean
        pass

    def _reply(self, status: int, body: object, content_type: str = "application/json") -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        if self.path == "/auth/login":
            payload = json.loads(body)
            if payload["password"] != "right":
                return self._reply(401, {"message": "invalid email or password"})
            type(self).tokens_issued += 1
            type(self).current_token = f"token-{self.tokens_issued}"
            return self._reply(200, {"access_token": self.current_token, "expires_in": 3600})
        if self.path == "/bucket":
            return self._reply(
                403,
                b"<Error><Code>AccessDenied</Code><Message>Policy expired</Message></Error>",
                "application/xml",
            )
        return self._reply(403, {"message": "Missing Authentication Token"})

    def do_GET(self):
        if self.path == "/health":
            upload = {"max_bytes": 2048, "content_types": ["image/png", "image/webp"]}
            return self._reply(200, {"status": "ok", "cache": "up", "upload": upload})
        if self.headers.get("Authorization") != f"Bearer {self.current_token}":
            return self._reply(401, {"message": "token expired", "error": "unauthorized"})
        if self.path.startswith("/predictions/p1"):
            return self._reply(200, {"id": "p1", "status": "done"})
        if self.path.startswith("/feedback?"):
            # Two pages: the client follows next_cursor until there is none.
            second = "cursor=c2" in self.path
            item = {
                "prediction_id": "p2" if second else "p1",
                "object_key": "uploads/u/p2" if second else "uploads/u/p1",
                "filename": "b.png" if second else "a.png",
                "predicted_label": "tabby",
                "correct": second,
                "label": None if second else "tiger_cat",
                "comment": None,
                "created_at": "t",
            }
            return self._reply(200, {"items": [item], "next_cursor": None if second else "c2"})
        return self._reply(502, b"Internal server error", "text/plain")


@pytest.fixture
def fake_api() -> Iterator[str]:
    _FakeApi.tokens_issued = 0
    _FakeApi.current_token = ""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeApi)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_with_credentials_an_expired_token_is_renewed_once(fake_api):
    client = ApiClient(endpoints=Endpoints(api_url=fake_api), credentials=("a@b.c", "right"))
    client.login("a@b.c", "right")
    _FakeApi.current_token = "rotated"  # the first token is no longer accepted
    _FakeApi.tokens_issued = 5
    assert client.get_prediction("p1").status == "done"
    assert client.token == "token-6"


def test_the_upload_limits_come_from_the_apis_health(fake_api):
    limits = ApiClient(endpoints=Endpoints(api_url=fake_api)).upload_limits()  # no login
    assert limits == UploadLimits(max_bytes=2048, content_types=("image/png", "image/webp"))
    assert limits.type_names() == "PNG or WebP"
    assert UploadLimits(1, tuple(IMAGE_TYPES)).type_names() == "JPEG, PNG or WebP"


def test_list_feedback_follows_the_cursor_through_every_page(fake_api):
    _FakeApi.current_token = "t"
    client = ApiClient(endpoints=Endpoints(api_url=fake_api), token="t")
    entries = list(client.list_feedback(limit=1))
    assert [(e.prediction_id, e.filename, e.corrected_label) for e in entries] == [
        ("p1", "a.png", "tiger_cat"),
        ("p2", "b.png", "tabby"),
    ]


def test_without_credentials_an_expired_token_is_unauthorized(fake_api):
    client = ApiClient(endpoints=Endpoints(api_url=fake_api), token="stale")
    with pytest.raises(Unauthorized, match="token expired"):
        client.get_prediction("p1")


def test_a_wrong_password_is_unauthorized_with_the_api_message(fake_api):
    client = ApiClient(endpoints=Endpoints(api_url=fake_api))
    with pytest.raises(Unauthorized, match="invalid email or password"):
        client.login("a@b.c", "wrong")
    assert client.token is None


def test_calls_need_a_login_first(fake_api):
    with pytest.raises(Unauthorized, match="not logged in"):
        ApiClient(endpoints=Endpoints(api_url=fake_api)).list_predictions()


def test_a_refused_upload_form_carries_s3s_code_and_message(fake_api):
    client = ApiClient(endpoints=Endpoints(api_url=fake_api))
    form = UploadForm(prediction_id="p", url=f"{fake_api}/bucket", fields={"key": "k"})
    with pytest.raises(UploadRejected, match="Policy expired") as caught:
        client.send_file(form, b"\x89PNG\r\n\x1a\n", "a.png", "image/png")
    assert caught.value.code == "AccessDenied"


def test_a_missing_route_is_forbidden(fake_api):
    client = ApiClient(endpoints=Endpoints(api_url=fake_api), token="t")
    _FakeApi.current_token = "t"
    with pytest.raises(Forbidden, match="Missing Authentication Token"):
        client.send_feedback("p1", correct=True)


def test_an_unreachable_api_is_reported_with_its_url():
    client = ApiClient(endpoints=Endpoints(api_url="http://127.0.0.1:9"))
    with pytest.raises(Unreachable, match=r"127\.0\.0\.1:9"):
        client.login("a@b.c", "x")


def test_non_images_are_refused_before_any_request():
    client = ApiClient(endpoints=Endpoints(api_url="http://127.0.0.1:9"), token="t")
    with pytest.raises(NotAnImage, match=r"notes\.txt"):
        client.upload_image(b"just text", "notes.txt")


# --------------------------------------------------------------------------- thumbnails


def test_thumbnails_are_small_jpegs():
    from io import BytesIO

    from PIL import Image

    big = BytesIO()
    Image.new("RGB", (1200, 800), (200, 10, 10)).save(big, format="PNG")
    thumb = make_thumbnail(big.getvalue())
    assert thumb is not None and thumb[:3] == b"\xff\xd8\xff"
    assert Image.open(BytesIO(thumb)).size == (160, 107)
    assert make_thumbnail(b"not an image") is None


def test_the_token_and_the_password_stay_out_of_repr():
    client = ApiClient(token="secret-token", credentials=("a@b.c", "secret-password"))
    assert "secret" not in repr(client)
