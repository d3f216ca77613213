"""Corpora, vocabularies and batching."""

from rnnkit.data.batching import StreamBatches, bucket_batches, pad
from rnnkit.data.text import builtin_corpus, load_text
from rnnkit.data.vocab import BOS, EOS, PAD, UNK, CharVocab, Vocabulary
from rnnkit.data.word_corpora import word_corpus
from rnnkit.data.words import WordVocab

__all__ = [
    "CharVocab",
    "Vocabulary",
    "WordVocab",
    "word_corpus",
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
