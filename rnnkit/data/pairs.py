"""Sentence pairs for sequence-to-sequence tasks, all offline and seeded.

    dates    "5 mars 2024" -> "2024-03-05": random dates 1950-2049 written by `babel` in several
             locales and formats (CLDR short/medium/long/full and a few patterns)
    numbers  4721 -> "quatre mille sept cent vingt et un" with `num2words`, either direction
    gettext  English -> French/German/Spanish UI messages from the compiled gettext catalogues
             under /usr/share/locale (stdlib `gettext`): real human translations
    tsv      the user's own file: source <TAB> target, one pair a line

Each source returns a list of (source, target) pairs; `split` makes train / validation / test
sets that never share a source string.
"""

from __future__ import annotations

import datetime
import gettext
import random
import re
from pathlib import Path

from rnnkit.errors import DataError

DATE_LOCALES = ("en", "fr", "de", "es", "it")
DATE_FORMATS = ("short", "medium", "long", "full", "d MMMM y", "EEE d MMM y", "dd/MM/y")


def dates(n: int, seed: int = 0, locales=DATE_LOCALES) -> list[tuple[str, str]]:
    """``n`` (written date, ISO date) pairs; each date is drawn uniformly from 1950-2049."""
    from babel.dates import format_date

    rng = random.Random(seed)
    start, days = datetime.date(1950, 1, 1), 36524
    pairs = []
    for _ in range(n):
        d = start + datetime.timedelta(days=rng.randrange(days))
        text = format_date(d, rng.choice(DATE_FORMATS), locale=rng.choice(locales))
        pairs.append((text, d.isoformat()))
    return pairs


def numbers(
    n: int, seed: int = 0, lang: str = "fr", high: int = 999_999, to_words: bool = True
) -> list[tuple[str, str]]:
    """``n`` (digits, words) pairs for distinct numbers in [0, high], or (words, digits)."""
    from num2words import num2words

    if n > high + 1:
        raise DataError(f"asked for {n} distinct numbers, but only {high + 1} exist up to {high}")
    rng = random.Random(seed)
    pairs = [(str(k), num2words(k, lang=lang)) for k in rng.sample(range(high + 1), n)]
    return pairs if to_words else [(w, d) for d, w in pairs]


def gettext_pairs(lang: str = "fr", root: str = "/usr/share/locale", max_chars: int = 80):
    """(English msgid, translated msgstr) pairs from every catalogue of ``lang`` under ``root``.

    Kept: single-line messages up to ``max_chars`` without format placeholders or markup, whose
    translation differs from the source; duplicates removed (first translation wins).
    """
    files = sorted(Path(root, lang, "LC_MESSAGES").glob("*.mo"))
    if not files:
        raise DataError(
            f"no gettext catalogues for {lang!r} under {root}",
            "install some programs' translations (Debian's *-l10n or locales packages), "
            "or use data.source=tsv with your own pairs",
        )
    skip = re.compile(r"%|\{|\}|<|>|\\|_|&|\n|\t|\$|@|https?:")
    pairs: dict[str, str] = {}
    for path in files:
        try:
            with open(path, "rb") as f:
                catalog = gettext.GNUTranslations(f)._catalog
        except (OSError, UnicodeDecodeError, ValueError):
            continue  # a catalogue in an old or broken format: skip it
        for src, tgt in catalog.items():
            if not isinstance(src, str) or not isinstance(tgt, str) or not src or not tgt:
                continue
            if len(src) > max_chars or len(tgt) > max_chars or skip.search(src + tgt):
                continue
            if src != src.strip() or tgt != tgt.strip() or "  " in src + tgt:
                continue
            if src != tgt and src not in pairs and re.search(r"[A-Za-z]{2}", src):
                pairs[src] = tgt
    return sorted(pairs.items())


def tsv(path: str | Path) -> list[tuple[str, str]]:
    """The user's tab-separated pairs; a clear error names the first bad line."""
    from rnnkit.data.text import load_text

    pairs = []
    for number, line in enumerate(load_text(path).splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != 2 or not parts[0].strip() or not parts[1].strip():
            raise DataError(
                f"{path}, line {number}: expected 'source<TAB>target', got {line[:60]!r}",
                "one pair a line, the two sides separated by a single tab",
            )
        pairs.append((parts[0].strip(), parts[1].strip()))
    return pairs


def split(pairs, n_val: int, n_test: int, seed: int = 0):
    """Shuffle by distinct source and cut into (train, val, test); no source is in two sets."""
    by_source: dict[str, list[tuple[str, str]]] = {}
    for src, tgt in pairs:
        by_source.setdefault(src, []).append((src, tgt))
    sources = sorted(by_source)
    random.Random(seed).shuffle(sources)
    if len(sources) < n_val + n_test + 1:
        raise DataError(
            f"only {len(sources)} distinct sources, too few for {n_val} validation and "
            f"{n_test} test pairs plus training",
            "lower data.n_val and data.n_test, or give more data",
        )
    val, test = sources[:n_val], sources[n_val : n_val + n_test]
    train = sources[n_val + n_test :]
    return tuple([p for s in part for p in by_source[s]] for part in (train, val, test))
