"""The SQS event source mapping against the run's emulator, with a tiny batch function.

Lambda's rules: batches by BatchSize and MaximumBatchingWindowInSeconds, the event shaped
as Lambda delivers it, only what succeeded deleted (ReportBatchItemFailures), the rest
retried after the visibility timeout and sent to the DLQ after maxReceiveCount.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from localcloud.poller import SqsPoller, failed_message_ids
from localcloud.provision import aws_clients, endpoint_account, provision
from localcloud.sandbox import FunctionPool, InvokeResult, lambda_environment
from localcloud.template import Template

from tests.integration.conftest import start_emulator
from tests.integration.test_gateway import APP, assert_same_shape, sam_event

pytestmark = pytest.mark.integration


class Mapping:
    """The emulator + the test app's queues + the batch function's pool and poller."""

    def __init__(self, tmp: Path, concurrency: int = 1) -> None:
        self.out = tmp / "deliveries.jsonl"
        self.emulator, endpoint = start_emulator(tmp / "emulator")
        self.account = endpoint_account(endpoint, "us-east-1")
        self.template = Template(
            APP / "template.yaml",
            parameters={"OutDir": str(tmp)},
            account_id=self.account,
            sqs_endpoint=endpoint,
        )
        self.clients = aws_clients(endpoint, "us-east-1")
        self.sqs = self.clients["sqs"]
        # Visibility 2 s: a failed message comes back quickly.
        self.queues = provision(self.template, self.clients, max_visibility_timeout=2).queues
        spec = self.template.functions()["BatchFunction"]
        env = lambda_environment(
            spec, region="us-east-1", account_id=self.account, endpoint_url=endpoint, overrides={}
        )
        self.pool = FunctionPool(spec, env, concurrency=concurrency, log_path=tmp / "batch.log")
        [source] = spec.sqs_sources
        self.poller = SqsPoller(
            source, self.pool, self.sqs, self.queues["WorkQueue"], region="us-east-1"
        )
        self.poller.start()

    def send(self, *bodies: dict) -> None:
        for start in range(0, len(bodies), 10):
            self.sqs.send_message_batch(
                QueueUrl=self.queues["WorkQueue"],
                Entries=[
                    {"Id": str(i), "MessageBody": json.dumps(b)}
                    for i, b in enumerate(bodies[start : start + 10])
                ],
            )

    def deliveries(self) -> list[dict]:
        if not self.out.exists():
            return []
        return [json.loads(line) for line in self.out.read_text().splitlines()]

    def wait_for(self, check, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check():
                return
            time.sleep(0.2)
        raise TimeoutError(f"deliveries so far: {[d['id'] for d in self.deliveries()]}")

    def queue_depth(self, logical_id: str) -> int:
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=self.queues[logical_id],
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return sum(int(v) for v in attributes.values())

    def close(self) -> None:
        self.poller.stop()
        self.pool.close()
        self.emulator.stop()


@pytest.fixture(scope="module")
def mapping(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mapping]:
    m = Mapping(tmp_path_factory.mktemp("poller"))
    yield m
    m.close()


@pytest.fixture(scope="module")
def parallel_mapping(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mapping]:
    m = Mapping(tmp_path_factory.mktemp("poller-parallel"), concurrency=2)
    yield m
    m.close()


def test_event_is_shaped_as_lambda_delivers_it(mapping):
    mapping.send({"id": "shape"})
    mapping.wait_for(lambda: any(d["id"] == "shape" for d in mapping.deliveries()))
    record = next(d for d in mapping.deliveries() if d["id"] == "shape")["record"]
    reference = sam_event("sqs", "receive-message")["Records"][0]
    assert_same_shape(record, reference, "record")
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"] == f"arn:aws:sqs:us-east-1:{mapping.account}:imgclf-WorkQueue"
    assert record["awsRegion"] == "us-east-1"
    assert record["attributes"]["ApproximateReceiveCount"] == "1"
    assert json.loads(record["body"]) == {"id": "shape"}
    mapping.wait_for(lambda: mapping.queue_depth("WorkQueue") == 0)


def test_batches_follow_batch_size_and_window(mapping):
    mapping.send(*({"id": f"b{i}"} for i in range(12)))
    mapping.wait_for(lambda: len([d for d in mapping.deliveries() if d["id"][0] == "b"]) == 12)
    batches = [d["batch"] for d in mapping.deliveries() if d["id"][0] == "b"]
    assert max(batches) <= 5  # BatchSize
    assert max(batches) > 1  # the 1 s window gathers messages into one invocation
    mapping.wait_for(lambda: mapping.queue_depth("WorkQueue") == 0)


def test_only_successes_are_deleted_and_poison_goes_to_the_dlq(mapping):
    mapping.send({"id": "ok-1"}, {"id": "poison", "fail": True}, {"id": "ok-2"})
    # maxReceiveCount 2: two deliveries, then the queue's redrive moves it to the DLQ.
    mapping.wait_for(lambda: mapping.queue_depth("WorkDeadLetterQueue") == 1, timeout=60)
    ids = [d["id"] for d in mapping.deliveries()]
    assert ids.count("ok-1") == 1 and ids.count("ok-2") == 1  # deleted after success
    assert ids.count("poison") == 2
    counts = [
        d["record"]["attributes"]["ApproximateReceiveCount"]
        for d in mapping.deliveries()
        if d["id"] == "poison"
    ]
    assert counts == ["1", "2"]
    assert mapping.queue_depth("WorkQueue") == 0


def test_batches_run_side_by_side_up_to_the_function_concurrency(parallel_mapping):
    m = parallel_mapping
    assert m.poller.max_in_flight == 2
    # Ten slow messages make at least two batches of at most five; each batch takes 3 s.
    m.send(*({"id": f"p{i}", "sleep": 3} for i in range(10)))
    m.wait_for(lambda: len([d for d in m.deliveries() if d["id"][0] == "p"]) == 10)
    spans = sorted({(d["started"], d["ended"], d["pid"]) for d in m.deliveries()})
    assert len(spans) >= 2
    overlapping = [
        (a, b) for i, a in enumerate(spans) for b in spans[i + 1 :] if b[0] < a[1] and a[0] < b[1]
    ]
    assert overlapping, f"batches ran one after another: {spans}"
    assert all(a[2] != b[2] for a, b in overlapping)  # in two different sandboxes
    ids = [d["id"] for d in m.deliveries()]
    assert sorted(ids) == sorted(f"p{i}" for i in range(10))  # each delivered once
    m.wait_for(lambda: m.queue_depth("WorkQueue") == 0)
    assert m.poller.in_flight() == 0


RECORDS = [{"messageId": "a"}, {"messageId": "b"}]


@pytest.mark.parametrize(
    ("result", "failed"),
    [
        (InvokeResult(True, payload={"batchItemFailures": []}), set()),
        (InvokeResult(True, payload=None), set()),
        (InvokeResult(True, payload={"batchItemFailures": [{"itemIdentifier": "b"}]}), {"b"}),
        # A malformed report fails the whole batch, as in Lambda.
        (InvokeResult(True, payload={"batchItemFailures": [{"itemIdentifier": ""}]}), {"a", "b"}),
        (InvokeResult(True, payload={"batchItemFailures": [{"itemIdentifier": "zz"}]}), {"a", "b"}),
        (InvokeResult(True, payload={"batchItemFailures": "b"}), {"a", "b"}),
        # A function error, a timeout or a dead sandbox: nothing is deleted.
        (InvokeResult(False, error_type="RuntimeError"), {"a", "b"}),
        (InvokeResult(False, timed_out=True), {"a", "b"}),
        (InvokeResult(False, crashed=True), {"a", "b"}),
    ],
)
def test_which_messages_of_a_batch_failed(result, failed):
    assert failed_message_ids(result, RECORDS, report=True) == failed


def test_without_report_batch_item_failures_a_reply_means_all_succeeded():
    reply = InvokeResult(True, payload={"batchItemFailures": [{"itemIdentifier": "b"}]})
    assert failed_message_ids(reply, RECORDS, report=False) == set()
