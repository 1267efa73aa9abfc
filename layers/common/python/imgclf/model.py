"""ResNet50 (Keras, ImageNet's 1,000 classes), built once per process, served by an engine.

``MODEL_WEIGHTS`` picks the weights: ``imagenet`` (Keras's file: downloaded once into
``KERAS_HOME``, baked into the container image), a path to a Keras weights file, or
``random`` (a seeded random initialisation: the same compute, meaningless labels, used where
weights cannot be downloaded). Results name the weights, so a random result says so.

``INFERENCE_ENGINE`` picks what runs the network; both take a batch of uint8 RGB pixels and
apply ``preprocess_input`` themselves, one forward pass per batch:

- ``openvino`` (default): the Keras model converted to OpenVINO IR once, with
  ``preprocess_input`` (RGB->BGR, ImageNet mean) folded into the IR as preprocessing. The
  conversion needs TensorFlow; running the IR does not. The container image converts at
  build time and carries no TensorFlow; locally the IR is converted on first use and cached
  next to Keras's weights. ``INFERENCE_PRECISION`` is ``auto`` (OpenVINO's choice for the
  CPU: bf16 where it has AMX or AVX512_BF16, f32 elsewhere), ``f32`` or ``bf16``; a result
  names the precision the compiled model actually runs.
- ``tensorflow``: the reference. The Keras model with each inference-mode BatchNormalization
  folded into the convolution before it, inside one ``tf.function`` (traced once, never
  eager); scores match the unfolded Keras model to about 1e-6.

Both use the cores this process may run on (a sandbox's pinning, Lambda's vCPUs).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from imgclf import labels
from imgclf.images import TARGET_SIZE

MODEL_NAME = "resnet50"
TOP_K = 5
RANDOM_SEED = 1234
"""Seed of the ``random`` weights: every process builds the same random network."""

ENGINES = ("openvino", "tensorflow")
PRECISIONS = ("auto", "f32", "bf16")
# preprocess_input's "caffe" mode: RGB -> BGR, then these per-channel means (BGR order).
IMAGENET_BGR_MEAN = (103.939, 116.779, 123.68)


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
        best = [int(i) for i in np.argsort(-row, kind="stable")[:k]]
        top = (ClassScore(i, labels.class_id(i), labels.class_name(i), float(row[i])) for i in best)
        predictions.append(Prediction(tuple(top)))
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
        # Not 1: with one inter-op thread the ResNet graph ran 25% slower here.
        tf.config.threading.set_inter_op_parallelism_threads(threads)
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


def _conv_bias_layer() -> type:
    """The Keras layer a Conv2D + BatchNormalization pair becomes (defined on first use so
    that importing this module does not import Keras)."""
    import keras
    import tensorflow as tf

    class ConvBias(keras.layers.Layer):
        """Conv2D then BiasAdd: the op pair TensorFlow's remapper fuses (with a ReLU after)."""

        def __init__(self, filters, kernel_size, strides, padding, **kwargs):
            super().__init__(**kwargs)
            self.filters = filters
            self.kernel_size = tuple(kernel_size)
            self.strides = tuple(strides)
            self.padding = padding.upper()

        def build(self, input_shape):
            self.kernel = self.add_weight(
                shape=(*self.kernel_size, input_shape[-1], self.filters), name="kernel"
            )
            self.bias = self.add_weight(shape=(self.filters,), name="bias")

        def call(self, inputs):
            outputs = tf.nn.conv2d(inputs, self.kernel, strides=self.strides, padding=self.padding)
            return tf.nn.bias_add(outputs, self.bias)

    class Passthrough(keras.layers.Layer):
        """Where a folded BatchNormalization was (keeps the graph's shape and names)."""

        def call(self, inputs, training=None, mask=None):
            return inputs

    return ConvBias, Passthrough


def fold_batch_norms(model: Any) -> Any:
    """A copy of the functional Keras ``model`` with every BatchNormalization that follows a
    Conv2D folded into it: ``bn(conv(x)) = conv'(x)`` with ``k' = k*s``, ``b' = (b-mean)*s+beta``,
    ``s = gamma / sqrt(var + eps)`` (inference mode), computed in float64."""
    import keras

    conv_bias, passthrough = _conv_bias_layer()
    folded_into: dict[str, Any] = {}  # conv name -> its BatchNormalization
    for layer in model.layers:
        if not isinstance(layer, keras.layers.BatchNormalization):
            continue
        parents = [node.operation for node in layer._inbound_nodes[0].parent_nodes]
        conv = parents[0] if len(parents) == 1 else None
        config = conv.get_config() if isinstance(conv, keras.layers.Conv2D) else {}
        if (
            config.get("groups") == 1
            and tuple(config.get("dilation_rate", ())) == (1, 1)
            and config.get("activation") == "linear"
            and config.get("data_format") == "channels_last"
            and len(conv._outbound_nodes) == 1
            and layer.axis in (-1, 3)
        ):
            folded_into[conv.name] = layer

    def clone(layer: Any) -> Any:
        if layer.name in folded_into:
            config = layer.get_config()
            return conv_bias(
                config["filters"],
                config["kernel_size"],
                config["strides"],
                config["padding"],
                name=layer.name,
            )
        if any(bn is layer for bn in folded_into.values()):
            return passthrough(name=layer.name)
        return layer.__class__.from_config(layer.get_config())

    folded = keras.models.clone_model(model, clone_function=clone)
    originals = {layer.name: layer for layer in model.layers}
    for new in folded.layers:
        old = originals.get(new.name)
        if old is None or not old.weights or isinstance(old, keras.layers.BatchNormalization):
            continue
        weights = old.get_weights()
        bn = folded_into.get(old.name)
        if bn is not None:
            gamma, beta, mean, var = (w.astype(np.float64) for w in bn.get_weights())
            scale = gamma / np.sqrt(var + bn.epsilon)
            kernel = weights[0].astype(np.float64) * scale
            bias = weights[1].astype(np.float64) if len(weights) > 1 else 0.0
            weights = [kernel.astype(np.float32), ((bias - mean) * scale + beta).astype(np.float32)]
        new.set_weights(weights)
    return folded


def _tensorflow_forward(keras_model: Any) -> Callable[[np.ndarray], np.ndarray]:
    """The folded network and ``preprocess_input`` as one graph, traced once for any batch."""
    import tensorflow as tf
    from keras.applications.resnet50 import preprocess_input

    network = fold_batch_norms(keras_model)
    height, width = TARGET_SIZE

    @tf.function(input_signature=[tf.TensorSpec([None, height, width, 3], tf.uint8, name="pixels")])
    def forward(pixels: tf.Tensor) -> tf.Tensor:
        return network(preprocess_input(tf.cast(pixels, tf.float32)), training=False)

    return lambda pixels: forward(pixels).numpy()


def _weights_tag(weights: str, seed: int) -> str:
    """The weights' part of a cache file's name: a weights file by its name and content."""
    if weights == "imagenet":
        return "imagenet"
    if weights == "random":
        return f"random-{seed}"
    digest = hashlib.sha256(Path(weights).read_bytes()).hexdigest()[:16]
    return f"{Path(weights).name}-{digest}"


def openvino_ir_path(weights: str, seed: int = RANDOM_SEED) -> Path:
    """Where the OpenVINO IR of ``weights`` is kept: next to Keras's downloaded weights
    (``$KERAS_HOME/models``), named after the weights and OpenVINO's version (the IR holds
    f32 weights: the precision is chosen when it is compiled, not here)."""
    import openvino

    version = openvino.__version__.split("-")[0]
    home = Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras")
    return home / "models" / f"imgclf-{MODEL_NAME}-{_weights_tag(weights, seed)}-ov{version}.xml"


def convert_to_openvino(keras_model: Any, path: Path) -> None:
    """Convert the Keras model to OpenVINO IR at ``path`` (``.xml`` + ``.bin``), uint8 NHWC
    pixels in, with ``preprocess_input`` as the IR's own preprocessing. Needs TensorFlow.

    Written atomically: the files are saved in a temporary folder beside ``path`` and moved
    into place, the ``.bin`` first, so a concurrent reader that finds the ``.xml`` finds both.
    """
    import openvino as ov
    from openvino.preprocess import PrePostProcessor

    network = ov.convert_model(keras_model, input=[(-1, *TARGET_SIZE, 3)])
    ppp = PrePostProcessor(network)
    ppp.input().tensor().set_element_type(ov.Type.u8).set_layout(ov.Layout("NHWC"))
    ppp.input().model().set_layout(ov.Layout("NHWC"))
    ppp.input().preprocess().convert_element_type(ov.Type.f32).reverse_channels().mean(
        list(IMAGENET_BGR_MEAN)
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=".convert-") as tmp:
        # compress_to_fp16=False: save_model would otherwise halve the weights' precision.
        ov.save_model(ppp.build(), f"{tmp}/model.xml", compress_to_fp16=False)
        os.replace(f"{tmp}/model.bin", path.with_suffix(".bin"))
        os.replace(f"{tmp}/model.xml", path)


def _openvino_forward(path: Path, precision: str) -> tuple[Callable[[np.ndarray], np.ndarray], str]:
    """The IR compiled for this process's cores at ``precision``; the forward pass and the
    precision the compiled model runs (``f32`` | ``bf16``).

    One stream, every core on one request (the LATENCY hint): a whole batch in one request
    measured faster here than one request per image over a stream per core
    (``python -m load.bench_inference``).
    """
    import openvino as ov

    config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": cpu_count()}
    if precision != "auto":
        config["INFERENCE_PRECISION_HINT"] = precision
    compiled = ov.Core().compile_model(str(path), "CPU", config)
    running = compiled.get_property("INFERENCE_PRECISION_HINT")
    request = compiled.create_infer_request()

    def forward(pixels: np.ndarray) -> np.ndarray:
        return request.infer({0: np.ascontiguousarray(pixels)})[0].copy()

    # What it runs, named as results name it (f16: OpenVINO's choice on some ARM CPUs).
    names = {ov.Type.bf16: "bf16", ov.Type.f16: "f16", ov.Type.f32: "f32"}
    return forward, names.get(running, str(running))


@dataclass
class Classifier:
    """ResNet50 behind one forward pass per batch: uint8 pixels in, class scores out.

    ``engine`` is ``openvino`` (the IR, compiled at ``precision``) or ``tensorflow`` (the
    compiled graph, f32: the reference). ``precision`` names what runs once built.
    """

    weights: str = "imagenet"
    engine: str = "openvino"
    precision: str = "auto"
    seed: int = RANDOM_SEED
    keras_model: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise ValueError(f"INFERENCE_ENGINE={self.engine!r}: expected one of {ENGINES}")
        if self.precision not in PRECISIONS:
            raise ValueError(
                f"INFERENCE_PRECISION={self.precision!r}: expected one of {PRECISIONS}"
            )
        if self.engine == "openvino":
            path = openvino_ir_path(self.weights, self.seed)
            if not path.is_file():
                try:
                    keras_model = self._keras()
                except ImportError as exc:  # the runtime image: no TensorFlow, IR expected
                    raise RuntimeError(
                        f"no OpenVINO IR at {path}, and converting one needs TensorFlow and "
                        "Keras (functions/inference/requirements-build.txt)"
                    ) from exc
                convert_to_openvino(keras_model, path)
            self._forward, self.precision = _openvino_forward(path, self.precision)
        else:
            if self.precision == "bf16":
                raise ValueError("INFERENCE_PRECISION=bf16: the tensorflow engine runs f32")
            configure_threads()
            self._forward, self.precision = _tensorflow_forward(self._keras()), "f32"

    def _keras(self) -> Any:
        if self.keras_model is None:
            self.keras_model = build_keras_model(self.weights, self.seed)
        return self.keras_model

    @property
    def model_name(self) -> str:
        """The architecture's name in results."""
        return MODEL_NAME

    @property
    def weights_name(self) -> str:
        """The weights' name in results (``imagenet`` | ``random`` | file name)."""
        return weights_name(self.weights)

    @property
    def info(self) -> dict[str, str]:
        """What every result names: ``{name, weights, engine, precision}``."""
        return {
            "name": self.model_name,
            "weights": self.weights_name,
            "engine": self.engine,
            "precision": self.precision,
        }

    def scores(self, pixels: np.ndarray) -> np.ndarray:
        """(N, 224, 224, 3) uint8 RGB -> (N, 1000) float32 softmax scores, in one pass."""
        pixels = np.asarray(pixels, dtype=np.uint8)
        if pixels.ndim != 4 or pixels.shape[0] == 0:
            raise ValueError(f"expected a non-empty (N, 224, 224, 3) batch, got {pixels.shape}")
        return self._forward(pixels)

    def classify(self, pixels: np.ndarray) -> list[Prediction]:
        """Top-5 classes of each image of a batch, in one forward pass."""
        return top_k(self.scores(pixels))

    def warm_up(self) -> None:
        """Run one image through, so the engine is ready before the first request."""
        height, width = TARGET_SIZE
        self.scores(np.zeros((1, height, width, 3), dtype=np.uint8))


@lru_cache(maxsize=1)
def get_classifier() -> Classifier:
    """The process's classifier, from MODEL_WEIGHTS / INFERENCE_ENGINE / INFERENCE_PRECISION,
    built on first use."""
    from imgclf.settings import get_settings

    settings = get_settings()
    classifier = Classifier(
        weights=settings.model_weights,
        engine=settings.inference_engine,
        precision=settings.inference_precision,
    )
    classifier.warm_up()
    return classifier
