"""The imgclf web app: log in, classify images, send feedback, browse your history.

Run it with ``streamlit run frontend/app.py`` (``make up`` does). It talks to the API only
over HTTP, through :mod:`frontend.client`; IMGCLF_API_URL says where the API is.
"""

from __future__ import annotations

import math
import os
import queue
import re
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

# `streamlit run frontend/app.py` puts frontend/ on sys.path, not the project root.
_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

import pandas as pd  # noqa: E402
import streamlit as st  # noqa: E402
from imgclf.labels import CLASS_NAMES  # noqa: E402

from frontend.client import (  # noqa: E402
    IMAGE_EXTENSIONS,
    ApiClient,
    ApiError,
    Endpoints,
    Prediction,
    Unauthorized,
    UploadLimits,
    detect_image_type,
    human_size,
)
from frontend.thumbnails import make_thumbnail  # noqa: E402

#: Two classes share a name ("crane", "maillot"); the API takes names, so list each once.
LABEL_CHOICES = list(dict.fromkeys(CLASS_NAMES))
HISTORY_PAGE_SIZE = 12
HISTORY_IMAGE_WIDTH = 160
UPLOAD_THREADS = 4
RANDOM_WEIGHTS_BANNER = (
    "These results come from a model with **random weights** (`MODEL_WEIGHTS=random`): "
    "the labels and scores are meaningless. Deploy with ImageNet weights for real predictions."
)
EXPIRED_NOTICE = "Your session has expired. Please log in again."
_MARKDOWN_SPECIALS = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:])")


@dataclass(frozen=True)
class BatchItem:
    """One image of the last batch the user classified."""

    name: str
    prediction_id: str | None = None
    thumbnail: bytes | None = field(default=None, repr=False)
    prediction: Prediction | None = None
    error: str | None = None


def md(text: object) -> str:
    """``text`` escaped for Streamlit's markdown: a file name like ``![x](http://...)`` or
    ``**x**`` is shown as typed, never rendered (nor fetched)."""
    return _MARKDOWN_SPECIALS.sub(r"\\\1", str(text))


def result_timeout() -> float:
    """Seconds the page waits for a batch's results (IMGCLF_RESULT_TIMEOUT, default 120)."""
    return float(os.environ.get("IMGCLF_RESULT_TIMEOUT") or 120)


def when(timestamp: str | None) -> str:
    """'2026-01-02T03:04:05.123456Z' -> '2026-01-02 03:04:05 UTC' (as is if not ISO)."""
    if not timestamp:
        return ""
    try:
        moment = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return timestamp
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def api() -> ApiClient:
    """This browser session's API client (it holds the token once logged in)."""
    if "client" not in st.session_state:
        st.session_state.client = ApiClient(endpoints=Endpoints.from_env())
    return st.session_state.client


def logged_in() -> bool:
    """Whether this browser session holds a token."""
    return bool(st.session_state.get("client") and st.session_state.client.token)


def log_out(notice: str | None = None) -> None:
    """Forget the token and everything shown for this user, then show the login form."""
    for key in list(st.session_state.keys()):
        del st.session_state[key]
    if notice:
        st.session_state.notice = notice
    st.rerun()


def show_api_error(exc: ApiError, doing: str) -> None:
    """Every API error ends here: an expired token asks to log in, the rest is shown."""
    if isinstance(exc, Unauthorized):
        log_out(EXPIRED_NOTICE)
    st.error(f"Could not {doing}: {md(exc)}")


# --------------------------------------------------------------------------- login


def login_page() -> None:
    """The login form, with the API's message when it refuses."""
    st.title("imgclf")
    st.write("Image classification with ResNet50 (1,000 ImageNet classes).")
    if notice := st.session_state.pop("notice", None):
        st.warning(notice)
    narrow, _ = st.columns([2, 3])
    with narrow.form("login"):
        email = st.text_input("Email", key="email")
        password = st.text_input("Password", type="password", key="password")
        submitted = st.form_submit_button("Log in", key="login", type="primary")
    if not submitted:
        return
    if not email or not password:
        narrow.error("Enter your email and your password.")
        return
    try:
        api().login(email.strip(), password)
    except ApiError as exc:
        narrow.error(f"Login failed: {md(exc.message)}")
        return
    st.session_state.user = email.strip().lower()
    st.rerun()


# --------------------------------------------------------------------------- classify


def upload_limits() -> UploadLimits | None:
    """The API's upload limits (GET /health), read once per session; None if unavailable."""
    if "upload_limits" not in st.session_state:
        try:
            st.session_state.upload_limits = api().upload_limits()
        except ApiError as exc:
            show_api_error(exc, "read the upload limits")
            return None
    return st.session_state.upload_limits


def classify_page() -> None:
    """Pick images, preview them, classify them, show the results and take feedback."""
    st.header("Classify images")
    limits = upload_limits()
    if limits is None:
        return
    limit = limits.max_bytes
    st.caption(f"{limits.type_names()}, up to **{human_size(limit)}** each. Pick one or many.")
    generation = st.session_state.setdefault("uploader_generation", 0)
    files = st.file_uploader(
        "Images",
        type=list(IMAGE_EXTENSIONS),
        accept_multiple_files=True,
        key=f"uploader-{generation}",
        max_upload_size=max(1, math.ceil(limit / (1024 * 1024))),
    )
    ready: list[tuple[str, bytes, str]] = []
    previews: list[tuple[str, bytes | None]] = []
    cache = st.session_state.setdefault("previews", {})
    for file in files or ():
        data = file.getvalue()
        content_type = detect_image_type(data)
        if len(data) > limit:
            size = human_size(len(data))
            st.error(f"{md(file.name)} is {size}, over the {human_size(limit)} limit.")
        elif content_type not in limits.content_types:
            st.error(f"{md(file.name)} is not a {limits.type_names()} image.")
        else:
            ready.append((file.name, data, content_type))
            # Previews are thumbnails made here: a corrupt file must not break the page.
            if file.file_id not in cache:
                cache[file.file_id] = make_thumbnail(data)
            previews.append((file.name, cache[file.file_id]))
    if ready:
        columns = st.columns(6)
        for index, (name, preview) in enumerate(previews):
            column = columns[index % len(columns)]
            if preview:
                column.image(preview, caption=name, width=140)
            else:
                column.caption(f"{md(name)}: no preview (the model will check it)")
        label = f"Classify {len(ready)} image{'s' if len(ready) > 1 else ''}"
        if st.button(label, key="classify", type="primary"):
            st.session_state.batch = run_batch(ready)
            st.session_state.uploader_generation = generation + 1
            st.session_state.previews = {}
            st.rerun()
    show_batch(st.session_state.get("batch") or [])


def run_batch(files: list[tuple[str, bytes, str]]) -> list[BatchItem]:
    """Upload every file straight to S3, then long-poll each result, showing progress."""
    client, timeout = api(), result_timeout()
    events: queue.Queue[tuple[int, str, BatchItem]] = queue.Queue()

    def work(index: int, name: str, data: bytes, content_type: str) -> None:
        item = BatchItem(name=name)
        try:
            prediction_id = client.upload_image(data, name, content_type)
            item = replace(item, prediction_id=prediction_id, thumbnail=make_thumbnail(data))
            events.put((index, "uploaded", item))
            item = replace(item, prediction=client.wait_for(prediction_id, timeout=timeout))
        except Unauthorized:
            item = replace(item, error="unauthorized")
        except ApiError as exc:
            item = replace(item, error=str(exc))
        except Exception as exc:  # one bad file must not take the batch down
            item = replace(item, error=f"unexpected error: {exc}")
        events.put((index, "finished", item))

    total = len(files)
    items: list[BatchItem] = [BatchItem(name=name) for name, _, _ in files]
    bar = st.progress(0.0, text=f"Uploading {total} image{'s' if total > 1 else ''}...")
    uploaded = finished = 0
    with ThreadPoolExecutor(max_workers=min(UPLOAD_THREADS, total)) as pool:
        for index, (name, data, content_type) in enumerate(files):
            pool.submit(work, index, name, data, content_type)
        while finished < total:
            index, event, item = events.get()
            items[index] = item
            if event == "uploaded":
                uploaded += 1
            else:
                finished += 1
                uploaded += item.prediction_id is None  # never got as far as uploading
            bar.progress(
                (uploaded + finished) / (2 * total),
                text=f"Uploaded {uploaded}/{total}, classified {finished}/{total}"
                + ("" if finished == total else " - waiting for the model..."),
            )
    bar.empty()
    if any(item.error == "unauthorized" for item in items):
        log_out(EXPIRED_NOTICE)
    return items


def show_batch(items: list[BatchItem]) -> None:
    """The results of the last batch: top-1, confidence, top-5 chart, feedback."""
    if not items:
        return
    st.subheader("Results")
    if any(i.prediction and i.prediction.random_weights for i in items):
        st.warning(RANDOM_WEIGHTS_BANNER)
    for index, item in enumerate(items):
        with st.container(border=True):
            left, right = st.columns([1, 3])
            if item.thumbnail:
                left.image(item.thumbnail, caption=item.name)
            else:
                left.markdown(md(item.name))
            with right:
                show_item(index, item)


def show_item(index: int, item: BatchItem) -> None:
    """One result: an error, still pending, failed, expired, or done (with feedback)."""
    prediction = item.prediction
    if item.error:
        st.error(f"{md(item.name)}: {md(item.error)}")
    elif prediction is None or prediction.status == "pending":
        st.info(f"{md(item.name)} is still being classified.")
        if st.button("Check again", key=f"check-{index}") and item.prediction_id:
            try:
                fresh = api().get_prediction(item.prediction_id, wait=10)
            except ApiError as exc:
                show_api_error(exc, "check the result")
                return
            st.session_state.batch[index] = replace(item, prediction=fresh)
            st.rerun()
    elif prediction.status == "failed":
        reason = prediction.error or "unknown reason"
        st.error(f"{md(item.name)} could not be classified: {md(reason)}")
    elif prediction.status == "expired":
        reason = prediction.error or "the image was never uploaded"
        st.warning(f"{md(item.name)} expired: {md(reason)}. Upload it again.")
    else:
        show_result(prediction)
        feedback_form(prediction)


def show_result(prediction: Prediction) -> None:
    """Top-1 label and confidence, and the top-5 as a bar chart."""
    st.metric("Top-1", prediction.label or "-", help=f"prediction {prediction.id}")
    st.markdown(f"Confidence: **{(prediction.score or 0.0):.1%}**")
    if prediction.top5:
        chart = pd.DataFrame(
            {
                "class": [t.label for t in prediction.top5],
                "score": [t.score for t in prediction.top5],
            }
        )
        st.bar_chart(chart, x="class", y="score", horizontal=True, sort="-score", height=200)
    st.caption(f"{md(prediction.model_text)}, finished {md(when(prediction.completed_at))}")


def feedback_form(prediction: Prediction) -> None:
    """Correct / wrong, the right label among the 1,000 classes (searchable), a comment."""
    sent = st.session_state.setdefault("feedback_sent", {})
    if prediction.id in sent:
        st.success(sent[prediction.id])
    with st.form(f"feedback-{prediction.id}"):
        verdict = st.radio(
            "Is this right?",
            ["Correct", "Wrong"],
            horizontal=True,
            key=f"verdict-{prediction.id}",
        )
        label = st.selectbox(
            "If wrong, the right label",
            LABEL_CHOICES,
            index=None,
            placeholder="Type to search the 1,000 classes",
            key=f"label-{prediction.id}",
        )
        comment = st.text_area("Comment (optional)", max_chars=1000, key=f"comment-{prediction.id}")
        submitted = st.form_submit_button("Send feedback", key=f"send-{prediction.id}")
    if not submitted:
        return
    correct = verdict == "Correct"
    try:
        api().send_feedback(
            prediction.id,
            correct=correct,
            label=None if correct else label,
            comment=comment.strip() or None,
        )
    except ApiError as exc:
        show_api_error(exc, "send the feedback")
        return
    sent[prediction.id] = (
        "Thanks: feedback saved (correct)."
        if correct
        else f"Thanks: feedback saved (wrong{f', should be {md(label)}' if label else ''})."
    )
    st.rerun()


# --------------------------------------------------------------------------- history


def history_page() -> None:
    """The user's predictions, newest first, a page at a time, with their images."""
    st.header("My history")
    cursors: list[str | None] = st.session_state.setdefault("history_cursors", [None])
    try:
        page = api().list_predictions(limit=HISTORY_PAGE_SIZE, cursor=cursors[-1])
    except ApiError as exc:
        show_api_error(exc, "load your history")
        return
    if not page.items:
        st.info("Nothing yet: classify an image first.")
    if any(p.random_weights for p in page.items):
        st.warning(RANDOM_WEIGHTS_BANNER)
    for prediction in page.items:
        with st.container(border=True):
            thumb, text = st.columns([1, 4])
            # The browser loads the image from S3 through the API's short-lived signed URL,
            # whoever uploaded it (this page, the bulk command, curl). Only a done prediction
            # is known to be a readable image.
            if prediction.status == "done" and prediction.image_url:
                thumb.image(prediction.image_url, width=HISTORY_IMAGE_WIDTH)
            else:
                thumb.caption("no preview")
            text.markdown(f"**{md(prediction.filename or prediction.id)}** - {prediction.status}")
            if prediction.status == "done":
                text.markdown(f"{md(prediction.label)} ({(prediction.score or 0.0):.1%})")
            elif prediction.status == "failed":
                text.markdown(f"failed: {md(prediction.error or 'unknown reason')}")
            elif prediction.status == "expired":
                reason = prediction.error or "the image was never uploaded"
                text.markdown(f"expired: {md(reason)}")
            text.caption(f"{md(when(prediction.created_at))} - id {prediction.id}")
    newer, older, refresh = st.columns(3)
    if len(cursors) > 1 and newer.button("Newer", key="history-newer"):
        cursors.pop()
        st.rerun()
    if page.next_cursor and older.button("Older", key="history-older"):
        cursors.append(page.next_cursor)
        st.rerun()
    if refresh.button("Refresh", key="history-refresh"):
        st.rerun()


# --------------------------------------------------------------------------- page


def main() -> None:
    """Render the page for this run of the script."""
    st.set_page_config(page_title="imgclf", layout="wide")
    if not logged_in():
        login_page()
        return
    with st.sidebar:
        st.markdown(f"Signed in as **{md(st.session_state.get('user', ''))}**")
        page = st.radio("Page", ["Classify", "My history"], key="page")
        if st.button("Log out", key="logout"):
            log_out()
        st.caption(f"API: {api().endpoints.api_url}")
    if page == "My history":
        history_page()
    else:
        classify_page()


main()
