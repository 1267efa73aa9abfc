"""S3 itself enforces the pre-signed POST's policy, on LocalStack as on AWS.

POST /uploads grants one key, one content type and one exact size. A client that changes any
of them is refused by S3 and nothing is stored, so the inference never sees the object.
moto's S3 enforces none of this, so these tests run on LocalStack whatever the run's
emulator: the run's own cloud on LocalStack, a cloud of their own on moto's pass.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from tests.integration.conftest import LocalCloudHandle, emulator, start_local_cloud
from tests.integration.test_local_cloud import png

pytestmark = pytest.mark.integration

MAX_BYTES = 10 * 1024 * 1024  # the template's UploadMaxBytes


@pytest.fixture(scope="module")
def localstack_cloud(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalCloudHandle]:
    if emulator() == "localstack":
        yield request.getfixturevalue("local_cloud")
        return
    handle = start_local_cloud(
        tmp_path_factory.mktemp("localstack-cloud"), emulator_name="localstack"
    )
    try:
        yield handle
    finally:
        handle.stop()


@pytest.fixture(scope="module")
def headers(localstack_cloud: LocalCloudHandle) -> dict:
    return localstack_cloud.login()


def post(upload: dict, data: bytes, content_type: str = "image/png", **fields: str):
    form = {**upload["fields"], **fields}
    return requests.post(
        upload["url"], data=form, files={"file": ("policy.png", data, content_type)}, timeout=60
    )


def test_the_form_as_granted_is_accepted(localstack_cloud, headers):
    # The control for the refusals below: same cloud, same form, nothing changed.
    data = png(9100)
    upload = localstack_cloud.grant(headers, len(data), "policy.png")["upload"]
    reply = post(upload, data)
    assert reply.status_code in (200, 201, 204), reply.text
    assert localstack_cloud.stored(upload["fields"]["key"])


def test_another_key_is_refused(localstack_cloud, headers):
    data = png(9101)
    upload = localstack_cloud.grant(headers, len(data), "policy.png")["upload"]
    granted = upload["fields"]["key"]
    other = granted.rsplit("/", 1)[0] + "/" + "f" * 32
    reply = post(upload, data, key=other)
    assert reply.status_code == 403, reply.text
    assert "Policy" in reply.text
    assert not localstack_cloud.stored(other)
    assert not localstack_cloud.stored(granted)


def test_another_content_type_is_refused(localstack_cloud, headers):
    data = png(9102)
    upload = localstack_cloud.grant(headers, len(data), "policy.png")["upload"]
    reply = post(upload, data, "text/html", **{"Content-Type": "text/html"})
    assert reply.status_code == 403, reply.text
    assert "Policy" in reply.text
    assert not localstack_cloud.stored(upload["fields"]["key"])


def test_a_file_larger_than_granted_is_refused(localstack_cloud, headers):
    upload = localstack_cloud.grant(headers, len(png(9103)), "policy.png")["upload"]
    oversized = png(9103) + bytes(MAX_BYTES)  # past the grant and past UploadMaxBytes
    reply = post(upload, oversized)
    assert reply.status_code == 400, reply.text
    assert "EntityTooLarge" in reply.text
    assert not localstack_cloud.stored(upload["fields"]["key"])


@pytest.mark.parametrize("extra", [1, -1])
def test_a_file_of_any_other_size_than_declared_is_refused(localstack_cloud, headers, extra):
    # The policy's content-length-range is exactly the declared size: one byte more or less
    # (well inside UploadMaxBytes) is refused all the same.
    data = png(9104)
    upload = localstack_cloud.grant(headers, len(data), "policy.png")["upload"]
    reply = post(upload, data + b"\0" if extra > 0 else data[:-1])
    assert reply.status_code == 400, reply.text
    assert ("EntityTooLarge" if extra > 0 else "EntityTooSmall") in reply.text
    assert not localstack_cloud.stored(upload["fields"]["key"])
