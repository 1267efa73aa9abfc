"""Replies with the event it got, its process id and how many events this process served."""

import json
import os
import threading

COLD_STARTS = 1  # module import = the sandbox's cold start
served = 0
active = 0
lock = threading.Lock()


def lambda_handler(event, context):
    """Echo the event; count concurrent events in this process (must never exceed 1)."""
    global served, active
    with lock:
        active += 1
        served += 1
        concurrent = active
    try:
        if (event.get("queryStringParameters") or {}).get("sleep"):
            import time

            time.sleep(float(event["queryStringParameters"]["sleep"]))
        reply = {
            "event": event,
            "pid": os.getpid(),
            "served": served,
            "concurrent": concurrent,
            "cold_starts": COLD_STARTS,
            "remaining_ms": context.get_remaining_time_in_millis(),
            "function_name": context.function_name,
            "env": {k: os.environ.get(k) for k in ("OUT_DIR", "STACK_QUEUE", "AWS_REGION")},
        }
        if (event.get("queryStringParameters") or {}).get("binary"):
            return {
                "statusCode": 200,
                "headers": {"Content-Type": "application/octet-stream"},
                "body": event.get("body") or "",
                "isBase64Encoded": True,
            }
        return {
            "statusCode": 200,
            "headers": {"Content-Type": "application/json", "X-Single": "one"},
            "multiValueHeaders": {"X-Multi": ["a", "b"]},
            "body": json.dumps(reply),
        }
    finally:
        with lock:
            active -= 1
