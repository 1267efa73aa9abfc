"""Consumes SQS batches: records every delivery, reports bodies {"fail": true} as failed."""

import json
import os


def lambda_handler(event, context):
    """Write one line per delivery to $OUT_DIR/deliveries.jsonl; fail what asks to fail."""
    records = event["Records"]
    failures = []
    with open(os.path.join(os.environ["OUT_DIR"], "deliveries.jsonl"), "a") as out:
        for record in records:
            body = json.loads(record["body"])
            out.write(
                json.dumps({"id": body["id"], "batch": len(records), "record": record}) + "\n"
            )
            if body.get("fail"):
                failures.append({"itemIdentifier": record["messageId"]})
    return {"batchItemFailures": failures}
