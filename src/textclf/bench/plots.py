"""The bench's PNG plots (model-level and endpoint-level latency CDFs, throughput, soak RSS).

Their own module, as ``evaluation/plots.py`` is: ``report`` renders tables from the results
dict, this draws from the same dict, and matplotlib is imported only when plots are written.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from textclf.bench.report import MB, TARGET_RSS_MB, find_run


def _log_ms_axis(ax: Any) -> None:
    """Log-scale x axis labelled in plain milliseconds (1, 2, 5, 10 ...), not 2x10^0."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _pos: f"{value:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())


def save_figure(fig: Any, path: Path, dpi: int) -> Path:
    """Lay out, write and close ``fig``; returns ``path``."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def write_plots(results: Mapping[str, Any], out_dir: Path) -> list[Path]:
    """PNG plots for whatever levels ran; returns the files written."""
    import matplotlib

    matplotlib.use("Agg")  # no display; also keeps the bench usable over ssh
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    # Small figures at dpi 100 keep each PNG well under 100 KB for the docs.
    dpi = 100

    model = results.get("model") or {}
    cdfs = model.get("cdf") or {}
    if cdfs:
        fig, ax = plt.subplots(figsize=(7, 4))
        for name, points in cdfs.items():
            ax.plot(points["ms"], points["fraction"], label=name)
        _log_ms_axis(ax)
        ax.set_xlabel("single-headline latency (ms, log scale)")
        ax.set_ylabel("fraction of calls")
        ax.set_title("Model level: single-headline latency CDF")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
        written.append(save_figure(fig, out_dir / "model_latency_cdf.png", dpi))

    runs = results.get("endpoint_level") or []
    if runs:
        servers = list(dict.fromkeys(r["server"] for r in runs))
        colors = {s: f"C{i}" for i, s in enumerate(servers)}
        concurrencies = sorted({r["concurrency"] for r in runs})
        styles = ["-", "--", "-.", ":"]
        fig, ax = plt.subplots(figsize=(7, 4))
        for run in runs:
            cdf = run.get("cdf") or {}
            if not cdf.get("ms"):
                continue
            style = styles[concurrencies.index(run["concurrency"]) % len(styles)]
            ax.plot(
                cdf["ms"],
                cdf["fraction"],
                style,
                color=colors[run["server"]],
                label=f"{run['server']} c={run['concurrency']}",
            )
        _log_ms_axis(ax)
        ax.set_xlabel("request latency (ms, log scale)")
        ax.set_ylabel("fraction of requests")
        ax.set_title("Endpoint level: latency CDF by server and concurrency")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8, ncol=2)
        written.append(save_figure(fig, out_dir / "latency_cdf.png", dpi))

        fig, ax = plt.subplots(figsize=(7, 4))
        width = 0.8 / len(servers)
        xs = list(range(len(concurrencies)))
        for i, server in enumerate(servers):
            values = []
            for c in concurrencies:
                run = find_run(results, server, c)
                values.append(run["throughput_rps"] if run else 0.0)
            bars = ax.bar([x + (i - (len(servers) - 1) / 2) * width for x in xs], values, width, label=server)
            ax.bar_label(bars, fmt="%.0f", fontsize=7)
        ax.set_xticks(xs, [str(c) for c in concurrencies])
        ax.set_xlabel("concurrent clients (closed loop)")
        ax.set_ylabel("headlines / s")
        ax.set_title("Endpoint level: throughput by concurrency")
        ax.grid(True, axis="y", alpha=0.3)
        ax.legend()
        written.append(save_figure(fig, out_dir / "throughput.png", dpi))

    soak = results.get("soak")
    if soak and soak.get("rss_series"):
        ts = [p[0] for p in soak["rss_series"]]
        mbs = [p[1] / MB for p in soak["rss_series"]]
        fig, ax = plt.subplots(figsize=(7, 3.5))
        ax.plot(ts, mbs, label="endpoint RSS")
        ax.axhline(TARGET_RSS_MB, color="red", linestyle="--", label=f"target {TARGET_RSS_MB:.0f} MB")
        ax.set_ylim(0, max(TARGET_RSS_MB, *mbs) * 1.1)
        ax.set_xlabel("seconds")
        ax.set_ylabel("RSS (MB)")
        ax.set_title(f"Soak: endpoint RSS at concurrency {soak['concurrency']}")
        ax.grid(True, alpha=0.3)
        ax.legend()
        written.append(save_figure(fig, out_dir / "soak_rss.png", dpi))
    return written
