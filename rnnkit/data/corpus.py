"""A character corpus as token ids on disk: read once in chunks, cached by content, memory-mapped.

    vocab, ids = char_corpus(path)        ids: a (n,) int16 / int32 array, ids[i] the
                                          vocabulary index of the i-th character of the file

Two passes over the file, 4 MB at a time, so memory stays flat whatever its size (after
nanoGPT's ``np.memmap`` token files): the first decodes UTF-8 and collects the characters (the
vocabulary: every distinct character, sorted, as `CharVocab.from_text`), the second maps each
chunk's code points through a lookup table into the id file. The result is cached under
``$RNNKIT_DATA_CACHE`` (default ``~/.cache/rnnkit/corpora``) by the file's SHA-256, so a second
run on the same text maps it in milliseconds. The built-in corpus is small and encoded in memory.
Errors are those of `rnnkit.data.text.load_text`: missing, not a regular file, empty, binary,
not UTF-8.
"""

from __future__ import annotations

import codecs
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from rnnkit.data.text import BUILTIN, HINT, builtin_corpus, check_data_file, file_identity
from rnnkit.data.vocab import CharVocab
from rnnkit.errors import DataError

__all__ = ["char_corpus", "cache_dir"]

CHUNK = 1 << 22  # bytes read at a time


def cache_dir() -> Path:
    return Path(os.environ.get("RNNKIT_DATA_CACHE", Path.home() / ".cache" / "rnnkit" / "corpora"))


def char_corpus(source: str | Path | None) -> tuple[CharVocab, np.ndarray]:
    """The vocabulary and the ids (n,) of a corpus (see the module docstring)."""
    if source is None or str(source) in ("", BUILTIN):
        text = builtin_corpus()
        vocab = CharVocab.from_text(text)
        return vocab, _encode(text, _table(vocab), np.int16)
    path = _check(Path(source).expanduser())
    identity = file_identity(path)
    where = cache_dir() / f"{identity['sha256'][:32]}-{identity['size']}"
    try:
        return _cached(where)
    except (OSError, ValueError, KeyError, json.JSONDecodeError):
        pass  # not cached yet (or a broken entry): build it again
    vocab = CharVocab(sorted(_characters(path)))
    dtype = np.int16 if len(vocab) < 2**15 else np.int32
    where.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=where, prefix=".ids.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            table, n = _table(vocab), 0
            for text in _chunks(path):
                ids = _encode(text, table, dtype)
                out.write(ids.tobytes())
                n += ids.size
        os.replace(tmp, where / "ids.bin")
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    meta = {"chars": vocab.chars, "dtype": np.dtype(dtype).name, "n": n, **identity}
    (where / "meta.json").write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")
    return _cached(where)


def _cached(where: Path) -> tuple[CharVocab, np.ndarray]:
    meta = json.loads((where / "meta.json").read_text(encoding="utf-8"))
    # copy-on-write: torch can wrap it without a read-only warning; nothing ever writes it
    ids = np.memmap(where / "ids.bin", dtype=meta["dtype"], mode="c", shape=(meta["n"],))
    return CharVocab(meta["chars"]), ids


def _check(path: Path) -> Path:
    path = check_data_file(path)
    with open(path, "rb") as f:
        head = f.read(1 << 20)
    if b"\x00" in head:
        raise DataError(
            f"data file looks binary (a NUL byte at offset {head.index(0)}), expected text: {path}",
            HINT,
        )
    return path


def _chunks(path: Path):
    """The file's text, CHUNK bytes at a time, decoded as UTF-8 across chunk boundaries."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    with open(path, "rb") as f:
        while True:
            raw = f.read(CHUNK)
            try:
                text = decoder.decode(raw, final=not raw)
            except UnicodeDecodeError as err:
                at = offset + err.start
                raise DataError(
                    f"data file is not UTF-8: byte 0x{err.object[err.start : err.start + 1].hex()}"
                    f" at offset {at} of {path}",
                    "convert it first, e.g. `iconv -f latin1 -t utf-8 in.txt > out.txt`",
                ) from None
            offset += len(raw)
            if text:
                yield text
            if not raw:
                return


def _characters(path: Path) -> set[str]:
    chars: set[str] = set()
    for text in _chunks(path):
        chars.update(text)
    if not chars or all(c.isspace() for c in chars):
        raise DataError(f"data file is empty: {path} ({path.stat().st_size} bytes)", HINT)
    return chars


def _table(vocab: CharVocab) -> np.ndarray:
    """Code point -> id (-1 for characters outside the vocabulary)."""
    table = np.full(max(map(ord, vocab.chars)) + 1, -1, dtype=np.int32)
    table[[ord(c) for c in vocab.chars]] = np.arange(len(vocab), dtype=np.int32)
    return table


def _encode(text: str, table: np.ndarray, dtype) -> np.ndarray:
    points = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    ids = table[np.minimum(points, len(table) - 1)]
    ids[points >= len(table)] = -1
    if (ids < 0).any():  # cannot happen for the vocabulary of this text
        raise DataError("the corpus changed while it was read", "run again")
    return ids.astype(dtype)
