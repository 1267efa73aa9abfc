"""imgclf.storage: upload keys, the pre-signed POST policy, the size-capped read."""

from __future__ import annotations

import base64
import json

import boto3
import pytest
from imgclf import storage
from imgclf.errors import BadRequest, NotFound, PayloadTooLarge
from imgclf.settings import get_settings


def _policy(fields: dict[str, str]) -> dict:
    return json.loads(base64.b64decode(fields["policy"]))


def test_upload_key_round_trips() -> None:
    key = storage.upload_key("u1", "p1")
    assert key == "uploads/u1/p1"
    assert storage.parse_upload_key(key) == ("u1", "p1")


@pytest.mark.parametrize("key", ["other/u1/p1", "uploads/u1", "uploads//p1", "uploads/u1/p1/x"])
def test_parse_upload_key_rejects_other_keys(key: str) -> None:
    with pytest.raises(BadRequest):
        storage.parse_upload_key(key)


def test_parse_upload_key_decodes_event_encoding() -> None:
    assert storage.parse_upload_key("uploads/u%201/p+1") == ("u 1", "p 1")


def test_presign_upload_policy_pins_key_type_and_size(aws: None) -> None:
    upload = storage.presign_upload("uploads/u1/p1", "image/png", 1234)
    fields = upload["fields"]
    assert fields["key"] == "uploads/u1/p1"
    assert fields["Content-Type"] == "image/png"
    assert fields["x-amz-algorithm"] == "AWS4-HMAC-SHA256"
    conditions = _policy(fields)["conditions"]
    assert {"key": "uploads/u1/p1"} in conditions
    assert {"Content-Type": "image/png"} in conditions
    assert ["content-length-range", 1234, 1234] in conditions  # exactly the declared size
    assert {"bucket": get_settings().upload_bucket} in conditions


def test_presign_upload_is_path_style_with_an_endpoint(
    aws: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:4999")
    get_settings.cache_clear()
    storage.client.cache_clear()
    upload = storage.presign_upload("uploads/u1/p1", "image/jpeg", 10)
    assert upload["url"] == f"http://127.0.0.1:4999/{get_settings().upload_bucket}"


def test_presign_download_is_a_short_lived_path_style_get_of_the_key(
    aws: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:4999")
    monkeypatch.setenv("IMAGE_URL_TTL_SECONDS", "120")
    get_settings.cache_clear()
    storage.client.cache_clear()
    url = storage.presign_download("uploads/u1/p1")
    assert url.startswith(f"http://127.0.0.1:4999/{get_settings().upload_bucket}/uploads/u1/p1?")
    assert "X-Amz-Expires=120" in url and "X-Amz-Signature=" in url


def test_read_object_returns_bytes_and_caps_size(aws: None) -> None:
    s3 = boto3.client("s3")
    bucket = get_settings().upload_bucket
    s3.put_object(Bucket=bucket, Key="uploads/u1/p1", Body=b"x" * 10)
    assert storage.read_object("uploads/u1/p1", max_bytes=10) == b"x" * 10
    with pytest.raises(PayloadTooLarge):
        storage.read_object("uploads/u1/p1", max_bytes=9)
    with pytest.raises(NotFound):
        storage.read_object("uploads/u1/missing", max_bytes=10)


def test_object_exists_says_whether_a_key_is_in_the_bucket(aws: None) -> None:
    assert not storage.object_exists("uploads/u1/p1")
    storage.client().put_object(Bucket=get_settings().upload_bucket, Key="uploads/u1/p1", Body=b"x")
    assert storage.object_exists("uploads/u1/p1")
