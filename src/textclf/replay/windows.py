"""The replay's calendar: windows between --start and --end, and the headlines each one replays.

A window is a calendar month (named ``2014-06``) or seven days from --start (named by their first
day, ``2014-04-07``); --end is exclusive. A window replays a seeded sample of its rows spread over
its stories: stories are shuffled and dealt round-robin, one headline of each in turn, so a story
that 300 publishers covered cannot fill a window on its own. The sample is replayed in time order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from textclf.errors import UserError

WINDOW_KINDS = ("week", "month")


@dataclass(frozen=True)
class Window:
    name: str
    start: datetime
    end: datetime

    @property
    def start_ms(self) -> int:
        return int(self.start.timestamp() * 1000)

    @property
    def end_ms(self) -> int:
        return int(self.end.timestamp() * 1000)


def parse_day(flag: str, value: str) -> datetime:
    """A ``YYYY-MM-DD`` (or ISO 8601 time, UTC unless it says) as an aware datetime."""
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise UserError(f"{flag} {value!r} is not a date: give ISO 8601, e.g. 2014-04-01") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def windows(start: datetime, end: datetime, kind: str) -> list[Window]:
    """Consecutive windows covering [start, end); the last one is cut at ``end``."""
    if kind not in WINDOW_KINDS:
        raise UserError(f"--window must be one of {', '.join(WINDOW_KINDS)}, got {kind!r}")
    if start >= end:
        raise UserError(f"--start {start.date()} must be before --end {end.date()}")
    found: list[Window] = []
    current = start
    while current < end:
        if kind == "month":
            following = datetime(current.year + current.month // 12, current.month % 12 + 1, 1, tzinfo=UTC)
            name = f"{current:%Y-%m}"
        else:
            following = current + timedelta(days=7)
            name = f"{current:%Y-%m-%d}"
        found.append(Window(name, current, min(following, end)))
        current = following
    return found


def check_window_names(flag: str, names: Sequence[str], known: Sequence[Window]) -> tuple[str, ...]:
    """``names`` (e.g. --poison-windows), each one of ``known``'s names."""
    valid = {w.name for w in known}
    unknown = [name for name in names if name not in valid]
    if unknown:
        raise UserError(f"{flag}: no window {', '.join(unknown)} (the windows: {', '.join(sorted(valid))})")
    return tuple(names)


def rows_in(frame: pd.DataFrame, window: Window) -> pd.DataFrame:
    stamps = frame["timestamp"]
    return frame[(stamps >= window.start_ms) & (stamps < window.end_ms)]


def sample_window(rows: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    """Up to ``n`` rows spread over the stories (round-robin in a seeded story order), in time order.

    Deterministic for the same rows and seed whatever their input order (rows are sorted by id first).
    """
    if n <= 0 or rows.empty:
        return rows.iloc[0:0]
    rng = np.random.default_rng(seed)
    ordered = rows.sort_values("id", kind="stable").reset_index(drop=True)
    ordered = ordered.iloc[rng.permutation(len(ordered))].reset_index(drop=True)
    stories = np.sort(ordered["story"].unique().astype(str))
    story_rank = dict(zip(stories[rng.permutation(len(stories))], range(len(stories)), strict=True))
    # Turn of a row = its position among its story's rows; round r deals every story's r-th row.
    turn = ordered.groupby("story", sort=False).cumcount().to_numpy()
    rank = ordered["story"].astype(str).map(story_rank).to_numpy()
    chosen = ordered.iloc[np.lexsort((rank, turn))[:n]]
    return chosen.sort_values(["timestamp", "id"], kind="stable").reset_index(drop=True)
