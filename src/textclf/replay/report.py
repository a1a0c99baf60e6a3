"""The replay's figures, all recomputable from ``answers.jsonl``: per window, the accuracy of the
served answers, of the frozen initial model and of the oracle, on the same rows (those the stack
answered), and the versions that served them; the table, and ``replay.png``."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from textclf_api.logic.deployment import SAME_JOB_COMPARISONS

SERIES = (("served", "served_label"), ("frozen", "frozen_label"), ("oracle", "oracle_label"))


def window_figures(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Rows, answered rows, accuracies (None when nothing to score) and versions of one window."""
    answered = [r for r in records if r.get("served_label") is not None]
    figures: dict[str, Any] = {"rows": len(records), "answered": len(answered)}
    for name, key in SERIES:
        scored = [r for r in answered if r.get(key) is not None]
        right = sum(r[key] == r["true_label"] for r in scored)
        figures[f"{name}_accuracy"] = round(right / len(scored), 4) if scored else None
    figures["versions_served"] = dict(Counter(str(r["model_version"]) for r in answered))
    figures["feedback_labels"] = sum(r.get("feedback") is not None for r in records)
    figures["poison_labels"] = sum(r.get("poison") is not None for r in records)
    return figures


def margin_last(windows: Sequence[dict[str, Any]], n: int = 2) -> float | None:
    """Mean served-minus-frozen accuracy of the last ``n`` windows, in points (the issue's check)."""
    tail = [w for w in windows[-n:] if w["served_accuracy"] is not None and w["frozen_accuracy"] is not None]
    if len(tail) < min(n, len(windows)) or not tail:
        return None
    return round(100 * sum(w["served_accuracy"] - w["frozen_accuracy"] for w in tail) / len(tail), 2)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _gate_figures(metrics: dict[str, float]) -> str:
    """``  (test 0.9126 vs champion 0.9194, ...)``: each figure the gate compared in the job."""
    pairs = [
        f"{mine.removesuffix('_accuracy')} {metrics[mine]:.4f} vs champion {metrics[theirs]:.4f}"
        for mine, theirs, _ in SAME_JOB_COMPARISONS
        if mine in metrics and theirs in metrics
    ]
    return f"  ({', '.join(pairs)})" if pairs else ""


def render(report: dict[str, Any]) -> str:
    lines = [
        f"{'window':<11}{'rows':>6}{'served':>9}{'frozen':>9}{'oracle':>9}{'failed':>8}{'labels':>8}"
        f"{'poison':>8}  versions"
    ]
    for w in report["windows"]:
        versions = ", ".join(f"{v} ({n})" for v, n in w["versions_served"].items()) or "-"
        lines.append(
            f"{w['window']:<11}{w['rows']:>6}{_pct(w['served_accuracy']):>9}{_pct(w['frozen_accuracy']):>9}"
            f"{_pct(w['oracle_accuracy']):>9}{w['failed_requests']:>8}{w['feedback_labels']:>8}"
            f"{w['poison_labels']:>8}  {versions}"
        )
    retrains = report["retrains"]
    if retrains is None:
        lines.append("retrains: unknown (no control plane to list training jobs)")
    else:
        lines.append(f"retrains: {len(retrains)}")
        for r in retrains:
            lines.append(
                f"  {r['job']}  reason {r['reason']}  -> {r['outcome']}"
                f"{'  version ' + str(r['version']) if r['version'] else ''}"
                + _gate_figures(r.get("gate_metrics") or {})
                # Why a retrain was refused (the gate names the labellers whose rows moved it).
                + (
                    f": {r['outcome_reason']}"
                    if r["outcome"] != "deployed" and r.get("outcome_reason")
                    else ""
                )
            )
    flagged = [
        f"{name} ({w['window']})"
        for w in report["windows"]
        for name in (w.get("settle") or {}).get("flagged_labellers") or []
    ]
    if flagged:
        lines.append(f"labellers the monitor flagged: {', '.join(flagged)}")
    monitor = "present" if report["monitor"] else "no monitor (GET /monitor absent)"
    margin = report["served_minus_frozen_last_two"]
    lines.append(
        f"failed requests {report['failed_requests']} (retried and served: "
        f"{sum(report['retried_requests'].values())})  "
        f"alarms in ALARM once settled {len(report['alarms'])}  monitor {monitor}"
        + (f"  served - frozen, last two windows: {margin:+.2f} points" if margin is not None else "")
    )
    return "\n".join(lines)


def plot(report: dict[str, Any], path: Path) -> Path:
    """Accuracy per window (served, frozen, oracle) with a marker where each retrain started."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    windows = report["windows"]
    xs = list(range(len(windows)))
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(windows) + 2), 4.2))
    for name, _key in SERIES:
        ys = [w[f"{name}_accuracy"] for w in windows]
        if any(y is not None for y in ys):
            ax.plot(
                xs,
                [100 * y if y is not None else float("nan") for y in ys],
                marker="o",
                label={"served": "served (the stack)", "frozen": "frozen initial model", "oracle": "oracle"}[
                    name
                ],
            )
    names = [w["window"] for w in windows]
    for retrain in report["retrains"] or []:
        if retrain.get("window") in names:
            x = names.index(retrain["window"]) + 0.5
            deployed = retrain["outcome"] == "deployed"
            ax.axvline(x, color="green" if deployed else "grey", linestyle="--", alpha=0.6)
            ax.annotate(
                f"{retrain['reason']}: {retrain['outcome']}",
                (x, 0.02),
                xycoords=("data", "axes fraction"),
                rotation=90,
                fontsize=7,
                va="bottom",
            )
    ax.set_xticks(xs, names)
    ax.set_ylabel("accuracy (%)")
    ax.set_title(
        f"textclf replay: {report['rows_per_window']:,} headlines a {report['window_kind']}, "
        f"feedback {report['feedback_rate']:.0%}"
    )
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:  # no line when no request was answered
        ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
