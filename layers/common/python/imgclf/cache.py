"""Redis: the prediction cache, the results of images already classified, and the
"prediction finished" notifications.

Redis is only a cache. Every function here tolerates Redis being down: reads return None,
writes are dropped, waiting falls back to sleeping between polls; the caller then uses
DynamoDB, the durable copy.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from functools import lru_cache
from typing import Any

import redis
from aws_lambda_powertools import Logger

from imgclf.settings import get_settings

logger = Logger(child=True)

# With Redis down, a long-poll re-reads DynamoDB this often.
POLL_SECONDS = 1.0

Waiter = Callable[[float], None]


def prediction_key(prediction_id: str) -> str:
    """The key of a cached prediction, also the channel its completion is published on."""
    return f"prediction:{prediction_id}"


@lru_cache(maxsize=1)
def client() -> redis.Redis:
    """The process's Redis client (short timeouts: a dead cache must not stall a request)."""
    return redis.Redis.from_url(
        get_settings().redis_url,
        socket_connect_timeout=0.25,
        socket_timeout=0.5,
        decode_responses=True,
    )


MODEL_KEY = "model:inference"


def announce_model(info: dict[str, str]) -> None:
    """Say which model the inference function runs (each sandbox at its init), for /health."""
    try:
        client().set(MODEL_KEY, json.dumps(info))
    except redis.RedisError as exc:
        logger.warning("redis write failed", extra={"error": str(exc)})


def running_model() -> dict[str, str] | None:
    """The model the inference function last announced (None if none has, or Redis is down)."""
    try:
        announced = client().get(MODEL_KEY)
    except redis.RedisError:
        return None
    return None if announced is None else json.loads(announced)


def ping() -> bool:
    """Whether Redis answers."""
    try:
        return bool(client().ping())
    except redis.RedisError:
        return False


def read_prediction(prediction_id: str) -> dict[str, Any] | None:
    """The cached prediction document, or None when absent or Redis is down."""
    try:
        cached = client().get(prediction_key(prediction_id))
    except redis.RedisError as exc:
        logger.warning("redis read failed", extra={"error": str(exc)})
        return None
    return None if cached is None else json.loads(cached)


def write_prediction(prediction_id: str, document: dict[str, Any]) -> None:
    """Cache a prediction document for RESULT_TTL_SECONDS (dropped if Redis is down)."""
    try:
        client().set(
            prediction_key(prediction_id),
            json.dumps(document),
            ex=get_settings().result_ttl_seconds,
        )
    except redis.RedisError as exc:
        logger.warning("redis write failed", extra={"error": str(exc)})


def result_key(digest: str) -> str:
    """The key of the result for an image digest (the same bytes and model)."""
    return f"result:{digest}"


def read_results(digests: list[str]) -> dict[str, dict[str, Any]]:
    """The cached results of these image digests, by digest ({} when Redis is down)."""
    if not digests:
        return {}
    try:
        found = client().mget([result_key(d) for d in digests])
    except redis.RedisError as exc:
        logger.warning("redis read failed", extra={"error": str(exc)})
        return {}
    return {d: json.loads(v) for d, v in zip(digests, found, strict=True) if v is not None}


def write_results(results: dict[str, dict[str, Any]]) -> None:
    """Cache results by image digest for RESULT_TTL_SECONDS, in one round trip (dropped if
    Redis is down: the same image is then classified again)."""
    if not results:
        return
    try:
        with client().pipeline(transaction=False) as pipe:
            for digest, result in results.items():
                pipe.set(
                    result_key(digest), json.dumps(result), ex=get_settings().result_ttl_seconds
                )
            pipe.execute()
    except redis.RedisError as exc:
        logger.warning("redis write failed", extra={"error": str(exc)})


def publish_status(prediction_id: str, status: str) -> None:
    """Tell long-polling readers that a prediction reached ``status``."""
    try:
        client().publish(prediction_key(prediction_id), status)
    except redis.RedisError as exc:
        logger.warning("redis publish failed", extra={"error": str(exc)})


def _sleep_poll(timeout: float) -> None:
    time.sleep(max(0.0, min(timeout, POLL_SECONDS)))


@contextmanager
def completion_waiter(prediction_id: str) -> Iterator[Waiter]:
    """Subscribe to a prediction's completion; yields ``wait(timeout)``.

    Subscribe before re-reading the prediction, so a completion published in between is
    not missed. ``wait`` returns when a completion message arrives or ``timeout`` passes;
    with Redis down it sleeps at most POLL_SECONDS so the caller polls DynamoDB instead.
    """
    try:
        pubsub = client().pubsub(ignore_subscribe_messages=True)
        pubsub.subscribe(prediction_key(prediction_id))
    except redis.RedisError as exc:
        logger.warning("redis subscribe failed, polling", extra={"error": str(exc)})
        yield _sleep_poll
        return

    def wait(timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                if pubsub.get_message(timeout=remaining) is not None:
                    return
            except redis.RedisError:
                _sleep_poll(remaining)
                return

    try:
        yield wait
    finally:
        with suppress(redis.RedisError):
            pubsub.close()
