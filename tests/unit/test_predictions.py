"""GET /predictions, GET /predictions/{id}, GET /health (PredictionsFunction)."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from imgclf import cache, predictions
from imgclf.settings import get_settings
from imgclf.tables import DONE, FAILED, PredictionRecord, utc_timestamp

from tests.unit.conftest import LoggedInUser
from tests.unit.factories import Reply, done_prediction, pending_prediction, rest_event

Invoke = Callable[[str, dict[str, Any]], Reply]


def new_id() -> str:
    return uuid.uuid4().hex


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
        "result": record.result.as_dict(),
        "error": None,
        "model": {"name": "resnet50", "weights": "random"},
    }


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
    assert cached == {**first, "user_id": alice.user_id}
    record.delete()  # only Redis can answer now
    assert get(invoke, alice, f"/predictions/{record.id}").body == first


def test_pending_predictions_are_not_cached(
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
    assert json.loads(client.get(f"prediction:{record.id}"))["user_id"] == alice.user_id
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


def test_health_reports_the_cache(aws: None, invoke: Invoke) -> None:
    reply = invoke("PredictionsFunction", rest_event("GET", "/health"))
    assert (reply.status, reply.body) == (200, {"status": "ok", "cache": "up"})


def test_health_says_when_the_cache_is_down(redis_down: None, invoke: Invoke) -> None:
    reply = invoke("PredictionsFunction", rest_event("GET", "/health"))
    assert (reply.status, reply.body) == (200, {"status": "ok", "cache": "down"})


def test_a_stale_cache_entry_falls_back_to_dynamodb(
    alice: LoggedInUser, invoke: Invoke, redis_url: str
) -> None:
    record = done_prediction(alice.user_id, new_id())
    stale = {"id": record.id, "status": "finished", "user_id": alice.user_id}
    redis.Redis.from_url(redis_url).set(f"prediction:{record.id}", json.dumps(stale))
    reply = get(invoke, alice, f"/predictions/{record.id}")
    assert (reply.status, reply.body["status"]) == (200, "done")
