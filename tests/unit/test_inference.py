"""The inference function end to end on moto and a real Redis: events in, records out.

The handler is loaded the way the container runs it: the module the Dockerfile's CMD names.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import quote, quote_plus

import boto3
import numpy as np
import openvino
import pytest
import redis
from botocore.exceptions import ClientError
from imgclf import inference, model, storage
from imgclf.settings import get_settings
from imgclf.tables import DONE, FAILED, PENDING, PredictionRecord

from tests.unit import sample_images as samples
from tests.unit.factories import FakeLambdaContext, done_prediction, pending_prediction

ROOT = Path(__file__).resolve().parents[2]
FUNCTION_DIR = ROOT / "functions" / "inference"
DOCKERFILE = FUNCTION_DIR / "Dockerfile"
EVENTS = ROOT / "events"
QUEUE_ARN = "arn:aws:sqs:us-east-1:123456789012:imgclf-InferenceQueue-1T6XJ5R3ZQK2L"
DLQ_ARN = "arn:aws:sqs:us-east-1:123456789012:imgclf-InferenceDeadLetterQueue-9QW2E4R6T8Y0"
USER = "5b1e0c8a9f3d4a27b6e2c4d8f0a1b3c5"


def dockerfile_command() -> list[str]:
    """The CMD of the inference Dockerfile (its exec form)."""
    match = re.search(r"^CMD\s+(\[.*\])\s*$", DOCKERFILE.read_text(), re.MULTILINE)
    assert match, "the Dockerfile has no exec-form CMD"
    return json.loads(match.group(1))


@pytest.fixture(scope="session")
def classifier() -> model.Classifier:
    """The process's classifier (built once per test session: ResNet50 is slow here)."""
    return model.get_classifier()


@pytest.fixture(scope="session")
def app(classifier: model.Classifier) -> ModuleType:
    """The handler module the Dockerfile's CMD names, loaded from functions/inference/."""
    module_name, _ = dockerfile_command()[0].rsplit(".", 1)
    spec = importlib.util.spec_from_file_location(
        "inference_app", FUNCTION_DIR / f"{module_name}.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def passes(classifier: model.Classifier, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The batch size of every forward pass the test makes."""
    sizes: list[int] = []
    classify = classifier.classify

    def spy(pixels: np.ndarray) -> list[model.Prediction]:
        sizes.append(len(pixels))
        return classify(pixels)

    monkeypatch.setattr(classifier, "classify", spy)
    return sizes


@pytest.fixture
def upload(aws: None) -> Callable[..., tuple[str, str]]:
    """upload(data, bucket=..., key_name=...) -> (prediction id, object key): a pending
    prediction and its object in S3, as POST /uploads and the client leave them."""

    def put(data: bytes, bucket: str | None = None) -> tuple[str, str]:
        prediction_id = uuid.uuid4().hex
        pending_prediction(USER, prediction_id)
        key = storage.upload_key(USER, prediction_id)
        bucket = bucket or get_settings().upload_bucket
        boto3.client("s3").put_object(Bucket=bucket, Key=key, Body=data)
        return prediction_id, key

    return put


def s3_notification(key: str, size: int | None, bucket: str | None = None) -> dict[str, Any]:
    obj: dict[str, Any] = {"key": key, "eTag": "0"}
    if size is not None:
        obj["size"] = size
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": "us-east-1",
                "eventName": "ObjectCreated:Post",
                "s3": {
                    "bucket": {"name": bucket or get_settings().upload_bucket},
                    "object": obj,
                },
            }
        ]
    }


def sqs_event(bodies: list[dict[str, Any]], source_arn: str = QUEUE_ARN) -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": f"message-{i}",
                "receiptHandle": f"handle-{i}",
                "body": json.dumps(body),
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "eventSource": "aws:sqs",
                "eventSourceARN": source_arn,
                "awsRegion": "us-east-1",
            }
            for i, body in enumerate(bodies)
        ]
    }


def record(prediction_id: str) -> PredictionRecord:
    return PredictionRecord.get(prediction_id, consistent_read=True)


def failures(reply: dict[str, Any]) -> list[str]:
    return [f["itemIdentifier"] for f in reply["batchItemFailures"]]


def test_bad_files_fail_with_their_reason_while_the_rest_succeed(
    app: ModuleType,
    upload: Callable[..., tuple[str, str]],
    passes: list[int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("UPLOAD_MAX_BYTES", "300000")
    get_settings.cache_clear()
    oversize = samples.encode(samples.Image.fromarray(samples.rgb_array(400, 400)), "PNG")
    assert len(oversize) > 300_000
    files = {
        "jpeg": (samples.jpeg(), None),
        "png": (samples.png(), None),
        "corrupt": (samples.corrupt_jpeg(), "cannot be decoded"),
        "truncated": (samples.truncated_jpeg(), "cannot be decoded"),
        "zero-byte": (b"", "empty"),
        "text-as-jpg": (samples.text_as_jpg(), "not a JPEG, PNG or WebP"),
        "bomb": (samples.bomb_png(), "more than"),
        # Announced by the event as too large: never read.
        "oversize": (oversize, "larger than"),
        # Not announced: the capped read stops it.
        "oversize-unannounced": (oversize, "larger than"),
    }
    ids, bodies = {}, []
    for name, (data, _) in files.items():
        ids[name], key = upload(data)
        size = None if name == "oversize-unannounced" else len(data)
        bodies.append(s3_notification(key, size))

    reply = app.lambda_handler(sqs_event(bodies), FakeLambdaContext())

    assert failures(reply) == []
    assert passes == [2]  # one forward pass, for the two good pictures only
    for name, (_, reason) in files.items():
        stored = record(ids[name])
        if reason is None:
            assert stored.status == DONE, name
            assert stored.result["label"] == stored.result["top5"][0]["label"]
            assert stored.timings["batch_size"] == 2
            assert stored.model_name == "resnet50" and stored.weights == "random"
            engine = model.get_classifier()
            assert (stored.engine, stored.precision) == (engine.engine, engine.precision)
        else:
            assert stored.status == FAILED, name
            assert reason in stored.error, (name, stored.error)
            assert stored.result is None
        assert stored.completed_at is not None


def test_duplicate_image_reuses_the_earlier_result(
    app: ModuleType, upload: Callable[..., tuple[str, str]], passes: list[int]
) -> None:
    picture = samples.jpeg(seed=21)
    first, first_key = upload(picture)
    app.lambda_handler(sqs_event([s3_notification(first_key, len(picture))]), FakeLambdaContext())
    second, second_key = upload(picture)
    # Two more copies in one batch: one slot in the forward pass.
    other = samples.png(seed=22)
    third, third_key = upload(other)
    fourth, fourth_key = upload(other)
    reply = app.lambda_handler(
        sqs_event([s3_notification(k, None) for k in (second_key, third_key, fourth_key)]),
        FakeLambdaContext(),
    )

    assert failures(reply) == []
    assert passes == [1, 1]  # the second batch infers only the new picture, once
    assert record(second).result == record(first).result
    assert record(second).timings["batch_size"] == 0
    assert record(second).sha256 == record(first).sha256
    assert record(third).result == record(fourth).result
    assert record(third).status == record(fourth).status == DONE


def test_a_result_of_another_engine_or_precision_is_not_reused(
    classifier: model.Classifier, upload: Callable[..., tuple[str, str]]
) -> None:
    picture = samples.jpeg(seed=24)
    other = model.Classifier(
        weights="random",
        engine="tensorflow" if classifier.engine == "openvino" else "openvino",
        precision="f32",
    )
    first, first_key = upload(picture)
    second, second_key = upload(picture)
    third, third_key = upload(picture)
    inference.classify_uploads(
        [inference.UploadedObject(get_settings().upload_bucket, first_key)], other
    )
    inference.classify_uploads(
        [inference.UploadedObject(get_settings().upload_bucket, second_key)], classifier
    )
    inference.classify_uploads(
        [inference.UploadedObject(get_settings().upload_bucket, third_key)], classifier
    )

    assert (record(first).engine, record(second).engine) == (other.engine, classifier.engine)
    assert record(second).timings["batch_size"] == 1  # computed, not the other engine's result
    assert record(third).timings["batch_size"] == 0  # reused: same bytes, same model
    assert inference.image_digest("ab", other.info) != inference.image_digest("ab", classifier.info)


def test_without_redis_a_repeated_image_is_classified_again(
    aws: None,
    redis_down: None,
    app: ModuleType,
    upload: Callable[..., tuple[str, str]],
    passes: list[int],
) -> None:
    picture = samples.jpeg(seed=23)
    first, first_key = upload(picture)
    second, second_key = upload(picture)
    for key in (first_key, second_key):
        reply = app.lambda_handler(sqs_event([s3_notification(key, None)]), FakeLambdaContext())
        assert failures(reply) == []
    assert passes == [1, 1]  # no cache to reuse from: the result is computed again, the same
    assert record(first).result == record(second).result


def test_one_object_twice_in_a_batch_is_classified_once(
    app: ModuleType, upload: Callable[..., tuple[str, str]], passes: list[int]
) -> None:
    picture = samples.png(seed=24)
    prediction_id, key = upload(picture)
    event = sqs_event([s3_notification(key, len(picture))] * 2)
    assert failures(app.lambda_handler(event, FakeLambdaContext())) == []
    assert passes == [1]
    assert record(prediction_id).status == DONE


def test_a_failed_batch_read_retries_every_message(
    app: ModuleType,
    upload: Callable[..., tuple[str, str]],
    passes: list[int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ids_keys = [upload(samples.jpeg(seed=seed)) for seed in (25, 26)]

    def throttled(cls: type, *args: Any, **kwargs: Any) -> list[PredictionRecord]:
        raise ClientError(
            {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow"}},
            "BatchGetItem",
        )

    monkeypatch.setattr(PredictionRecord, "batch_get", classmethod(throttled))
    event = sqs_event([s3_notification(key, None) for _, key in ids_keys])
    assert failures(app.lambda_handler(event, FakeLambdaContext())) == ["message-0", "message-1"]
    monkeypatch.undo()
    assert passes == []
    assert [record(i).status for i, _ in ids_keys] == [PENDING, PENDING]


def test_redis_down_still_yields_a_done_record(
    aws: None,
    redis_down: None,
    app: ModuleType,
    upload: Callable[..., tuple[str, str]],
) -> None:
    picture = samples.webp()
    prediction_id, key = upload(picture)
    reply = app.lambda_handler(sqs_event([s3_notification(key, len(picture))]), FakeLambdaContext())
    assert failures(reply) == []
    assert record(prediction_id).status == DONE


def test_result_is_cached_in_redis_and_announced(
    app: ModuleType, upload: Callable[..., tuple[str, str]], redis_url: str
) -> None:
    picture = samples.png(seed=31)
    prediction_id, key = upload(picture)
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(f"prediction:{prediction_id}")

    app.lambda_handler(sqs_event([s3_notification(key, len(picture))]), FakeLambdaContext())

    cached = json.loads(client.get(f"prediction:{prediction_id}"))
    assert cached["status"] == DONE and cached["user_id"] == USER
    assert cached["result"] == record(prediction_id).result
    assert cached["model"] == model.get_classifier().info
    assert 0 < client.ttl(f"prediction:{prediction_id}") <= get_settings().result_ttl_seconds
    # The first read may only consume the subscription's confirmation.
    messages = [pubsub.get_message(timeout=1) for _ in range(3)]
    assert [m["data"] for m in messages if m is not None] == [DONE]
    pubsub.close()


def test_duplicate_event_yields_one_result(
    app: ModuleType,
    upload: Callable[..., tuple[str, str]],
    passes: list[int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    picture = samples.jpeg(seed=41)
    prediction_id, key = upload(picture)
    event = sqs_event([s3_notification(key, len(picture))])
    stale = record(prediction_id)  # read before the first delivery finishes it

    assert failures(app.lambda_handler(event, FakeLambdaContext())) == []
    first = record(prediction_id)
    # Delivered again: the record is final, nothing is recomputed.
    assert failures(app.lambda_handler(event, FakeLambdaContext())) == []
    assert passes == [1]
    # Delivered again by a racing sandbox that read the record while it was pending: the
    # conditional write refuses to touch the finished result.
    monkeypatch.setattr(PredictionRecord, "batch_get", classmethod(lambda cls, *a, **k: [stale]))
    assert failures(app.lambda_handler(event, FakeLambdaContext())) == []
    monkeypatch.undo()
    final = record(prediction_id)
    assert final.status == DONE
    assert final.completed_at == first.completed_at
    assert final.result == first.result


def test_transient_errors_are_retried_and_leave_the_record_pending(
    app: ModuleType, upload: Callable[..., tuple[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    good = samples.jpeg(seed=51)
    good_id, good_key = upload(good)
    slow_id, slow_key = upload(samples.jpeg(seed=52))
    read_object = storage.read_object

    def throttled(key: str, max_bytes: int, bucket: str | None = None) -> bytes:
        if key == slow_key:
            raise ClientError({"Error": {"Code": "SlowDown", "Message": "slow"}}, "GetObject")
        return read_object(key, max_bytes, bucket)

    monkeypatch.setattr(storage, "read_object", throttled)
    event = sqs_event([s3_notification(good_key, len(good)), s3_notification(slow_key, None)])
    reply = app.lambda_handler(event, FakeLambdaContext())

    assert failures(reply) == ["message-1"]
    assert record(good_id).status == DONE
    assert record(slow_id).status == PENDING


def test_a_crash_in_the_forward_pass_retries_the_whole_batch(
    app: ModuleType,
    upload: Callable[..., tuple[str, str]],
    classifier: model.Classifier,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def crash(pixels: np.ndarray) -> list[model.Prediction]:
        raise MemoryError("out of memory")

    monkeypatch.setattr(classifier, "classify", crash)
    picture = samples.jpeg(seed=61)
    prediction_id, key = upload(picture)
    reply = app.lambda_handler(sqs_event([s3_notification(key, None)]), FakeLambdaContext())
    assert failures(reply) == ["message-0"]
    assert record(prediction_id).status == PENDING


@pytest.mark.parametrize("how", ["queue arn", "redrive attribute"])
def test_dead_letter_delivery_marks_predictions_failed_without_inference(
    how: str,
    app: ModuleType,
    upload: Callable[..., tuple[str, str]],
    passes: list[int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DEAD_LETTER_QUEUE_ARN", DLQ_ARN)
    get_settings.cache_clear()
    pending_id, pending_key = upload(samples.jpeg(seed=71))
    finished_id = uuid.uuid4().hex
    done_prediction(USER, finished_id)
    bodies = [
        s3_notification(pending_key, None),
        s3_notification(storage.upload_key(USER, finished_id), None),
    ]
    if how == "queue arn":
        event = sqs_event(bodies, source_arn=DLQ_ARN)
    else:
        event = sqs_event(bodies, source_arn=DLQ_ARN.replace("InferenceDeadLetterQueue", "q"))
        for message in event["Records"]:
            message["attributes"]["DeadLetterQueueSourceArn"] = QUEUE_ARN

    reply = app.lambda_handler(event, FakeLambdaContext())

    assert failures(reply) == []
    assert passes == []
    assert record(pending_id).status == FAILED
    assert record(pending_id).error == inference.GAVE_UP_REASON
    assert record(finished_id).status == DONE  # never back, never sideways


def test_test_events_foreign_keys_and_unknown_predictions_are_acknowledged(
    app: ModuleType, aws: None, passes: list[int]
) -> None:
    test_event = {"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "b"}
    bodies = [
        test_event,
        s3_notification("somewhere/else.jpg", 10),
        s3_notification(storage.upload_key(USER, uuid.uuid4().hex), 10),
    ]
    event = sqs_event(bodies)
    event["Records"].append({**event["Records"][0], "messageId": "junk", "body": "not json"})
    reply = app.lambda_handler(event, FakeLambdaContext())
    assert failures(reply) == []
    assert passes == []


@pytest.mark.parametrize("encode", [quote_plus, lambda k: quote(k, safe="")])
def test_object_keys_are_url_decoded(
    encode: Callable[[str], str], app: ModuleType, upload: Callable[..., tuple[str, str]]
) -> None:
    picture = samples.png(seed=81)
    prediction_id, key = upload(picture)
    reply = app.lambda_handler(
        sqs_event([s3_notification(encode(key), len(picture))]), FakeLambdaContext()
    )
    assert failures(reply) == []
    assert record(prediction_id).status == DONE


def test_plain_s3_event_is_classified(
    app: ModuleType, upload: Callable[..., tuple[str, str]]
) -> None:
    picture = samples.jpeg(seed=91)
    prediction_id, key = upload(picture)
    reply = app.lambda_handler(s3_notification(key, len(picture)), FakeLambdaContext())
    assert [o["status"] for o in reply["outcomes"]] == [DONE]
    assert record(prediction_id).status == DONE


@pytest.fixture
def sample_event_world(aws: None) -> Iterator[Callable[[dict[str, Any]], list[str]]]:
    """Stores the objects and pending predictions the files in events/ name."""

    def prepare(event: dict[str, Any]) -> list[str]:
        if event["Records"][0].get("eventSource") == "aws:sqs":
            notifications = [json.loads(r["body"]) for r in event["Records"]]
        else:
            notifications = [event]
        ids = []
        s3 = boto3.client("s3")
        for obj in (o for n in notifications for o in inference.uploads_in_notification(n)):
            if obj.bucket not in {b["Name"] for b in s3.list_buckets()["Buckets"]}:
                s3.create_bucket(Bucket=obj.bucket)
            user_id, prediction_id = storage.parse_upload_key(obj.key)
            pending_prediction(user_id, prediction_id)
            s3.put_object(Bucket=obj.bucket, Key=obj.key, Body=samples.jpeg(seed=len(ids)))
            ids.append(prediction_id)
        return ids

    yield prepare


@pytest.mark.parametrize("name", ["s3-put.json", "sqs-s3.json"])
def test_sample_events_are_classified(
    name: str,
    app: ModuleType,
    sample_event_world: Callable[[dict[str, Any]], list[str]],
    passes: list[int],
) -> None:
    event = json.loads((EVENTS / name).read_text())
    ids = sample_event_world(event)
    reply = app.lambda_handler(event, FakeLambdaContext())
    if "batchItemFailures" in reply:
        assert failures(reply) == []
    assert passes == [len(ids)]
    assert [record(i).status for i in ids] == [DONE] * len(ids)


# --- the container image ---------------------------------------------------------------


def requirement_names(path: Path) -> set[str]:
    names = set()
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            names.add(re.split(r"[\[<>=~!; ]", line, maxsplit=1)[0].lower().replace("_", "-"))
    return names


def third_party_imports(paths: list[Path]) -> set[str]:
    """Top-level modules imported by ``paths`` that are neither stdlib nor imgclf."""
    found = set()
    for path in paths:
        for match in re.finditer(
            r"^\s*(?:from|import)\s+([a-zA-Z_][\w]*)", path.read_text(), re.MULTILINE
        ):
            found.add(match.group(1))
    return {m for m in found if m not in sys.stdlib_module_names and m not in {"imgclf"}}


def test_dockerfile_matches_the_template_and_the_code(template: dict[str, Any]) -> None:
    resource = template["Resources"]["InferenceFunction"]
    assert resource["Properties"]["ImageConfig"]["Command"] == dockerfile_command()
    assert resource["Metadata"]["Dockerfile"] == "functions/inference/Dockerfile"
    assert (
        ROOT / resource["Metadata"]["DockerContext"] / "functions/inference/Dockerfile"
    ).is_file()

    text = DOCKERFILE.read_text()
    stages = re.findall(r"^FROM public\.ecr\.aws/lambda/python:3\.11\b", text, re.MULTILINE)
    assert len(stages) == 2  # build, then runtime
    # Every COPY source exists in the build context (the repository root).
    for sources in re.findall(r"^COPY\s+(?!--from)(.+)\s+\S+\s*$", text, re.MULTILINE):
        for source in sources.split():
            assert (ROOT / source).exists(), source
    # The handler the CMD names is copied into the task root and defines lambda_handler.
    module_name, function = dockerfile_command()[0].rsplit(".", 1)
    assert f"COPY functions/inference/{module_name}.py ${{LAMBDA_TASK_ROOT}}/" in text
    assert f"def {function}(" in (FUNCTION_DIR / f"{module_name}.py").read_text()
    assert "COPY layers/common/python/imgclf ${LAMBDA_TASK_ROOT}/imgclf" in text
    # Weights are downloaded and converted to IR in the build stage; the runtime stage takes
    # the IR and installs no TensorFlow.
    build, runtime = text.split("\nFROM ", 1)[1].split("\nFROM ")
    assert "ResNet50(weights='imagenet')" in build
    assert "model.Classifier(weights='imagenet', engine='openvino')" in build
    assert "requirements-build.txt" in build and "requirements-build.txt" not in runtime
    assert "COPY --from=build /opt/keras/models /opt/keras/models" in runtime
    assert "ENV KERAS_HOME=/opt/keras" in build and "ENV KERAS_HOME=/opt/keras" in runtime
    runtime_packages = requirement_names(FUNCTION_DIR / "requirements.txt")
    assert "openvino" in runtime_packages
    assert not {"tensorflow", "tensorflow-cpu", "keras"} & runtime_packages


def test_requirements_cover_what_the_inference_code_imports() -> None:
    layer = ROOT / "layers/common/requirements.txt"
    function = FUNCTION_DIR / "requirements.txt"
    text = DOCKERFILE.read_text()
    assert (
        "layers/common/requirements.txt" in text and "functions/inference/requirements.txt" in text
    )
    build = FUNCTION_DIR / "requirements-build.txt"
    installed = requirement_names(layer) | requirement_names(function) | requirement_names(build)
    package = ROOT / "layers/common/python/imgclf"
    modules = third_party_imports([FUNCTION_DIR / "app.py", *package.glob("*.py")])
    # Import name -> distribution; boto3/botocore come with the Lambda base image.
    distribution = {
        "PIL": "pillow",
        "jwt": "pyjwt",
        "argon2": "argon2-cffi",
        "aws_lambda_powertools": "aws-lambda-powertools",
        "tensorflow": "tensorflow-cpu",
    }
    provided = {"boto3", "botocore"}
    missing = {
        m
        for m in modules - provided
        if distribution.get(m, m).lower().replace("_", "-") not in installed
    }
    assert not missing, f"imported but not in any requirements file: {sorted(missing)}"
    # The pins the tests ran with.
    assert "tensorflow-cpu==2.21.0" in build.read_text()
    assert f"openvino=={openvino.__version__.split('-')[0]}" in function.read_text()


def test_an_event_for_an_expired_prediction_leaves_it_expired(
    app: ModuleType, upload: Callable[..., tuple[str, str]], passes: list[int]
) -> None:
    # The image came after a reader had ended the prediction expired (an emulator that does
    # not enforce the POST policy's expiry): the record stays as every reader saw it.
    picture = samples.jpeg(seed=61)
    prediction_id, key = upload(picture)
    record(prediction_id).update(
        actions=[
            PredictionRecord.status.set("expired"),
            PredictionRecord.error.set("the image was never uploaded"),
        ]
    )
    reply = app.lambda_handler(sqs_event([s3_notification(key, len(picture))]), FakeLambdaContext())
    assert failures(reply) == []
    assert passes == []
    final = record(prediction_id)
    assert (final.status, final.error, final.result) == (
        "expired",
        "the image was never uploaded",
        None,
    )


def test_a_finished_prediction_loses_its_removal_time(
    app: ModuleType, upload: Callable[..., tuple[str, str]]
) -> None:
    # POST /uploads sets expires_at (TTL) for an image that may never come; a result is kept.
    picture = samples.jpeg(seed=62)
    prediction_id, key = upload(picture)
    record(prediction_id).update(actions=[PredictionRecord.expires_at.set(timedelta(days=8))])
    app.lambda_handler(sqs_event([s3_notification(key, len(picture))]), FakeLambdaContext())
    final = record(prediction_id)
    assert final.status == DONE
    assert final.expires_at is None
