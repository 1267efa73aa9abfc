"""The Streamlit app's logic (Streamlit's AppTest) against the real local cloud over HTTP.

The app runs in-process; every call it makes goes to the local cloud's gateway, S3 and
inference exactly as from a browser (tests/integration/test_frontend_browser.py drives one).
"""

from __future__ import annotations

import io
import os
import random
import re
import time
from pathlib import Path

import jwt
import pytest
import requests
from imgclf.labels import CLASS_NAMES
from PIL import Image
from streamlit.testing.v1 import AppTest

from frontend.client import UploadLimits

pytestmark = pytest.mark.integration

APP = Path(__file__).resolve().parents[2] / "frontend" / "app.py"
DEMO = ("admin@example.com", "admin")
TIMEOUT = 180  # a cold inference sandbox imports TensorFlow and builds ResNet50 first


def png(seed: int, size: tuple[int, int] = (96, 64)) -> bytes:
    """A small noisy PNG, different for every seed (so no result is reused)."""
    rng = random.Random(seed)
    image = Image.new("RGB", size)
    image.putdata([tuple(rng.randrange(256) for _ in range(3)) for _ in range(size[0] * size[1])])
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


@pytest.fixture
def app(local_cloud, monkeypatch) -> AppTest:
    """The app, pointed at the local cloud, on its login page."""
    monkeypatch.setenv("IMGCLF_API_URL", local_cloud.api_url)
    monkeypatch.setenv("IMGCLF_RESULT_TIMEOUT", str(TIMEOUT))
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT + 30)
    at.run()
    assert not at.exception
    return at


def log_in(at: AppTest, email: str = DEMO[0], password: str = DEMO[1]) -> AppTest:
    at.text_input(key="email").input(email)
    at.text_input(key="password").input(password)
    at.button(key="login").click().run()
    assert not at.exception
    return at


def classify(at: AppTest, *files: tuple[str, bytes, str]) -> AppTest:
    uploader = at.file_uploader[0]
    uploader.set_value(list(files)).run()
    assert not at.exception
    at.button(key="classify").click().run()
    assert not at.exception
    return at


def plain(markdown: str) -> str:
    """The text a reader sees: the app escapes punctuation in names and messages."""
    return re.sub(r"\\(.)", r"\1", markdown)


def errors(at: AppTest) -> list[str]:
    return [plain(e.value) for e in at.error]


def test_a_wrong_password_shows_the_apis_message(app):
    log_in(app, DEMO[0], "not-the-password")
    assert errors(app) == ["Login failed: invalid email or password"]
    assert app.text_input(key="email").value == DEMO[0]  # still on the login form


def test_log_in_and_out(app):
    log_in(app)
    assert errors(app) == []
    assert plain(app.sidebar.markdown[0].value) == "Signed in as **admin@example.com**"
    assert app.header[0].value == "Classify images"
    # The API's limit (GET /health) is shown before any upload.
    assert any(
        plain(c.value).startswith("JPEG, PNG or WebP, up to **10.0 MiB** each") for c in app.caption
    )
    app.sidebar.button(key="logout").click().run()
    assert [t.label for t in app.text_input] == ["Email", "Password"]


def test_upload_shows_the_result_and_feedback_is_stored(app, local_cloud):
    log_in(app)
    classify(app, ("kitten.png", png(1), "image/png"))
    assert errors(app) == []
    # One result: top-1 label, confidence, and the random-weights banner (tests run random).
    [metric] = app.metric
    assert metric.label == "Top-1" and metric.value in CLASS_NAMES
    assert any(m.value.startswith("Confidence: **") for m in app.markdown)
    assert any("random weights" in w.value for w in app.warning)
    assert len(app.get("vega_lite_chart")) == 1  # the top-5 chart
    assert any(
        plain(c.value).startswith("resnet50 (random weights, openvino ") for c in app.caption
    )
    [item] = app.session_state["batch"]
    prediction_id = item.prediction_id

    app.radio(key=f"verdict-{prediction_id}").set_value("Wrong")
    app.selectbox(key=f"label-{prediction_id}").set_value("tabby")
    app.text_area(key=f"comment-{prediction_id}").input("it is my cat")
    app.button(key=f"send-{prediction_id}").click().run()
    assert errors(app) == []
    assert [s.value for s in app.success] == ["Thanks: feedback saved (wrong, should be tabby)."]

    # The API kept it: GET /feedback lists it first.
    client = app.session_state["client"]
    latest = next(client.list_feedback(limit=1))
    assert (latest.prediction_id, latest.correct, latest.label, latest.comment) == (
        prediction_id,
        False,
        "tabby",
        "it is my cat",
    )
    assert latest.predicted_label == metric.value


def test_many_images_and_the_history_with_thumbnails(app):
    log_in(app)
    files = [(f"batch-{n}.png", png(100 + n), "image/png") for n in range(3)]
    classify(app, *files)
    assert errors(app) == []
    assert len(app.metric) == 3
    app.sidebar.radio(key="page").set_value("My history").run()
    assert not app.exception and app.header[0].value == "My history"
    shown = " ".join(plain(m.value) for m in app.markdown)
    for name, _, _ in files:
        assert f"**{name}** - done" in shown
    # The images come from S3 through the API's signed URLs (the newest first).
    urls = [image.value[0] for image in app.image]
    assert len(urls) >= 3
    for url in urls[:3]:
        assert "X-Amz-Signature=" in url
    downloaded = {requests.get(url, timeout=30).content for url in urls[:3]}
    assert downloaded == {data for _, data, _ in files}


def test_an_image_over_the_apis_limit_is_refused_before_upload(app):
    log_in(app)
    big = b"\x89PNG\r\n\x1a\n" + os.urandom(11 * 1024 * 1024)
    app.file_uploader[0].set_value([("huge.png", big, "image/png")]).run()
    assert errors(app) == ["huge.png is 11.0 MiB, over the 10.0 MiB limit."]
    assert [b.key for b in app.button if b.key == "classify"] == []  # nothing to send


def test_an_api_error_is_shown_with_its_message(app):
    log_in(app)
    # The page read the limits when the session began; say the API lowered its limit since
    # (a redeploy): the API itself must refuse the upload, and the page must say why.
    app.session_state["upload_limits"] = UploadLimits(64 * 1024 * 1024, ("image/png",))
    app.run()
    assert any(plain(c.value).startswith("PNG, up to **64.0 MiB** each") for c in app.caption)
    big = b"\x89PNG\r\n\x1a\n" + os.urandom(11 * 1024 * 1024)
    classify(app, ("huge.png", big, "image/png"))
    [message] = errors(app)
    assert message.startswith("huge.png: ") and message.endswith("(HTTP 413)")
    assert not app.metric


def test_an_expired_token_asks_to_log_in_again(app, local_cloud):
    log_in(app)
    client = app.session_state["client"]
    claims = jwt.decode(client.token, options={"verify_signature": False})
    claims["iat"] = claims["exp"] = int(time.time()) - 60
    client.token = jwt.encode(claims, local_cloud.env["JWT_SECRET"], algorithm="HS256")
    app.sidebar.radio(key="page").set_value("My history").run()
    assert not app.exception
    assert [w.value for w in app.warning] == ["Your session has expired. Please log in again."]
    assert [t.label for t in app.text_input] == ["Email", "Password"]


def test_a_corrupt_image_fails_with_its_reason_beside_a_good_one(app):
    log_in(app)
    corrupt = b"\x89PNG\r\n\x1a\n" + b"not really a png" * 20
    classify(app, ("good.png", png(7), "image/png"), ("corrupt.png", corrupt, "image/png"))
    assert len(app.metric) == 1  # the good one
    [message] = errors(app)
    assert message.startswith("corrupt.png could not be classified: ")
    assert len(message) > len("corrupt.png could not be classified: ")
