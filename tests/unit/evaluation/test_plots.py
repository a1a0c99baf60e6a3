"""Label colours for any label set; the news preset keeps the colours of the committed figures."""

from __future__ import annotations

import pytest

from textclf.evaluation.plots import label_colours
from textclf.labels import LABELS


def test_the_news_preset_keeps_its_colours() -> None:
    # docs/img/theory_cls_pca.png was drawn with these (matplotlib's tab10, first four).
    assert label_colours(LABELS) == {
        "business": "#1f77b4",
        "science_and_technology": "#ff7f0e",
        "entertainment": "#2ca02c",
        "health": "#d62728",
    }


@pytest.mark.parametrize("n", [2, 3, 10, 12, 40])
def test_any_label_set_gets_distinct_colours_in_class_order(n: int) -> None:
    labels = [f"label {i}" for i in range(n)]
    colours = label_colours(labels)
    assert list(colours) == labels and len(set(colours.values())) == n
    assert all(c.startswith("#") and len(c) == 7 for c in colours.values())
    # The same labels always get the same colours: figures reproduce.
    assert label_colours(labels) == colours
