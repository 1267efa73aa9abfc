"""imgclf.cache: a Redis cache that never fails a request when Redis is down."""

from __future__ import annotations

import threading
import time

import redis
from imgclf import cache


def test_write_then_read(redis_url: str) -> None:
    cache.write_prediction("p1", {"id": "p1", "status": "done"})
    assert cache.read_prediction("p1") == {"id": "p1", "status": "done"}
    assert cache.read_prediction("p2") is None


def test_results_by_image_digest_in_one_round_trip(redis_url: str) -> None:
    result = {"label": "tabby", "score": 0.9, "top5": []}
    cache.write_results({"a#resnet50#random": result})
    assert cache.read_results(["a#resnet50#random", "b#resnet50#random"]) == {
        "a#resnet50#random": result
    }
    assert cache.read_results([]) == {}
    ttl = redis.Redis.from_url(redis_url).ttl(cache.result_key("a#resnet50#random"))
    assert ttl > 0


def test_waiter_wakes_on_publish(redis_url: str) -> None:
    with cache.completion_waiter("p1") as wait:
        threading.Timer(0.2, cache.publish_status, args=("p1", "done")).start()
        started = time.monotonic()
        wait(5)
        assert time.monotonic() - started < 2


def test_waiter_ignores_other_predictions(redis_url: str) -> None:
    with cache.completion_waiter("p1") as wait:
        cache.publish_status("p2", "done")
        started = time.monotonic()
        wait(0.5)
        assert time.monotonic() - started >= 0.45


def test_everything_tolerates_redis_down(redis_down: None) -> None:
    assert cache.ping() is False
    assert cache.read_prediction("p1") is None
    cache.write_prediction("p1", {"id": "p1"})
    cache.publish_status("p1", "done")
    cache.write_results({"a": {"label": "x"}})
    assert cache.read_results(["a"]) == {}
    with cache.completion_waiter("p1") as wait:
        started = time.monotonic()
        wait(30)
        assert time.monotonic() - started <= cache.POLL_SECONDS + 0.5


def test_waiter_survives_redis_dying_mid_wait(redis_url: str) -> None:
    with cache.completion_waiter("p1") as wait:
        # Kill this subscriber's connection from the server side.
        admin = redis.Redis.from_url(redis_url)
        admin.client_kill_filter(_type="pubsub")
        started = time.monotonic()
        wait(30)
        assert time.monotonic() - started <= cache.POLL_SECONDS + 0.5
