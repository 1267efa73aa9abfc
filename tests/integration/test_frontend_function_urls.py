"""The client through the Lambda Function URLs (one per function) instead of the REST API."""

from __future__ import annotations

import io

import pytest
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
    assert any(p.id == prediction_id for p in client.list_predictions(limit=100).items)
    client.send_feedback(prediction_id, correct=True, comment="fine")
    with pytest.raises(NotFound):
        client.send_feedback("0" * 32, correct=True)
