"""Text corpora: the built-in default that ships with Python, or the user's UTF-8 file.

The built-in corpus is CPython's own help text, ``pydoc_data.topics`` (about 465k characters of
English documentation; PSF licence), so the demo needs no download and no extra package.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from rnnkit.errors import DataError

BUILTIN = "pydoc"  # the name that selects the built-in corpus


def builtin_corpus() -> str:
    """The Python documentation topics, concatenated in a fixed (sorted) order."""
    from pydoc_data.topics import topics

    return "\n\n".join(topics[key].strip() for key in sorted(topics)) + "\n"


HINT = "pass a UTF-8 text file, or data.path=pydoc for the built-in corpus"


def check_data_file(source: str | Path) -> Path:
    """``source`` as a path, or a DataError: missing, a directory, or not a regular file (a
    FIFO would hang, /dev/zero would fill the memory)."""
    path = Path(source).expanduser()
    if not path.exists():
        raise DataError(f"data file not found: {path}", HINT)
    if path.is_dir():
        raise DataError(f"data file is a directory, expected a text file: {path}", HINT)
    if not path.is_file():
        raise DataError(f"data file is not a regular file (a device, FIFO or socket): {path}", HINT)
    return path


def load_text(source: str | Path | None) -> str:
    """Read a corpus: ``None``, ``""`` or ``"pydoc"`` gives the built-in one, else a UTF-8 file.

    Raises DataError for a missing, empty, binary or non-UTF-8 file.
    """
    if source is None or str(source) in ("", BUILTIN):
        return builtin_corpus()
    path = check_data_file(source)
    hint = HINT
    raw = path.read_bytes()
    if not raw.strip():
        raise DataError(f"data file is empty: {path} ({len(raw)} bytes)", hint)
    if b"\x00" in raw[: 1 << 20]:
        offset = raw.index(b"\x00")
        raise DataError(
            f"data file looks binary (a NUL byte at offset {offset}), expected text: {path}", hint
        )
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        bad = raw[err.start : err.start + 1].hex()
        raise DataError(
            f"data file is not UTF-8: byte 0x{bad} at offset {err.start} of {path}",
            "convert it first, e.g. `iconv -f latin1 -t utf-8 in.txt > out.txt`",
        ) from None


def file_identity(path: str | Path) -> dict:
    """What a run records of a data file it read: absolute path, size and SHA-256. For a
    folder: the total size, and the SHA-256 of every regular file's relative path and digest
    in sorted order (links are not followed)."""
    path = Path(path).expanduser().resolve()
    if path.is_dir():
        digest, size = hashlib.sha256(), 0
        for f in sorted(p for p in path.rglob("*") if p.is_file() and not p.is_symlink()):
            inner = file_identity(f)
            size += inner["size"]
            digest.update(f"{f.relative_to(path).as_posix()}\0{inner['sha256']}\n".encode())
        return {"path": str(path), "size": size, "sha256": digest.hexdigest()}
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return {"path": str(path), "size": path.stat().st_size, "sha256": digest.hexdigest()}
