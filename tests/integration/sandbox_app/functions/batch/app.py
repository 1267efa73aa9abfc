"""Consumes SQS batches: records every delivery, reports bodies {"fail": true} as failed.

A body {"sleep": s} makes the batch take s seconds, and INIT_SLEEP (seconds, set only by
tests) slows the cold start, so tests can see batches and warm starts overlap.
"""

import json
import os
import time

time.sleep(float(os.environ.get("INIT_SLEEP", "0")))


def lambda_handler(event, context):
    """Write one line per delivery to $OUT_DIR/deliveries.jsonl; fail what asks to fail."""
    records = event["Records"]
    bodies = [json.loads(record["body"]) for record in records]
    started = time.time()
    time.sleep(max((float(body.get("sleep", 0)) for body in bodies), default=0))
    ended = time.time()
    failures = []
    with open(os.path.join(os.environ["OUT_DIR"], "deliveries.jsonl"), "a") as out:
        for record, body in zip(records, bodies, strict=True):
            line = {
                "id": body["id"],
                "batch": len(records),
                "record": record,
                "pid": os.getpid(),
                "started": started,
                "ended": ended,
            }
            out.write(json.dumps(line) + "\n")
            if body.get("fail"):
                failures.append({"itemIdentifier": record["messageId"]})
    return {"batchItemFailures": failures}
