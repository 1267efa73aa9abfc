"""An upload that never arrives, end to end, on a local cloud of its own whose upload URLs
live 4 s (UPLOAD_URL_TTL_SECONDS) with a 2 s grace (UPLOAD_GRACE_SECONDS): the prediction
reads ``expired`` once both are past, everywhere (the long-poll, the list), feedback on it
is refused, and a late upload to its expired grant is refused by S3 (LocalStack enforces
the POST policy's expiry as AWS does; moto's S3 checks no policy, so there the object lands,
its event reaches the inference function, and the prediction must stay expired). An image
that did arrive in time is classified, even when it is read after the deadline.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from streamlit.testing.v1 import AppTest

from tests.integration.conftest import LocalCloudHandle, emulator, start_local_cloud
from tests.integration.test_local_cloud import png, wait_final

pytestmark = pytest.mark.integration

URL_TTL, GRACE = 4, 2
APP = Path(__file__).resolve().parents[2] / "frontend" / "app.py"
EXPIRED = "the image was never uploaded"
TIMESTAMP = "%Y-%m-%dT%H:%M:%S.%fZ"  # created_at, as the API writes it


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCloudHandle]:
    handle = start_local_cloud(
        tmp_path_factory.mktemp("expiring-cloud"),
        extra_args=(
            "--env",
            f"UPLOAD_URL_TTL_SECONDS={URL_TTL}",
            "--env",
            f"UPLOAD_GRACE_SECONDS={GRACE}",
        ),
    )
    try:
        yield handle
    finally:
        handle.stop()


@pytest.fixture(scope="module")
def headers(cloud: LocalCloudHandle) -> dict:
    return cloud.login()


def grant(cloud: LocalCloudHandle, headers: dict, data: bytes) -> dict:
    """POST /uploads for ``data`` as a PNG: the reply, its URL living URL_TTL seconds."""
    created = cloud.grant(headers, len(data), "late.png")
    assert created["expires_in"] == URL_TTL
    return created


def post_file(upload: dict, data: bytes) -> requests.Response:
    return requests.post(
        upload["url"], data=upload["fields"], files={"file": ("late.png", data)}, timeout=60
    )


def invocations(cloud: LocalCloudHandle, function: str) -> int:
    return sum(worker["invocations"] for worker in cloud.workers(function))


def get(cloud: LocalCloudHandle, headers: dict, path: str) -> requests.Response:
    return requests.get(f"{cloud.api_url}{path}", headers=headers, timeout=40)


def test_a_grant_never_used_ends_expired_everywhere_and_stays_so(cloud, headers):
    data = png(9500)
    created = grant(cloud, headers, data)
    prediction_id, upload = created["prediction_id"], created["upload"]
    first = get(cloud, headers, f"/predictions/{prediction_id}").json()
    assert first["status"] == "pending"
    deadline = datetime.strptime(first["created_at"], TIMESTAMP).replace(tzinfo=UTC)
    deadline += timedelta(seconds=URL_TTL + GRACE)

    # A long-poll begun inside the window answers expired at the deadline, not at its end.
    view = get(cloud, headers, f"/predictions/{prediction_id}?wait=20").json()
    answered = datetime.now(UTC)  # the same machine's clock as the functions'
    assert (view["status"], view["error"]) == ("expired", EXPIRED), view
    assert deadline <= answered < deadline + timedelta(seconds=8), (deadline, answered)
    assert view["completed_at"] and view["result"] is None

    listed = {item["id"]: item for item in get(cloud, headers, "/predictions").json()["items"]}
    assert (listed[prediction_id]["status"], listed[prediction_id]["error"]) == ("expired", EXPIRED)

    feedback = requests.post(
        f"{cloud.api_url}/predictions/{prediction_id}/feedback",
        json={"correct": True},
        headers=headers,
        timeout=30,
    )
    assert feedback.status_code == 409, feedback.text
    assert feedback.json() == {"message": f"prediction expired: {EXPIRED}", "error": "conflict"}

    # The image, late: its grant's policy expired URL_TTL s after it was signed.
    before = invocations(cloud, "InferenceFunction")
    late = post_file(upload, data)
    if emulator() == "localstack":
        assert late.status_code == 403, late.text
        assert "expired" in late.text.lower(), late.text
        assert not cloud.stored(upload["fields"]["key"])
    else:
        # moto's S3 stores it; wait until the inference function has taken its event.
        assert late.ok, late.text
        deadline = time.monotonic() + 240
        while invocations(cloud, "InferenceFunction") == before:
            assert time.monotonic() < deadline, "the late upload's event never arrived"
            time.sleep(0.5)
    final = get(cloud, headers, f"/predictions/{prediction_id}").json()
    assert (final["status"], final["error"], final["result"]) == ("expired", EXPIRED, None)


def test_an_image_uploaded_in_time_is_never_expired(cloud, headers):
    data = png(9501)
    created = grant(cloud, headers, data)
    started = time.monotonic()
    stored_reply = post_file(created["upload"], data)
    assert stored_reply.status_code in (200, 201, 204), stored_reply.text
    # Read again once the deadline is past: done already, or pending while its image waits
    # for the inference function; never "never uploaded".
    time.sleep(max(0.0, URL_TTL + GRACE + 0.5 - (time.monotonic() - started)))
    view = get(cloud, headers, f"/predictions/{created['prediction_id']}").json()
    assert view["status"] in ("pending", "done"), view
    assert wait_final(cloud, headers, created["prediction_id"])["status"] == "done"


def test_the_history_page_shows_it_expired(cloud, headers, monkeypatch):
    created = grant(cloud, headers, png(9502))
    time.sleep(URL_TTL + GRACE + 0.5)
    monkeypatch.setenv("IMGCLF_API_URL", cloud.api_url)
    app = AppTest.from_file(str(APP), default_timeout=60)
    app.run()
    app.text_input(key="email").input("admin@example.com")
    app.text_input(key="password").input("admin")
    app.button(key="login").click().run()
    app.sidebar.radio(key="page").set_value("My history").run()
    assert not app.exception
    shown = [m.value for m in app.markdown]
    assert "**late\\.png** - expired" in shown, shown
    assert f"expired: {EXPIRED}" in shown, shown
    assert created["prediction_id"] in " ".join(c.value for c in app.caption)
