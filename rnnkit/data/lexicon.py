"""The VADER sentiment lexicon (Hutto and Gilbert 2014) as per-word features: 7,517 words,
emoticons and slang, each rated by ten people from -4 (extremely negative) to +4 (extremely
positive), read from the same vaderSentiment 3.3.2 source archive as the rated sentences.

    features(w) = [ valence(w) / 4,  1 if w is in the lexicon else 0 ]        (2,)

A model given these knows the prior polarity of words it has seen too rarely in its training
sentences to learn it, the way a lexicon-informed network does (Teng et al. 2016). The lexicon
was built from words, not from the rated sentences.
"""

from __future__ import annotations

import functools
import tarfile

import numpy as np

from rnnkit.data.sentiment import archive_path
from rnnkit.errors import DataError

MEMBER = "vaderSentiment-3.3.2/vaderSentiment/vader_lexicon.txt"
FEATURES = 2


@functools.lru_cache(maxsize=1)
def vader_lexicon() -> dict[str, float]:
    """{token: mean valence in [-4, 4]}; the file is cp1252 text, one ``token TAB mean TAB
    std TAB [ten ratings]`` per line."""
    path = archive_path()
    with tarfile.open(path, "r:gz") as tar:
        member = tar.extractfile(MEMBER)
        if member is None:
            raise DataError(f"{path} has no {MEMBER}", "download the archive again")
        text = member.read().decode("cp1252")
    lexicon = {}
    for number, line in enumerate(text.splitlines(), 1):
        parts = line.split("\t")
        if len(parts) < 2:
            continue
        try:
            lexicon[parts[0].lower()] = float(parts[1])
        except ValueError:
            raise DataError(
                f"{path}: {MEMBER} line {number} has no valence: {line[:60]!r}"
            ) from None
    return lexicon


def lexicon_features(tokens: list[str]) -> np.ndarray:
    """(len(tokens), 2) float32: [valence / 4, in the lexicon] per token (zeros if not)."""
    lexicon = vader_lexicon()
    out = np.zeros((len(tokens), FEATURES), dtype=np.float32)
    for i, token in enumerate(tokens):
        value = lexicon.get(token.lower())
        if value is not None:
            out[i] = (value / 4.0, 1.0)
    return out
