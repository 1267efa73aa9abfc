"""LocalStack's DynamoDB API served by the moto backend that LocalStack itself bundles.

LocalStack's own DynamoDB provider forwards every call to Amazon's DynamoDB Local, a Java
jar under the vendor's own licence that LocalStack downloads (with a JDK) at run time. This
provider answers the same API in LocalStack's process instead, the way LocalStack serves
STS and other moto-backed services: no Java, no download, nothing outside PyPI.
"""

from localstack.aws.api.dynamodb import DynamodbApi
from localstack.services.plugins import Service, aws_provider


class MotoDynamoDB(DynamodbApi):
    """No handler of its own: every operation falls through to moto."""

    service = "dynamodb"


@aws_provider(api="dynamodb", name="moto")
def dynamodb_moto() -> Service:
    """The provider LocalStack loads for PROVIDER_OVERRIDE_DYNAMODB=moto."""
    from localstack.services.moto import MotoFallbackDispatcher

    return Service.for_provider(MotoDynamoDB(), dispatch_table_factory=MotoFallbackDispatcher)
