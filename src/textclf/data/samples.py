"""Small corpora for tests and demos: synthetic raw lines and real rows cut from the UCI zip.

Lives in the package (not under tests/) so every test area, and ``make demo``-style scripts,
can import it without sys.path tricks.
"""

from __future__ import annotations

import random
import zipfile
from collections import defaultdict
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

from textclf.config import UCI_MEMBER


def raw_line(
    row_id: int | str,
    title: str,
    category: str = "b",
    story: str = "storyA",
    *,
    url: str = "http://example.com/a",
    publisher: str = "Example News",
    hostname: str = "example.com",
    timestamp: int | str = 1394470370698,
) -> str:
    """One line in the ``newsCorpora.csv`` format (no terminator); fields are not checked."""
    return "\t".join(str(v) for v in (row_id, title, url, publisher, category, story, hostname, timestamp))


def write_raw_corpus(path: Path, lines: Sequence[str], *, line_ending: str = "\n") -> Path:
    """Write ``lines`` as a raw corpus: ``.zip`` (member ``newsCorpora.csv``) or ``.csv``/``.tsv``."""
    body = "".join(line + line_ending for line in lines).encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".zip":
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(UCI_MEMBER, body)
    else:
        path.write_bytes(body)
    return path


@lru_cache(maxsize=4)
def real_sample_lines(
    zip_path: Path, n_rows: int = 400, seed: int = 0, max_per_story: int = 8
) -> tuple[str, ...]:
    """About ``n_rows`` unaltered lines of the real corpus, spread over many whole-ish stories.

    Stories are drawn per category (seeded) so all four labels appear in equal numbers, and at
    most ``max_per_story`` headlines are taken from each so a small sample still holds enough
    stories for a STORY-grouped split. Lines keep their original order (sorted by ID).
    """
    with zipfile.ZipFile(zip_path) as archive:
        text = archive.read(UCI_MEMBER).decode("utf-8")
    lines = text.split("\n")
    by_cat_story: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for i, line in enumerate(lines):
        parts = line.split("\t")
        if len(parts) == 8:
            by_cat_story[parts[4]][parts[5]].append(i)
    rng = random.Random(seed)
    quota = max(1, n_rows // max(len(by_cat_story), 1))
    chosen: list[int] = []
    for category in sorted(by_cat_story):
        stories = sorted(by_cat_story[category])
        rng.shuffle(stories)
        taken = 0
        for story in stories:
            if taken >= quota:
                break
            rows = by_cat_story[category][story][: min(max_per_story, quota - taken)]
            chosen.extend(rows)
            taken += len(rows)
    return tuple(lines[i] for i in sorted(chosen))
