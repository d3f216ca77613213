"""Corpora, vocabularies and batching."""

from rnnkit.data.batching import StreamBatches
from rnnkit.data.text import builtin_corpus, load_text
from rnnkit.data.vocab import CharVocab

__all__ = ["CharVocab", "StreamBatches", "builtin_corpus", "load_text"]
