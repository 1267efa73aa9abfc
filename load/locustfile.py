"""Locust scenarios for imgclf: users who log in once, classify images and read their results.

Run against the local gateway (or any deployment of the API):

    locust -f load/locustfile.py --host http://127.0.0.1:3000

A user logs in once (on_start) and then mixes: classify (POST /uploads, POST the image to the
pre-signed URL, long-poll GET /predictions/{id}?wait=N until the result), list predictions,
get one prediction, send feedback. Each classify is also recorded end to end as `classify e2e`.

Environment (all optional):
  LOAD_ACCOUNTS                 "email:password,..." accounts the users take in turn
                                (default: the local cloud's demo user admin@example.com)
  LOAD_WAIT_MIN / LOAD_WAIT_MAX think time between tasks in seconds (default 0.5 / 1.5)
  LOAD_POLL_WAIT                seconds per long-poll request (default 20, the API's maximum)
  LOAD_RESULT_DEADLINE          seconds a classify may wait for its result (default 120)
  LOAD_MEASURE_SECONDS          when set: reset the stats once every user has logged in, then
                                measure this many seconds and stop (steady state, without the
                                ramp-up's logins; those are kept in the ledger)
  LOAD_LEDGER                   a JSON file to write at the end: every upload with its owner's
                                token, every result seen, failed requests and login times of
                                the whole run, so a runner can prove nothing failed or was lost
"""

from __future__ import annotations

import itertools
import json
import os
import random
import resource
import time
import uuid
from collections import deque
from pathlib import Path

import gevent
from locust import FastHttpUser, between, events, task

from load.images import generate_images, unique_variant

ACCOUNTS = [
    tuple(pair.split(":", 1))
    for pair in os.environ.get("LOAD_ACCOUNTS", "admin@example.com:admin").split(",")
    if pair
]
WAIT_MIN = float(os.environ.get("LOAD_WAIT_MIN", "0.5"))
WAIT_MAX = float(os.environ.get("LOAD_WAIT_MAX", "1.5"))
POLL_WAIT = int(os.environ.get("LOAD_POLL_WAIT", "20"))
RESULT_DEADLINE = float(os.environ.get("LOAD_RESULT_DEADLINE", "120"))
MEASURE_SECONDS = float(os.environ.get("LOAD_MEASURE_SECONDS", "0"))
FINAL_STATUSES = ("done", "failed")
LOGIN = "POST /auth/login"

IMAGES = generate_images()

_next_account = itertools.count()
# Uploads accepted by S3 (prediction id -> owner's token) and final results seen by the users.
UPLOADED: dict[str, str] = {}
FINISHED: dict[str, str] = {}
# Over the whole run, ramp-up included: failed requests by name, login times, when the
# measured window started.
FAILED: dict[str, int] = {}
LOGIN_MS: list[float] = []
RUN: dict[str, float] = {"logged_in": 0, "measure_started": 0.0}


def multipart_form(fields: dict[str, str], filename: str, content_type: str, data: bytes):
    """Encode a browser-style multipart/form-data body: the policy fields first, the file last."""
    boundary = uuid.uuid4().hex
    parts = []
    for name, value in fields.items():
        header = f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
        parts.append(f"{header}{value}\r\n".encode())
    parts.append(
        (
            f"--{boundary}\r\n"
            f'Content-Disposition: form-data; name="file"; filename="{filename}"\r\n'
            f"Content-Type: {content_type}\r\n\r\n"
        ).encode()
        + data
        + b"\r\n"
    )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


class ClassifierUser(FastHttpUser):
    """A person using imgclf: mostly classifying, sometimes browsing results and correcting them."""

    wait_time = between(WAIT_MIN, WAIT_MAX)
    # Long-polls hold a connection for up to POLL_WAIT seconds, plus the gateway's own queueing.
    network_timeout = POLL_WAIT + 40.0
    connection_timeout = 30.0

    def on_start(self) -> None:
        """Log in once; every later request carries the bearer token."""
        self.token = ""
        self.done: deque[dict] = deque(maxlen=50)
        email, password = ACCOUNTS[next(_next_account) % len(ACCOUNTS)]
        self.headers: dict[str, str] = {}
        try:
            with self.client.post(
                "/auth/login",
                json={"email": email, "password": password},
                name=LOGIN,
                catch_response=True,
            ) as response:
                if response.status_code != 200:
                    response.failure(
                        f"login answered {response.status_code}: {response.text[:200]}"
                    )
                    return
                self.token = response.json()["access_token"]
            self.headers = {"Authorization": f"Bearer {self.token}"}
        finally:
            _logged_in(self.environment)

    @task(6)
    def classify(self) -> None:
        """Upload one image through a pre-signed POST and long-poll its result."""
        if not self.token:
            return
        image = random.choice(IMAGES)
        data = unique_variant(image, uuid.uuid4().hex)
        started = time.perf_counter()
        error = self._classify(image.filename, image.content_type, data)
        events.request.fire(
            request_type="CLASSIFY",
            name="classify e2e",
            response_time=(time.perf_counter() - started) * 1000,
            response_length=len(data),
            response=None,
            context={},
            exception=error,
        )

    def _classify(self, filename: str, content_type: str, data: bytes) -> Exception | None:
        """The three calls of a classify; returns the reason it failed, or None."""
        with self.client.post(
            "/uploads",
            json={"filename": filename, "content_type": content_type, "size": len(data)},
            headers=self.headers,
            name="POST /uploads",
            catch_response=True,
        ) as response:
            if response.status_code != 201:
                response.failure(f"uploads answered {response.status_code}: {response.text[:200]}")
                return RuntimeError(f"POST /uploads {response.status_code}")
            grant = response.json()
        prediction_id = grant["prediction_id"]
        body, form_type = multipart_form(grant["upload"]["fields"], filename, content_type, data)
        with self.client.post(
            grant["upload"]["url"],
            data=body,
            headers={"Content-Type": form_type},
            name="POST s3 presigned",
            catch_response=True,
        ) as response:
            if response.status_code not in (200, 201, 204):
                response.failure(f"S3 answered {response.status_code}: {response.text[:200]}")
                return RuntimeError(f"S3 POST {response.status_code}")
        UPLOADED[prediction_id] = self.token

        deadline = time.monotonic() + RESULT_DEADLINE
        while time.monotonic() < deadline:
            with self.client.get(
                f"/predictions/{prediction_id}?wait={POLL_WAIT}",
                headers=self.headers,
                name="GET /predictions/{id}?wait",
                catch_response=True,
            ) as response:
                if response.status_code != 200:
                    response.failure(f"answered {response.status_code}: {response.text[:200]}")
                    return RuntimeError(f"long-poll {response.status_code}")
                prediction = response.json()
            if prediction["status"] in FINAL_STATUSES:
                FINISHED[prediction_id] = prediction["status"]
                if prediction["status"] == "failed":
                    return RuntimeError(f"prediction failed: {prediction.get('error')}")
                self.done.append(prediction)
                return None
        return TimeoutError(f"no result within {RESULT_DEADLINE:.0f} s")

    @task(2)
    def list_predictions(self) -> None:
        """The history page: the newest predictions."""
        if not self.token:
            return
        with self.client.get(
            "/predictions?limit=20",
            headers=self.headers,
            name="GET /predictions",
            catch_response=True,
        ) as response:
            if response.status_code != 200:
                response.failure(f"answered {response.status_code}: {response.text[:200]}")

    @task(2)
    def get_prediction(self) -> None:
        """Open one earlier result."""
        if not self.token or not self.done:
            return
        prediction = random.choice(self.done)
        with self.client.get(
            f"/predictions/{prediction['id']}",
            headers=self.headers,
            name="GET /predictions/{id}",
            catch_response=True,
        ) as response:
            if response.status_code != 200 or response.json().get("status") != "done":
                response.failure(f"answered {response.status_code}: {response.text[:200]}")

    @task(1)
    def send_feedback(self) -> None:
        """Mark an earlier result right, or wrong with a label picked from its top-5."""
        if not self.token or not self.done:
            return
        prediction = random.choice(self.done)
        top5 = prediction["result"]["top5"]
        if random.random() < 0.5:
            feedback = {"correct": True}
        else:
            feedback = {
                "correct": False,
                "label": random.choice(top5[1:])["label"],
                "comment": "load test: picked from the top-5",
            }
        with self.client.post(
            f"/predictions/{prediction['id']}/feedback",
            json=feedback,
            headers=self.headers,
            name="POST /predictions/{id}/feedback",
            catch_response=True,
        ) as response:
            if response.status_code not in (200, 201):
                response.failure(f"answered {response.status_code}: {response.text[:200]}")


def _logged_in(environment) -> None:
    """Count logins; once every user has one, start the measured window (LOAD_MEASURE_SECONDS)."""
    RUN["logged_in"] += 1
    runner = environment.runner
    if not MEASURE_SECONDS or RUN["measure_started"] or runner is None:
        return
    if RUN["logged_in"] >= runner.target_user_count:
        runner.stats.reset_all()
        RUN["measure_started"] = time.time()
        gevent.spawn_later(MEASURE_SECONDS, runner.quit)


@events.request.add_listener
def record_request(name, response_time, exception, **_kwargs) -> None:
    """Keep what a stats reset would forget: failures and login times of the whole run."""
    if exception is not None:
        FAILED[name] = FAILED.get(name, 0) + 1
    if name == LOGIN:
        LOGIN_MS.append(response_time)


@events.test_stop.add_listener
def write_ledger(environment, **_kwargs) -> None:
    """Write uploads, results, failures and login times, for the runner's checks."""
    path = os.environ.get("LOAD_LEDGER")
    if path:
        ledger = {
            "uploaded": dict(UPLOADED),
            "finished": dict(FINISHED),
            "failed_requests": dict(FAILED),
            "login_ms": list(LOGIN_MS),
            "measure_started": RUN["measure_started"],
            "measure_ended": time.time(),
            # This process's CPU seconds: Locust's share of the machine.
            "cpu_s": sum(resource.getrusage(resource.RUSAGE_SELF)[:2]),
        }
        Path(path).write_text(json.dumps(ledger))
