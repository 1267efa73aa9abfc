"""Unit-test fixtures: AWS mocked by moto, a real Redis, the tables built from template.yaml.

The environment is set here, at import, because imgclf.tables binds table names when it
is first imported (as it does in Lambda, where the environment exists before the code).
"""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest
import redis
from moto import mock_aws

TEST_ENV = {
    "USERS_TABLE": "imgclf-test-users",
    "PREDICTIONS_TABLE": "imgclf-test-predictions",
    "FEEDBACK_TABLE": "imgclf-test-feedback",
    # As template.yaml names it for stack "imgclf" in moto's account; events/ use it too.
    "UPLOAD_BUCKET": "imgclf-uploads-123456789012-us-east-1",
    "JWT_SECRET": "unit-test-secret-" + "0123456789abcdef" * 3,
    "JWT_ISSUER": "imgclf",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
    "POWERTOOLS_SERVICE_NAME": "imgclf-tests",
    "POWERTOOLS_METRICS_NAMESPACE": "imgclf",
    "MODEL_WEIGHTS": "random",
}
os.environ.update(TEST_ENV)
# moto intercepts calls only when no emulator endpoint is configured.
os.environ.pop("AWS_ENDPOINT_URL", None)

from imgclf import cache, storage, tokens, users  # noqa: E402
from imgclf.settings import get_settings  # noqa: E402

from tests.unit.factories import FakeLambdaContext, Reply  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
# The table properties create_table takes as they are (TTL and backups are other calls).
TABLE_KEYS = ("BillingMode", "AttributeDefinitions", "KeySchema", "GlobalSecondaryIndexes")


def _clear_cached_clients() -> None:
    get_settings.cache_clear()
    cache.client.cache_clear()
    storage.client.cache_clear()


@pytest.fixture
def redis_url(redis_server: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The session's Redis, emptied, as REDIS_URL."""
    monkeypatch.setenv("REDIS_URL", redis_server)
    _clear_cached_clients()
    redis.Redis.from_url(redis_server).flushdb()
    yield redis_server
    _clear_cached_clients()


@pytest.fixture
def redis_down(dead_redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """REDIS_URL points at a port nobody listens on."""
    monkeypatch.setenv("REDIS_URL", dead_redis_url)
    _clear_cached_clients()
    yield
    _clear_cached_clients()


@pytest.fixture
def aws(template: dict[str, Any], redis_url: str) -> Iterator[None]:
    """moto's mock AWS with the bucket and the tables declared in template.yaml.

    Each table's name is the value of the environment variable the template binds to it
    (``USERS_TABLE: !Ref UsersTable``), so the tables and the code's settings must agree.
    """
    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    names = {
        v["Ref"]: os.environ[k]
        for k, v in variables.items()
        if isinstance(v, dict) and "Ref" in v and k in os.environ
    }
    with mock_aws():
        dynamodb = boto3.client("dynamodb")
        for logical_id, resource in template["Resources"].items():
            if resource["Type"] == "AWS::DynamoDB::Table":
                props = resource["Properties"]
                dynamodb.create_table(
                    TableName=names[logical_id], **{k: props[k] for k in TABLE_KEYS if k in props}
                )
        boto3.client("s3").create_bucket(Bucket=names["UploadBucket"])
        yield


@pytest.fixture(scope="session")
def function_module(template: dict[str, Any]) -> Callable[[str], ModuleType]:
    """Loads a function's handler module as template.yaml declares it (CodeUri + Handler)."""
    loaded: dict[str, ModuleType] = {}

    def load(logical_id: str) -> ModuleType:
        if logical_id not in loaded:
            props = template["Resources"][logical_id]["Properties"]
            module_name, _ = props["Handler"].rsplit(".", 1)
            path = ROOT / props["CodeUri"] / f"{module_name}.py"
            spec = importlib.util.spec_from_file_location(f"functions_{logical_id}", path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            loaded[logical_id] = module
        return loaded[logical_id]

    return load


@pytest.fixture
def invoke(function_module: Callable[[str], ModuleType]) -> Callable[..., Reply]:
    """invoke(logical_id, event) -> Reply, through the function's lambda_handler."""

    def call(logical_id: str, event: dict[str, Any]) -> Reply:
        reply = function_module(logical_id).lambda_handler(event, FakeLambdaContext())
        # REST (v1) replies carry multiValueHeaders, Function URL (v2) replies headers.
        headers = dict(reply.get("headers") or {})
        headers.update({k: v[-1] for k, v in (reply.get("multiValueHeaders") or {}).items()})
        body = reply.get("body")
        return Reply(reply["statusCode"], headers, json.loads(body) if body else None)

    return call


@dataclass
class LoggedInUser:
    """A stored user and a valid token for them."""

    email: str
    password: str
    user_id: str
    token: str


@pytest.fixture
def make_user(aws: None) -> Callable[..., LoggedInUser]:
    """make_user(email=..., password=...) stores a user and mints their token."""

    def make(email: str = "alice@example.com", password: str = "correct horse") -> LoggedInUser:
        record = users.add_user(email, password)
        return LoggedInUser(
            email, password, record.user_id, tokens.issue_token(record.user_id, email)
        )

    return make


@pytest.fixture
def alice(make_user: Callable[..., LoggedInUser]) -> LoggedInUser:
    """A logged-in user."""
    return make_user()


@pytest.fixture
def bob(make_user: Callable[..., LoggedInUser]) -> LoggedInUser:
    """Another logged-in user."""
    return make_user("bob@example.com", "battery staple")
