"""Figures of the evaluation: confusion matrices side by side, and the colour of each label."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path

import numpy as np


def plot_confusion_matrices(matrices: dict[str, np.ndarray], labels: Sequence[str], path: Path) -> Path:
    """One panel per classifier; colour = share of the true class (row), text = count and share."""
    import matplotlib

    matplotlib.use("Agg")  # no display needed (CI, SSH)
    import matplotlib.pyplot as plt

    # Any label names: underscores as spaces, long ones wrapped onto two lines.
    short = [textwrap.fill(name.replace("_", " "), 14, max_lines=2, placeholder="…") for name in labels]
    n = len(labels)
    side = max(4.6, 0.5 * n + 2.6)  # cells stay legible for a dozen labels
    fig, axes = plt.subplots(1, len(matrices), figsize=((side + 0.6) * len(matrices), side), squeeze=False)
    fontsize = 8 if n <= 6 else 6 if n <= 12 else 4
    for ax, (title, counts) in zip(axes[0], matrices.items(), strict=True):
        cm = np.asarray(counts, dtype=float)
        rows = cm.sum(axis=1, keepdims=True)
        share = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
        ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
        for i in range(cm.shape[0]):
            for j in range(cm.shape[1]):
                colour = "white" if share[i, j] > 0.6 else "black"
                ax.text(
                    j,
                    i,
                    f"{int(cm[i, j]):,}\n{share[i, j]:.1%}",
                    ha="center",
                    va="center",
                    fontsize=fontsize,
                    color=colour,
                )
        ax.set_xticks(range(len(short)), short, rotation=30, ha="right")
        ax.set_yticks(range(len(short)), short)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def label_colours(labels: Sequence[str]) -> dict[str, str]:
    """A colour per label, in class-id order, for any label set: matplotlib's ``tab10`` for up to
    ten labels (the news preset's four get its first four, the colours of every committed
    figure), else evenly spaced hues, alternately light and dark so neighbours stay apart."""
    import matplotlib
    from matplotlib.colors import hsv_to_rgb, to_hex

    if len(labels) <= 10:
        tab10 = matplotlib.colormaps["tab10"]
        return {label: to_hex(tab10(i)) for i, label in enumerate(labels)}
    hues = hsv_to_rgb([(i / len(labels), 0.7, 0.9 if i % 2 else 0.6) for i in range(len(labels))])
    return {label: to_hex((r, g, b)) for label, (r, g, b) in zip(labels, hues.tolist(), strict=True)}
