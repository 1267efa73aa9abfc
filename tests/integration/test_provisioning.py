"""Provisioning reads template.yaml, and nothing else names the resources.

One test checks what provisioning builds (keys, GSIs, TTL, redrive, the S3 -> SQS
notification on uploads/) and that running it twice changes nothing; the other renames
tables in a copy of the template and runs the whole app on it with no code change.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote_plus

import boto3
import pytest
from localcloud import services
from localcloud.provision import aws_clients, endpoint_account, provision
from localcloud.template import Template

from tests.integration.conftest import ROOT, start_emulator, start_local_cloud
from tests.integration.test_local_cloud import assert_done, png, upload, wait_final

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def moto_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("moto") / "moto.log"


@pytest.fixture(scope="module")
def moto_endpoint(moto_log: Path) -> Iterator[str]:
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    port = services.free_port()
    moto = services.moto_server(port, moto_log)
    yield f"http://127.0.0.1:{port}"
    moto.stop()


@pytest.fixture(scope="module")
def emulator_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The run's emulator (LocalStack or moto) alone: its endpoint."""
    process, endpoint = start_emulator(tmp_path_factory.mktemp("emulator"))
    yield endpoint
    process.stop()


def test_moto_logs_no_line_per_request(moto_endpoint: str, moto_log: Path) -> None:
    sqs = aws_clients(moto_endpoint, "us-east-1")["sqs"]
    for _ in range(3):
        sqs.list_queues()
    with pytest.raises(sqs.exceptions.QueueDoesNotExist):
        sqs.get_queue_url(QueueName="no-such-queue")
    log = moto_log.read_text()
    assert "POST / HTTP/1.1" not in log
    assert "Running on" not in log


def test_provisioning_builds_what_the_template_declares_idempotently(emulator_endpoint):
    account = endpoint_account(emulator_endpoint, "us-east-1")
    template = Template(
        ROOT / "template.yaml",
        account_id=account,
        sqs_endpoint=emulator_endpoint,
        dynamic_references=lambda service, ref: "unused",
    )
    clients = aws_clients(emulator_endpoint, "us-east-1")
    first = provision(template, clients)
    second = provision(template, clients)  # idempotent: same names, no error
    assert first == second
    assert set(first.tables) == {"UsersTable", "PredictionsTable", "FeedbackTable"}

    dynamodb = clients["dynamodb"]
    table = dynamodb.describe_table(TableName=first.tables["PredictionsTable"])["Table"]
    assert table["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    indexes = {i["IndexName"]: i["KeySchema"] for i in table["GlobalSecondaryIndexes"]}
    assert indexes["by-user"] == [
        {"AttributeName": "user_id", "KeyType": "HASH"},
        {"AttributeName": "created_at", "KeyType": "RANGE"},
    ]
    assert set(indexes) == {"by-user"}
    ttl = dynamodb.describe_time_to_live(TableName=first.tables["PredictionsTable"])
    assert ttl["TimeToLiveDescription"]["AttributeName"] == "expires_at"
    feedback = dynamodb.describe_table(TableName=first.tables["FeedbackTable"])["Table"]
    assert [k["KeyType"] for k in feedback["KeySchema"]] == ["HASH", "RANGE"]

    sqs = clients["sqs"]
    attributes = sqs.get_queue_attributes(
        QueueUrl=first.queues["InferenceQueue"], AttributeNames=["All"]
    )["Attributes"]
    assert attributes["VisibilityTimeout"] == "720"
    assert json.loads(attributes["RedrivePolicy"]) == {
        "deadLetterTargetArn": template.queue_arn("InferenceDeadLetterQueue"),
        "maxReceiveCount": 3,
    }
    assert "s3.amazonaws.com" in attributes["Policy"]

    s3 = clients["s3"]
    bucket = first.buckets["UploadBucket"]
    assert bucket == f"imgclf-uploads-{account}-us-east-1"
    [queue_config] = s3.get_bucket_notification_configuration(Bucket=bucket)["QueueConfigurations"]
    assert queue_config["QueueArn"] == template.queue_arn("InferenceQueue")
    assert queue_config["Events"] == ["s3:ObjectCreated:*"]
    rules = queue_config["Filter"]["Key"]["FilterRules"]
    assert [(r["Name"].lower(), r["Value"]) for r in rules] == [("prefix", "uploads/")]
    assert s3.get_bucket_cors(Bucket=bucket)["CORSRules"][0]["AllowedMethods"] == ["POST"]

    # The notification really fires for uploads/ and only for uploads/.
    s3.put_object(Bucket=bucket, Key="elsewhere/x", Body=b"x")
    s3.put_object(Bucket=bucket, Key="uploads/u/p", Body=b"x")
    bodies = []
    for _ in range(3):
        received = sqs.receive_message(
            QueueUrl=first.queues["InferenceQueue"], MaxNumberOfMessages=10, WaitTimeSeconds=1
        )
        bodies += [json.loads(m["Body"]) for m in received.get("Messages", [])]
    # Event keys are URL-encoded (moto also encodes "/"); consumers unquote_plus them.
    keys = [unquote_plus(r["s3"]["object"]["key"]) for b in bodies for r in b.get("Records", [])]
    assert keys == ["uploads/u/p"]


def renamed_template(tmp: Path) -> Path:
    """template.yaml with PredictionsTable renamed (logical id and every !Ref) and the
    Users table given an explicit name."""
    text = (ROOT / "template.yaml").read_text()
    assert text.count("PredictionsTable") >= 3
    text = text.replace("PredictionsTable", "ResultsTable")
    users = "  UsersTable:\n    Type: AWS::DynamoDB::Table\n    Properties:\n"
    assert users in text
    text = text.replace(users, users + '      TableName: !Sub "${AWS::StackName}-people"\n')
    path = tmp / "template.yaml"
    path.write_text(text)
    return path


def test_a_renamed_table_needs_no_code_change(tmp_path):
    template = renamed_template(tmp_path)
    cloud = start_local_cloud(tmp_path / "cloud", template=template)
    try:
        assert cloud.env["PREDICTIONS_TABLE"] == "imgclf-ResultsTable"
        assert cloud.env["USERS_TABLE"] == "imgclf-people"
        headers = cloud.login()  # the demo user lives in the renamed Users table
        prediction_id = upload(cloud, headers, png(900))
        assert_done(wait_final(cloud, headers, prediction_id))

        dynamodb = boto3.client(
            "dynamodb", endpoint_url=cloud.env["AWS_ENDPOINT_URL"], region_name="us-east-1"
        )
        tables = dynamodb.list_tables()["TableNames"]
        assert "imgclf-ResultsTable" in tables and "imgclf-people" in tables
        assert "imgclf-PredictionsTable" not in tables
        item = dynamodb.get_item(TableName="imgclf-ResultsTable", Key={"id": {"S": prediction_id}})[
            "Item"
        ]
        assert item["status"]["S"] == "done"
    finally:
        cloud.stop()
