"""SQS event source mapping: moves queue messages into a function in batches, as Lambda does.

- Batches by the template's BatchSize and MaximumBatchingWindowInSeconds.
- Builds the SQS event exactly as Lambda delivers it.
- Deletes only what succeeded: all on success; with ReportBatchItemFailures all but the
  reported ids; nothing when the function fails, times out or its sandbox dies. What is
  not deleted comes back after the visibility timeout, and the queue's redrive policy moves
  it to the dead-letter queue after maxReceiveCount receives.
- While a batch runs, its messages are kept invisible (the visibility timeout may be
  shortened locally so a lost batch comes back quickly without being received twice).
- Up to the function's concurrency batches run at once, as Lambda scales its pollers;
  a batch is received only when a slot is free, so no message waits hidden for a sandbox.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from typing import Any

from localcloud.sandbox import FunctionPool, InvokeResult
from localcloud.template import SqsSource

log = logging.getLogger("localcloud.poller")

# SQS returns at most 10 messages per ReceiveMessage call.
_RECEIVE_MAX = 10


def sqs_record(message: dict, source_arn: str, region: str) -> dict:
    """One record of the Lambda SQS event for a received message."""
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": dict(message.get("Attributes") or {}),
        "messageAttributes": {
            name: _message_attribute(value)
            for name, value in (message.get("MessageAttributes") or {}).items()
        },
        "md5OfBody": message["MD5OfBody"],
        "eventSource": "aws:sqs",
        "eventSourceARN": source_arn,
        "awsRegion": region,
    }


def _message_attribute(value: dict) -> dict:
    # Lambda spells these camelCase and always includes both list fields.
    out = {
        "stringListValues": value.get("StringListValues", []),
        "binaryListValues": value.get("BinaryListValues", []),
        "dataType": value["DataType"],
    }
    if "StringValue" in value:
        out["stringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        import base64

        out["binaryValue"] = base64.b64encode(value["BinaryValue"]).decode()
    return out


def failed_message_ids(result: InvokeResult, records: list[dict], report: bool) -> set[str]:
    """Which messages of a batch failed, following Lambda's rules."""
    all_ids = {record["messageId"] for record in records}
    if not result.ok:
        return all_ids
    if not report:
        return set()
    payload = result.payload
    if payload is None:
        return set()
    if not isinstance(payload, dict):
        return set()  # any other reply counts as complete success, as in Lambda
    failures = payload.get("batchItemFailures")
    if failures is None:
        return set()
    if not isinstance(failures, list):
        return all_ids
    failed = set()
    for failure in failures:
        identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
        if not identifier or identifier not in all_ids:
            return all_ids  # a malformed report fails the whole batch
        failed.add(identifier)
    return failed


class SqsPoller:
    """One event source mapping: a thread that polls a queue and invokes a function with
    up to ``pool.concurrency`` batches in flight, each in its own thread."""

    def __init__(
        self,
        source: SqsSource,
        pool: FunctionPool,
        sqs: Any,
        queue_url: str,
        *,
        region: str,
    ) -> None:
        self.source = source
        self.pool = pool
        self.sqs = sqs
        self.queue_url = queue_url
        self.region = region
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"poller-{source.function}-{source.event}", daemon=True
        )
        self.batches = 0
        self.max_in_flight = max(1, pool.concurrency)
        self._slots = threading.BoundedSemaphore(self.max_in_flight)
        self._lock = threading.Lock()
        self._in_flight: set[threading.Thread] = set()

    def start(self) -> None:
        """Start polling."""
        self._thread.start()

    def request_stop(self) -> None:
        """Ask the thread to stop after its current receive (does not wait)."""
        self._stop.set()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop polling and wait up to ``timeout`` s in all for the batches in flight (what
        is still running then is left to the visibility timeout)."""
        deadline = time.monotonic() + timeout
        self._stop.set()
        self._thread.join(timeout)
        with self._lock:
            batches = list(self._in_flight)
        for thread in batches:
            thread.join(max(0.0, deadline - time.monotonic()))

    def in_flight(self) -> int:
        """How many batches are being handled right now."""
        with self._lock:
            return len(self._in_flight)

    @functools.cached_property
    def visibility_timeout(self) -> int:
        """The queue's VisibilityTimeout, read at the first batch."""
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=self.queue_url, AttributeNames=["VisibilityTimeout"]
        )["Attributes"]
        return int(attributes["VisibilityTimeout"])

    def _run(self) -> None:
        failing = 0
        while not self._stop.is_set():
            # Receive only with a free slot: a received batch must not wait for a sandbox.
            if not self._slots.acquire(timeout=0.5):
                continue
            handed_off = False
            try:
                messages = self._collect_batch()
                if messages:
                    self._dispatch(messages)
                    handed_off = True
            except Exception as exc:  # an unreachable endpoint must not end polling
                failing += 1
                if failing == 1:  # its repeats every second (the emulator is down) are not news
                    log.exception("%s: polling failed; retrying", self.source.queue_name)
                else:
                    log.debug("%s: polling failed again: %r", self.source.queue_name, exc)
                self._stop.wait(1.0)
            else:
                if failing:
                    log.warning("%s: polling works again", self.source.queue_name)
                failing = 0
            finally:
                if not handed_off:
                    self._slots.release()

    def _dispatch(self, messages: list[dict]) -> None:
        """Handle one batch in its own thread, which frees the slot when done."""
        thread = threading.Thread(
            target=self._handle,
            args=(messages,),
            name=f"batch-{self.source.function}-{self.source.event}",
            daemon=True,  # a batch stuck in a sandbox must not keep the process alive
        )
        with self._lock:
            self._in_flight.add(thread)
        try:
            thread.start()
        except BaseException:
            with self._lock:
                self._in_flight.discard(thread)
            raise

    def _handle(self, messages: list[dict]) -> None:
        result: InvokeResult | None = None
        try:
            records = [sqs_record(m, self.source.queue_arn, self.region) for m in messages]
            result = self._invoke(records)
        except Exception:
            log.exception("%s: invoking a batch failed", self.source.queue_name)
        finally:
            # The sandbox is free: the next batch may start while this one is settled.
            self._slots.release()
        try:
            if result is not None:
                self._settle(result, records)
        except Exception:  # e.g. the endpoint went away before the deletes
            log.exception("%s: settling a batch failed", self.source.queue_name)
        finally:
            with self._lock:
                self._in_flight.discard(threading.current_thread())

    def _collect_batch(self) -> list[dict]:
        messages: list[dict] = []
        window_ends: float | None = None
        while not self._stop.is_set() and len(messages) < self.source.batch_size:
            if messages and window_ends is not None:
                remaining = window_ends - time.monotonic()
                if remaining <= 0:
                    break
                wait = min(int(remaining + 0.999), 20)
            else:
                wait = 1  # short long-polls keep shutdown quick
            received = self.sqs.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=min(_RECEIVE_MAX, self.source.batch_size - len(messages)),
                WaitTimeSeconds=wait,
                AttributeNames=["All"],
                MessageSystemAttributeNames=["All"],
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            if received:
                messages.extend(received)
                if window_ends is None:
                    window_ends = time.monotonic() + self.source.batching_window
            if messages and self.source.batching_window == 0:
                break
        return messages

    def _invoke(self, records: list[dict]) -> InvokeResult:
        keeper = _VisibilityKeeper(self.sqs, self.queue_url, records, self.visibility_timeout)
        keeper.start()
        try:
            result = self.pool.invoke({"Records": records})
        finally:
            keeper.stop()
        with self._lock:
            self.batches += 1
        return result

    def _settle(self, result: InvokeResult, records: list[dict]) -> None:
        """Delete the messages the function handled; the failed ones come back."""
        failed = failed_message_ids(result, records, self.source.report_batch_item_failures)
        done = [r for r in records if r["messageId"] not in failed]
        if not result.ok:
            log.warning(
                "%s: batch of %d failed (%s: %s); left for retry",
                self.source.function,
                len(records),
                result.error_type,
                result.error_message,
            )
        elif failed:
            log.info(
                "%s: %d of %d messages reported failed",
                self.source.function,
                len(failed),
                len(records),
            )
        for start in range(0, len(done), 10):
            chunk = done[start : start + 10]
            self.sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": r["receiptHandle"]} for i, r in enumerate(chunk)
                ],
            )


class _VisibilityKeeper:
    """Extends a batch's visibility timeout while the function works on it."""

    def __init__(self, sqs: Any, queue_url: str, records: list[dict], visibility: int) -> None:
        self.sqs = sqs
        self.queue_url = queue_url
        self.records = records
        self.visibility = max(visibility, 2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.wait(self.visibility / 2):
            for start in range(0, len(self.records), 10):
                chunk = self.records[start : start + 10]
                try:
                    self.sqs.change_message_visibility_batch(
                        QueueUrl=self.queue_url,
                        Entries=[
                            {
                                "Id": str(i),
                                "ReceiptHandle": r["receiptHandle"],
                                "VisibilityTimeout": self.visibility,
                            }
                            for i, r in enumerate(chunk)
                        ],
                    )
                except Exception:  # best effort: the batch may have just finished
                    log.debug("visibility extension failed", exc_info=True)
