"""docs/theory.md: every quoted code line exists in the file it names, every figure exists, and
`textclf figures` makes them for real (tiny model, small real sample)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from textclf import config

DOC = config.REPO_ROOT / "docs" / "theory.md"
QUOTE = re.compile(r"```python\n# (?P<path>\S+)[^\n]*\n(?P<code>.*?)```", re.DOTALL)


def source(path: str) -> str:
    if path.startswith("transformers/"):
        import transformers

        return (Path(transformers.__file__).parent.parent / path).read_text(encoding="utf-8")
    return (config.REPO_ROOT / path).read_text(encoding="utf-8")


def test_every_quoted_line_is_in_the_file_it_names() -> None:
    quotes = list(QUOTE.finditer(DOC.read_text(encoding="utf-8")))
    assert len(quotes) >= 8
    for quote in quotes:
        text = source(quote["path"])
        for line in quote["code"].strip().splitlines():
            assert line.strip() in text, f"{quote['path']} no longer has: {line.strip()}"


def test_every_figure_is_in_the_repository() -> None:
    figures = re.findall(r"\]\((img/[^)]+\.png)\)", DOC.read_text(encoding="utf-8"))
    assert len(figures) >= 7
    for figure in figures:
        assert (DOC.parent / figure).is_file(), figure


@pytest.mark.heavy
def test_textclf_figures_makes_every_figure(tmp_path: Path) -> None:
    import shutil

    import numpy as np
    import pandas as pd

    from tests.helpers.tiny_data import make_tiny_dataset, shared_zip
    from tests.helpers.tiny_model import make_tiny_model_dir
    from textclf.cli import main
    from textclf.labels import LABELS
    from textclf.packaging import load_inference_module

    data = make_tiny_dataset(tmp_path / "data", shared_zip(), n_rows=300)
    model = make_tiny_model_dir(tmp_path / "model", trained=True)
    lexical = load_inference_module().lexical
    train = pd.read_parquet(data / "train" / "data.parquet")
    y = train["label"].map({n: i for i, n in enumerate(LABELS)}).to_numpy()
    vectorizer, weight, bias = lexical.fit(train["text"].tolist(), y, len(LABELS), min_df=1)
    lexical.LexicalHead(vectorizer, weight, bias, (0.5, 1.5)).save(model)
    out = tmp_path / "img"
    assert (
        main(["figures", "--model", str(model), "--data", str(data), "--out", str(out), "--rows", "200"]) == 0
    )
    names = {"scaling", "attention", "cls_pca", "lengths", "blend", "calibration"}
    assert {p.stem for p in out.glob("theory_*.png")} == {f"theory_{n}" for n in names}
    report = json.loads((out / "theory.json").read_text())
    assert np.allclose(report["scaling"]["variance"], report["scaling"]["dims"], rtol=0.1)  # Var(q.k) = d
    assert report["wordpiece"]["examples"] is not None and 0 < report["lengths"]["covered"] <= 1
    assert set(report["blend"]["ece"]) >= {"transformer alone"}
    shutil.rmtree(out)
