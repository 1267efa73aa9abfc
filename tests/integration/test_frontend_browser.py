"""A real browser: headless Chromium (the system's) logs in, uploads an image, sees the result.

Streamlit serves frontend/app.py on a free port, pointed at the local cloud. The test saves
screenshots in pytest's temp dir; to refresh the ones the README shows, run it with
IMGCLF_SCREENSHOT_DIR=frontend/screenshots (a path relative to the project root, or absolute).
"""

from __future__ import annotations

import io
import os
import random
import re
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from PIL import Image, ImageDraw
from playwright.sync_api import expect, sync_playwright

pytestmark = [pytest.mark.integration, pytest.mark.browser]

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
RESULT_TIMEOUT_MS = 180_000  # a cold inference sandbox builds ResNet50 first


def free_port() -> int:
    """A TCP port nobody listens on right now (never `make up`'s 8501)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def streamlit_url(local_cloud, tmp_path) -> Iterator[str]:
    """frontend/app.py served by Streamlit on a free port, configured as `make up` starts it:
    every call goes to a Function URL (the REST API is pointed where nothing listens)."""
    port = free_port()
    env = {
        **os.environ,
        **local_cloud.state()["frontend_endpoints"],
        "IMGCLF_API_URL": f"http://127.0.0.1:{free_port()}",
        "IMGCLF_RESULT_TIMEOUT": "170",
    }
    log = (tmp_path / "streamlit.log").open("w")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            str(ROOT / "frontend" / "app.py"),
            "--server.address=127.0.0.1",
            f"--server.port={port}",
            "--server.headless=true",
            "--browser.gatherUsageStats=false",
            "--client.toolbarMode=minimal",  # no "Deploy" button in the screenshots
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(f"{url}/_stcore/health", timeout=2).ok:
                    break
            except requests.ConnectionError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"Streamlit did not start: {(tmp_path / 'streamlit.log').read_text()}"
                )
            time.sleep(0.3)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
        log.close()


def picture(path: Path, sky: tuple[int, int, int], hills: tuple[int, int, int]) -> Path:
    """A small picture (a sun over hills) that reads well in a screenshot."""
    image = Image.new("RGB", (320, 240), sky)
    draw = ImageDraw.Draw(image)
    draw.ellipse((220, 30, 290, 100), fill=(250, 210, 60))
    draw.polygon([(0, 240), (0, 160), (110, 110), (210, 170), (320, 120), (320, 240)], fill=hills)
    rng = random.Random(7)
    for _ in range(200):  # a little texture
        draw.point((rng.randrange(320), rng.randrange(160, 240)), fill=(40, 110, 40))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=90)
    path.write_bytes(out.getvalue())
    return path


@pytest.fixture
def screenshots(tmp_path) -> Path:
    """Where the screenshots go: pytest's temp dir (so `make test` leaves the tree clean),
    unless IMGCLF_SCREENSHOT_DIR names a folder (frontend/screenshots: the README's)."""
    chosen = os.environ.get("IMGCLF_SCREENSHOT_DIR")
    folder = ROOT / chosen if chosen else tmp_path / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def scroll_to_top(page) -> None:
    # Streamlit scrolls an inner container, not the window.
    page.evaluate("document.querySelectorAll('*').forEach(e => { e.scrollTop = 0; })")


def test_log_in_upload_and_see_the_result_in_chromium(
    local_cloud, streamlit_url, screenshots, tmp_path
):
    # A user of its own, so the history in the screenshot holds only this test's images.
    email = f"alice-{uuid.uuid4().hex[:6]}@example.com"
    local_cloud.add_user(email, "correct horse")
    images = [
        picture(tmp_path / "hills.jpg", (135, 190, 235), (70, 140, 70)),
        picture(tmp_path / "dusk.jpg", (240, 150, 110), (90, 80, 60)),
    ]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.goto(streamlit_url)

            page.get_by_label("Email").fill(email)
            page.get_by_label("Password", exact=True).fill("wrong password")
            page.get_by_role("button", name="Log in").click()
            expect(page.get_by_text("Login failed: invalid email or password")).to_be_visible(
                timeout=30_000
            )
            page.get_by_label("Password", exact=True).fill("correct horse")
            page.screenshot(path=screenshots / "login.png")
            page.get_by_role("button", name="Log in").click()

            expect(page.get_by_text("Classify images")).to_be_visible(timeout=30_000)
            expect(page.get_by_text("up to 10.0 MiB each")).to_be_visible()
            page.locator("input[type=file]").set_input_files([str(p) for p in images])
            classify = page.get_by_role("button", name="Classify 2 images")
            expect(classify).to_be_visible(timeout=30_000)
            expect(page.get_by_text("dusk.jpg").first).to_be_visible()  # the previews
            page.wait_for_timeout(500)
            page.screenshot(path=screenshots / "upload.png")
            classify.click()

            expect(page.get_by_text("Top-1").first).to_be_visible(timeout=RESULT_TIMEOUT_MS)
            expect(page.get_by_text("Top-1")).to_have_count(2)
            expect(page.get_by_text("Confidence:").first).to_be_visible()
            banner = page.get_by_test_id("stAlertContentWarning")
            expect(banner).to_contain_text("These results come from a model with random weights")
            # Each result names the model, its weights, engine and precision.
            expect(
                page.get_by_text(
                    re.compile(r"resnet50 \(random weights, openvino (f32|bf16)\)")
                ).first
            ).to_be_visible()

            # Feedback on the first result: wrong, the right label found by typing.
            page.get_by_text("Wrong", exact=True).first.click()
            page.get_by_role("combobox").first.click()
            page.keyboard.type("tabby")
            page.keyboard.press("Enter")
            page.get_by_label("Comment (optional)").first.fill("a striped cat, really")
            page.set_viewport_size({"width": 1280, "height": 1400})
            scroll_to_top(page)
            page.wait_for_timeout(1500)  # let the charts finish drawing
            page.screenshot(path=screenshots / "result.png")
            page.get_by_role("button", name="Send feedback").first.click()
            expect(
                page.get_by_text("Thanks: feedback saved (wrong, should be tabby).")
            ).to_be_visible(timeout=30_000)

            page.set_viewport_size({"width": 1280, "height": 800})
            page.get_by_text("My history").click()
            expect(page.get_by_text("hills.jpg - done")).to_be_visible(timeout=30_000)
            expect(page.get_by_text("dusk.jpg - done")).to_be_visible()
            # Both images, loaded by the browser from S3 through the API's signed URLs.
            signed = "img[src*='X-Amz-Signature=']"
            expect(page.locator(signed)).to_have_count(2, timeout=30_000)
            page.wait_for_function(
                f"[...document.querySelectorAll({signed!r})]"
                ".every(img => img.complete && img.naturalWidth > 0)",
                timeout=30_000,
            )
            scroll_to_top(page)
            page.wait_for_timeout(1000)
            page.screenshot(path=screenshots / "history.png")
        finally:
            browser.close()
    for name in ("login.png", "upload.png", "result.png", "history.png"):
        assert (screenshots / name).stat().st_size > 10_000
