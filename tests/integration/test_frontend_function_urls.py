"""The client through the Lambda Function URLs (one per function) instead of the REST API."""

from __future__ import annotations

import io

import pytest
import requests
from PIL import Image

from frontend.client import ApiClient, Endpoints, NotFound

pytestmark = pytest.mark.integration


def test_the_whole_flow_through_the_function_urls(local_cloud):
    urls = local_cloud.function_urls
    endpoints = Endpoints.from_env(
        {
            # Nothing may fall back to the REST API: point it where nothing listens.
            "IMGCLF_API_URL": "http://127.0.0.1:9",
            "IMGCLF_AUTH_URL": urls["AuthFunction"],
            "IMGCLF_UPLOADS_URL": urls["UploadsFunction"],
            "IMGCLF_PREDICTIONS_URL": urls["PredictionsFunction"],
            "IMGCLF_FEEDBACK_URL": urls["FeedbackFunction"],
        }
    )
    client = ApiClient(endpoints=endpoints)
    client.login("admin@example.com", "admin")
    image = io.BytesIO()
    Image.new("RGB", (40, 30), (12, 34, 56)).save(image, format="WEBP")
    prediction_id = client.upload_image(image.getvalue(), "through-function-urls.webp")
    prediction = client.wait_for(prediction_id, timeout=180)
    assert prediction.status == "done" and len(prediction.top5) == 5
    assert prediction.filename == "through-function-urls.webp"
    # The signed image link reads the uploaded bytes straight from S3.
    assert requests.get(prediction.image_url, timeout=30).content == image.getvalue()
    listed = [p for p in client.list_predictions(limit=100).items if p.id == prediction_id]
    assert [requests.get(p.image_url, timeout=30).content for p in listed] == [image.getvalue()]
    client.send_feedback(prediction_id, correct=True, comment="fine")
    latest = next(client.list_feedback(limit=1))
    assert (latest.prediction_id, latest.comment) == (prediction_id, "fine")
    assert client.upload_limits().max_bytes == 10 * 1024 * 1024
    with pytest.raises(NotFound):
        client.send_feedback("0" * 32, correct=True)


def test_the_front_end_is_pointed_at_every_function_url(local_cloud):
    # What `make up` gives Streamlit (the browser test drives the app with the same).
    urls = local_cloud.function_urls
    assert local_cloud.state()["frontend_endpoints"] == {
        "IMGCLF_API_URL": local_cloud.api_url,
        "IMGCLF_AUTH_URL": urls["AuthFunction"],
        "IMGCLF_UPLOADS_URL": urls["UploadsFunction"],
        "IMGCLF_PREDICTIONS_URL": urls["PredictionsFunction"],
        "IMGCLF_FEEDBACK_URL": urls["FeedbackFunction"],
    }
