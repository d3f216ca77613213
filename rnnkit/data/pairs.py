"""Sentence pairs for sequence-to-sequence tasks, all offline and seeded.

    dates    "5 mars 2024" -> "2024-03-05": random dates 1950-2049 written by `babel` in several
             locales and formats (CLDR medium/long/full and a few patterns), as numbers in one
             stated day-month order, and as people type them (ISO with slashes or dots,
             "5th of March 2024", two-digit years); `non_dates` for checking confidence
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
DATE_FORMATS = ("medium", "long", "full", "d MMMM y", "EEE d MMM y")  # words, by babel
# numbers only, in the day-month order of ``day_first`` (as CLDR's short formats, which differ
# by locale: 3/5/24 is 5 March in en_US and 3 May in fr; the model cannot tell, so one order)
NUMERIC_FORMATS = (
    "{dd}/{mm}/{y}",
    "{d}/{m}/{yy}",
    "{dd}.{mm}.{yy}",
    "{dd}.{mm}.{y}",
    "{dd}/{mm}/{yy}",
)
# the forms people type, added to the CLDR ones (issue #18): "added" in the test metrics
TYPED_FORMATS = (
    "{y}-{mm}-{dd}",
    "{y}/{mm}/{dd}",
    "{y}.{mm}.{dd}",
    "{d}-{m}-{y}",
    "{dd}-{mm}-{yy}",
    "{ord} of {Month} {y}",
    "{ord} {Month} {y}",
    "the {ord} of {Month}, {y}",
    "{Month} {ord}, {y}",
    "{Weekday} {ord} of {Month} {y}",
    "{Weekday}, {Month} {ord} {y}",
    "{d} {Mon} {yy}",
    "{ord} {Mon} '{yy}",
)
DATE_KINDS = {"written": 0.55, "numeric": 0.15, "typed": 0.30}  # shares of the training pairs
FIRST_YEAR = 1950  # dates are drawn from 1950-2049, so a two-digit year yy is 19yy for yy >= 50


def ordinal(day: int) -> str:
    """1 -> "1st", 2 -> "2nd", 11 -> "11th", 23 -> "23rd"."""
    suffix = "th" if 10 <= day % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    return f"{day}{suffix}"


def typed_date(d: datetime.date, pattern: str, day_first: bool = True) -> str:
    """``d`` in one of NUMERIC_FORMATS / TYPED_FORMATS (English names for the word parts);
    with ``day_first=False`` the numeric day and month swap places (5/3/24 -> 3/5/24)."""
    from babel.dates import format_date

    fields = {
        "d": d.day,
        "dd": f"{d.day:02d}",
        "m": d.month,
        "mm": f"{d.month:02d}",
        "y": d.year,
        "yy": f"{d.year % 100:02d}",
        "ord": ordinal(d.day),
        "Month": format_date(d, "MMMM", locale="en"),
        "Mon": format_date(d, "MMM", locale="en"),
        "Weekday": format_date(d, "EEEE", locale="en"),
    }
    if not day_first and not pattern.startswith("{y}"):
        fields |= {"d": d.month, "dd": f"{d.month:02d}", "m": d.day, "mm": f"{d.day:02d}"}
    return pattern.format(**fields)


def dates(
    n: int,
    seed: int = 0,
    locales=DATE_LOCALES,
    day_first: bool = True,
    kinds: dict[str, float] | None = None,
) -> list[tuple[str, str]]:
    """``n`` (written date, ISO date) pairs; each date is drawn uniformly from 1950-2049 and
    written in a kind drawn with the shares of ``kinds`` (default DATE_KINDS): "written" (words,
    by babel in ``locales``), "numeric" (NUMERIC_FORMATS) or "typed" (TYPED_FORMATS); numeric
    dates are day first unless ``day_first=False`` (then month first, as in the US)."""
    from babel.dates import format_date

    kinds = kinds or DATE_KINDS
    rng = random.Random(seed)
    start, days = datetime.date(FIRST_YEAR, 1, 1), 36524
    names, shares = list(kinds), list(kinds.values())
    pairs = []
    for _ in range(n):
        d = start + datetime.timedelta(days=rng.randrange(days))
        kind = rng.choices(names, shares)[0]
        if kind == "written":
            text = format_date(d, rng.choice(DATE_FORMATS), locale=rng.choice(locales))
        else:
            formats = NUMERIC_FORMATS if kind == "numeric" else TYPED_FORMATS
            text = typed_date(d, rng.choice(formats), day_first)
            if kind == "typed" and rng.random() < 0.2:
                text = text.lower()
        pairs.append((text, d.isoformat()))
    return pairs


def non_dates(n: int, seed: int = 0, keep=None) -> list[str]:
    """``n`` distinct inputs that are not dates: runs of 1-6 words and sentence pieces of up to
    60 characters from Python's own documentation (`rnnkit.data.text.builtin_corpus`), digits
    removed, so none names a day; ``keep(text) -> bool`` filters them (the characters a model
    knows, say)."""
    from rnnkit.data.text import builtin_corpus

    text = re.sub(r"[^A-Za-z ,.'-]+", " ", builtin_corpus())
    words = [w for w in text.split() if re.fullmatch(r"[A-Za-z][A-Za-z'-]*", w)]
    rng = random.Random(seed)
    out: dict[str, None] = {}
    for _ in range(100 * n):
        if len(out) >= n:
            break
        k = rng.randrange(len(words) - 12)
        piece = " ".join(
            words[k : k + rng.randint(1, 6)] if rng.random() < 0.5 else words[k : k + 12]
        )
        piece = piece[:60].rsplit(" ", 1)[0] if len(piece) > 60 else piece
        if piece and (keep is None or keep(piece)):
            out[piece] = None
    return list(out)


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
