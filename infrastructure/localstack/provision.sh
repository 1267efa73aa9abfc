#!/usr/bin/env sh
# LocalStack init for docker-compose.yml: wait until LocalStack's S3, SQS, DynamoDB and STS are
# up, then create the buckets, tables and queues declared in template.yaml (the same
# provisioning code as `make up`, so there is no second list of resources).
set -eu
endpoint="${AWS_ENDPOINT_URL:-http://127.0.0.1:4566}"
tries=0
until python -c "import sys, urllib.request, json; \
h = json.load(urllib.request.urlopen('$endpoint/_localstack/health')); \
sys.exit(0 if all(h['services'].get(s) in ('available', 'running') for s in ('s3', 'sqs', 'dynamodb', 'sts')) else 1)" 2>/dev/null
do
  tries=$((tries + 1))
  [ "$tries" -lt 120 ] || { echo "provision: LocalStack not ready at $endpoint" >&2; exit 1; }
  sleep 1
done
exec python -m localcloud provision --aws-endpoint "$endpoint"
