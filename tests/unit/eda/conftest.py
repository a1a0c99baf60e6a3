"""EDA fixtures: real rows cut from the shared zip (skipped without it) and a tiny tokenizer."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.tiny_data import shared_zip
from textclf.data.prepare import Prepared, prepare
from textclf.data.samples import real_sample_lines, write_raw_corpus


@pytest.fixture(scope="session")
def real_data(tmp_path_factory: pytest.TempPathFactory) -> Prepared:
    """Processed splits of 400 real headlines (100 per label, <= 8 per story)."""
    zip_path = shared_zip()
    root = tmp_path_factory.mktemp("real")
    source = write_raw_corpus(root / "newsCorpora.csv", real_sample_lines(zip_path, 400, 0, 8))
    return prepare(str(source), root / "data", progress=False)


@pytest.fixture(scope="session")
def tiny_tokenizer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A word-level tokenizer saved with save_pretrained and loadable by AutoTokenizer."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {"[UNK]": 0, "[CLS]": 1, "[SEP]": 2, "[PAD]": 3, "the": 4, "to": 5, "of": 6}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 1), ("[SEP]", 2)]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        pad_token="[PAD]",
        model_max_length=128,
    )
    path = tmp_path_factory.mktemp("tok")
    fast.save_pretrained(str(path))
    return path
