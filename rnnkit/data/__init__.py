"""Corpora, vocabularies and batching."""

from rnnkit.data.batching import StreamBatches, bucket_batches, pad
from rnnkit.data.text import builtin_corpus, load_text
from rnnkit.data.vocab import BOS, EOS, PAD, UNK, CharVocab, Vocabulary

__all__ = [
    "CharVocab",
    "Vocabulary",
    "PAD",
    "BOS",
    "EOS",
    "UNK",
    "StreamBatches",
    "pad",
    "bucket_batches",
    "builtin_corpus",
    "load_text",
]
