"""The label set: the one place that names the topics.

Everything else (data preparation, the model's ``id2label``, the API schema, metrics)
derives from this module. The order of ``LABELS`` is the class-id order of every model.
"""

from typing import Final, Literal

# UCI News Aggregator CATEGORY code -> public label name.
CATEGORY_TO_LABEL: Final[dict[str, str]] = {
    "b": "business",
    "t": "science_and_technology",
    "e": "entertainment",
    "m": "health",
}

LABELS: Final[tuple[str, ...]] = tuple(CATEGORY_TO_LABEL.values())

Label = Literal["business", "science_and_technology", "entertainment", "health"]

ID2LABEL: Final[dict[int, str]] = dict(enumerate(LABELS))
LABEL2ID: Final[dict[str, int]] = {name: i for i, name in ID2LABEL.items()}


def label_for_category(code: str) -> str:
    """Map a CATEGORY code (b/t/e/m) to its label; raises KeyError for anything else."""
    return CATEGORY_TO_LABEL[code]
