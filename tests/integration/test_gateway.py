"""The API Gateway emulation and the sandboxes, over real HTTP, with tiny test functions.

The events are compared field by field with the shapes `sam local generate-event` produces
(aws-sam-cli runs here), and every failure mode answers as API Gateway does.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from localcloud.gateway import FunctionUrl, HttpServer, RestGateway, proxy_response
from localcloud.sandbox import FunctionPool, lambda_environment
from localcloud.template import Template

pytestmark = pytest.mark.integration

APP = Path(__file__).parent / "sandbox_app"
SAM = Path(sys.executable).parent / "sam"


def sam_event(*args: str) -> dict:
    """An event as `sam local generate-event ...` prints it."""
    out = subprocess.run(
        [str(SAM), "local", "generate-event", *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return json.loads(out.stdout)


class Gateway:
    """The test app's REST gateway and the echo function's URL, on free ports."""

    def __init__(self, tmp: Path) -> None:
        self.template = Template(APP / "template.yaml", parameters={"OutDir": str(tmp)})
        functions = self.template.functions()
        self.pools = {
            name: FunctionPool(
                spec,
                lambda_environment(
                    spec,
                    region="us-east-1",
                    account_id="123456789012",
                    endpoint_url=None,
                    overrides={},
                ),
                concurrency=2,
                log_path=tmp / f"{name}.log",
            )
            for name, spec in functions.items()
        }
        routes = [r for spec in functions.values() for r in spec.routes]
        rest = RestGateway(routes, self.template.apis(), self.pools, account_id="123456789012")
        self.rest = HttpServer(rest, "127.0.0.1", 0).start()
        url = FunctionUrl(self.pools["EchoFunction"], account_id="123456789012")
        self.function_url = HttpServer(url, "127.0.0.1", 0).start()
        self.url = self.rest.url

    def close(self) -> None:
        self.rest.stop()
        self.function_url.stop()
        for pool in self.pools.values():
            pool.close()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    gw = Gateway(tmp_path_factory.mktemp("gateway"))
    yield gw
    gw.close()


def echo(reply: requests.Response) -> dict:
    assert reply.status_code == 200, reply.text
    return reply.json()


# Maps whose keys are the request's own data (header names, query names): only their value
# types are compared.
DATA_MAPS = {
    "headers",
    "multiValueHeaders",
    "queryStringParameters",
    "pathParameters",
    "multiValueQueryStringParameters",
    "stageVariables",
}


def assert_same_shape(ours: object, reference: object, where: str = "event") -> None:
    """Same keys at every level (values may differ), same JSON types where both are set."""
    if where.rsplit(".", 1)[-1] in DATA_MAPS and isinstance(ours, dict):
        kinds = {type(v) for v in reference.values()}
        assert all(type(v) in kinds for v in ours.values()), where
        return
    if isinstance(reference, dict) and isinstance(ours, dict):
        assert set(reference) <= set(ours), f"{where}: missing {set(reference) - set(ours)}"
        for key, value in reference.items():
            if value is not None and ours[key] is not None:
                assert_same_shape(ours[key], value, f"{where}.{key}")
    elif reference is not None and ours is not None:
        assert type(ours) is type(reference), f"{where}: {type(ours)} vs {type(reference)}"


def test_rest_event_has_every_field_of_the_aws_proxy_event(gateway):
    reference = sam_event("apigateway", "aws-proxy")
    reply = echo(
        requests.post(
            f"{gateway.url}/any/a/b%20c?foo=bar&foo=baz&x=1",
            data=b"\x89PNG\r\n\x1a\n\x00\xff",
            headers={"Content-Type": "image/png", "X-Custom": "v"},
        )
    )
    event = reply["event"]
    assert_same_shape(event, reference)
    assert event["resource"] == "/any/{proxy+}"
    assert event["path"] == "/any/a/b c"
    assert event["httpMethod"] == "POST"
    assert event["pathParameters"] == {"proxy": "a/b c"}
    assert event["queryStringParameters"] == {"foo": "baz", "x": "1"}
    assert event["multiValueQueryStringParameters"] == {"foo": ["bar", "baz"], "x": ["1"]}
    assert event["headers"]["X-Custom"] == "v"
    assert event["multiValueHeaders"]["X-Custom"] == ["v"]
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == b"\x89PNG\r\n\x1a\n\x00\xff"
    context = event["requestContext"]
    assert context["resourcePath"] == "/any/{proxy+}"
    assert context["stage"] == "Test"
    assert context["path"] == "/Test/any/a/b c"
    assert context["httpMethod"] == "POST"
    assert context["identity"]["sourceIp"] == "127.0.0.1"
    assert context["accountId"] == "123456789012"
    assert len(context["requestId"]) == 36
    assert reply["function_name"] == "imgclf-EchoFunction"
    # Environment: Globals with intrinsics resolved, plus the Lambda runtime's own.
    assert reply["env"]["STACK_QUEUE"] == "imgclf-WorkQueue"
    assert reply["env"]["AWS_REGION"] == "us-east-1"
    assert 0 < reply["remaining_ms"] <= 5000


def test_text_body_no_query_and_url_decoded_path_parameters(gateway):
    event = echo(requests.post(f"{gateway.url}/items/a%2Fb%20c", json={"k": "v"}))["event"]
    assert event["resource"] == "/items/{id}"
    assert event["pathParameters"] == {"id": "a/b c"}
    assert event["isBase64Encoded"] is False
    assert json.loads(event["body"]) == {"k": "v"}
    assert event["queryStringParameters"] is None
    assert event["multiValueQueryStringParameters"] is None
    event = echo(requests.get(f"{gateway.url}/items/1"))["event"]
    assert event["body"] is None


def test_proxy_reply_becomes_the_http_response(gateway):
    reply = requests.get(f"{gateway.url}/items/1")
    assert reply.headers["X-Single"] == "one"
    assert reply.headers["X-Multi"] == "a, b"
    assert reply.headers["Content-Type"] == "application/json"
    binary = bytes(range(256))
    reply = requests.post(
        f"{gateway.url}/any/x?binary=1",
        data=binary,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert reply.status_code == 200
    assert reply.content == binary


def test_unknown_route_or_method_is_403_missing_authentication_token(gateway):
    for method, path in (
        ("GET", "/nope"),
        ("DELETE", "/items/1"),
        ("GET", "/items"),
        ("GET", "/items/1/more"),
    ):
        reply = requests.request(method, gateway.url + path)
        assert reply.status_code == 403, (method, path)
        assert reply.json() == {"message": "Missing Authentication Token"}


def test_cors_preflight_as_the_template_says(gateway):
    reply = requests.options(
        f"{gateway.url}/items/1",
        headers={"Origin": "http://x", "Access-Control-Request-Method": "POST"},
    )
    assert reply.status_code == 200
    assert reply.headers["Access-Control-Allow-Origin"] == "*"
    assert reply.headers["Access-Control-Allow-Methods"] == "GET,POST,OPTIONS"
    assert reply.headers["Access-Control-Allow-Headers"] == "Authorization,Content-Type"
    assert reply.headers["Access-Control-Max-Age"] == "600"
    assert requests.options(f"{gateway.url}/nope").status_code == 403


def test_handler_exception_and_malformed_reply_are_502(gateway):
    for path in ("/crash", "/malformed"):
        reply = requests.get(gateway.url + path)
        assert reply.status_code == 502, path
        assert reply.json() == {"message": "Internal server error"}


def test_over_the_timeout_is_504_and_the_sandbox_is_replaced(gateway):
    reply = requests.get(f"{gateway.url}/slow", timeout=20)
    assert reply.status_code == 504
    assert reply.json() == {"message": "Endpoint request timed out"}
    # The killed sandbox is gone; the function still answers.
    assert requests.get(f"{gateway.url}/crash").status_code == 502
    assert all(w["pid"] for w in gateway.pools["FaultyFunction"].workers())


def test_a_sandbox_that_dies_is_502_then_replaced(gateway):
    for _ in range(3):  # more deaths than the concurrency: each time a new sandbox
        assert requests.get(f"{gateway.url}/exit").status_code == 502
    assert len(gateway.pools["FaultyFunction"].workers()) <= 2
    assert requests.get(f"{gateway.url}/crash").status_code == 502  # it still runs events


def test_body_over_10_mb_is_413(gateway):
    reply = requests.post(
        f"{gateway.url}/items/1",
        data=b"x" * (10 * 1024 * 1024 + 1),
        headers={"Content-Type": "application/octet-stream"},
    )
    assert reply.status_code == 413


def test_sandboxes_run_one_event_at_a_time_up_to_the_concurrency(gateway):
    with ThreadPoolExecutor(8) as pool:
        replies = list(
            pool.map(lambda i: echo(requests.get(f"{gateway.url}/items/{i}?sleep=0.3")), range(8))
        )
    assert all(r["concurrent"] == 1 for r in replies)  # never two events in one process
    assert all(r["cold_starts"] == 1 for r in replies)
    pids = {r["pid"] for r in replies}
    assert 1 <= len(pids) <= 2  # concurrency 2
    for pid in pids:  # each process counts its own events: no state shared across them
        served = sorted(r["served"] for r in replies if r["pid"] == pid)
        assert served == sorted(set(served))
    assert [r["event"]["pathParameters"]["id"] for r in replies] == [str(i) for i in range(8)]


def test_function_url_event_has_every_field_of_the_v2_event(gateway):
    reference = sam_event("apigateway", "http-api-proxy")
    reply = echo(
        requests.post(
            f"{gateway.function_url.url}/path/x?a=1&a=2&b=3",
            json={"k": 1},
            headers={"Cookie": "c1=1; c2=2", "X-Hdr": "h"},
        )
    )
    event = reply["event"]
    for key in ("authentication", "authorizer"):  # not sent for AuthType NONE
        reference["requestContext"].pop(key)
    for key in ("pathParameters", "stageVariables"):  # Function URLs never send these
        reference.pop(key)
    assert_same_shape(event, reference)
    assert event["version"] == "2.0"
    assert event["rawPath"] == "/path/x"
    assert event["rawQueryString"] == "a=1&a=2&b=3"
    assert event["queryStringParameters"] == {"a": "1,2", "b": "3"}
    assert event["cookies"] == ["c1=1", "c2=2"]
    assert event["headers"]["x-hdr"] == "h"
    assert event["requestContext"]["http"]["method"] == "POST"
    assert event["requestContext"]["http"]["sourceIp"] == "127.0.0.1"
    assert json.loads(event["body"]) == {"k": 1}


@pytest.mark.parametrize(
    "reply",
    [
        "a string",
        ["a", "list"],
        {"body": "no status"},
        {"statusCode": True},
        {"statusCode": "abc"},
        {"statusCode": 700},
        {"statusCode": 200, "body": {"not": "a string"}},
        {"statusCode": 200, "headers": {"X": ["a list"]}},
        {"statusCode": 200, "multiValueHeaders": {"X": "not a list"}},
        {"statusCode": 200, "body": "!!!", "isBase64Encoded": True},
        {"statusCode": 200, "unexpected": "key"},
    ],
)
def test_malformed_proxy_replies_are_rejected(reply):
    assert proxy_response(reply) is None


def test_a_well_formed_proxy_reply():
    response = proxy_response(
        {"statusCode": "201", "headers": {"X-A": 1}, "body": "aGk=", "isBase64Encoded": True}
    )
    assert response.status_code == 201
    assert response.headers["X-A"] == "1"
    assert response.get_data() == b"hi"
    assert response.headers["Content-Type"] == "application/json"  # API Gateway's default
