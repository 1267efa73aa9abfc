"""ResNet50 (Keras, ImageNet's 1,000 classes), built once per process, run as a compiled graph.

``MODEL_WEIGHTS`` picks the weights: ``imagenet`` (Keras's file: downloaded once into
``KERAS_HOME``, baked into the container image), a path to a Keras weights file, or
``random`` (a seeded random initialisation: the same compute, meaningless labels, used where
weights cannot be downloaded). Results name the weights, so a random result says so.

One forward pass takes a whole batch of uint8 pixels: ``preprocess_input`` and the network run
inside one ``tf.function`` with a fixed input signature (traced once, never eager, never
``model.predict``), with TensorFlow's threads set to the cores the process may use.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

from imgclf import labels
from imgclf.images import TARGET_SIZE

MODEL_NAME = "resnet50"
TOP_K = 5
RANDOM_SEED = 1234
"""Seed of the ``random`` weights: every process builds the same random network."""

ENGINES = ("tensorflow",)


@dataclass(frozen=True)
class ClassScore:
    """One of the top classes: its index, WordNet id, name and softmax score."""

    index: int
    class_id: str
    label: str
    score: float

    def as_dict(self) -> dict[str, Any]:
        """The public shape: ``{class_id, label, score}``."""
        return {"class_id": self.class_id, "label": self.label, "score": self.score}


@dataclass(frozen=True)
class Prediction:
    """The top-``TOP_K`` classes of one image, best first."""

    top: tuple[ClassScore, ...]

    @property
    def label(self) -> str:
        """The top-1 class name."""
        return self.top[0].label

    @property
    def score(self) -> float:
        """The top-1 score."""
        return self.top[0].score

    def as_result(self) -> dict[str, Any]:
        """``{label, score, top5: [{class_id, label, score}]}``, as stored and served."""
        return {
            "label": self.label,
            "score": self.score,
            "top5": [c.as_dict() for c in self.top],
        }


def top_k(probabilities: np.ndarray, k: int = TOP_K) -> list[Prediction]:
    """Top-``k`` classes of each row of an (N, 1000) score matrix, like ``decode_predictions``."""
    probabilities = np.asarray(probabilities)
    predictions = []
    for row in probabilities:
        # Stable sort on the negated scores: ties keep the lower class index first.
        best = np.argsort(-row, kind="stable")[:k]
        predictions.append(
            Prediction(
                tuple(
                    ClassScore(int(i), labels.class_id(int(i)), labels.class_name(int(i)), float(row[i]))
                    for i in best
                )
            )
        )
    return predictions


def weights_name(weights: str) -> str:
    """How results name the weights: ``imagenet``, ``random``, or the weights file's name."""
    if weights in ("imagenet", "random"):
        return weights
    return os.path.basename(weights)


def cpu_count() -> int:
    """The cores this process may run on (a Lambda sandbox's share, not the host's)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def configure_threads(threads: int | None = None) -> None:
    """Give TensorFlow's op pools the process's cores; a no-op once TensorFlow has started."""
    import tensorflow as tf

    threads = threads or cpu_count()
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        # One graph runs at a time: a second inter-op pool would only compete for the cores.
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        pass  # the runtime is already initialised (e.g. a test built a model first)


def build_keras_model(weights: str, seed: int = RANDOM_SEED) -> Any:
    """The Keras ResNet50 with ``weights`` (``imagenet`` | a file path | ``random``)."""
    import keras

    if weights == "random":
        keras.utils.set_random_seed(seed)
        return keras.applications.ResNet50(weights=None)
    if weights == "imagenet":
        return keras.applications.ResNet50(weights="imagenet")
    if not os.path.isfile(weights):
        raise FileNotFoundError(f"MODEL_WEIGHTS: no weights file {weights!r}")
    return keras.applications.ResNet50(weights=weights)


@dataclass
class Classifier:
    """ResNet50 behind one compiled forward pass: uint8 pixels in, class scores out."""

    weights: str = "imagenet"
    seed: int = RANDOM_SEED
    keras_model: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        import tensorflow as tf
        from keras.applications.resnet50 import preprocess_input

        configure_threads()
        if self.keras_model is None:
            self.keras_model = build_keras_model(self.weights, self.seed)
        model = self.keras_model
        height, width = TARGET_SIZE

        @tf.function(
            input_signature=[tf.TensorSpec([None, height, width, 3], tf.uint8, name="pixels")]
        )
        def forward(pixels: tf.Tensor) -> tf.Tensor:
            return model(preprocess_input(tf.cast(pixels, tf.float32)), training=False)

        self._forward = forward

    @property
    def model_name(self) -> str:
        """The architecture's name in results."""
        return MODEL_NAME

    @property
    def weights_name(self) -> str:
        """The weights' name in results (``imagenet`` | ``random`` | file name)."""
        return weights_name(self.weights)

    def scores(self, pixels: np.ndarray) -> np.ndarray:
        """(N, 224, 224, 3) uint8 RGB -> (N, 1000) float32 softmax scores, in one pass."""
        pixels = np.asarray(pixels, dtype=np.uint8)
        if pixels.ndim != 4 or pixels.shape[0] == 0:
            raise ValueError(f"expected a non-empty (N, 224, 224, 3) batch, got {pixels.shape}")
        return self._forward(pixels).numpy()

    def classify(self, pixels: np.ndarray) -> list[Prediction]:
        """Top-5 classes of each image of a batch, in one forward pass."""
        return top_k(self.scores(pixels))

    def warm_up(self) -> None:
        """Run one image through, so the graph is traced before the first request."""
        height, width = TARGET_SIZE
        self.scores(np.zeros((1, height, width, 3), dtype=np.uint8))


@lru_cache(maxsize=1)
def get_classifier() -> Classifier:
    """The process's classifier, from MODEL_WEIGHTS / INFERENCE_ENGINE, built on first use."""
    from imgclf.settings import get_settings

    settings = get_settings()
    if settings.inference_engine not in ENGINES:
        raise ValueError(
            f"INFERENCE_ENGINE={settings.inference_engine!r}: expected one of {ENGINES}"
        )
    classifier = Classifier(weights=settings.model_weights)
    classifier.warm_up()
    return classifier
