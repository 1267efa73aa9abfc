"""The classifier equals the Keras reference pipeline; a batch equals its singles; labels.

MODEL_WEIGHTS=random with the fixed seed (tests/unit/conftest.py): the same compute as the
ImageNet weights, so every comparison below holds for them too.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
from collections.abc import Callable
from importlib import resources
from pathlib import Path

import keras
import numpy as np
import openvino
import pytest
from imgclf import images, labels, model
from keras.applications.resnet50 import preprocess_input
from keras.src.applications import imagenet_utils

from load.bench_inference import varied_pixels
from tests.unit import sample_images as samples

TOLERANCE = 1e-5


@pytest.fixture(scope="session")
def reference() -> keras.Model:
    """The Keras ResNet50 with the same random weights, built on its own (the fixed seed)."""
    return model.build_keras_model("random")


@pytest.fixture(scope="session", params=model.ENGINES)
def classifier(request: pytest.FixtureRequest) -> model.Classifier:
    """Each engine's f32 classifier, built once per test session (ResNet50 is slow here)."""
    built = model.Classifier(weights="random", engine=request.param, precision="f32")
    built.warm_up()
    return built


@pytest.fixture(scope="session")
def bf16() -> model.Classifier:
    """OpenVINO at bf16 (emulated, and slow, on a CPU without bf16 instructions)."""
    built = model.Classifier(weights="random", engine="openvino", precision="bf16")
    built.warm_up()
    return built


def reference_scores(keras_model: keras.Model, files: list[bytes]) -> np.ndarray:
    """The Keras reference pipeline: load_img -> img_to_array -> preprocess_input -> model."""
    arrays = [
        keras.utils.img_to_array(keras.utils.load_img(io.BytesIO(f), target_size=(224, 224)))
        for f in files
    ]
    return keras_model.predict(preprocess_input(np.stack(arrays)), verbose=0)


def assert_same_top5(got: model.Prediction, expected_scores: np.ndarray) -> None:
    """Top-5 ids and scores equal the reference's within TOLERANCE (near-ties may swap)."""
    expected = np.argsort(-expected_scores, kind="stable")[:5]
    for rank, (entry, index) in enumerate(zip(got.top, expected, strict=True)):
        assert abs(entry.score - expected_scores[index]) <= TOLERANCE, rank
        if entry.index != index:
            assert abs(expected_scores[entry.index] - expected_scores[index]) <= TOLERANCE, rank
        assert entry.class_id == labels.CLASS_IDS[entry.index]
        assert entry.label == labels.CLASS_NAMES[entry.index]


def exif_rotated() -> tuple[bytes, bytes]:
    return samples.exif_rotated_png(6)


# name -> (the uploaded file, the file the Keras reference reads: the upright picture)
CASES: dict[str, Callable[[], tuple[bytes, bytes]]] = {
    "jpeg": lambda: (samples.jpeg(),) * 2,
    "png": lambda: (samples.png(),) * 2,
    "webp": lambda: (samples.webp(),) * 2,
    "grayscale": lambda: (samples.grayscale_jpeg(),) * 2,
    "rgba": lambda: (samples.rgba_png(),) * 2,
    "cmyk": lambda: (samples.cmyk_jpeg(),) * 2,
    "exif-rotated": exif_rotated,
    "1x1": lambda: (samples.tiny_png(),) * 2,
    "4000x3000": lambda: (samples.huge_jpeg(),) * 2,
}


@pytest.fixture(scope="module")
def cases() -> dict[str, tuple[bytes, bytes]]:
    return {name: make() for name, make in CASES.items()}


def test_batch_equals_the_keras_reference_pipeline(
    classifier: model.Classifier, reference: keras.Model, cases: dict[str, tuple[bytes, bytes]]
) -> None:
    uploads = [upload for upload, _ in cases.values()]
    batch = np.stack([images.load_pixels(u) for u in uploads])
    got = classifier.classify(batch)
    expected = reference_scores(reference, [ref for _, ref in cases.values()])
    for name, prediction, scores in zip(cases, got, expected, strict=True):
        assert prediction.label == prediction.top[0].label, name
        assert_same_top5(prediction, scores)
    # The images differ, and so do their scores: the comparison above can fail.
    assert len({round(p.score, 7) for p in got}) > 1


def test_batch_of_n_equals_n_singles(
    classifier: model.Classifier, cases: dict[str, tuple[bytes, bytes]]
) -> None:
    batch = np.stack([images.load_pixels(u) for u, _ in cases.values()])
    together = classifier.scores(batch)
    alone = np.concatenate([classifier.scores(batch[i : i + 1]) for i in range(len(batch))])
    np.testing.assert_allclose(together, alone, rtol=0, atol=TOLERANCE)
    for prediction, single_scores in zip(classifier.classify(batch), alone, strict=True):
        assert_same_top5(prediction, single_scores)


def test_engine_equals_the_keras_model_on_preprocessed_input(
    classifier: model.Classifier, reference: keras.Model
) -> None:
    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 256, size=(3, 224, 224, 3), dtype=np.uint8)
    ours = classifier.scores(pixels)
    theirs = reference.predict(preprocess_input(pixels.astype(np.float32)), verbose=0)
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=TOLERANCE)
    assert ours.shape == (3, 1000)
    np.testing.assert_allclose(ours.sum(axis=1), 1.0, atol=1e-5)


def test_names_results_by_model_and_weights(classifier: model.Classifier) -> None:
    assert classifier.model_name == "resnet50"
    assert classifier.weights_name == "random"
    result = classifier.classify(np.zeros((1, 224, 224, 3), np.uint8))[0].as_result()
    assert set(result) == {"label", "score", "top5"}
    assert len(result["top5"]) == 5
    assert result["label"] == result["top5"][0]["label"]
    assert set(result["top5"][0]) == {"class_id", "label", "score"}
    scores = [entry["score"] for entry in result["top5"]]
    assert scores == sorted(scores, reverse=True)


def test_random_weights_are_reproducible(reference: keras.Model) -> None:
    # The fixed seed: a second random network is the same network.
    second = model.build_keras_model("random")
    for a, b in zip(reference.weights, second.weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_weights_file_path_is_loaded_and_named(reference: keras.Model, tmp_path) -> None:
    path = tmp_path / "resnet50-finetuned.weights.h5"
    reference.save_weights(path)
    loaded = model.build_keras_model(str(path))
    np.testing.assert_array_equal(loaded.weights[-1].numpy(), reference.weights[-1].numpy())
    assert model.weights_name(str(path)) == "resnet50-finetuned.weights.h5"
    # Its OpenVINO IR is cached under a name tied to the file's content and OpenVINO's version.
    cached = model.openvino_ir_path(str(path))
    assert cached.name.startswith("imgclf-resnet50-resnet50-finetuned.weights.h5-")
    assert f"-ov{openvino.__version__.split('-')[0]}" in cached.name
    assert cached != model.openvino_ir_path("random") != model.openvino_ir_path("imagenet")
    with pytest.raises(FileNotFoundError):
        model.build_keras_model(str(tmp_path / "missing.h5"))


def test_top_k_matches_keras_decode_predictions(monkeypatch: pytest.MonkeyPatch) -> None:
    # decode_predictions reads the same index (downloaded by Keras; handed over here).
    monkeypatch.setattr(
        imagenet_utils, "CLASS_INDEX", json.loads(class_index_file().read_text("utf-8"))
    )
    scores = np.random.default_rng(5).random((4, 1000)).astype(np.float32)
    expected = imagenet_utils.decode_predictions(scores, top=5)
    for ours, theirs in zip(model.top_k(scores), expected, strict=True):
        assert [(c.class_id, c.label, c.score) for c in ours.top] == [
            (wnid, name, float(score)) for wnid, name, score in theirs
        ]


def class_index_file():
    return resources.files("imgclf").joinpath("imagenet_class_index.json")


def test_class_index_is_keras_file_byte_for_byte() -> None:
    # The MD5 Keras checks when it downloads imagenet_class_index.json.
    data = class_index_file().read_bytes()
    assert hashlib.md5(data).hexdigest() == "c2c37ea517e94d9795004a39431a14cb"


def test_labels_module() -> None:
    assert len(labels.CLASS_IDS) == len(labels.CLASS_NAMES) == 1000
    assert labels.class_id(0) == "n01440764" and labels.class_name(0) == "tench"
    assert labels.class_name(999) == "toilet_tissue"
    assert labels.index_of_id("n02123045") == 281
    assert labels.is_class_name("tabby") and not labels.is_class_name("Tabby")
    # Two names are shared by two classes each: crane (bird, machine) and maillot.
    assert labels.CLASS_NAMES.count("crane") == 2 and labels.CLASS_NAMES.count("maillot") == 2
    assert len(set(labels.CLASS_IDS)) == 1000
    with pytest.raises(IndexError):
        labels.class_name(1000)


def test_unknown_engine_is_refused() -> None:
    with pytest.raises(ValueError, match="INFERENCE_ENGINE"):
        model.Classifier(weights="random", engine="onnx")


def test_unknown_precision_is_refused() -> None:
    with pytest.raises(ValueError, match="INFERENCE_PRECISION"):
        model.Classifier(weights="random", engine="openvino", precision="int8")
    with pytest.raises(ValueError, match="tensorflow engine runs f32"):
        model.Classifier(weights="random", engine="tensorflow", precision="bf16")


def cpu_flags() -> set[str]:
    text = Path("/proc/cpuinfo").read_text()
    return set(next(line for line in text.splitlines() if line.startswith("flags")).split()[2:])


def test_auto_precision_is_bf16_exactly_where_the_cpu_has_it() -> None:
    auto = model.Classifier(weights="random", engine="openvino", precision="auto")
    expected = "bf16" if {"amx_bf16", "avx512_bf16"} & cpu_flags() else "f32"
    assert auto.precision == expected
    assert auto.info == {
        "name": "resnet50",
        "weights": "random",
        "engine": "openvino",
        "precision": expected,
    }


def test_results_name_the_precision_that_runs(
    classifier: model.Classifier, bf16: model.Classifier
) -> None:
    assert classifier.precision == "f32" and classifier.info["engine"] == classifier.engine
    assert bf16.info["precision"] == "bf16"


def test_bf16_ranks_like_f32_on_varied_images(bf16: model.Classifier) -> None:
    f32 = model.Classifier(weights="random", engine="openvino", precision="f32")
    pixels = varied_pixels(200)
    low, full = bf16.scores(pixels), f32.scores(pixels)
    top1 = np.mean(low.argmax(axis=1) == full.argmax(axis=1))
    overlap = np.mean(
        [
            len(set(np.argsort(-a)[:5]) & set(np.argsort(-b)[:5])) / 5
            for a, b in zip(low, full, strict=True)
        ]
    )
    assert top1 >= 0.99, top1
    assert overlap >= 0.95, overlap
    # Random weights give every picture the same top-1, but their top-5 sets differ: the
    # overlap above can fail. And bf16 really ran: its scores are not f32's.
    assert len({tuple(sorted(np.argsort(-row)[:5])) for row in full}) > 10
    assert np.abs(low - full).max() > 1e-4


WITHOUT_TENSORFLOW = """
import importlib.abc, sys

class Absent(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("tensorflow", "keras"):
            raise ImportError(f"{name} is not installed in the runtime image")

sys.meta_path.insert(0, Absent())
from imgclf import model
classifier = model.Classifier(weights="random", engine="openvino", precision="f32")
print(classifier.classify(__import__("numpy").zeros((1, 224, 224, 3), "uint8"))[0].label)
"""


def test_the_openvino_engine_runs_from_its_ir_without_tensorflow(
    classifier: model.Classifier,
) -> None:
    # As in the runtime image: the IR exists (converted by the fixture, or the build stage),
    # and TensorFlow and Keras cannot be imported.
    assert model.openvino_ir_path("random").is_file()
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_TENSORFLOW], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert labels.is_class_name(done.stdout.strip().splitlines()[-1])


def test_without_its_ir_or_tensorflow_the_engine_says_what_is_missing(tmp_path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_TENSORFLOW.replace('"random"', '"imagenet"')],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "KERAS_HOME": str(tmp_path)},
    )
    assert done.returncode != 0
    assert "no OpenVINO IR at" in done.stderr and "needs TensorFlow" in done.stderr
