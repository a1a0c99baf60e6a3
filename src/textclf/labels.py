"""The UCI News Aggregator preset's label set: the one place that names the four topics.

Only the news corpus is described here (its CATEGORY codes and their public names, in the
class-id order every news model uses). Any other dataset's labels come from the data itself
(``textclf data`` writes them to ``labels.json``), and every later stage reads them from there
or from the trained model's ``id2label``.
"""

from typing import Final

# UCI News Aggregator CATEGORY code -> public label name.
CATEGORY_TO_LABEL: Final[dict[str, str]] = {
    "b": "business",
    "t": "science_and_technology",
    "e": "entertainment",
    "m": "health",
}

LABELS: Final[tuple[str, ...]] = tuple(CATEGORY_TO_LABEL.values())

ID2LABEL: Final[dict[int, str]] = dict(enumerate(LABELS))
LABEL2ID: Final[dict[str, int]] = {name: i for i, name in ID2LABEL.items()}


def label_for_category(code: str) -> str:
    """Map a CATEGORY code (b/t/e/m) to its label; raises KeyError for anything else."""
    return CATEGORY_TO_LABEL[code]
