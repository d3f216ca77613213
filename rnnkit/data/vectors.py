"""Pre-trained word vectors from text files: word2vec's text format and GloVe's, read into an
embedding matrix for a word vocabulary.

    word2vec text     a header "n d", then n lines "word v1 ... vd"   (`rnnkit train word2vec`
                      writes one: RUN/vectors.txt; gensim's save_word2vec_format(binary=False))
    GloVe             the same lines without the header

    read_vectors(path) -> (words, array (n, d) float32)
    embedding_from_vectors(vocab, path, dim=None) -> (weight (len(vocab), d), coverage)
    format_vectors(words, array) -> the word2vec text of those vectors (exact for float32)

A file is read line by line (UTF-8, one space between fields, a line ending in spaces is
accepted); the first line is a header when it holds exactly two whole numbers. Every problem is a
DataError naming the file and the line: a line with the wrong number of values (the dimension
expected and found), a value that is not a finite number, bytes that are not UTF-8 (the binary
word2vec format, say), a header whose count does not match, an empty file. A word may not contain
a space (the GloVe 840B file's few such lines are refused, by line number).

`embedding_from_vectors` gives row ``vocab.index[w]`` the file's vector for ``w`` (for a
lower-cased vocabulary, the first file word whose lower-case form is ``w`` when ``w`` itself is
not there: cased files such as word2vec's GoogleNews), a small random vector (normal, the file's
own standard deviation, seeded) to every other word and to <s>, </s> and <unk>, and zeros to
<pad>. ``coverage`` counts the vocabulary's words (specials aside) that the file covered.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from rnnkit.data.text import check_data_file
from rnnkit.errors import DataError

__all__ = ["read_vectors", "embedding_from_vectors", "format_vectors"]

HINT = "pass a word2vec text file ('n d' header, then 'word v1 ... vd' lines) or a GloVe file"


def _lines(path: Path):
    """(line number, text) of every non-blank line, UTF-8 checked line by line."""
    with open(path, "rb") as f:
        for number, raw in enumerate(f, 1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                bad = raw[err.start : err.start + 1].hex()
                raise DataError(
                    f"{path}, line {number}: not UTF-8 (byte 0x{bad} at column {err.start + 1})",
                    "the binary word2vec format is not read: convert it with gensim, "
                    "KeyedVectors.load_word2vec_format(f, binary=True).save_word2vec_format("
                    "'vectors.txt')",
                ) from None
            text = text.rstrip()
            if text:
                yield number, text


def _header(text: str) -> tuple[int, int] | None:
    parts = text.split(" ")
    if len(parts) == 2 and all(p.isdigit() for p in parts):
        return int(parts[0]), int(parts[1])
    return None


def _rows(path: Path):
    """Yield (line number, word, values as strings) of a vector file; first the dimension."""
    lines = _lines(path)
    first = next(lines, None)
    if first is None:
        raise DataError(f"vector file is empty: {path}", HINT)
    header = _header(first[1])
    dim, count = None, None
    if header is not None:
        count, dim = header
        if dim < 1:
            raise DataError(f"{path}, line {first[0]}: the header gives dimension {dim}", HINT)
    else:
        dim = len(first[1].split(" ")) - 1
        if dim < 1:
            raise DataError(f"{path}, line {first[0]}: a word without values: {first[1]!r}", HINT)
    yield dim
    seen = 0
    rest = lines if header is not None else _chain(first, lines)
    for number, text in rest:
        parts = text.split(" ")
        if len(parts) != dim + 1:
            raise DataError(
                f"{path}, line {number}: expected a word and {dim} values, found "
                f"{len(parts) - 1} values"
                + (" (a word with a space?)" if len(parts) > dim else ""),
                "every line must have as many values as the "
                + ("header's dimension" if header is not None else "first line"),
            )
        seen += 1
        yield number, parts[0], parts[1:]
    if seen == 0:
        raise DataError(f"vector file holds no vectors: {path}", HINT)
    if count is not None and seen != count:
        raise DataError(
            f"{path}: the header announces {count:,} vectors, the file holds {seen:,}",
            "the file is truncated, or its header is wrong",
        )


def _chain(first, rest):
    yield first
    yield from rest


def _parse(path: Path, number: int, values: list[str]) -> np.ndarray:
    try:
        row = np.array(values, dtype=np.float32)
    except ValueError:
        bad = next(v for v in values if not _is_number(v))
        raise DataError(f"{path}, line {number}: {bad!r} is not a number", HINT) from None
    if not np.isfinite(row).all():
        bad = values[int(np.flatnonzero(~np.isfinite(row))[0])]
        raise DataError(f"{path}, line {number}: {bad!r} is not a finite number", HINT)
    return row


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def read_vectors(path: str | Path) -> tuple[list[str], np.ndarray]:
    """The words of a word2vec text or GloVe file and their vectors, float32 (n, d), in file
    order (a repeated word is kept each time; `embedding_from_vectors` uses the first)."""
    path = check_data_file(path)
    rows = _rows(path)
    dim = next(rows)
    words, vectors = [], []
    for number, word, values in rows:
        words.append(word)
        vectors.append(_parse(path, number, values))
    return words, np.stack(vectors).reshape(len(words), dim)


def embedding_from_vectors(
    vocab, path: str | Path, dim: int | None = None, seed: int = 0, missing: str = "random"
) -> tuple[torch.Tensor, dict]:
    """An embedding matrix (len(vocab), d) for ``vocab`` (a `WordVocab`) from a vector file,
    and the coverage ``{"covered", "total", "fraction"}`` of its words. ``dim``: the dimension
    the model expects (a DataError names both when the file's differs). ``missing``: "random"
    (seeded by ``seed``) or "zero" for the words the file lacks; <pad> is always zero. Only the
    vocabulary's rows are kept in memory while reading."""
    if missing not in ("random", "zero"):
        raise DataError(f"missing must be 'random' or 'zero', got {missing!r}")
    path = check_data_file(path)
    rows = _rows(path)
    found = next(rows)
    if dim is not None and dim != found:
        raise DataError(
            f"the vectors in {path} have {found} dimensions, the model expects {dim}",
            f"set the embedding size to {found}, or use vectors of dimension {dim}",
        )
    lower = getattr(vocab, "lower", False)
    first = vocab.first_plain
    exact: dict[int, np.ndarray] = {}  # vocabulary id -> vector
    folded: dict[int, np.ndarray] = {}  # by the lower-case form, first one seen
    total, total_sq, n = 0.0, 0.0, 0
    for number, word, values in rows:
        row = _parse(path, number, values)
        total += float(row.sum(dtype=np.float64))
        total_sq += float(np.square(row, dtype=np.float64).sum())
        n += row.size
        i = vocab.index.get(word)
        if i is not None and i >= first and i not in exact:
            exact[i] = row
        elif lower:
            j = vocab.index.get(word.lower())
            if j is not None and j >= first and j not in folded:
                folded[j] = row
    std = math.sqrt(max(total_sq / n - (total / n) ** 2, 0.0)) or 0.1
    generator = torch.Generator().manual_seed(seed)
    if missing == "random":
        weight = torch.randn(len(vocab), found, generator=generator) * std
    else:
        weight = torch.zeros(len(vocab), found)
    rows_found = folded | exact  # an exact match wins over a case-folded one
    for i, row in rows_found.items():
        weight[i] = torch.from_numpy(row)
    if vocab.pad is not None:
        weight[vocab.pad] = 0.0
    words = len(vocab) - first
    coverage = {
        "covered": len(rows_found),
        "total": words,
        "fraction": len(rows_found) / words if words else 0.0,
    }
    return weight, coverage


def format_vectors(words: list[str], vectors: np.ndarray) -> str:
    """The word2vec text format of ``vectors`` (n, d): a header "n d", then "word v1 ... vd";
    each value with 9 significant digits, which read back as the same float32."""
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or len(words) != len(vectors):
        raise DataError(f"{len(words)} words for vectors of shape {tuple(vectors.shape)}")
    for w in words:
        if not w or any(c.isspace() for c in w):
            raise DataError(f"a word of the word2vec text format cannot hold spaces: {w!r}")
    n, d = vectors.shape
    lines = [f"{n} {d}"]
    fmt = " ".join(["%.9g"] * d)
    for word, row in zip(words, vectors.tolist(), strict=True):
        lines.append(f"{word} {fmt % tuple(row)}")
    return "\n".join(lines) + "\n"
