"""The 1,000 ImageNet classes ResNet50 predicts, shipped with the code.

``imagenet_class_index.json`` is Keras's own class index (``{"0": ["n01440764", "tench"], ...}``,
the file ``keras.applications.imagenet_utils.decode_predictions`` downloads), so our labels
match what Keras users see, and nothing is fetched at run time.

Two names occur twice in that index ("crane" the bird and the machine, "maillot" twice), so a
class is identified by its index or its WordNet id; a name alone may match two classes.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources

NUM_CLASSES = 1000


def _load_index() -> tuple[tuple[str, ...], tuple[str, ...]]:
    text = resources.files(__package__).joinpath("imagenet_class_index.json").read_text("utf-8")
    raw = json.loads(text)
    if sorted(raw, key=int) != [str(i) for i in range(NUM_CLASSES)]:
        raise ValueError("imagenet_class_index.json must hold classes 0..999")
    pairs = [raw[str(i)] for i in range(NUM_CLASSES)]
    return tuple(p[0] for p in pairs), tuple(p[1] for p in pairs)


# CLASS_IDS[i] is class i's WordNet id ("n01440764"), CLASS_NAMES[i] its name ("tench").
CLASS_IDS, CLASS_NAMES = _load_index()

_NAME_SET = frozenset(CLASS_NAMES)


def class_id(index: int) -> str:
    """The WordNet id of class ``index`` (0..999)."""
    return CLASS_IDS[_check_index(index)]


def class_name(index: int) -> str:
    """The name of class ``index`` (0..999), as Keras's ``decode_predictions`` gives it."""
    return CLASS_NAMES[_check_index(index)]


def is_class_name(name: str) -> bool:
    """Whether ``name`` is one of the 1,000 class names (exact, case-sensitive)."""
    return name in _NAME_SET


@cache
def _index_by_id() -> dict[str, int]:
    return {wnid: i for i, wnid in enumerate(CLASS_IDS)}


def index_of_id(wnid: str) -> int:
    """The class index of WordNet id ``wnid``; ``KeyError`` if it is not one of the 1,000."""
    return _index_by_id()[wnid]


def _check_index(index: int) -> int:
    if not 0 <= index < NUM_CLASSES:
        raise IndexError(f"class index {index} is not in 0..{NUM_CLASSES - 1}")
    return index
