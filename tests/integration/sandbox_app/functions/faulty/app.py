"""Misbehaves on purpose, by path: raises, replies malformed, runs too long, or exits."""

import os
import time


def lambda_handler(event, context):
    """Each path is one way for a function to fail."""
    path = event["path"]
    if path == "/crash":
        raise RuntimeError("boom")
    if path == "/malformed":
        return {"statusCode": 200, "body": {"not": "a string"}}
    if path == "/slow":
        time.sleep(30)
    if path == "/exit":
        os._exit(3)
    return {"statusCode": 200, "body": "unreachable"}
