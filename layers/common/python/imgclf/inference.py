"""One inference batch: uploaded S3 objects in, one forward pass, results in DynamoDB and Redis.

For a batch: find its predictions with one consistent BatchGetItem; read and hash every
object at once (size-capped, on I/O threads); reuse the result Redis holds for the same
bytes and model (weights, engine, precision; one round trip), or decode; classify every
decoded image in ONE forward pass; then move each prediction from ``pending`` to ``done``
or ``failed`` with a conditional write (a duplicate event finds it final and leaves it
alone), and cache and announce it in Redis.

Failures are of two kinds. Permanent ones (not an image, unreadable, too large, a bomb, the
object gone) mark the prediction ``failed`` with the reason and are not retried. Anything else
(S3 or DynamoDB errors, throttling, a crash) is retryable: the record is reported back to the
queue, and after maxReceiveCount tries the dead-letter queue's delivery marks it failed
(``fail_uploads``), so nothing stays pending for ever.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_plus

import numpy as np
from aws_lambda_powertools import Logger
from pynamodb.exceptions import PutError

from imgclf import cache, images, predictions, storage
from imgclf.errors import BadRequest, NotFound, PayloadTooLarge
from imgclf.model import Classifier, get_classifier
from imgclf.settings import get_settings
from imgclf.tables import DONE, FAILED, PENDING, PredictionRecord, utc_timestamp

logger = Logger(child=True)

GAVE_UP_REASON = "the image could not be processed after several attempts"
MISSING_REASON = "the uploaded file is gone"

# The per-image S3, DynamoDB and Redis calls of a batch run at once on these threads.
_io = ThreadPoolExecutor(max_workers=10, thread_name_prefix="inference-io")


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
    decoding: Future[images.Decoded] | None = None
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
    pending = _load_pending(items)
    read = [item for item, ok in zip(pending, _each(_read, pending, max_bytes), strict=True) if ok]
    to_infer = _decoded(_reuse_earlier_results(read, classifier))
    if to_infer:
        _infer(to_infer, classifier)
    for item in items:
        if item.outcome.status == "pending":
            _retry(item, RuntimeError("not finished"))
    return [item.outcome for item in items]


def fail_uploads(objects: Sequence[UploadedObject], reason: str = GAVE_UP_REASON) -> list[Outcome]:
    """Mark the objects' pending predictions failed (dead-letter delivery: no inference)."""
    items = [_Item(obj, Outcome(obj.key, "pending")) for obj in objects]
    _each(_finish, _load_pending(items), FAILED, error=reason)
    return [item.outcome for item in items]


def image_digest(sha256: str, model: dict[str, str]) -> str:
    """The identity of a result: the same bytes through the same model, weights, engine and
    precision (``Classifier.info``), so no result computed one way is served as another."""
    return "#".join((sha256, model["name"], model["weights"], model["engine"], model["precision"]))


def _each(step: Callable[..., Any], items: list[_Item], *args: Any, **kwargs: Any) -> list[Any]:
    """``step(item, ...)`` for every item at once on the I/O threads (S3 and DynamoDB calls
    wait on the network, not the CPU); what each returned, None for an item whose step
    raised, which is then marked for retry."""

    def run(item: _Item) -> Any:
        try:
            return step(item, *args, **kwargs)
        except Exception as exc:  # a crash is retried, and ends in the DLQ if it persists
            _retry(item, exc)
            return None

    return list(_io.map(run, items))


def _load_pending(items: list[_Item]) -> list[_Item]:
    """Find the items' predictions with one consistent BatchGetItem; the items still
    pending (every other item's outcome is set)."""
    wanted: dict[str, tuple[_Item, str]] = {}
    for item in items:
        try:
            user_id, prediction_id = storage.parse_upload_key(item.obj.key)
        except BadRequest:
            item.outcome.status, item.outcome.reason = "skipped", "not an upload key"
            continue
        item.outcome.prediction_id = prediction_id
        if prediction_id in wanted:
            # The same object twice in one batch: the first message carries the work.
            item.outcome.status, item.outcome.reason = "skipped", "a duplicate in this batch"
            continue
        wanted[prediction_id] = (item, user_id)
    if not wanted:
        return []
    try:
        found = {r.id: r for r in PredictionRecord.batch_get(list(wanted), consistent_read=True)}
    except Exception as exc:
        for item, _ in wanted.values():
            _retry(item, exc)
        return []
    pending = []
    for prediction_id, (item, user_id) in wanted.items():
        record = found.get(prediction_id)
        if record is None:
            item.outcome.status, item.outcome.reason = "skipped", "no such prediction"
        elif record.user_id != user_id:
            item.outcome.status, item.outcome.reason = "skipped", "the key names another user"
        elif record.status != PENDING:
            # A duplicate delivery: the first one already finished this prediction.
            item.outcome.status, item.outcome.reason = "skipped", f"already {record.status}"
        else:
            item.record = record
            pending.append(item)
    return pending


def _read(item: _Item, max_bytes: int) -> bool:
    """Read and hash the item's object; True when it was read (else it is finished failed)."""
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
    # Decoded while the batch's other objects are still being read.
    item.decoding = images.start_loading(data)
    return True


def _reuse_earlier_results(batch: list[_Item], classifier: Classifier) -> list[_Item]:
    """Finish the items whose bytes and model (``Classifier.info``) have a cached result
    (one Redis round trip for the batch); the items that need the model."""
    for item in batch:
        item.digest = image_digest(item.sha256 or "", classifier.info)
    earlier = cache.read_results([item.digest or "" for item in batch])
    hits = [item for item in batch if item.digest in earlier]
    for item in hits:
        if item.decoding is not None:
            item.decoding.cancel()  # its pixels are not needed (if it has not started yet)
            item.decoding = None
        item.outcome.reused = True
        item.timings.update(decode_ms=0.0, inference_ms=0.0, batch_size=0)
    _each(lambda item: _finish_done(item, earlier[item.digest or ""], classifier), hits)
    return [item for item in batch if item.digest not in earlier]


def _decoded(batch: list[_Item]) -> list[_Item]:
    """Wait for the batch's files to be decoded (started as each was read); the items whose
    pixels are ready."""
    ready = []
    for item in batch:
        decoding, item.decoding = item.decoding, None
        result = decoding.result()  # _read started one for every item it read
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
        predicted = classifier.classify(np.stack([distinct[i] for i in range(len(distinct))]))
    except Exception as exc:
        for item in batch:
            _retry(item, exc)
        return
    inference_ms = _ms_since(started)
    results = {digest: predicted[slot].as_result() for digest, slot in slots.items()}
    for item in batch:
        item.pixels = None
        item.timings.update(inference_ms=inference_ms, batch_size=len(distinct))
    _each(lambda item: _finish_done(item, results[item.digest or ""], classifier), batch)
    cache.write_results(results)


def _finish_done(item: _Item, result: dict[str, Any], classifier: Classifier) -> None:
    _finish(
        item,
        DONE,
        result=result,
        model_name=classifier.model_name,
        weights=classifier.weights_name,
        engine=classifier.engine,
        precision=classifier.precision,
        sha256=item.sha256,
    )


def _finish(item: _Item, status: str, **fields: Any) -> None:
    """pending -> ``status`` with ``fields``, only if still pending; then Redis.

    The record read at the start of the batch is written back whole with a condition
    (PutItem returns nothing, where UpdateItem would return the item).
    """
    record = item.record
    assert record is not None
    record.status = status
    record.completed_at = utc_timestamp()
    record.expires_at = None  # a finished prediction is kept (TTL removes expired ones)
    for name, value in fields.items():
        if value is not None:
            setattr(record, name, value)
    if item.timings:
        record.timings = _rounded(item.timings)
    try:
        record.save(condition=PredictionRecord.status == PENDING)
    except PutError as exc:
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
