"""The account comes from the endpoint, never from a constant.

LocalStack puts resources in the account a 12-digit access key names, moto in its own: the
template's ARNs (the S3 -> SQS notification's queue, the bucket name) must use whichever
account the endpoint says, or S3 refuses the notification. A bucket name already taken by
another account must stop provisioning, not leave the stack half made.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from localcloud import services
from localcloud.provision import ProvisioningError, aws_clients, endpoint_account, provision
from localcloud.template import Template

from tests.integration.conftest import ROOT

pytestmark = pytest.mark.integration

OURS = "111122223333"
THEIRS = "444455556666"


@pytest.fixture(scope="module")
def localstack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A bare LocalStack (host mode) on a free port: its endpoint."""
    root = tmp_path_factory.mktemp("localstack")
    port = services.free_port()
    python = ROOT / ".venv-localstack" / "bin" / "python"
    process = services.localstack_server(port, python, root, root / "localstack.log")
    yield f"http://127.0.0.1:{port}"
    process.stop()


def template_for(endpoint: str, stack_name: str = "imgclf") -> Template:
    """template.yaml resolved in the account the endpoint names for the current key."""
    return Template(
        ROOT / "template.yaml",
        code_root=ROOT,
        stack_name=stack_name,
        account_id=endpoint_account(endpoint, "us-east-1"),
        sqs_endpoint=endpoint,
        dynamic_references=lambda service, reference: "unused",
    )


def act_as(monkeypatch: pytest.MonkeyPatch, account: str) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", account)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")


def test_the_stack_is_made_in_the_account_the_endpoint_names(localstack, monkeypatch):
    act_as(monkeypatch, OURS)
    template = template_for(localstack)
    assert template.account_id == OURS
    clients = aws_clients(localstack, "us-east-1")
    done = provision(template, clients)

    bucket = done.buckets["UploadBucket"]
    assert OURS in bucket
    notification = clients["s3"].get_bucket_notification_configuration(Bucket=bucket)
    [queue] = notification["QueueConfigurations"]
    queue_url = done.queues["InferenceQueue"]
    assert f"/{OURS}/" in queue_url
    assert queue["QueueArn"] == f"arn:aws:sqs:us-east-1:{OURS}:{queue_url.rsplit('/', 1)[1]}"
    table = clients["dynamodb"].describe_table(TableName=done.tables["PredictionsTable"])
    assert table["Table"]["TableArn"].split(":")[4] == OURS


def test_a_bucket_name_taken_by_another_account_fails_provisioning(localstack, monkeypatch):
    # A stack of its own, whose upload bucket name the other account takes first.
    act_as(monkeypatch, OURS)
    stack = template_for(localstack, stack_name="imgclf-taken")
    name = stack.physical_name("UploadBucket")
    act_as(monkeypatch, THEIRS)
    aws_clients(localstack, "us-east-1")["s3"].create_bucket(Bucket=name)

    act_as(monkeypatch, OURS)
    for _ in range(2):  # a rerun fails the same way: nothing is taken as ours
        with pytest.raises(ProvisioningError) as refused:
            provision(stack, aws_clients(localstack, "us-east-1"))
        message = str(refused.value)
        assert name in message and "another account" in message


def test_moto_names_its_own_account(tmp_path: Path, monkeypatch):
    act_as(monkeypatch, OURS)  # moto keeps its own account whatever the key
    port = services.free_port()
    moto = services.moto_server(port, tmp_path / "moto.log")
    try:
        assert endpoint_account(f"http://127.0.0.1:{port}", "us-east-1") == "123456789012"
    finally:
        moto.stop()
