"""Inference: S3 ObjectCreated notifications (through SQS, or a plain S3 event) -> ResNet50.

Two SQS event sources reach this handler (template.yaml): the upload queue, whose batch is
classified in one forward pass, and its dead-letter queue, whose messages failed
maxReceiveCount times and only mark their predictions failed. Only retryable failures are
reported back (batchItemFailures); a bad image is a finished, failed prediction.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from imgclf import cache, inference, storage
from imgclf.model import get_classifier
from imgclf.settings import get_settings
from imgclf.tables import PredictionRecord, connect

logger = Logger()
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)

# Built and warmed at init, so the first message does not pay for it; the SDK clients too.
classifier = get_classifier()
connect(PredictionRecord)
storage.client()
cache.announce_model(classifier.info)


class RetryLater(Exception):
    """A record whose objects hit a transient error: SQS delivers it again."""


def is_dead_letter(record: SQSRecord) -> bool:
    """Whether the record comes from the dead-letter queue (DEAD_LETTER_QUEUE_ARN), or was
    stamped by SQS's redrive with DeadLetterQueueSourceArn."""
    if (record.raw_event.get("attributes") or {}).get("DeadLetterQueueSourceArn"):
        return True
    return record.event_source_arn == get_settings().dead_letter_queue_arn


def uploads_of(record: SQSRecord) -> list[inference.UploadedObject]:
    """The objects an SQS message's S3 notification names ([] for a body that is not one)."""
    try:
        notification = json.loads(record.body)
    except (TypeError, ValueError):
        logger.warning("not an S3 notification, dropped", extra={"message_id": record.message_id})
        return []
    return inference.uploads_in_notification(notification) if isinstance(notification, dict) else []


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """An SQS batch of S3 notifications (partial failures reported), or a plain S3 event."""
    records = event.get("Records") or []
    if records and records[0].get("eventSource") == "aws:s3":
        outcomes = inference.classify_uploads(inference.uploads_in_notification(event))
        if any(o.retryable for o in outcomes):
            # S3 invokes asynchronously: raising makes Lambda retry the event.
            raise RetryLater([o.reason for o in outcomes if o.retryable])
        return {"outcomes": [vars(o) for o in outcomes]}

    messages = [SQSRecord(r) for r in records]
    outcomes: dict[str, list[inference.Outcome]] = {m.message_id: [] for m in messages}
    _run([m for m in messages if not is_dead_letter(m)], inference.classify_uploads, outcomes)
    _run([m for m in messages if is_dead_letter(m)], inference.fail_uploads, outcomes)

    def record_handler(record: SQSRecord) -> None:
        retry = [o.reason for o in outcomes[record.message_id] if o.retryable]
        if retry:
            raise RetryLater(retry)

    return process_partial_response(event, record_handler, processor, context)


def _run(
    messages: list[SQSRecord],
    action: Callable[[list[inference.UploadedObject]], list[inference.Outcome]],
    outcomes: dict[str, list[inference.Outcome]],
) -> None:
    """Apply ``action`` to all the messages' objects at once (one batch, one forward pass)."""
    objects = [(m.message_id, obj) for m in messages for obj in uploads_of(m)]
    if not objects:
        return
    results = action([obj for _, obj in objects])
    for (message_id, _), outcome in zip(objects, results, strict=True):
        outcomes[message_id].append(outcome)
