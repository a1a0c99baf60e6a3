"""Re-export of the label set so pipeline code reads ``textclf.labels``.

The definition lives with the API (``textclf_api.labels``) because the Lambda package
must carry it without the rest of this package.
"""

from textclf_api.labels import CATEGORY_TO_LABEL, ID2LABEL, LABEL2ID, LABELS, Label, label_for_category

__all__ = ["CATEGORY_TO_LABEL", "ID2LABEL", "LABEL2ID", "LABELS", "Label", "label_for_category"]
