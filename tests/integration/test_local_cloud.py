"""The whole app on the local cloud, over real HTTP, as a client sees it.

Login -> POST /uploads -> the pre-signed S3 POST -> S3 ObjectCreated -> SQS -> the inference
sandbox -> GET /predictions/{id}?wait=N; plus feedback, listing, bursts, poison images, a
killed inference sandbox, a Redis restart, and two users hammering the API at once.
"""

from __future__ import annotations

import io
import random
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis
import requests
from imgclf.labels import CLASS_NAMES
from PIL import Image

pytestmark = pytest.mark.integration

RESULT_TIMEOUT = 240  # the first result waits for the inference sandbox to build ResNet50


def png(seed: int, size: tuple[int, int] = (64, 48)) -> bytes:
    """A small noisy PNG, different per seed (so no result is reused from an earlier one)."""
    rng = random.Random(seed)
    image = Image.new("RGB", size)
    image.putdata([tuple(rng.randrange(256) for _ in range(3)) for _ in range(size[0] * size[1])])
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def upload(
    cloud, headers: dict, data: bytes, filename: str = "image.png", content_type: str = "image/png"
) -> str:
    """POST /uploads, then the pre-signed POST to S3; returns the prediction id."""
    reply = requests.post(
        f"{cloud.api_url}/uploads",
        json={"filename": filename, "content_type": content_type, "size": len(data)},
        headers=headers,
        timeout=30,
    )
    assert reply.status_code == 201, reply.text
    body = reply.json()
    post = body["upload"]
    stored = requests.post(
        post["url"], data=post["fields"], files={"file": (filename, data, content_type)}, timeout=30
    )
    assert stored.status_code in (200, 201, 204), stored.text
    return body["prediction_id"]


def wait_final(cloud, headers: dict, prediction_id: str, timeout: float = RESULT_TIMEOUT) -> dict:
    """Long-poll GET /predictions/{id}?wait=20 until it leaves pending."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        reply = requests.get(
            f"{cloud.api_url}/predictions/{prediction_id}",
            params={"wait": 20},
            headers=headers,
            timeout=40,
        )
        assert reply.status_code == 200, reply.text
        view = reply.json()
        if view["status"] != "pending":
            return view
    raise TimeoutError(f"{prediction_id} still pending after {timeout}s")


def wait_all(cloud, headers: dict, ids: list[str], timeout: float = RESULT_TIMEOUT) -> dict:
    """Every id's final view; three long-polls at a time (sandboxes are shared by all)."""
    with ThreadPoolExecutor(3) as pool:
        views = list(pool.map(lambda i: wait_final(cloud, headers, i, timeout), ids))
    return dict(zip(ids, views, strict=True))


def assert_done(view: dict) -> None:
    assert view["status"] == "done", view
    result = view["result"]
    assert len(result["top5"]) == 5
    assert [c["score"] for c in result["top5"]] == sorted(
        (c["score"] for c in result["top5"]), reverse=True
    )
    assert all(c["label"] in CLASS_NAMES for c in result["top5"])
    assert result["label"] == result["top5"][0]["label"]
    assert view["model"]["name"] == "resnet50" and view["model"]["weights"] == "random"
    assert view["model"]["engine"] == "openvino" and view["model"]["precision"] in ("f32", "bf16")
    assert view["completed_at"]


@pytest.fixture(scope="module")
def demo(local_cloud) -> dict:
    return local_cloud.login()


def test_login_upload_long_poll_done_then_feedback_and_list(local_cloud, demo):
    prediction_id = upload(local_cloud, demo, png(1), filename="first.png")
    view = wait_final(local_cloud, demo, prediction_id)
    assert_done(view)
    assert view["filename"] == "first.png"
    # /health names the model the inference sandbox runs: the one this result names.
    health = requests.get(f"{local_cloud.api_url}/health", timeout=30).json()
    assert health["model"] == view["model"]

    label = view["result"]["top5"][1]["label"]
    reply = requests.post(
        f"{local_cloud.api_url}/predictions/{prediction_id}/feedback",
        json={"correct": False, "label": label, "comment": "second guess"},
        headers=demo,
        timeout=30,
    )
    assert reply.status_code == 201, reply.text
    assert reply.json()["label"] == label

    listed = requests.get(f"{local_cloud.api_url}/predictions", headers=demo, timeout=30)
    assert listed.status_code == 200
    items = listed.json()["items"]
    assert items[0]["id"] == prediction_id  # newest first
    assert items[0]["status"] == "done"


def test_twenty_images_at_once_all_end_done(local_cloud, demo):
    with ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(lambda i: upload(local_cloud, demo, png(100 + i)), range(20)))
    views = wait_all(local_cloud, demo, ids)
    for view in views.values():
        assert_done(view)


def test_a_corrupt_upload_ends_failed(local_cloud, demo):
    prediction_id = upload(local_cloud, demo, b"\x89PNG\r\n\x1a\n" + b"not really" * 50)
    view = wait_final(local_cloud, demo, prediction_id)
    assert view["status"] == "failed"
    assert view["error"]
    assert view["result"] is None


def test_unknown_route_is_403_missing_authentication_token(local_cloud):
    for method, path in (("GET", "/nope"), ("DELETE", "/uploads"), ("GET", "/admin/users")):
        reply = requests.request(method, local_cloud.api_url + path, timeout=10)
        assert reply.status_code == 403
        assert reply.json() == {"message": "Missing Authentication Token"}


def test_openapi_is_merged_and_swagger_ui_served(local_cloud):
    document = requests.get(f"{local_cloud.api_url}/openapi.json", timeout=60).json()
    for path in (
        "/auth/login",
        "/uploads",
        "/predictions",
        "/predictions/{id}",
        "/predictions/{id}/feedback",
        "/feedback",
        "/health",
    ):
        assert path in document["paths"], path
    assert document["servers"] == [{"url": local_cloud.api_url}]
    page = requests.get(f"{local_cloud.api_url}/docs", timeout=10)
    assert page.status_code == 200 and "swagger-ui" in page.text
    assert requests.get(f"{local_cloud.api_url}/docs/swagger-ui-bundle.js", timeout=10).ok


def test_function_url_answers_like_the_api(local_cloud):
    url = local_cloud.function_urls["AuthFunction"]
    reply = requests.post(
        f"{url}auth/login", json={"email": "admin@example.com", "password": "admin"}, timeout=30
    )
    assert reply.status_code == 200, reply.text
    assert reply.json()["token_type"] == "bearer"


def test_the_state_file_follows_the_sandboxes(local_cloud):
    # `make down` and the tests find sandboxes there; it is rewritten shortly after each change.
    def settled(after: int) -> bool:
        workers = local_cloud.workers("PredictionsFunction")
        done = sum(w["invocations"] for w in workers)
        return done >= after and not any(w["busy"] for w in workers)

    before = sum(w["invocations"] for w in local_cloud.workers("PredictionsFunction"))
    for _ in range(5):
        assert requests.get(f"{local_cloud.api_url}/health", timeout=30).ok
    deadline = time.monotonic() + 5
    while not settled(before + 5):
        assert time.monotonic() < deadline, local_cloud.workers("PredictionsFunction")
        time.sleep(0.05)


def test_killing_the_inference_sandbox_mid_batch_loses_no_image(local_cloud, demo):
    # Upload while watching for the sandbox to start a batch, then SIGKILL it right then.
    with ThreadPoolExecutor(1) as pool:
        uploading = pool.submit(lambda: [upload(local_cloud, demo, png(300 + i)) for i in range(8)])
        killed = local_cloud.kill_worker("InferenceFunction", busy=True)
        ids = uploading.result()
    views = wait_all(local_cloud, demo, ids)
    for view in views.values():
        assert_done(view)
    # The kill hit a running batch (the poller saw the sandbox die and left it for retry)...
    assert "Runtime.ExitError" in local_cloud.output.read_text()
    # ...and a new sandbox took over; the killed one is gone.
    assert killed not in [w["pid"] for w in local_cloud.workers("InferenceFunction")]


def test_a_redis_restart_mid_run_loses_nothing(local_cloud, demo):
    ids = [upload(local_cloud, demo, png(400 + i)) for i in range(4)]
    local_cloud.restart_redis()
    ids += [upload(local_cloud, demo, png(410 + i)) for i in range(4)]
    views = wait_all(local_cloud, demo, ids)
    for view in views.values():
        assert_done(view)
    health = requests.get(f"{local_cloud.api_url}/health", timeout=30).json()
    assert (health["status"], health["cache"]) == ("ok", "up")
    # Results land in the new Redis too (written by inference or read-through).
    client = redis.Redis.from_url(local_cloud.env["REDIS_URL"])
    assert any(client.exists(f"prediction:{i}") for i in ids)


def test_fifty_concurrent_requests_never_leak_the_other_users_data(local_cloud, demo):
    local_cloud.add_user("other@example.com", "other-password")
    other = local_cloud.login("other@example.com", "other-password")
    users = {"demo": demo, "other": other}
    own: dict[str, set[str]] = {}
    for name, headers in users.items():
        own[name] = {
            requests.post(
                f"{local_cloud.api_url}/uploads",
                json={"filename": f"{name}-{i}.png", "content_type": "image/png", "size": 100},
                headers=headers,
                timeout=30,
            ).json()["prediction_id"]
            for i in range(2)
        }

    def call(i: int) -> tuple[str, str, int, object]:
        name = "demo" if i % 2 else "other"
        foreign = next(iter(own["other" if name == "demo" else "demo"]))
        kind = ("list", "own", "foreign")[i % 3]
        if kind == "list":
            url = f"{local_cloud.api_url}/predictions?limit=100"
        elif kind == "own":
            url = f"{local_cloud.api_url}/predictions/{sorted(own[name])[i % 2]}"
        else:
            url = f"{local_cloud.api_url}/predictions/{foreign}"
        reply = requests.get(url, headers=users[name], timeout=60)
        return name, kind, reply.status_code, reply.json()

    with ThreadPoolExecutor(50) as pool:
        results = list(pool.map(call, range(50)))
    assert len(results) == 50
    for name, kind, status, body in results:
        theirs = own["other" if name == "demo" else "demo"]
        if kind == "foreign":
            assert status == 404, body
        else:
            assert status == 200, body
            ids = {item["id"] for item in body["items"]} if kind == "list" else {body["id"]}
            assert ids and not ids & theirs
            assert kind == "list" or ids <= own[name]
            if kind == "list":
                assert own[name] <= ids
