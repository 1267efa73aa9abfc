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

import boto3
import jwt
import pytest
from imgclf.labels import CLASS_NAMES
from PIL import Image
from streamlit.testing.v1 import AppTest

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
def app(local_cloud, monkeypatch, tmp_path) -> AppTest:
    """The app, pointed at the local cloud, on its login page."""
    monkeypatch.setenv("IMGCLF_API_URL", local_cloud.api_url)
    monkeypatch.setenv("IMGCLF_THUMBNAIL_DIR", str(tmp_path / "thumbnails"))
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
    # The limit is shown before any upload.
    assert any("up to **10.0 MiB** each" in c.value for c in app.caption)
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
    [item] = app.session_state["batch"]
    prediction_id = item.prediction_id

    app.radio(key=f"verdict-{prediction_id}").set_value("Wrong")
    app.selectbox(key=f"label-{prediction_id}").set_value("tabby")
    app.text_area(key=f"comment-{prediction_id}").input("it is my cat")
    app.button(key=f"send-{prediction_id}").click().run()
    assert errors(app) == []
    assert [s.value for s in app.success] == ["Thanks: feedback saved (wrong, should be tabby)."]

    # The API kept it (the API has no route to read feedback back yet: read the table).
    env = local_cloud.env
    table = boto3.resource(
        "dynamodb", endpoint_url=env["AWS_ENDPOINT_URL"], region_name=env["AWS_REGION"]
    ).Table(env["FEEDBACK_TABLE"])
    items = table.query(
        KeyConditionExpression=boto3.dynamodb.conditions.Key("prediction_id").eq(prediction_id)
    )["Items"]
    assert [(i["correct"], i["label"], i["comment"]) for i in items] == [
        (False, "tabby", "it is my cat")
    ]


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
    # Thumbnails for the three just uploaded (the newest first on the first page).
    assert len(app.get("image")) >= 3


def test_an_api_error_is_shown_with_its_message(app, monkeypatch):
    # This front end is configured with a larger limit than the API's 10 MiB: the API
    # itself must refuse the upload, and the page must say why.
    monkeypatch.setenv("IMGCLF_UPLOAD_MAX_BYTES", str(64 * 1024 * 1024))
    log_in(app)
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
