"""The checks a dataset passes before anything is written: bad rows, conflicting labels, labels.

Each refusal is one line that names what is wrong and the flag that fixes it (the CLI prints it
and exits 2); they all run on the in-memory frame, so a refused dataset leaves ``--out`` as it was.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from textclf.data.options import bad_rows_limit
from textclf.errors import UserError


def _reasons(skipped: Mapping[str, int]) -> str:
    return ", ".join(f"{reason} {count:,}" for reason, count in skipped.items())


def check_bad_rows(
    origin: str, rows_read: int, skipped: Mapping[str, int], examples: Mapping[str, list[int]], spec: str
) -> None:
    """Refuse when more rows were skipped than --max-bad-rows allows."""
    bad = sum(skipped.values())
    limit = bad_rows_limit(spec, rows_read)
    if bad <= limit:
        return
    lines = sorted({line for kept in examples.values() for line in kept})[:5]
    raise UserError(
        f"{origin}: {bad:,} of {rows_read:,} rows are unusable ({_reasons(skipped)}; e.g. lines "
        f"{', '.join(map(str, lines))}), over --max-bad-rows {spec.strip()} ({limit:,} rows): check "
        f"--text-column/--label-column, fix those rows, or pass --max-bad-rows {bad}"
    )


@dataclass(frozen=True)
class Conflicts:
    texts: int
    rows: int
    dropped: int

    def as_dict(self) -> dict[str, int]:
        return {"texts": self.texts, "rows": self.rows, "dropped": self.dropped}


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def resolve_conflicts(frame: pd.DataFrame, policy: str) -> tuple[pd.DataFrame, Conflicts]:
    """Find texts carrying more than one label; drop their rows, keep them, or refuse."""
    # pyarrow's hash aggregation: a pandas groupby on 370k strings costs several times more.
    table = pa.table(
        {"text": pa.array(frame["text"], pa.string()), "label": pa.array(frame["label"], pa.string())}
    )
    per_text = table.group_by("text").aggregate([("label", "count_distinct")])
    conflicting = per_text.filter(pc.greater(per_text["label_count_distinct"], 1))["text"]
    if len(conflicting) == 0:
        return frame, Conflicts(0, 0, 0)
    mask = pc.is_in(table["text"], value_set=conflicting).to_numpy(zero_copy_only=False)
    rows = int(mask.sum())
    if policy == "keep":
        return frame, Conflicts(len(conflicting), rows, 0)
    if policy == "drop":
        return frame[~mask].reset_index(drop=True), Conflicts(len(conflicting), rows, rows)
    example_text = str(conflicting[0])
    counts = frame.loc[frame["text"] == example_text, "label"].value_counts()
    detail = ", ".join(f"{label} {n}" for label, n in sorted(counts.items()))
    texts = f"{len(conflicting):,} texts carry" if len(conflicting) > 1 else "1 text carries"
    raise UserError(
        f"{texts} conflicting labels ({rows:,} rows; e.g. {_short(example_text)!r}: "
        f"{detail}): pass --conflicts drop to leave those rows out or --conflicts keep to keep them all"
    )


def label_counts(frame: pd.DataFrame, labels: Sequence[str]) -> dict[str, int]:
    counts = frame["label"].value_counts()
    return {label: int(counts.get(label, 0)) for label in labels}


def check_labels(counts: Mapping[str, int], min_rows: int, column: str) -> None:
    """Refuse fewer than 2 labels, or labels with fewer than ``min_rows`` rows."""
    present = [label for label, n in counts.items() if n > 0]
    if len(present) < 2:
        found = f"only {present[0]!r}" if present else "none"
        raise UserError(
            f"the label column {column!r} holds {len(present)} label ({found}); a classifier needs at least "
            "2: name another --label-column or add rows of other labels"
        )
    rare = {label: n for label, n in counts.items() if n < min_rows}
    if rare:
        listed = ", ".join(
            f"{label!r} ({n})" for label, n in sorted(rare.items(), key=lambda kv: (kv[1], kv[0]))
        )
        raise UserError(
            f"{len(rare)} label{'s' if len(rare) > 1 else ''} of {column!r} "
            f"{'have' if len(rare) > 1 else 'has'} fewer than {min_rows} rows: {listed}; add rows, "
            "merge or remove those labels, or lower --min-rows-per-label"
        )
