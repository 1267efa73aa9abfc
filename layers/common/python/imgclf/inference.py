"""One inference batch: uploaded S3 objects in, one forward pass, results in DynamoDB and Redis.

For each object: read it (size-capped), hash it, reuse an earlier result for the same bytes,
model and weights, or decode it; then classify every decoded image in ONE forward pass and
move each prediction from ``pending`` to ``done`` or ``failed`` with a conditional write
(a duplicate event finds it final and leaves it alone), then cache and announce it in Redis.

Failures are of two kinds. Permanent ones (not an image, unreadable, too large, a bomb, the
object gone) mark the prediction ``failed`` with the reason and are not retried. Anything else
(S3 or DynamoDB errors, throttling, a crash) is retryable: the record is reported back to the
queue, and after maxReceiveCount tries the dead-letter queue's delivery marks it failed
(``fail_uploads``), so nothing stays pending for ever.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_plus

import numpy as np
from aws_lambda_powertools import Logger
from pynamodb.exceptions import UpdateError

from imgclf import images, predictions, storage
from imgclf.errors import BadRequest, NotFound, PayloadTooLarge
from imgclf.model import Classifier, get_classifier
from imgclf.settings import get_settings
from imgclf.tables import DONE, FAILED, PENDING, PredictionRecord, utc_timestamp

logger = Logger(child=True)

GAVE_UP_REASON = "the image could not be processed after several attempts"
MISSING_REASON = "the uploaded file is gone"


@dataclass(frozen=True)
class UploadedObject:
    """An object an S3 event names; ``key`` is already URL-decoded."""

    bucket: str
    key: str
    size: int | None = None


@dataclass
class Outcome:
    """What happened to one object: ``done``, ``failed``, ``skipped`` (nothing to do), or
    ``retry`` (a transient error: the message goes back to the queue)."""

    key: str
    status: str
    prediction_id: str | None = None
    reason: str | None = None
    reused: bool = False

    @property
    def retryable(self) -> bool:
        """Whether the message carrying this object should be delivered again."""
        return self.status == "retry"


@dataclass
class _Item:
    """An object on its way through the batch."""

    obj: UploadedObject
    outcome: Outcome
    record: PredictionRecord | None = None
    digest: str | None = None
    sha256: str | None = None
    data: bytes | None = None
    pixels: np.ndarray | None = None
    timings: dict[str, float] = field(default_factory=dict)


def uploads_in_notification(notification: dict[str, Any]) -> list[UploadedObject]:
    """The created objects an S3 event notification names (none for ``s3:TestEvent``).

    Keys arrive URL-encoded (``+`` for a space, ``%2F`` from some emulators for ``/``).
    """
    if notification.get("Event") == "s3:TestEvent":
        return []
    objects = []
    for record in notification.get("Records") or []:
        if record.get("eventSource") != "aws:s3":
            continue
        if not str(record.get("eventName", "")).startswith("ObjectCreated:"):
            continue
        s3 = record["s3"]
        size = s3["object"].get("size")
        objects.append(
            UploadedObject(
                bucket=s3["bucket"]["name"],
                key=unquote_plus(s3["object"]["key"]),
                size=None if size is None else int(size),
            )
        )
    return objects


def classify_uploads(
    objects: Sequence[UploadedObject], classifier: Classifier | None = None
) -> list[Outcome]:
    """Classify the objects of one batch (one forward pass); one outcome per object, in order."""
    classifier = classifier or get_classifier()
    max_bytes = get_settings().upload_max_bytes
    items = [_Item(obj, Outcome(obj.key, "pending")) for obj in objects]
    to_decode: list[_Item] = []
    for item in items:
        try:
            if _prepare(item, classifier, max_bytes):
                to_decode.append(item)
        except Exception as exc:  # a crash is retried, and ends in the DLQ if it persists
            _retry(item, exc)
    to_infer = _decode(to_decode)
    if to_infer:
        _infer(to_infer, classifier)
    for item in items:
        if item.outcome.status == "pending":
            _retry(item, RuntimeError("not finished"))
    return [item.outcome for item in items]


def fail_uploads(objects: Sequence[UploadedObject], reason: str = GAVE_UP_REASON) -> list[Outcome]:
    """Mark the objects' pending predictions failed (dead-letter delivery: no inference)."""
    outcomes = []
    for obj in objects:
        item = _Item(obj, Outcome(obj.key, "pending"))
        try:
            if _load_pending(item):
                _finish(item, FAILED, error=reason)
        except Exception as exc:
            _retry(item, exc)
        outcomes.append(item.outcome)
    return outcomes


def image_digest(sha256: str, model_name: str, weights: str) -> str:
    """The by-image index key: the same bytes through the same model and weights."""
    return f"{sha256}#{model_name}#{weights}"


def _prepare(item: _Item, classifier: Classifier, max_bytes: int) -> bool:
    """Read, hash, reuse an earlier result; True when the item's bytes need decoding."""
    if not _load_pending(item):
        return False
    try:
        if item.obj.size is not None:
            images.check_size(item.obj.size, max_bytes)
        started = time.perf_counter()
        data = storage.read_object(item.obj.key, max_bytes, bucket=item.obj.bucket)
        item.timings["read_ms"] = _ms_since(started)
    except (images.ImageTooLarge, PayloadTooLarge):
        _finish(item, FAILED, error=f"the file is larger than the {max_bytes}-byte limit")
        return False
    except NotFound:
        _finish(item, FAILED, error=MISSING_REASON)
        return False
    item.sha256 = hashlib.sha256(data).hexdigest()
    item.digest = image_digest(item.sha256, classifier.model_name, classifier.weights_name)
    previous = _earlier_result(item.digest, item.outcome.prediction_id)
    if previous is not None:
        item.outcome.reused = True
        item.timings.update(decode_ms=0.0, inference_ms=0.0, batch_size=0)
        _finish_done(item, previous.result.as_dict(), classifier)
        return False
    item.data = data
    return True


def _decode(batch: list[_Item]) -> list[_Item]:
    """Decode the batch's files in parallel; the items whose pixels are ready."""
    decoded = images.load_many([item.data or b"" for item in batch])
    ready = []
    for item, result in zip(batch, decoded, strict=True):
        item.data = None
        item.timings["decode_ms"] = result.decode_ms
        try:
            if isinstance(result.error, images.ImageError):
                _finish(item, FAILED, error=result.error.message, sha256=item.sha256)
            elif result.error is not None:
                raise result.error
            else:
                item.pixels = result.pixels
                ready.append(item)
        except Exception as exc:
            _retry(item, exc)
    return ready


def _load_pending(item: _Item) -> bool:
    """Find the item's prediction; True when it is still pending (else the outcome is set)."""
    try:
        user_id, prediction_id = storage.parse_upload_key(item.obj.key)
    except BadRequest:
        item.outcome.status, item.outcome.reason = "skipped", "not an upload key"
        return False
    item.outcome.prediction_id = prediction_id
    try:
        record = PredictionRecord.get(prediction_id, consistent_read=True)
    except PredictionRecord.DoesNotExist:
        item.outcome.status, item.outcome.reason = "skipped", "no such prediction"
        return False
    if record.user_id != user_id:
        item.outcome.status, item.outcome.reason = "skipped", "the key names another user"
        return False
    if record.status != PENDING:
        # A duplicate delivery: the first one already finished this prediction.
        item.outcome.status, item.outcome.reason = "skipped", f"already {record.status}"
        return False
    item.record = record
    return True


def _earlier_result(digest: str, prediction_id: str | None) -> PredictionRecord | None:
    for record in PredictionRecord.by_image.query(digest, limit=5):
        if record.id != prediction_id and record.status == DONE and record.result is not None:
            return record
    return None


def _infer(batch: list[_Item], classifier: Classifier) -> None:
    """One forward pass for the distinct images of the batch, then the writes."""
    slots: dict[str, int] = {}
    for item in batch:
        slots.setdefault(item.digest or "", len(slots))
    distinct: dict[int, np.ndarray] = {}
    for item in batch:
        distinct.setdefault(slots[item.digest or ""], item.pixels)
    started = time.perf_counter()
    try:
        results = classifier.classify(np.stack([distinct[i] for i in range(len(distinct))]))
    except Exception as exc:
        for item in batch:
            _retry(item, exc)
        return
    inference_ms = _ms_since(started)
    for item in batch:
        item.pixels = None
        item.timings.update(inference_ms=inference_ms, batch_size=len(distinct))
        try:
            _finish_done(item, results[slots[item.digest or ""]].as_result(), classifier)
        except Exception as exc:
            _retry(item, exc)


def _finish_done(item: _Item, result: dict[str, Any], classifier: Classifier) -> None:
    _finish(
        item,
        DONE,
        result=result,
        model_name=classifier.model_name,
        weights=classifier.weights_name,
        sha256=item.sha256,
        image_digest=item.digest,
    )


def _finish(item: _Item, status: str, **fields: Any) -> None:
    """pending -> ``status`` with ``fields``, only if still pending; then Redis."""
    record = item.record
    assert record is not None
    attributes = PredictionRecord.get_attributes()
    actions = [
        PredictionRecord.status.set(status),
        PredictionRecord.completed_at.set(utc_timestamp()),
        *(attributes[name].set(value) for name, value in fields.items() if value is not None),
    ]
    if item.timings:
        actions.append(PredictionRecord.timings.set(_rounded(item.timings)))
    try:
        record.update(actions=actions, condition=PredictionRecord.status == PENDING)
    except UpdateError as exc:
        if exc.cause_response_code != "ConditionalCheckFailedException":
            raise
        item.outcome.status, item.outcome.reason = "skipped", "finished by another delivery"
        return
    item.outcome.status = status
    item.outcome.reason = fields.get("error")
    logger.info(
        "prediction finished",
        extra={
            "prediction_id": record.id,
            "status": status,
            "reason": item.outcome.reason,
            "reused": item.outcome.reused,
        },
    )
    # Redis is a cache: publish_result logs and drops its own errors.
    predictions.publish_result(record)


def _retry(item: _Item, exc: BaseException) -> None:
    logger.warning(
        "retryable failure",
        extra={"key": item.obj.key, "error": repr(exc)},
        exc_info=exc,
    )
    item.outcome.status, item.outcome.reason = "retry", repr(exc)


def _rounded(timings: dict[str, float]) -> dict[str, float | int]:
    return {k: (int(v) if k == "batch_size" else round(v, 3)) for k, v in timings.items()}


def _ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0
