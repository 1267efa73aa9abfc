"""Creates the stack's buckets, tables and queues from template.yaml, idempotently.

Works against any endpoint (moto, LocalStack, a real account): only the template says what
exists, so renaming a table in the template needs no change here.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from localcloud.template import Template

log = logging.getLogger("localcloud.provision")


class ProvisioningError(RuntimeError):
    """The template's resources cannot be made as declared (e.g. a name taken by another
    account)."""


@dataclass
class Provisioned:
    """What provisioning created or found, by logical id."""

    buckets: dict[str, str] = field(default_factory=dict)
    tables: dict[str, str] = field(default_factory=dict)
    queues: dict[str, str] = field(default_factory=dict)  # logical id -> queue URL


def aws_clients(endpoint_url: str | None, region: str) -> dict[str, Any]:
    """boto3 clients for S3, SQS and DynamoDB at an endpoint (None: the real AWS)."""
    session = boto3.session.Session(region_name=region)
    s3_config = Config(s3={"addressing_style": "path"}) if endpoint_url else None
    return {
        "s3": session.client("s3", endpoint_url=endpoint_url, config=s3_config),
        "sqs": session.client("sqs", endpoint_url=endpoint_url),
        "dynamodb": session.client("dynamodb", endpoint_url=endpoint_url),
    }


def endpoint_account(endpoint_url: str | None, region: str) -> str:
    """The account the current credentials act in at this endpoint (STS GetCallerIdentity):
    moto's own, the one LocalStack takes from a 12-digit access key (else 000000000000), or
    the real one on AWS."""
    session = boto3.session.Session(region_name=region)
    return session.client("sts", endpoint_url=endpoint_url).get_caller_identity()["Account"]


def provision(
    template: Template,
    clients: dict[str, Any],
    *,
    max_visibility_timeout: int | None = None,
) -> Provisioned:
    """Create (or update) every queue, table and bucket the template declares.

    ``max_visibility_timeout`` caps the queues' VisibilityTimeout locally, so that messages
    of a crashed worker come back in seconds instead of the template's minutes (the poller
    keeps in-flight messages hidden while a batch runs, so a short value is safe).
    """
    done = Provisioned()
    for logical_id in _queues_in_dependency_order(template):
        done.queues[logical_id] = _queue(
            template, clients["sqs"], logical_id, max_visibility_timeout
        )
    for logical_id in template.resources_of_type("AWS::SQS::QueuePolicy"):
        props = template.properties(logical_id)
        for queue_url in props["Queues"]:
            url = _local_queue_url(clients["sqs"], queue_url)
            clients["sqs"].set_queue_attributes(
                QueueUrl=url, Attributes={"Policy": json.dumps(props["PolicyDocument"])}
            )
    for logical_id in template.resources_of_type("AWS::DynamoDB::Table"):
        done.tables[logical_id] = _table(template, clients["dynamodb"], logical_id)
    for logical_id in template.resources_of_type("AWS::S3::Bucket"):
        done.buckets[logical_id] = _bucket(template, clients["s3"], logical_id)
    return done


def _queues_in_dependency_order(template: Template) -> list[str]:
    # A queue whose RedrivePolicy names a dead-letter queue needs that queue first.
    queues = template.resources_of_type("AWS::SQS::Queue")
    by_arn = {template.queue_arn(logical_id): logical_id for logical_id in queues}
    ordered: list[str] = []

    def visit(logical_id: str, seen: tuple[str, ...] = ()) -> None:
        if logical_id in ordered or logical_id in seen:
            return
        redrive = template.properties(logical_id).get("RedrivePolicy") or {}
        target = by_arn.get(redrive.get("deadLetterTargetArn", ""))
        if target:
            visit(target, (*seen, logical_id))
        ordered.append(logical_id)

    for logical_id in queues:
        visit(logical_id)
    return ordered


def _local_queue_url(sqs: Any, template_url: str) -> str:
    # The template's URL carries the configured endpoint; ask the service for its own.
    return sqs.get_queue_url(QueueName=template_url.rsplit("/", 1)[-1])["QueueUrl"]


_QUEUE_ATTRIBUTES = (
    "DelaySeconds",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "ReceiveMessageWaitTimeSeconds",
    "VisibilityTimeout",
    "FifoQueue",
    "ContentBasedDeduplication",
    "KmsMasterKeyId",
    "SqsManagedSseEnabled",
)


def _queue(template: Template, sqs: Any, logical_id: str, max_visibility: int | None) -> str:
    props = template.properties(logical_id)
    name = template.physical_name(logical_id)
    attributes = {key: _attribute(props[key]) for key in _QUEUE_ATTRIBUTES if key in props}
    if max_visibility is not None:
        visibility = int(props.get("VisibilityTimeout", 30))
        attributes["VisibilityTimeout"] = str(min(visibility, max_visibility))
    if "RedrivePolicy" in props:
        redrive = props["RedrivePolicy"]
        attributes["RedrivePolicy"] = json.dumps(
            {
                "deadLetterTargetArn": redrive["deadLetterTargetArn"],
                "maxReceiveCount": int(redrive["maxReceiveCount"]),
            }
        )
    try:
        url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    except ClientError as error:
        if "QueueAlreadyExists" not in error.response["Error"]["Code"]:
            raise
        # Exists with other attributes: bring it in line with the template.
        url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
        changeable = {k: v for k, v in attributes.items() if k != "FifoQueue"}
        sqs.set_queue_attributes(QueueUrl=url, Attributes=changeable)
    log.info("queue %s -> %s", logical_id, url)
    return url


def _attribute(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _table(template: Template, dynamodb: Any, logical_id: str) -> str:
    props = template.properties(logical_id)
    name = template.physical_name(logical_id)
    on_demand = props.get("BillingMode", "PROVISIONED") == "PAY_PER_REQUEST"
    request: dict[str, Any] = {
        "TableName": name,
        "AttributeDefinitions": props["AttributeDefinitions"],
        "KeySchema": props["KeySchema"],
        "BillingMode": "PAY_PER_REQUEST" if on_demand else "PROVISIONED",
    }
    if not on_demand:
        request["ProvisionedThroughput"] = _throughput(props.get("ProvisionedThroughput"))
    for key in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
        if props.get(key):
            indexes = [dict(index) for index in props[key]]
            if key == "GlobalSecondaryIndexes" and not on_demand:
                for index in indexes:
                    index["ProvisionedThroughput"] = _throughput(index.get("ProvisionedThroughput"))
            request[key] = indexes
    if props.get("StreamSpecification"):
        request["StreamSpecification"] = {"StreamEnabled": True, **props["StreamSpecification"]}
    try:
        dynamodb.create_table(**request)
        dynamodb.get_waiter("table_exists").wait(
            TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
        )
    except ClientError as error:
        if error.response["Error"]["Code"] != "ResourceInUseException":
            raise
    ttl = props.get("TimeToLiveSpecification")
    if ttl and ttl.get("Enabled"):
        current = dynamodb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
        if current.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
            dynamodb.update_time_to_live(
                TableName=name,
                TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl["AttributeName"]},
            )
    log.info("table %s -> %s", logical_id, name)
    return name


def _throughput(value: dict | None) -> dict:
    value = value or {}
    return {
        "ReadCapacityUnits": int(value.get("ReadCapacityUnits", 5)),
        "WriteCapacityUnits": int(value.get("WriteCapacityUnits", 5)),
    }


def _bucket(template: Template, s3: Any, logical_id: str) -> str:
    props = template.properties(logical_id)
    name = template.physical_name(logical_id)
    request: dict[str, Any] = {"Bucket": name}
    if template.region != "us-east-1":
        request["CreateBucketConfiguration"] = {"LocationConstraint": template.region}
    try:
        s3.create_bucket(**request)
    except ClientError as error:
        code = error.response["Error"]["Code"]
        if code == "BucketAlreadyExists":
            # Bucket names are global: this one is another account's, and going on would
            # leave the stack half made (its notification, CORS and lifecycle refused).
            raise ProvisioningError(
                f"bucket {name} ({logical_id}) already exists and belongs to another account, "
                f"not to {template.account_id}: delete it there, or deploy under another "
                "stack name"
            ) from error
        if code != "BucketAlreadyOwnedByYou":
            raise
    if "PublicAccessBlockConfiguration" in props:
        s3.put_public_access_block(
            Bucket=name, PublicAccessBlockConfiguration=props["PublicAccessBlockConfiguration"]
        )
    if "BucketEncryption" in props:
        s3.put_bucket_encryption(
            Bucket=name,
            ServerSideEncryptionConfiguration={
                "Rules": [
                    {"ApplyServerSideEncryptionByDefault": rule["ServerSideEncryptionByDefault"]}
                    for rule in props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
                ]
            },
        )
    if "CorsConfiguration" in props:
        s3.put_bucket_cors(
            Bucket=name,
            CORSConfiguration={
                "CORSRules": [_cors_rule(r) for r in props["CorsConfiguration"]["CorsRules"]]
            },
        )
    if "LifecycleConfiguration" in props:
        s3.put_bucket_lifecycle_configuration(
            Bucket=name,
            LifecycleConfiguration={
                "Rules": [_lifecycle_rule(r) for r in props["LifecycleConfiguration"]["Rules"]]
            },
        )
    if "NotificationConfiguration" in props:
        s3.put_bucket_notification_configuration(
            Bucket=name,
            NotificationConfiguration=_notifications(props["NotificationConfiguration"]),
        )
    log.info("bucket %s -> %s", logical_id, name)
    return name


def _cors_rule(rule: dict) -> dict:
    out = {"AllowedMethods": rule["AllowedMethods"], "AllowedOrigins": rule["AllowedOrigins"]}
    for source, target in (
        ("AllowedHeaders", "AllowedHeaders"),
        ("ExposedHeaders", "ExposeHeaders"),
        ("MaxAge", "MaxAgeSeconds"),
        ("Id", "ID"),
    ):
        if source in rule:
            out[target] = rule[source]
    return out


def _lifecycle_rule(rule: dict) -> dict:
    out: dict[str, Any] = {"Status": rule["Status"]}
    if "Id" in rule:
        out["ID"] = rule["Id"]
    out["Filter"] = {"Prefix": rule.get("Prefix", "")}
    if "ExpirationInDays" in rule:
        out["Expiration"] = {"Days": int(rule["ExpirationInDays"])}
    if "AbortIncompleteMultipartUpload" in rule:
        days = rule["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"]
        out["AbortIncompleteMultipartUpload"] = {"DaysAfterInitiation": int(days)}
    return out


def _notification_filter(value: dict | None) -> dict:
    rules = ((value or {}).get("S3Key") or {}).get("Rules") or []
    if not rules:
        return {}
    return {
        "Filter": {
            "Key": {"FilterRules": [{"Name": r["Name"], "Value": r["Value"]} for r in rules]}
        }
    }


def _notifications(config: dict) -> dict:
    out: dict[str, list] = {}
    for item in config.get("QueueConfigurations") or []:
        out.setdefault("QueueConfigurations", []).append(
            {
                "QueueArn": item["Queue"],
                "Events": [item["Event"]],
                **_notification_filter(item.get("Filter")),
            }
        )
    for item in config.get("TopicConfigurations") or []:
        out.setdefault("TopicConfigurations", []).append(
            {
                "TopicArn": item["Topic"],
                "Events": [item["Event"]],
                **_notification_filter(item.get("Filter")),
            }
        )
    for item in config.get("LambdaConfigurations") or []:
        out.setdefault("LambdaFunctionConfigurations", []).append(
            {
                "LambdaFunctionArn": item["Function"],
                "Events": [item["Event"]],
                **_notification_filter(item.get("Filter")),
            }
        )
    return out
