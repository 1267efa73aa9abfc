"""A small HTTP client for the imgclf API, shared by the Streamlit app and the bulk command.

It speaks the public API only (see README "API"): read the upload limits, log in, request an
upload, POST the image straight to S3 with the pre-signed form, long-poll the prediction,
list, send feedback and list it back.
Every non-2xx reply becomes a typed :class:`ApiError` carrying the API's JSON ``message``.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import requests

DEFAULT_API_URL = "http://127.0.0.1:3000"
#: The API answers ``?wait=N`` for N in 0..20 seconds.
MAX_WAIT_SECONDS = 20
#: Seconds for a connection or a plain (non long-poll) call before giving up.
REQUEST_TIMEOUT = 30

IMAGE_TYPES = {"image/jpeg": "JPEG", "image/png": "PNG", "image/webp": "WebP"}
IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp")


# --------------------------------------------------------------------------- errors


class ApiError(Exception):
    """A call to the API (or to S3 through a pre-signed form) did not succeed.

    ``status`` is the HTTP status (None when the server could not be reached), ``message``
    the API's own words, ``code`` its machine-readable ``error`` field when it sent one.
    """

    def __init__(self, message: str, status: int | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code

    def __str__(self) -> str:
        return f"{self.message} (HTTP {self.status})" if self.status else self.message


class BadRequest(ApiError):
    """400 or 422: the request was malformed or failed validation."""


class Unauthorized(ApiError):
    """401: wrong credentials, or a missing, invalid or expired token."""


class Forbidden(ApiError):
    """403: API Gateway's answer for an unknown route, or S3 refusing a pre-signed form."""


class NotFound(ApiError):
    """404: no such prediction for this user."""


class PayloadTooLarge(ApiError):
    """413: the image is larger than the upload limit."""


class ServerError(ApiError):
    """5xx: the API or a function failed (502 crash, 504 timeout, ...)."""


class Unreachable(ApiError):
    """The server could not be reached, or did not answer in time."""


class UploadRejected(ApiError):
    """S3 refused the pre-signed POST (expired form, wrong type, size out of range)."""


class NotAnImage(ValueError):
    """The bytes are not a JPEG, PNG or WebP image (checked before anything is sent)."""


_ERRORS_BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    413: PayloadTooLarge,
    422: BadRequest,
}


def error_from_response(response: requests.Response) -> ApiError:
    """Build the typed error for a non-2xx API reply, keeping the API's own message."""
    message, code = None, None
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        message = body.get("message") or body.get("Message")
        code = body.get("error")
    if not message:
        text = response.text.strip()
        message = text[:300] if text else response.reason or "request failed"
    status = response.status_code
    kind = _ERRORS_BY_STATUS.get(status, ServerError if status >= 500 else ApiError)
    return kind(str(message), status=status, code=code)


def _s3_error(response: requests.Response) -> UploadRejected:
    """S3 answers a refused form with XML: keep its Code and Message."""
    code = re.search(r"<Code>(.*?)</Code>", response.text or "")
    message = re.search(r"<Message>(.*?)</Message>", response.text or "")
    words = message.group(1) if message else (response.text or response.reason or "")[:300]
    return UploadRejected(
        f"the storage refused the upload: {words}",
        status=response.status_code,
        code=code.group(1) if code else None,
    )


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class TopClass:
    """One of the top-5 classes of a result."""

    class_id: str  # the WordNet id, e.g. "n02123045"
    label: str
    score: float


@dataclass(frozen=True)
class Prediction:
    """The public prediction view (GET /predictions/{id})."""

    id: str
    status: str
    filename: str | None = None
    created_at: str | None = None
    completed_at: str | None = None
    label: str | None = None
    score: float | None = None
    top5: tuple[TopClass, ...] = ()
    error: str | None = None
    model_name: str | None = None
    weights: str | None = None
    engine: str | None = None
    precision: str | None = None
    #: A short-lived pre-signed GET of the uploaded image (signed for each reply).
    image_url: str | None = field(default=None, repr=False)

    @property
    def finished(self) -> bool:
        """True once the status has left ``pending`` (it never goes back)."""
        return self.status != "pending"

    @property
    def model_text(self) -> str:
        """The model as the front end names it, e.g. ``resnet50 (imagenet weights, openvino
        bf16)``; older results name no engine."""
        served = " ".join(part for part in (self.engine, self.precision) if part)
        details = f"{self.weights or 'unknown'} weights" + (f", {served}" if served else "")
        return f"{self.model_name or 'model'} ({details})"

    @property
    def random_weights(self) -> bool:
        """True when the model had random weights: the labels are then meaningless."""
        return self.weights == "random"

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Prediction:
        """Read the API's JSON view."""
        result = body.get("result") or {}
        model = body.get("model") or {}
        top5 = tuple(
            TopClass(str(item["class_id"]), str(item["label"]), float(item["score"]))
            for item in result.get("top5") or ()
        )
        return cls(
            id=str(body["id"]),
            status=str(body.get("status", "pending")),
            filename=body.get("filename"),
            created_at=body.get("created_at"),
            completed_at=body.get("completed_at"),
            label=result.get("label"),
            score=float(result["score"]) if result.get("score") is not None else None,
            top5=top5,
            error=body.get("error"),
            model_name=model.get("name"),
            weights=model.get("weights"),
            engine=model.get("engine"),
            precision=model.get("precision"),
            image_url=body.get("image_url"),
        )


@dataclass(frozen=True)
class PredictionPage:
    """One page of GET /predictions, newest first."""

    items: tuple[Prediction, ...]
    next_cursor: str | None


@dataclass(frozen=True)
class UploadForm:
    """POST /uploads's answer: the prediction id and the pre-signed S3 form for the image."""

    prediction_id: str
    url: str
    fields: dict[str, str]
    expires_in: int | None = None


@dataclass(frozen=True)
class UploadLimits:
    """What POST /uploads accepts, as GET /health tells it."""

    max_bytes: int
    content_types: tuple[str, ...]

    def type_names(self) -> str:
        """'JPEG, PNG or WebP': the accepted types, for people."""
        names = [IMAGE_TYPES.get(t, t) for t in self.content_types]
        return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


@dataclass(frozen=True)
class FeedbackEntry:
    """One feedback as GET /feedback lists it (the manifest's rows); the prediction's fields
    are None when that prediction is gone."""

    prediction_id: str
    object_key: str | None
    filename: str | None
    predicted_label: str | None
    correct: bool
    label: str | None
    comment: str | None
    created_at: str | None

    @property
    def corrected_label(self) -> str | None:
        """The label to train on: the prediction when confirmed, else the user's choice."""
        return self.predicted_label if self.correct else self.label


# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class Endpoints:
    """Where each route lives: one API base URL, or one Lambda Function URL per function."""

    api_url: str = DEFAULT_API_URL
    auth_url: str | None = None
    uploads_url: str | None = None
    predictions_url: str | None = None
    feedback_url: str | None = None

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Endpoints:
        """IMGCLF_API_URL, and optionally IMGCLF_{AUTH,UPLOADS,PREDICTIONS,FEEDBACK}_URL."""
        env = os.environ if environ is None else environ
        return cls(
            api_url=env.get("IMGCLF_API_URL") or DEFAULT_API_URL,
            auth_url=env.get("IMGCLF_AUTH_URL") or None,
            uploads_url=env.get("IMGCLF_UPLOADS_URL") or None,
            predictions_url=env.get("IMGCLF_PREDICTIONS_URL") or None,
            feedback_url=env.get("IMGCLF_FEEDBACK_URL") or None,
        )

    def url(self, function: str, path: str) -> str:
        """The full URL of ``path`` served by ``function`` (auth, uploads, ...)."""
        base = getattr(self, f"{function}_url") or self.api_url
        return base.rstrip("/") + path


def detect_image_type(data: bytes) -> str | None:
    """The content type from the magic bytes (JPEG, PNG, WebP), or None for anything else.

    The name or the extension is not trusted: the inference checks the bytes too.
    """
    if data[:3] == b"\xff\xd8\xff":
        return "image/jpeg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "image/png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def human_size(size: int) -> str:
    """1536 -> '1.5 KiB'."""
    value = float(size)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{int(value)} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


# --------------------------------------------------------------------------- client


@dataclass
class ApiClient:
    """One user's connection to the API. Safe to share between threads.

    ``credentials`` (email, password), when given, let the client log in again by itself
    once the token expires; the web app does not keep passwords and asks the user instead.
    """

    endpoints: Endpoints = field(default_factory=Endpoints.from_env)
    # Secrets stay out of repr(): it ends up in logs and error pages.
    token: str | None = field(default=None, repr=False)
    credentials: tuple[str, str] | None = field(default=None, repr=False)
    _local: threading.local = field(default_factory=threading.local, repr=False)
    _login_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def _session(self) -> requests.Session:
        # requests.Session is not documented as thread-safe: one per thread.
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        return session

    # ----------------------------------------------------------------- plumbing

    def _call(
        self,
        method: str,
        function: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        timeout: float = REQUEST_TIMEOUT,
        auth: bool = True,
    ) -> Any:
        url = self.endpoints.url(function, path)
        for attempt in range(2):
            headers = {"Accept": "application/json"}
            if auth:
                if not self.token:
                    raise Unauthorized("not logged in", status=401)
                headers["Authorization"] = f"Bearer {self.token}"
            sent_token = self.token
            try:
                response = self._session.request(
                    method, url, json=json, params=params, headers=headers, timeout=timeout
                )
            except requests.Timeout as exc:
                raise Unreachable(f"the API at {url} did not answer in {timeout:.0f} s") from exc
            except requests.RequestException as exc:
                reason = type(exc).__name__
                raise Unreachable(f"cannot reach the API at {url} ({reason})") from exc
            if response.ok:
                return response.json() if response.content else None
            error = error_from_response(response)
            if isinstance(error, Unauthorized) and auth and self.credentials and attempt == 0:
                self._relogin(sent_token)
                continue
            raise error
        raise AssertionError("unreachable")

    def _relogin(self, expired_token: str | None) -> None:
        # Several threads may see the same expiry at once: only the first logs in again.
        with self._login_lock:
            if self.token == expired_token and self.credentials:
                self.login(*self.credentials)

    # ----------------------------------------------------------------- routes

    def health(self) -> dict[str, Any]:
        """GET /health."""
        return self._call("GET", "predictions", "/health", auth=False)

    def upload_limits(self) -> UploadLimits:
        """The largest image and the types POST /uploads accepts (from GET /health)."""
        upload = self.health()["upload"]
        return UploadLimits(
            max_bytes=int(upload["max_bytes"]),
            content_types=tuple(str(t) for t in upload["content_types"]),
        )

    def login(self, email: str, password: str) -> str:
        """POST /auth/login; keeps and returns the access token."""
        body = self._call(
            "POST", "auth", "/auth/login", json={"email": email, "password": password}, auth=False
        )
        self.token = str(body["access_token"])
        return self.token

    def create_upload(self, filename: str, content_type: str, size: int) -> UploadForm:
        """POST /uploads: a pending prediction and the pre-signed form to upload its image."""
        body = self._call(
            "POST",
            "uploads",
            "/uploads",
            json={"filename": filename, "content_type": content_type, "size": size},
        )
        upload = body["upload"]
        return UploadForm(
            prediction_id=str(body["prediction_id"]),
            url=str(upload["url"]),
            fields={str(k): str(v) for k, v in upload["fields"].items()},
            expires_in=body.get("expires_in"),
        )

    def send_file(self, form: UploadForm, data: bytes, filename: str, content_type: str) -> None:
        """POST the image to S3 as multipart/form-data with the form's fields (file last)."""
        try:
            # No Authorization header here: the signed policy is the credential.
            response = self._session.post(
                form.url,
                data=form.fields,
                files={"file": (filename, data, content_type)},
                timeout=REQUEST_TIMEOUT + len(data) / 100_000,
            )
        except requests.RequestException as exc:
            reason = type(exc).__name__
            raise Unreachable(f"cannot reach the storage at {form.url} ({reason})") from exc
        if not response.ok:
            raise _s3_error(response)

    def upload_image(self, data: bytes, filename: str, content_type: str | None = None) -> str:
        """Request an upload and send the image; returns the prediction id."""
        content_type = content_type or detect_image_type(data)
        if content_type not in IMAGE_TYPES:
            raise NotAnImage(f"{filename} is not a JPEG, PNG or WebP image")
        form = self.create_upload(filename, content_type, len(data))
        self.send_file(form, data, filename, content_type)
        return form.prediction_id

    def get_prediction(self, prediction_id: str, wait: int = 0) -> Prediction:
        """GET /predictions/{id}; ``wait`` > 0 long-polls until it leaves pending."""
        wait = max(0, min(int(wait), MAX_WAIT_SECONDS))
        body = self._call(
            "GET",
            "predictions",
            f"/predictions/{requests.utils.quote(prediction_id, safe='')}",
            params={"wait": wait} if wait else None,
            timeout=REQUEST_TIMEOUT + wait,
        )
        return Prediction.from_json(body)

    def wait_for(self, prediction_id: str, timeout: float = 120) -> Prediction:
        """Long-poll until the prediction is done or failed, or ``timeout`` seconds pass.

        Returns the last view seen, which is still ``pending`` if time ran out.
        """
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            prediction = self.get_prediction(prediction_id, wait=int(max(0, min(left, 20))))
            if prediction.finished or left <= 1:
                return prediction

    def list_predictions(self, limit: int = 20, cursor: str | None = None) -> PredictionPage:
        """GET /predictions: one page of the caller's predictions, newest first."""
        params: dict[str, Any] = {"limit": limit}
        if cursor:
            params["cursor"] = cursor
        body = self._call("GET", "predictions", "/predictions", params=params)
        return PredictionPage(
            items=tuple(Prediction.from_json(item) for item in body.get("items", ())),
            next_cursor=body.get("next_cursor"),
        )

    def send_feedback(
        self,
        prediction_id: str,
        correct: bool,
        label: str | None = None,
        comment: str | None = None,
    ) -> dict[str, Any]:
        """POST /predictions/{id}/feedback; a second one replaces the first."""
        payload: dict[str, Any] = {"correct": correct}
        if label:
            payload["label"] = label
        if comment:
            payload["comment"] = comment
        return self._call(
            "POST",
            "feedback",
            f"/predictions/{requests.utils.quote(prediction_id, safe='')}/feedback",
            json=payload,
        )

    def list_feedback(self, limit: int = 100) -> Iterator[FeedbackEntry]:
        """GET /feedback, every page: the caller's feedback, newest first, joined with its
        predictions."""
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"limit": limit}
            if cursor:
                params["cursor"] = cursor
            body = self._call("GET", "feedback", "/feedback", params=params)
            for item in body.get("items", ()):
                yield FeedbackEntry(
                    prediction_id=str(item["prediction_id"]),
                    object_key=item.get("object_key"),
                    filename=item.get("filename"),
                    predicted_label=item.get("predicted_label"),
                    correct=bool(item.get("correct")),
                    label=item.get("label"),
                    comment=item.get("comment"),
                    created_at=item.get("created_at"),
                )
            cursor = body.get("next_cursor")
            if not cursor:
                return
