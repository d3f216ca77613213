"""Word corpora, each split into train / valid / test lines, all offline:

    "bible"        the World English Bible (Debian sword-text-web), split by book
                   (`rnnkit.data.bible.SPLIT`: a fixed, documented split)
    "pydoc"        Python's built-in help text (`rnnkit.data.text.builtin_corpus`)
    "python-docs"  the reST sources of the Python documentation (Debian python3.11-doc)
    a path         the user's UTF-8 text file, or a folder of them (every *.txt, *.rst, *.md
                   file below it, in sorted order)

Corpora without a split of their own are cut by lines: the first 90% for training, the next 5%
for validation, the last 5% for testing (for a folder: in the sorted file order).
"""

from __future__ import annotations

from pathlib import Path

from rnnkit.data.text import BUILTIN, builtin_corpus, check_data_file, load_text
from rnnkit.errors import DataError

NAMED = ("bible", BUILTIN, "python-docs")
PYTHON_DOCS = Path("/usr/share/doc/python3.11/html/_sources")
SUFFIXES = (".txt", ".rst", ".md")
SPLITS = ("train", "valid", "test")


def tail_split(lines: list[str], valid: float = 0.05, test: float = 0.05) -> dict[str, list[str]]:
    """Lines cut in order: the head to train, then valid, then test."""
    n = len(lines)
    a, b = round(n * (1 - valid - test)), round(n * (1 - test))
    return {"train": lines[:a], "valid": lines[a:b], "test": lines[b:]}


def folder_files(folder: Path) -> list[Path]:
    """The text files under ``folder`` in sorted order (links not followed)."""
    files = sorted(
        p for p in folder.rglob("*") if p.suffix in SUFFIXES and p.is_file() and not p.is_symlink()
    )
    if not files:
        raise DataError(
            f"no text files ({', '.join(SUFFIXES)}) under the folder {folder}",
            "pass a UTF-8 text file, a folder of them, or data.corpus=bible",
        )
    return files


def word_corpus(name: str) -> dict[str, list[str]]:
    """``{"train", "valid", "test"}`` -> lines of text, for a named corpus or a path."""
    if name == "bible":
        from rnnkit.data.bible import bible_split

        return bible_split()
    if name in ("", BUILTIN):
        return tail_split(builtin_corpus().splitlines())
    if name == "python-docs":
        if not PYTHON_DOCS.is_dir():
            raise DataError(
                f"the Python documentation sources are not installed ({PYTHON_DOCS})",
                "install them with `sudo apt-get install python3.11-doc`",
            )
        name = str(PYTHON_DOCS)
    path = Path(name).expanduser()
    if path.is_dir():
        lines = [line for f in folder_files(path) for line in load_text(f).splitlines()]
    else:
        lines = load_text(check_data_file(path)).splitlines()
    split = tail_split(lines)
    for part in SPLITS:
        if not any(line.strip() for line in split[part]):
            raise DataError(
                f"the corpus {name} is too small to split: its {part} part (of 90/5/5% of "
                f"{len(lines)} lines) has no text",
                "give a text of at least a few hundred lines",
            )
    return split
