"""The API against its own contract, on the local cloud over real HTTP: every route that
takes JSON refuses other bodies with a clear 4xx through the REST gateway and through its
Function URL alike; a request without a valid token is a 401 whatever its body; and a
bounded schemathesis run against the served /openapi.json finds no 5xx, no status code the
document does not declare, and no schema-valid request refused.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from PIL import Image

pytestmark = pytest.mark.integration

HERE = Path(__file__).parent
# (function, path, a body the route takes)
JSON_ROUTES = [
    ("AuthFunction", "auth/login", {"email": "nobody@example.com", "password": "pw"}),
    ("UploadsFunction", "uploads", {"filename": "a.png", "content_type": "image/png", "size": 10}),
    ("FeedbackFunction", "predictions/0123456789abcdef/feedback", {"correct": True}),
]
PROTECTED = JSON_ROUTES[1:]
NOT_UTF8 = b"\xff\xfe\x00garbage"  # the body the issue sent
NOT_JSON = {"message": "request body is not valid JSON", "error": "bad_request"}
NOT_TAKEN = {"message": "Content-Type must be application/json", "error": "unsupported_media_type"}


@pytest.fixture(scope="module")
def demo(local_cloud) -> dict:
    return local_cloud.login()


def base_urls(cloud, function: str) -> dict[str, str]:
    """The route's base URL on the REST API and on the function's own URL."""
    return {"rest": f"{cloud.api_url}/", "function-url": cloud.function_urls[function]}


@pytest.mark.parametrize(("function", "path", "body"), JSON_ROUTES)
def test_a_body_that_is_not_utf8_is_a_400(local_cloud, demo, function, path, body):
    for where, base in base_urls(local_cloud, function).items():
        for raw in (NOT_UTF8, b'{"email": "\xe9@example.com"}', b"{not json", b"[" * 50_000):
            reply = requests.post(
                base + path,
                data=raw,
                headers={**demo, "Content-Type": "application/json"},
                timeout=30,
            )
            assert (reply.status_code, reply.json()) == (400, NOT_JSON), (where, raw[:20])


@pytest.mark.parametrize(("function", "path", "body"), JSON_ROUTES)
def test_another_content_type_is_a_415(local_cloud, demo, function, path, body):
    for where, base in base_urls(local_cloud, function).items():
        # Valid JSON as text/plain (the case), as a form, and a form proper.
        for kind, data in (
            ("text/plain", json.dumps(body)),
            ("application/x-www-form-urlencoded", json.dumps(body)),
        ):
            reply = requests.post(
                base + path, data=data, headers={**demo, "Content-Type": kind}, timeout=30
            )
            assert (reply.status_code, reply.json()) == (415, NOT_TAKEN), (where, kind)
        reply = requests.post(base + path, data=body, headers=demo, timeout=30)  # a real form
        assert (reply.status_code, reply.json()) == (415, NOT_TAKEN), where


@pytest.mark.parametrize(("function", "path", "body"), PROTECTED)
def test_without_a_valid_token_it_is_a_401_whatever_the_body(local_cloud, function, path, body):
    for where, base in base_urls(local_cloud, function).items():
        for headers, data in (
            ({"Content-Type": "application/json"}, NOT_UTF8),
            ({"Content-Type": "text/plain"}, b"{}"),
            ({"Content-Type": "application/json"}, b'{"size": "not a number"}'),
            ({"Content-Type": "application/json", "Authorization": "Bearer forged"}, b"{}"),
        ):
            reply = requests.post(base + path, data=data, headers=headers, timeout=30)
            assert reply.status_code == 401, (where, headers, data)
            assert reply.json()["error"] == "unauthorized"


def test_the_schema_declares_what_the_server_takes(local_cloud):
    document = requests.get(f"{local_cloud.api_url}/openapi.json", timeout=60).json()
    schemas = document["components"]["schemas"]
    upload = schemas["UploadRequest"]["properties"]
    assert upload["content_type"]["enum"] == ["image/jpeg", "image/png", "image/webp"]
    assert upload["size"]["maximum"] > 0
    label = schemas["FeedbackRequest"]["properties"]["label"]
    assert any(len(option.get("enum", ())) > 990 for option in label["anyOf"])
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if "requestBody" in operation:
                assert {"400", "415"} <= set(operation["responses"]), (method, path)


# schemathesis, bounded by a case count and a seed, and this long at most.
SCHEMATHESIS_EXAMPLES = 10  # fuzzed cases per operation
SCHEMATHESIS_TIMEOUT = 420


def done_prediction(cloud, headers: dict) -> str:
    """The id of a classified image of the caller's (uploaded through the API)."""
    image = io.BytesIO()
    Image.new("RGB", (32, 32), (200, 40, 40)).save(image, format="PNG")
    data = image.getvalue()
    created = cloud.grant(headers, len(data), "red.png")
    post = created["upload"]
    stored = requests.post(
        post["url"], data=post["fields"], files={"file": ("red.png", data)}, timeout=30
    )
    assert stored.ok, stored.text
    prediction_id = created["prediction_id"]
    deadline = time.monotonic() + 240  # the first result may wait for ResNet50 to build
    while time.monotonic() < deadline:
        view = requests.get(
            f"{cloud.api_url}/predictions/{prediction_id}?wait=20", headers=headers, timeout=40
        ).json()
        if view["status"] != "pending":
            assert view["status"] == "done", view
            return prediction_id
    raise TimeoutError(prediction_id)


def test_schemathesis_finds_nothing(local_cloud, tmp_path):
    # Its own user, so the predictions it creates are nobody else's history.
    local_cloud.add_user("schemathesis@example.com", "schemathesis-password")
    token = local_cloud.login("schemathesis@example.com", "schemathesis-password")
    prediction_id = done_prediction(local_cloud, token)
    assert local_cloud.api_url.startswith("http://127.0.0.1:")
    argv = [
        str(Path(sys.executable).parent / "st"),
        "--config-file",
        str(HERE / "schemathesis.toml"),
        "run",
        f"{local_cloud.api_url}/openapi.json",
        "--header",
        f"Authorization:{token['Authorization']}",
        "--max-examples",
        str(SCHEMATHESIS_EXAMPLES),
        "--seed",
        "14",
    ]
    run = subprocess.run(
        argv,
        cwd=tmp_path,  # its reports and caches stay out of the checkout
        env={**os.environ, "NO_COLOR": "1", "SCHEMATHESIS_PREDICTION_ID": prediction_id},
        capture_output=True,
        text=True,
        timeout=SCHEMATHESIS_TIMEOUT,
        check=False,
    )
    output = run.stdout + run.stderr
    print(output[-3000:])  # the summary, for -rP or -s
    assert run.returncode == 0, output[-20000:]
    # It did run: every operation, a few hundred cases (not a run that tested nothing).
    assert "Tested: 7" in output, output[-5000:]
    generated = int(re.search(r"(\d+) generated", output).group(1))
    assert generated >= 200, output[-5000:]


def test_an_undeclared_method_is_api_gateways_403(local_cloud):
    # schemathesis's unsupported_method check expects 405; API Gateway answers 403 Missing
    # Authentication Token for a method no route declares, and so do we (schemathesis.toml
    # turns that check off for this reason).
    for method, path in (("DELETE", "/uploads"), ("PUT", "/predictions"), ("PATCH", "/health")):
        reply = requests.request(method, local_cloud.api_url + path, timeout=10)
        assert (reply.status_code, reply.json()) == (
            403,
            {"message": "Missing Authentication Token"},
        )
