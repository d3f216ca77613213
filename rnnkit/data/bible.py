"""The World English Bible (and the Reina-Valera 1909) as plain text, split by book, and as
English -> Spanish verse pairs, read offline from Debian's SWORD modules with PyPI `pysword`.

    bible_books("WEB")   [(book, text)], canonical order; text: one verse a line
    bible_book("John")   [(chapter, verse, text)] of one book
    bible_split("WEB")   {"train", "valid", "test"} -> verse lines, split by whole books (SPLIT)
    verse_pairs()        [("John 3:16", English verse, Spanish verse)], aligned by reference

Sources (public domain; no download at run time):

    alias   SWORD module    Debian package      text
    WEB     engWEB2015eb    sword-text-web      World English Bible with Deuterocanon (2020 text)
    SpaRV   spaRV1909eb     sword-text-sparv    Reina-Valera 1909

Modules are looked for under $RNNKIT_SWORD_PATH (folders holding mods.d/, separated by ':'), else
/usr/share/sword and ~/.sword. The verses are OSIS markup; `clean_osis` makes them plain text:

    1. cut at the end-of-book marker (the WEB appends its glossary to Revelation 22:21)
    2. drop whole elements that are not running text: <note> (footnotes, cross-references),
       <title> unless canonical (Psalm superscriptions stay), <speaker>, <catchWord>, <rdg>,
       <milestone>, <figure>, <index>; each, with the spaces around it, becomes nothing
       before closing punctuation and one space before anything else ("God<note>..</note>created" ->
       "God created", "coins <note>..</note> ?" -> "coins?"). Removing all tags first
       would glue the note's text, and dropping notes without a space would glue words.
    3. drop the remaining tags, keeping their text: <w>, <q>, <transChange>... vanish, block
       tags (<l>, <lg>, <lb>, <div>, <chapter>, <item>...) become a space
    4. unescape entities (&amp; -> &) and collapse whitespace.

Reading: pysword inflates a module's whole book block again for every verse it reads
(BlockType=BOOK): 90 s of CPU (105 s wall) for the WEB here. `_fast` keeps the last block, and
the cleaned books are cached once as UTF-8 files under ``cache_dir()/bible/<alias>/``
($RNNKIT_DATA_CACHE, else ~/.cache/rnnkit/corpora): one ``NN-Book.txt`` a book, one
``chapter:verse<TAB>text`` line a verse, and ``manifest.json`` (module, version, verses and
words a book) written last; every file goes through a temporary file and a rename, so an
interrupted first read leaves no half cache. Measured on a shared 2-core machine: the first
read of the WEB (pysword, cleaning, writing) 2-5 s, a cached read 0.09 s; the verse pairs 2-3 s
the first time (the Spanish module read), 0.09 s cached (``pairs-WEB-SpaRV.json``).

The WEB: 80 books with text (the 66 of the Protestant canon and 14 deuterocanonical; the
module's Prayer of Azariah, Susanna and Bel are empty), 37,457 verses, 905,555
whitespace-separated words (749,965 in the 66 books), 14,712 word types (\\w+, lower-cased).

SPLIT, by whole books, from both testaments and from different genres (all in the 66 books,
so the translation pairs have held-out books too); every other book is training text:

    test    Ruth, Proverbs, Daniel, Mark, Hebrews, James     narrative, wisdom, apocalyptic,
                                                             gospel, epistles
            2,446 verses, 51,516 words (5.7%), 2,445 verse pairs
    valid   Joshua, Ecclesiastes, Hosea, Acts, Galatians     history, wisdom, prophecy,
                                                             church history, epistle
            2,230 verses, 54,353 words (6.0%), 1,910 verse pairs
    train   the other 69 books: 32,781 verses, 799,686 words (88.3%), 25,800 verse pairs

Verse pairs WEB -> SpaRV (`align_verses`): 31,077 references both have non-empty; 886 of them
in chapters the two versifications divide differently and 36 of very different lengths left
out: 30,155 pairs.
"""

from __future__ import annotations

import functools
import html
import json
import os
import re
import tempfile
from pathlib import Path

from rnnkit.data.corpus import cache_dir
from rnnkit.errors import DataError

__all__ = [
    "MODULES",
    "SPLIT",
    "align_verses",
    "bible_book",
    "bible_books",
    "bible_split",
    "bible_verses",
    "clean_osis",
    "split_of",
    "verse_pairs",
]

# alias -> (SWORD module name, Debian package)
MODULES = {"WEB": ("engWEB2015eb", "sword-text-web"), "SpaRV": ("spaRV1909eb", "sword-text-sparv")}

# Held-out whole books (pysword's book names); every other book is training text.
SPLIT = {
    "valid": ["Joshua", "Ecclesiastes", "Hosea", "Acts", "Galatians"],
    "test": ["Ruth", "Proverbs", "Daniel", "Mark", "Hebrews", "James"],
}

CLEANING = 1  # bump when clean_osis changes: cached books are rebuilt
ALIGNMENT = 1  # bump when align_verses changes: cached pairs are rebuilt

# ----------------------------------------------------------------------------- cleaning

_DROP = "note|title|speaker|catchWord|rdg|rdgGroup|milestone|figure|index|abbr"
_DROPPED = re.compile(rf"<({_DROP})\b[^>]*?/>|<({_DROP})\b[^>]*>.*?</\2\s*>", re.S | re.I)
_BLOCK = re.compile(
    r"</?(l|lg|lb|p|div|chapter|title|item|list|table|row|cell|head|closer|signed|salute|br)\b[^>]*>",
    re.I,
)
_TAG = re.compile(r"<[^>]*>")
_BOOK_END = re.compile(r'<div\b(?=[^>]*\beID=)(?=[^>]*\btype="book")[^>]*>')
_GAP = "\x00"
_CLOSING = ".,;:!?)]}”’»…"


def _drop(match: re.Match) -> str:
    element = match.group(0)
    opening, _, rest = element.partition(">")
    if opening[:6].lower() == "<title" and 'canonical="true"' in opening:
        return opening + ">" + _DROPPED.sub(_drop, rest)  # a Psalm superscription is text
    return _GAP


def _gap(match: re.Match) -> str:
    """A dropped element and the spaces around it: nothing before closing punctuation ("coins
    <note/> ?" -> "coins?"), else one space."""
    text, end = match.string, match.end()
    after = text[end] if end < len(text) else " "
    return "" if after in _CLOSING else " "


def clean_osis(raw: str) -> str:
    """One verse of OSIS markup as plain text on one line (see the module docstring)."""
    end = _BOOK_END.search(raw)
    text = raw[: end.start()] if end else raw
    text = _DROPPED.sub(_drop, text)
    text = _BLOCK.sub(" ", text)
    text = _TAG.sub("", text)
    text = re.sub(rf"\s*{_GAP}[\s{_GAP}]*", _gap, text)
    text = html.unescape(text)
    return " ".join(text.split())


def align_verses(
    source: dict[str, str], target: dict[str, str], max_ratio: float = 2.0
) -> list[tuple[str, str, str]]:
    """``[(reference, source text, target text)]`` joined on references "Book chapter:verse", in
    the source's order, without the pairs that are probably not translations of each other:

    - a reference missing or empty on either side;
    - every verse of an uneven chapter (one side has a verse the other lacks) and of the chapter
      after it: where the versifications differ, a verse moved across a chapter boundary
      shifts the next chapter too (Spanish Job 39:1 is English Job 38:39);
    - a pair whose lengths in characters differ by more than ``max_ratio`` times either way
      (0: keep all), what is left of a shift inside a chapter.
    """

    def chapter(ref: str) -> tuple[str, int]:
        book, _, verse = ref.rpartition(" ")
        return book, int(verse.split(":")[0]) if ":" in verse else 0

    src = {r: t.strip() for r, t in source.items() if t.strip()}
    tgt = {r: t.strip() for r, t in target.items() if t.strip()}
    uneven = {chapter(r) for r in set(src) ^ set(tgt)}
    skip = uneven | {(book, c + 1) for book, c in uneven}
    pairs = []
    for ref, text in src.items():
        other = tgt.get(ref)
        if other is None or chapter(ref) in skip:
            continue
        if max_ratio and not 1 / max_ratio <= len(other) / len(text) <= max_ratio:
            continue
        pairs.append((ref, text, other))
    return pairs


# ----------------------------------------------------------------------------- the modules


def sword_paths() -> list[Path]:
    """The folders searched for SWORD modules (each holding mods.d/)."""
    if os.environ.get("RNNKIT_SWORD_PATH"):
        return [Path(p).expanduser() for p in os.environ["RNNKIT_SWORD_PATH"].split(os.pathsep)]
    return [Path("/usr/share/sword"), Path.home() / ".sword"]


def _resolve(module: str) -> tuple[str, str, str]:
    """(alias, SWORD module name, Debian package) for an alias or a module name."""
    for alias, (name, package) in MODULES.items():
        if module.lower() in (alias.lower(), name.lower()):
            return alias, name, package
    raise DataError(
        f"unknown Bible module {module!r}",
        "choose one of "
        + ", ".join(f"{alias} (SWORD module {name})" for alias, (name, _) in MODULES.items()),
    )


def _conf(name: str) -> Path | None:
    for root in sword_paths():
        for conf in sorted(root.glob("mods.d/*.conf")):
            try:
                head = conf.read_text(encoding="utf-8", errors="replace")
            except OSError:
                continue
            if re.search(rf"^\[{re.escape(name)}\]", head, re.M | re.I):
                return conf
    return None


def _require(*modules: str) -> None:
    """One DataError naming every install step when a module or pysword is missing."""
    missing, steps = [], []
    for module in modules:
        alias, name, package = _resolve(module)
        if _conf(name) is None:
            where = ", ".join(str(p) for p in sword_paths())
            missing.append(f"the SWORD module {name} (Debian {package}) is not under {where}")
            steps.append(f"`sudo apt-get install {package}`")
    try:
        import pysword.modules  # noqa: F401
    except ImportError:
        missing.append("the Python package pysword is not installed")
        steps.append("`make` (or `.venv/bin/pip install pysword`)")
    if missing:
        names = " and ".join(_resolve(m)[0] for m in modules)
        raise DataError(
            f"cannot read the {names} Bible: " + "; ".join(missing), "run " + " and ".join(steps)
        )


def _open(module: str):
    """pysword's SwordBible for ``module`` and the module's version."""
    _require(module)
    from pysword.modules import SwordModules

    name = _resolve(module)[1]
    conf = _conf(name)
    modules = SwordModules(str(conf.parent.parent))
    found = {key.lower(): key for key in modules.parse_modules()}
    bible = modules.get_bible_from_module(found[name.lower()])
    return _fast(bible), _version(conf)


def _fast(bible):
    """Keep the last decompressed block: pysword inflates the whole book again for every verse
    (90 s of CPU -> under 1 s for the WEB). Only a speed-up: without that private method (another
    pysword version) the text is the same, read slowly."""
    if hasattr(bible, "_decompressed_text"):
        bible._decompressed_text = functools.lru_cache(maxsize=2)(bible._decompressed_text)
    return bible


def _version(conf: Path) -> str:
    match = re.search(r"^Version=(.*)$", conf.read_text(encoding="utf-8", errors="replace"), re.M)
    return match.group(1).strip() if match else ""


def _read_book(bible, book) -> list[tuple[int, int, str]]:
    """[(chapter, verse, clean text)] of one pysword BookStructure, empty verses left out."""
    try:
        raw = list(bible.get_iter(books=[book.name], clean=False))
    except KeyError:
        return []  # a testament this module does not have
    refs = [(c, v) for c, n in enumerate(book.chapter_lengths, 1) for v in range(1, n + 1)]
    if len(raw) != len(refs):
        raise DataError(
            f"pysword gave {len(raw)} verses for {book.name}, expected {len(refs)}",
            "a pysword version this code does not know; report it",
        )
    verses = [(c, v, clean_osis(text)) for (c, v), text in zip(refs, raw, strict=True)]
    return [(c, v, t) for c, v, t in verses if t]


# ----------------------------------------------------------------------------- the cache


def _write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename (never half a file)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _folder(alias: str) -> Path:
    return cache_dir() / "bible" / alias


def _cached(alias: str) -> list[tuple[str, list[tuple[int, int, str]]]] | None:
    where = _folder(alias)
    try:
        manifest = json.loads((where / "manifest.json").read_text(encoding="utf-8"))
        if manifest.get("cleaning") != CLEANING:
            return None
        books = []
        for entry in manifest["books"]:
            lines = (where / entry["file"]).read_text(encoding="utf-8").splitlines()
            verses = []
            for line in lines:
                ref, text = line.split("\t", 1)
                c, v = ref.split(":")
                verses.append((int(c), int(v), text))
            if len(verses) != entry["verses"]:
                return None
            books.append((entry["name"], verses))
        return books
    except (OSError, ValueError, KeyError, TypeError):
        return None  # not cached yet, or a broken entry: read the module again


@functools.lru_cache(maxsize=4)
def _memory(alias: str, folder: str) -> tuple:
    """The books of ``alias`` held for the process (keyed by the cache folder too)."""
    books = _cached(alias)
    if books is not None:
        return tuple(books)
    bible, version = _open(alias)
    books = []
    for testament in bible.get_structure().get_books().values():
        for book in testament:
            verses = _read_book(bible, book)
            if verses:
                books.append((book.name, verses))
    where = Path(folder)
    where.mkdir(parents=True, exist_ok=True)
    entries = []
    for i, (name, verses) in enumerate(books, 1):
        file = f"{i:02d}-{re.sub(r'[^A-Za-z0-9]+', '_', name).strip('_')}.txt"
        _write(where / file, "".join(f"{c}:{v}\t{t}\n" for c, v, t in verses))
        words = sum(len(t.split()) for _, _, t in verses)
        entries.append({"name": name, "file": file, "verses": len(verses), "words": words})
    manifest = {"module": MODULES[alias][0], "version": version, "cleaning": CLEANING}
    _write(where / "manifest.json", json.dumps({**manifest, "books": entries}, indent=1) + "\n")
    return tuple(books)


def bible_verses(module: str = "WEB") -> list[tuple[str, list[tuple[int, int, str]]]]:
    """``[(book, [(chapter, verse, text)])]`` in canonical order, books without text left out."""
    alias = _resolve(module)[0]
    return list(_memory(alias, str(_folder(alias))))


def bible_book(book: str, module: str = "WEB") -> list[tuple[int, int, str]]:
    """``[(chapter, verse, text)]`` of one book (a name like "John" or "I Samuel", or an OSIS
    abbreviation like "1Sam"): from the cache when the whole module is there, else straight
    from the module (a fraction of a second, nothing written)."""
    alias = _resolve(module)[0]
    for name, verses in _cached(alias) or ():
        if name.lower() == book.lower():
            return verses
    bible, _ = _open(alias)
    try:
        _, structure = bible.get_structure().find_book(book)
    except ValueError:
        raise DataError(
            f"no book {book!r} in the {alias} Bible",
            "name it as pysword does: Genesis, I Samuel, Song of Solomon, Revelation of John",
        ) from None
    return _read_book(bible, structure)


def bible_books(module: str = "WEB") -> list[tuple[str, str]]:
    """``[(book, text)]``: each book's clean text, one verse a line, in canonical order."""
    return [(name, "\n".join(t for _, _, t in verses)) for name, verses in bible_verses(module)]


def split_of(book: str) -> str:
    """ "valid", "test" or "train": where SPLIT puts ``book``."""
    for part, books in SPLIT.items():
        if book in books:
            return part
    return "train"


def bible_split(module: str = "WEB") -> dict[str, list[str]]:
    """``{"train", "valid", "test"}`` -> verse lines, by whole books (SPLIT)."""
    out: dict[str, list[str]] = {"train": [], "valid": [], "test": []}
    for name, verses in bible_verses(module):
        out[split_of(name)] += [t for _, _, t in verses]
    return out


def verse_pairs(source: str = "WEB", target: str = "SpaRV") -> list[tuple[str, str, str]]:
    """``[(reference, source verse, target verse)]`` aligned by reference, like
    ``("John 3:16", "For God so loved the world...", "Porque de tal manera amó Dios...")``;
    references missing or empty on either side are skipped."""
    a, b = _resolve(source)[0], _resolve(target)[0]
    where = cache_dir() / "bible" / f"pairs-{a}-{b}.json"
    key = [_key(a), _key(b), ALIGNMENT]
    try:
        cached = json.loads(where.read_text(encoding="utf-8"))
        if cached["key"] == key and None not in key:
            return [tuple(p) for p in cached["pairs"]]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    uncached = [m for m in (a, b) if _key(m) is None]
    if uncached:
        _require(*uncached)  # one error naming both packages when both are missing
    src, tgt = (_by_reference(bible_verses(m)) for m in (a, b))
    pairs = align_verses(src, tgt)
    where.parent.mkdir(parents=True, exist_ok=True)
    key = [_key(a), _key(b), ALIGNMENT]
    _write(where, json.dumps({"key": key, "pairs": pairs}, ensure_ascii=False))
    return pairs


def _key(alias: str):
    """What the pairs cache depends on: the module's cached manifest (version, cleaning)."""
    try:
        m = json.loads((_folder(alias) / "manifest.json").read_text(encoding="utf-8"))
        return [m["module"], m["version"], m["cleaning"], len(m["books"])]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _by_reference(books) -> dict[str, str]:
    return {f"{name} {c}:{v}": t for name, verses in books for c, v, t in verses}
