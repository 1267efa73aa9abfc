"""GET /predictions, GET /predictions/{id}, GET /health (PredictionsFunction)."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any
from unittest.mock import ANY
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest
import redis
import requests
from imgclf import cache, predictions, uploads
from imgclf.settings import get_settings
from imgclf.tables import DONE, FAILED, PredictionRecord, utc_timestamp

from tests.unit.conftest import LoggedInUser
from tests.unit.factories import Reply, done_prediction, pending_prediction, rest_event

Invoke = Callable[[str, dict[str, Any]], Reply]


def new_id() -> str:
    return uuid.uuid4().hex


def assert_image_url(url: str, user: LoggedInUser, prediction_id: str) -> None:
    """A pre-signed SigV4 GET of the prediction's upload key, valid for a few minutes."""
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    assert parts.path.endswith(f"/uploads/{user.user_id}/{prediction_id}")
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
    assert query["X-Amz-Expires"] == [str(get_settings().image_url_ttl_seconds)]
    assert 60 <= get_settings().image_url_ttl_seconds <= 900


def get(invoke: Invoke, user: LoggedInUser, path: str, **query: str) -> Reply:
    event = rest_event("GET", path, token=user.token, query=query or None)
    return invoke("PredictionsFunction", event)


@pytest.fixture
def finish_soon(aws: None) -> Iterator[Callable[[PredictionRecord, float], None]]:
    """finish_soon(record, delay): the inference function's part, from another thread."""
    threads: list[threading.Thread] = []

    def finish(record: PredictionRecord, delay: float) -> None:
        def work() -> None:
            time.sleep(delay)
            record.update(
                actions=[
                    PredictionRecord.status.set(FAILED),
                    PredictionRecord.error.set("not an image"),
                    PredictionRecord.completed_at.set(utc_timestamp()),
                ]
            )
            predictions.publish_result(record)

        thread = threading.Thread(target=work)
        thread.start()
        threads.append(thread)

    yield finish
    for thread in threads:
        thread.join()


def test_get_a_done_prediction(alice: LoggedInUser, invoke: Invoke) -> None:
    record = done_prediction(alice.user_id, new_id())
    reply = get(invoke, alice, f"/predictions/{record.id}")
    assert reply.status == 200
    assert reply.body == {
        "id": record.id,
        "status": "done",
        "filename": "cat.jpg",
        "created_at": record.created_at,
        "completed_at": record.completed_at,
        "result": record.result,
        "error": None,
        "model": {
            "name": "resnet50",
            "weights": "random",
            "engine": "openvino",
            "precision": "f32",
        },
        "image_url": ANY,
    }
    assert_image_url(reply.body["image_url"], alice, record.id)


def test_a_pending_prediction_has_no_result_or_model(alice: LoggedInUser, invoke: Invoke) -> None:
    record = pending_prediction(alice.user_id, new_id())
    body = get(invoke, alice, f"/predictions/{record.id}").body
    assert body["status"] == "pending"
    assert body["result"] is body["model"] is body["completed_at"] is None


def test_a_finished_prediction_is_then_served_from_redis(
    alice: LoggedInUser, invoke: Invoke, redis_url: str
) -> None:
    record = done_prediction(alice.user_id, new_id())
    first = get(invoke, alice, f"/predictions/{record.id}").body
    cached = json.loads(redis.Redis.from_url(redis_url).get(f"prediction:{record.id}"))
    # The image link is signed per reply: never cached, where it would outlive its signature.
    state = {k: v for k, v in first.items() if k != "image_url"}
    assert cached == {**state, "user_id": alice.user_id}
    record.delete()  # only Redis can answer now
    second = get(invoke, alice, f"/predictions/{record.id}").body
    assert second == {**first, "image_url": ANY}
    assert_image_url(second["image_url"], alice, record.id)


def test_reading_a_pending_prediction_does_not_cache_it(
    alice: LoggedInUser, invoke: Invoke, redis_url: str
) -> None:
    record = pending_prediction(alice.user_id, new_id())
    get(invoke, alice, f"/predictions/{record.id}")
    assert redis.Redis.from_url(redis_url).get(f"prediction:{record.id}") is None


def test_another_users_prediction_is_a_404_from_dynamodb_and_from_redis(
    alice: LoggedInUser, bob: LoggedInUser, invoke: Invoke
) -> None:
    record = done_prediction(alice.user_id, new_id())
    path = f"/predictions/{record.id}"
    assert get(invoke, bob, path).status == 404
    assert get(invoke, alice, path).status == 200  # now cached
    reply = get(invoke, bob, path)
    assert reply.status == 404
    assert reply.body == {"message": "prediction not found", "error": "not_found"}


def test_an_unknown_id_is_a_404(alice: LoggedInUser, invoke: Invoke) -> None:
    assert get(invoke, alice, f"/predictions/{new_id()}").status == 404


def test_an_oversize_id_is_a_422(alice: LoggedInUser, invoke: Invoke) -> None:
    assert get(invoke, alice, "/predictions/" + "a" * 65).status == 422


def test_reads_fall_back_to_dynamodb_when_redis_is_down(
    alice: LoggedInUser, invoke: Invoke, redis_down: None
) -> None:
    record = done_prediction(alice.user_id, new_id())
    reply = get(invoke, alice, f"/predictions/{record.id}")
    assert (reply.status, reply.body["status"]) == (200, "done")


@pytest.mark.parametrize("wait", ["-1", "21", "soon"])
def test_wait_outside_0_to_20_is_a_422(wait: str, alice: LoggedInUser, invoke: Invoke) -> None:
    record = pending_prediction(alice.user_id, new_id())
    assert get(invoke, alice, f"/predictions/{record.id}", wait=wait).status == 422


def test_wait_returns_as_soon_as_the_result_is_published(
    alice: LoggedInUser, invoke: Invoke, finish_soon: Callable[[PredictionRecord, float], None]
) -> None:
    record = pending_prediction(alice.user_id, new_id())
    finish_soon(record, 0.3)
    started = time.monotonic()
    reply = get(invoke, alice, f"/predictions/{record.id}", wait="10")
    assert time.monotonic() - started < 3
    assert (reply.body["status"], reply.body["error"]) == ("failed", "not an image")


def test_wait_polls_dynamodb_when_redis_is_down(
    alice: LoggedInUser,
    invoke: Invoke,
    redis_down: None,
    finish_soon: Callable[[PredictionRecord, float], None],
) -> None:
    record = pending_prediction(alice.user_id, new_id())
    finish_soon(record, 0.3)
    started = time.monotonic()
    reply = get(invoke, alice, f"/predictions/{record.id}", wait="10")
    assert time.monotonic() - started < cache.POLL_SECONDS + 2
    assert reply.body["status"] == "failed"


def test_wait_gives_up_after_n_seconds_still_pending(alice: LoggedInUser, invoke: Invoke) -> None:
    record = pending_prediction(alice.user_id, new_id())
    started = time.monotonic()
    reply = get(invoke, alice, f"/predictions/{record.id}", wait="1")
    assert 1 <= time.monotonic() - started < 3
    assert reply.body["status"] == "pending"


def _upload(invoke: Invoke, user: LoggedInUser) -> PredictionRecord:
    event = rest_event(
        "POST",
        "/uploads",
        body={"filename": "cat.jpg", "content_type": "image/jpeg", "size": 1000},
        token=user.token,
    )
    reply = invoke("UploadsFunction", event)
    assert reply.status == 201
    return PredictionRecord.get(reply.body["prediction_id"])


def test_a_long_poll_after_an_upload_reads_redis_not_dynamodb(
    alice: LoggedInUser,
    bob: LoggedInUser,
    invoke: Invoke,
    redis_url: str,
    finish_soon: Callable[[PredictionRecord, float], None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    record = _upload(invoke, alice)
    cached = json.loads(redis.Redis.from_url(redis_url).get(f"prediction:{record.id}"))
    assert (cached["status"], cached["user_id"]) == ("pending", alice.user_id)
    table_reads: list[str] = []
    real_get = PredictionRecord.get
    monkeypatch.setattr(
        PredictionRecord,
        "get",
        lambda *args, **kwargs: table_reads.append(args[0]) or real_get(*args, **kwargs),
    )
    finish_soon(record, 0.3)
    reply = get(invoke, alice, f"/predictions/{record.id}", wait="10")
    assert reply.body["status"] == "failed"
    assert table_reads == []
    # The cached pending state keeps its owner: anyone else gets a 404.
    assert get(invoke, bob, f"/predictions/{_upload(invoke, alice).id}", wait="1").status == 404


def test_a_completion_redis_missed_is_read_from_dynamodb_at_the_recheck(
    alice: LoggedInUser, invoke: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    record = _upload(invoke, alice)  # Redis holds it as pending
    monkeypatch.setattr(predictions, "RECHECK_SECONDS", 0.5)
    # Finished in DynamoDB with no cache write and no message, as when Redis was down.
    record.update(actions=[PredictionRecord.status.set(DONE)])
    started = time.monotonic()
    reply = get(invoke, alice, f"/predictions/{record.id}", wait="10")
    assert reply.body["status"] == "done"
    assert time.monotonic() - started < 2


def test_wait_on_a_finished_prediction_returns_at_once(alice: LoggedInUser, invoke: Invoke) -> None:
    record = done_prediction(alice.user_id, new_id())
    started = time.monotonic()
    assert get(invoke, alice, f"/predictions/{record.id}", wait="20").body["status"] == DONE
    assert time.monotonic() - started < 1


def test_publish_result_caches_with_the_owner_and_a_ttl(
    alice: LoggedInUser, redis_url: str
) -> None:
    record = done_prediction(alice.user_id, new_id())
    predictions.publish_result(record)
    client = redis.Redis.from_url(redis_url)
    cached = json.loads(client.get(f"prediction:{record.id}"))
    assert cached["user_id"] == alice.user_id
    assert "image_url" not in cached  # signed per reply, never stored
    assert 0 < client.ttl(f"prediction:{record.id}") <= get_settings().result_ttl_seconds


def _store_history(user: LoggedInUser, count: int) -> list[str]:
    created = [f"2026-11-26T09:{minute:02}:00.000000Z" for minute in range(count)]
    ids = [done_prediction(user.user_id, new_id(), created_at=at).id for at in created]
    return ids[::-1]  # newest first


def test_list_pages_newest_first_with_an_opaque_cursor(
    alice: LoggedInUser, bob: LoggedInUser, invoke: Invoke
) -> None:
    expected = _store_history(alice, 5)
    _store_history(bob, 2)
    seen: list[str] = []
    query: dict[str, str] = {"limit": "2"}
    pages = 0
    while True:
        reply = get(invoke, alice, "/predictions", **query)
        assert reply.status == 200
        seen += [item["id"] for item in reply.body["items"]]
        pages += 1
        if reply.body["next_cursor"] is None:
            break
        query = {"limit": "2", "cursor": reply.body["next_cursor"]}
    assert seen == expected
    assert pages == 3


def test_list_items_carry_a_fresh_image_url_each(alice: LoggedInUser, invoke: Invoke) -> None:
    ids = _store_history(alice, 3)
    items = get(invoke, alice, "/predictions").body["items"]
    assert [item["id"] for item in items] == ids
    for item in items:
        assert_image_url(item["image_url"], alice, item["id"])


def test_the_image_url_downloads_the_uploaded_image(alice: LoggedInUser, invoke: Invoke) -> None:
    record = done_prediction(alice.user_id, new_id())
    boto3.client("s3").put_object(
        Bucket=get_settings().upload_bucket, Key=record.object_key, Body=b"the image bytes"
    )
    for body in (
        get(invoke, alice, f"/predictions/{record.id}").body,
        get(invoke, alice, "/predictions").body["items"][0],
    ):
        reply = requests.get(body["image_url"], timeout=10)
        assert (reply.status_code, reply.content) == (200, b"the image bytes")


def test_list_without_a_next_page_has_no_cursor(alice: LoggedInUser, invoke: Invoke) -> None:
    _store_history(alice, 2)
    body = get(invoke, alice, "/predictions", limit="2").body
    assert len(body["items"]) == 2
    assert body["next_cursor"] is None


def test_a_cursor_cannot_reach_another_users_list(
    alice: LoggedInUser, bob: LoggedInUser, invoke: Invoke
) -> None:
    _store_history(alice, 3)
    bobs = _store_history(bob, 1)
    cursor = get(invoke, alice, "/predictions", limit="1").body["next_cursor"]
    items = get(invoke, bob, "/predictions", cursor=cursor).body["items"]
    assert [item["id"] for item in items] in ([], bobs)


@pytest.mark.parametrize("cursor", ["garbage!", "e30", "bm90IGpzb24"])
def test_an_invalid_cursor_is_a_400(cursor: str, alice: LoggedInUser, invoke: Invoke) -> None:
    reply = get(invoke, alice, "/predictions", cursor=cursor)
    assert reply.status == 400
    assert reply.body == {"message": "invalid cursor", "error": "bad_request"}


@pytest.mark.parametrize("limit", ["0", "101", "ten"])
def test_limit_outside_1_to_100_is_a_422(limit: str, alice: LoggedInUser, invoke: Invoke) -> None:
    assert get(invoke, alice, "/predictions", limit=limit).status == 422


def test_an_oversize_cursor_is_a_422(alice: LoggedInUser, invoke: Invoke) -> None:
    assert get(invoke, alice, "/predictions", cursor="a" * 513).status == 422


UPLOAD_LIMITS = {"max_bytes": 10 * 1024 * 1024, "content_types": list(uploads.CONTENT_TYPES)}


def test_health_reports_the_cache_and_the_upload_limits(aws: None, invoke: Invoke) -> None:
    reply = invoke("PredictionsFunction", rest_event("GET", "/health"))
    assert (reply.status, reply.body) == (
        200,
        {"status": "ok", "cache": "up", "database": "up", "upload": UPLOAD_LIMITS, "model": None},
    )
    assert UPLOAD_LIMITS["content_types"] == ["image/jpeg", "image/png", "image/webp"]


def test_health_says_when_the_cache_is_down(aws: None, redis_down: None, invoke: Invoke) -> None:
    reply = invoke("PredictionsFunction", rest_event("GET", "/health"))
    assert (reply.status, reply.body) == (
        200,
        {"status": "ok", "cache": "down", "database": "up", "upload": UPLOAD_LIMITS, "model": None},
    )


def test_health_names_the_model_the_inference_function_announced(aws: None, invoke: Invoke) -> None:
    running = {"name": "resnet50", "weights": "random", "engine": "openvino", "precision": "bf16"}
    cache.announce_model(running)
    reply = invoke("PredictionsFunction", rest_event("GET", "/health"))
    assert reply.body["model"] == running


def test_health_shows_the_configured_upload_limit(
    aws: None, invoke: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UPLOAD_MAX_BYTES", "2048")
    get_settings.cache_clear()
    try:
        reply = invoke("PredictionsFunction", rest_event("GET", "/health"))
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
    assert reply.body["upload"]["max_bytes"] == 2048


def test_a_stale_cache_entry_falls_back_to_dynamodb(
    alice: LoggedInUser, invoke: Invoke, redis_url: str
) -> None:
    record = done_prediction(alice.user_id, new_id())
    stale = {"id": record.id, "status": "finished", "user_id": alice.user_id}
    redis.Redis.from_url(redis_url).set(f"prediction:{record.id}", json.dumps(stale))
    reply = get(invoke, alice, f"/predictions/{record.id}")
    assert (reply.status, reply.body["status"]) == (200, "done")
